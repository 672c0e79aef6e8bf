//! The Markdown summary: the same facts and tables as the page, linking the plots rather
//! than embedding them.
//!
//! Not here: the facts, overhead sentence and table cells themselves, which it shares with
//! the page (`html`).

use super::html::{cells, filesystem_facts, machine_facts, overhead};
use super::sections::{ratio_heading, Kind, Section};
use super::Report;
use crate::results::ResultFile;

/// Escapes text for Markdown (inline and table cells): markup characters are
/// backslash-escaped, HTML ones become entities, line breaks spaces.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

pub(super) fn render_markdown(file: &ResultFile, r: &Report) -> String {
    let mut m = String::from("# strata bench report\n\n");
    m += &format!(
        "Run started {}; {} result file; {} measurements, {} skipped.\n\n",
        md(&file.started),
        md(&file.schema),
        file.measurements.len(),
        file.skipped.len()
    );
    m += "## Machine\n\n| | |\n|:--|:--|\n";
    for (k, v) in machine_facts(file).into_iter().chain(
        filesystem_facts(file)
            .into_iter()
            .map(|(k, v)| (format!("filesystem {k}"), v)),
    ) {
        m += &format!("| {} | {} |\n", md(&k), md(&v));
    }
    if !file.settings.is_empty() {
        m += "\n## Settings\n\n| setting | value |\n|:--|:--|\n";
        for (k, v) in &file.settings {
            m += &format!("| {} | {} |\n", md(k), md(v));
        }
    }
    m += &format!("\n**Harness overhead:** {}\n", overhead(file, md));
    if r.sections.is_empty() {
        m += "\nNo measurements in this file.\n";
    }
    for kind in Kind::ALL {
        let members: Vec<&Section> = r.sections.iter().filter(|s| s.kind == kind).collect();
        if members.is_empty() {
            continue;
        }
        m += &format!("\n## {}\n\n{}\n", kind.title(), kind.explanation());
        if let Some(p) = r.chapter_plots.get(&kind).and_then(|p| r.plots.get(*p)) {
            m += &format!("\nPlot: [plots/{0}.svg](plots/{0}.svg)\n", p.name);
        }
        for s in members {
            m += &format!("\n### {} ({})\n\n", md(s.workload), md(s.unit));
            if let Some(p) = s.plot.and_then(|p| r.plots.get(p)) {
                m += &format!("Plot: [plots/{0}.svg](plots/{0}.svg)\n\n", p.name);
            }
            let (ratio_name, ratio_means) = ratio_heading(s.unit);
            m += &format!(
                "| tool | driver | parameters | n | median | p95 | 95% CI of median | \
                 outliers | {ratio_name} ({}) |\n|:--|:--|:--|--:|--:|--:|--:|--:|--:|\n",
                md(ratio_means)
            );
            for row in &s.rows {
                let c = cells(row, r.all).map(|c| md(&c));
                m += &format!("| {} |\n", c.join(" | "));
            }
        }
    }
    m += "\n## Skipped\n\n";
    if file.skipped.is_empty() {
        m += "Nothing was skipped.\n";
    }
    for s in &file.skipped {
        m += &format!("- **{}**: {}\n", md(&s.what), md(&s.why));
    }
    m
}
