//! The HTML page: one self-contained file with its styles, its one script and every plot
//! inline, and the facts, the harness overhead sentence and the table cells that the
//! Markdown summary shares with it.
//!
//! Not here: drawing the plots (`plots`) and the Markdown summary (`markdown`).

use std::collections::BTreeSet;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::numbers::{bytes, duration, human};
use super::sections::{
    params_text, ratio, ratio_heading, series_name, Kind, Section, OVERHEAD, STRATA,
};
use super::{Plot, Report};
use crate::results::{Measurement, ResultFile};

/// Escapes text for HTML content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's one script: marks every plot that rendered to a box with content, counts
/// them on `<body>` with any errors and blocked loads, and notes the page's height (for
/// full-page screenshots). It fetches nothing.
pub(super) const SCRIPT: &str = r#"
(function () {
  var errors = 0;
  window.addEventListener('error', function () { errors += 1; }, true);
  document.addEventListener('securitypolicyviolation', function () { errors += 1; });
  window.addEventListener('load', function () {
    var rendered = 0;
    document.querySelectorAll('figure.plot').forEach(function (figure) {
      var svg = figure.querySelector('svg');
      var ok = false;
      if (svg) {
        var box = svg.getBoundingClientRect();
        var content = svg.getBBox();
        ok = box.width > 0 && box.height > 0 && content.width > 0 && content.height > 0 &&
          svg.querySelectorAll('text').length > 0;
      }
      figure.setAttribute('data-rendered', ok ? 'yes' : 'no');
      if (ok) { rendered += 1; }
    });
    var body = document.body;
    body.setAttribute('data-plots-rendered', String(rendered));
    body.setAttribute('data-errors', String(errors));
    body.setAttribute('data-page-height', String(Math.ceil(document.documentElement.scrollHeight)));
  });
})();
"#;

const STYLE: &str = r#"
:root { --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --soft: #f6f8fa; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
header.top { background: #24292f; color: #fff; }
header.top div, main { max-width: 1100px; margin: 0 auto; padding: 0 28px; }
header.top div { padding-top: 26px; padding-bottom: 20px; }
h1 { margin: 0 0 4px; font-size: 27px; font-weight: 650; }
header.top p { margin: 0; color: #c9d1d9; }
main { padding-bottom: 56px; }
h2 { font-size: 22px; margin: 44px 0 10px; padding-bottom: 6px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 18px; margin: 30px 0 6px; }
h3 .unit { color: var(--muted); font-weight: 400; font-size: 14px; margin-left: 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
  gap: 16px; margin-top: 24px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px;
  background: var(--soft); }
.card h2 { margin: 0 0 8px; padding: 0; border: 0; font-size: 13px; letter-spacing: .06em;
  text-transform: uppercase; color: var(--muted); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
.overhead { margin: 20px 0 0; padding: 10px 16px; border-left: 4px solid var(--accent);
  background: #eef3f8; border-radius: 0 6px 6px 0; }
nav ol { margin: 6px 0 0; padding-left: 22px; }
nav ol ol { display: flex; flex-wrap: wrap; gap: 2px 14px; padding: 0; list-style: none; }
a { color: #0969da; text-decoration: none; }
a:hover { text-decoration: underline; }
.note { color: var(--muted); margin: 4px 0 10px; }
figure { margin: 12px 0; }
figure svg { display: block; width: 100%; height: auto; border: 1px solid var(--line);
  border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 8px 0 4px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
th small { display: block; font-weight: 400; color: var(--muted); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strata td { background: #f3f7fb; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 7px; }
.better { color: #1a7f37; font-weight: 600; }
.worse { color: #cf222e; font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
ul.skipped li { margin: 3px 0; }
footer { color: var(--muted); font-size: 13px; margin-top: 48px; padding-top: 12px;
  border-top: 1px solid var(--line); }
"#;

pub(super) fn render_html(file: &ResultFile, r: &Report) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    let mut h = String::new();
    h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    h += &format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         base-uri 'none'; form-action 'none'\">\n"
    );
    h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    h += "<link rel=\"icon\" href=\"data:,\">\n";
    h += &format!(
        "<title>strata bench report, {}</title>\n",
        esc(&file.started)
    );
    h += &format!("<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head>\n");
    let figures = r.plots.len();
    h += &format!("<body data-plots=\"{figures}\">\n");
    let workloads: BTreeSet<&str> = r.sections.iter().map(|s| s.workload).collect();
    h += &format!(
        "<header class=\"top\"><div><h1>strata bench report</h1><p>Run started {} · {} \
         measurements of {} workloads · {} skipped</p></div></header>\n<main>\n",
        esc(&file.started),
        file.measurements.len(),
        workloads.len(),
        file.skipped.len()
    );
    h += "<div class=\"cards\">\n";
    h += &card("Machine", &machine_facts(file));
    h += &card("Filesystem", &filesystem_facts(file));
    let settings: Vec<(String, String)> = std::iter::once(("schema".into(), file.schema.clone()))
        .chain(file.settings.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    h += &card("Settings", &settings);
    h += "</div>\n";
    h += &format!(
        "<p class=\"overhead\"><strong>Harness overhead:</strong> {}</p>\n",
        overhead(file, esc)
    );
    h += &toc(r);
    if r.sections.is_empty() {
        h += "<h2>Measurements</h2>\n<p class=\"empty\">No measurements in this file.</p>\n";
    }
    for kind in Kind::ALL {
        let members: Vec<&Section> = r.sections.iter().filter(|s| s.kind == kind).collect();
        if members.is_empty() {
            continue;
        }
        h += &format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n<p class=\"note\">{}</p>\n",
            kind.anchor(),
            kind.title(),
            esc(kind.explanation())
        );
        if let Some(p) = r.chapter_plots.get(&kind).and_then(|p| r.plots.get(*p)) {
            h += &figure(p);
        }
        for s in members {
            h += &format!(
                "<article id=\"{}\">\n<h3>{}<span class=\"unit\">{}</span></h3>\n",
                s.id,
                esc(s.workload),
                esc(s.unit)
            );
            if let Some(p) = s.plot.and_then(|p| r.plots.get(p)) {
                h += &figure(p);
            }
            h += &html_table(s, r);
            h += "</article>\n";
        }
        h += "</section>\n";
    }
    h += "<section id=\"skipped\">\n<h2>Skipped</h2>\n";
    if file.skipped.is_empty() {
        h += "<p class=\"empty\">Nothing was skipped.</p>\n";
    } else {
        h += "<ul class=\"skipped\">\n";
        for s in &file.skipped {
            h += &format!(
                "<li><strong>{}</strong>: {}</li>\n",
                esc(&s.what),
                esc(&s.why)
            );
        }
        h += "</ul>\n";
    }
    h += "</section>\n";
    h += &format!(
        "<footer>Written by <code>strata bench</code> from a {} result file. Medians, \
         95th percentiles and distribution-free 95% confidence intervals of the median; \
         outliers are samples more than 3.5 scaled MADs from the median. Ratios compare \
         medians on the same driver and parameters.</footer>\n",
        esc(&file.schema)
    );
    h += "</main>\n</body>\n</html>\n";
    h
}

fn card(title: &str, facts: &[(String, String)]) -> String {
    let mut h = format!("<section class=\"card\"><h2>{title}</h2>");
    if facts.is_empty() {
        h += "<p class=\"empty\">Not recorded.</p>";
    } else {
        h += "<dl>";
        for (k, v) in facts {
            h += &format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
        }
        h += "</dl>";
    }
    h += "</section>\n";
    h
}

pub(super) fn machine_facts(file: &ResultFile) -> Vec<(String, String)> {
    let m = &file.machine;
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "unknown".to_owned()
        } else {
            s.to_owned()
        }
    };
    vec![
        ("kernel".into(), or_unknown(&m.kernel)),
        ("CPU".into(), or_unknown(&m.cpu)),
        ("CPUs".into(), m.cpus.to_string()),
        ("memory".into(), bytes(m.memory_bytes as f64)),
    ]
}

pub(super) fn filesystem_facts(file: &ResultFile) -> Vec<(String, String)> {
    let Some(fs) = &file.machine.filesystem else {
        return Vec::new();
    };
    let mut facts = vec![
        ("type".into(), fs.fstype.clone()),
        ("source".into(), fs.source.clone()),
    ];
    if let Some(b) = &fs.backing_file {
        facts.push(("backing file".into(), b.clone()));
    }
    facts.extend([
        ("mounted at".into(), fs.mount_point.clone()),
        ("options".into(), fs.options.clone()),
        ("measured in".into(), fs.path.clone()),
    ]);
    facts
}

/// The harness overhead sentence, with `escape` applied to what comes from the file.
pub(super) fn overhead(file: &ResultFile, escape: fn(&str) -> String) -> String {
    let empty: Vec<&Measurement> = file
        .measurements
        .iter()
        .filter(|m| m.workload == OVERHEAD && m.unit == "s")
        .collect();
    if empty.is_empty() {
        return format!("not measured (this run has no {OVERHEAD:?} workload).");
    }
    let parts: Vec<String> = empty
        .iter()
        .map(|m| {
            let params = params_text(m, None);
            let what = if params.is_empty() {
                series_name(m)
            } else {
                format!("{}, {params}", series_name(m))
            };
            format!(
                "{} per sample ({}, n = {})",
                duration(m.summary.median),
                escape(&what),
                m.summary.n
            )
        })
        .collect();
    format!(
        "{}: the median of the {OVERHEAD:?} workload, the harness measuring nothing. \
         Durations close to it say more about the harness than about the tool.",
        parts.join("; ")
    )
}

fn toc(r: &Report) -> String {
    let mut h = String::from("<nav><h2>Contents</h2><ol>\n");
    for kind in Kind::ALL {
        let members: Vec<&Section> = r.sections.iter().filter(|s| s.kind == kind).collect();
        if members.is_empty() {
            continue;
        }
        h += &format!(
            "<li><a href=\"#{}\">{}</a><ol>",
            kind.anchor(),
            kind.title()
        );
        for s in members {
            h += &format!("<li><a href=\"#{}\">{}</a></li>", s.id, esc(s.workload));
        }
        h += "</ol></li>\n";
    }
    h += "<li><a href=\"#skipped\">Skipped</a></li>\n</ol></nav>\n";
    h
}

fn figure(p: &Plot) -> String {
    // Inline SVG needs no namespace declaration, and the page names no URL at all.
    let svg = p
        .svg
        .replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
        .replacen(
            "<svg ",
            &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(&p.title)),
            1,
        );
    format!(
        "<figure class=\"plot\" id=\"plot-{name}\">\n{svg}<figcaption>{} · \
         <a href=\"plots/{name}.svg\">plots/{name}.svg</a></figcaption>\n</figure>\n",
        esc(&p.title),
        name = p.name
    )
}

/// A table row's cells: tool, driver, parameters, n, median, p95, interval, outliers, ratio.
pub(super) fn cells(m: &Measurement, all: &[Measurement]) -> [String; 9] {
    let s = &m.summary;
    let unit = m.unit.as_str();
    [
        m.tool.clone(),
        m.driver.clone().unwrap_or_else(|| "—".into()),
        match params_text(m, None) {
            p if p.is_empty() => "—".into(),
            p => p,
        },
        s.n.to_string(),
        human(unit, s.median),
        human(unit, s.p95),
        format!(
            "{} – {}",
            human(unit, s.median_ci.0),
            human(unit, s.median_ci.1)
        ),
        s.outliers.to_string(),
        ratio(m, all).map_or_else(|| "—".into(), |r| format!("{r:.2}×")),
    ]
}

fn html_table(s: &Section, r: &Report) -> String {
    let (ratio_name, ratio_means) = ratio_heading(s.unit);
    let mut h = format!(
        "<div class=\"scroll\"><table>\n<thead><tr><th>tool</th><th>driver</th>\
         <th>parameters</th><th class=\"num\">n</th><th class=\"num\">median</th>\
         <th class=\"num\">p95</th><th class=\"num\">95% CI of median</th>\
         <th class=\"num\">outliers</th><th class=\"num\">{}<small>{}</small></th></tr>\
         </thead>\n<tbody>\n",
        esc(ratio_name),
        esc(ratio_means)
    );
    for m in &s.rows {
        let c = cells(m, r.all);
        let class = if m.tool == STRATA {
            " class=\"strata\""
        } else {
            ""
        };
        let verdict = match ratio(m, r.all) {
            Some(x) if x > 1.02 => " better",
            Some(x) if x < 0.98 => " worse",
            _ => "",
        };
        h += &format!(
            "<tr{class}><td><span class=\"sw\" style=\"background:{}\"></span>{}</td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num{verdict}\">{}</td></tr>\n",
            r.colors.hex(m),
            esc(&c[0]),
            esc(&c[1]),
            esc(&c[2]),
            esc(&c[3]),
            esc(&c[4]),
            esc(&c[5]),
            esc(&c[6]),
            esc(&c[7]),
            esc(&c[8]),
        );
    }
    h += "</tbody></table></div>\n";
    h
}
