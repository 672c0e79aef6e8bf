//! What is shown where: the kind of each measurement (which decides its plot and its
//! chapter), the sections it is grouped into and the order of their rows, the ratios to
//! strata, and what a series is called and drawn in (names, colours, file names).
//!
//! Not here: drawing (`plots`) and writing numbers or pages (`numbers`, `html`,
//! `markdown`); this module decides, the others show.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use plotters::style::RGBColor;

use crate::results::Measurement;

pub(super) const STRATA: &str = "strata";
/// The tool name of the harness's own overhead.
const HARNESS: &str = "harness";
/// The workload that measures the harness doing nothing.
pub(super) const OVERHEAD: &str = "empty";
/// Parameters that make a measurement a point of a scaling curve when they are numbers.
const SCALING_PARAMS: [&str; 2] = ["depth", "n"];

/// What a measurement shows, which decides its plot and its chapter (in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Latency,
    Scaling,
    Throughput,
    Space,
    Other,
}

impl Kind {
    pub(super) const ALL: [Kind; 5] = [
        Kind::Latency,
        Kind::Scaling,
        Kind::Throughput,
        Kind::Space,
        Kind::Other,
    ];

    fn of(m: &Measurement) -> Kind {
        if scaling_param(m).is_some() {
            return Kind::Scaling;
        }
        match m.unit.as_str() {
            "s" => Kind::Latency,
            "bytes/s" => Kind::Throughput,
            "bytes" => Kind::Space,
            _ => Kind::Other,
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Kind::Latency => "Latency",
            Kind::Scaling => "Scaling",
            Kind::Throughput => "Throughput",
            Kind::Space => "Space",
            Kind::Other => "Other measurements",
        }
    }

    pub(super) fn anchor(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Scaling => "scaling",
            Kind::Throughput => "throughput",
            Kind::Space => "space",
            Kind::Other => "other",
        }
    }

    pub(super) fn explanation(self) -> &'static str {
        match self {
            Kind::Latency => {
                "Time per operation. Every sample is a dot; the box spans the quartiles, the \
                 dark band is the 95% confidence interval of the median, the thick bar is the \
                 median and the thin bar the 95th percentile. Shorter is better."
            }
            Kind::Scaling => {
                "Medians with their 95% confidence intervals against the parameter (log₂ \
                 axis). A flat curve scales well."
            }
            Kind::Throughput => {
                "Medians in MB/s (10⁶ bytes per second); whiskers span the 95% confidence \
                 interval of the median. Longer is better."
            }
            Kind::Space => "Median space used, in MiB. Shorter is better.",
            Kind::Other => "Measurements in units this report does not plot.",
        }
    }
}

/// The scaling parameter of `m` and its value, if it is a scaling point.
pub(super) fn scaling_param(m: &Measurement) -> Option<(&'static str, f64)> {
    SCALING_PARAMS.into_iter().find_map(|p| {
        let v = m.params.get(p)?.trim().parse::<f64>().ok()?;
        v.is_finite().then_some((p, v))
    })
}

/// The measurements of one workload (and unit) of one kind: a table, and for latency and
/// scaling a plot of its own.
#[derive(Debug)]
pub(super) struct Section<'a> {
    pub(super) kind: Kind,
    pub(super) workload: &'a str,
    pub(super) unit: &'a str,
    pub(super) rows: Vec<&'a Measurement>,
    /// The index of its own plot in [`Report::plots`](super::Report::plots).
    pub(super) plot: Option<usize>,
    /// Its HTML anchor.
    pub(super) id: String,
}

/// The measurements grouped into sections by kind, workload and unit: kinds in their
/// order, workloads in the order the file has them, rows sorted (parameters, driver, strata
/// before the reference tools before the harness).
pub(super) fn sections(all: &[Measurement]) -> Vec<Section<'_>> {
    let mut out: Vec<Section> = Vec::new();
    for m in all {
        let kind = Kind::of(m);
        match out
            .iter_mut()
            .find(|s| s.kind == kind && s.workload == m.workload && s.unit == m.unit)
        {
            Some(s) => s.rows.push(m),
            None => out.push(Section {
                kind,
                workload: &m.workload,
                unit: &m.unit,
                rows: vec![m],
                plot: None,
                id: String::new(),
            }),
        }
    }
    out.sort_by_key(|s| s.kind);
    for s in &mut out {
        s.rows.sort_by(|a, b| row_order(a, b));
    }
    out
}

fn row_order(a: &Measurement, b: &Measurement) -> Ordering {
    cmp_params(&a.params, &b.params)
        .then_with(|| driver_rank(a.driver.as_deref()).cmp(&driver_rank(b.driver.as_deref())))
        .then_with(|| tool_rank(&a.tool).cmp(&tool_rank(&b.tool)))
        .then_with(|| a.tool.cmp(&b.tool))
}

fn tool_rank(tool: &str) -> u8 {
    match tool {
        STRATA => 0,
        HARNESS => 2,
        _ => 1,
    }
}

/// Drivers in the order a run measures them, then others by name, then none.
fn driver_rank(driver: Option<&str>) -> (usize, &str) {
    const DRIVERS: [&str; 5] = ["overlay", "fuse-overlay", "vfs", "btrfs", "devicemapper"];
    match driver {
        Some(d) => (
            DRIVERS
                .iter()
                .position(|k| *k == d)
                .unwrap_or(DRIVERS.len()),
            d,
        ),
        None => (DRIVERS.len() + 1, ""),
    }
}

/// Parameters in key order, numbers by value (`depth=2` before `depth=16`).
fn cmp_params(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Ordering {
    let (mut a, mut b) = (a.iter(), b.iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = ka.cmp(kb).then_with(|| cmp_values(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

fn cmp_values(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// How a reference tool's measurement compares with strata's on the same workload, driver
/// and parameters, as a factor above 1 when strata does better: their time over strata's,
/// strata's throughput over theirs, their space over strata's. `None` for strata and the
/// harness themselves, without a counterpart, or when a median is zero.
pub(super) fn ratio(m: &Measurement, all: &[Measurement]) -> Option<f64> {
    if m.tool == STRATA || m.tool == HARNESS {
        return None;
    }
    let strata = all.iter().find(|s| {
        s.tool == STRATA
            && s.workload == m.workload
            && s.unit == m.unit
            && s.driver == m.driver
            && s.params == m.params
    })?;
    let r = if m.unit == "bytes/s" {
        strata.summary.median / m.summary.median
    } else {
        m.summary.median / strata.summary.median
    };
    (r.is_finite() && r > 0.0).then_some(r)
}

/// The ratio column's heading and what a value above 1 means.
pub(super) fn ratio_heading(unit: &str) -> (&'static str, &'static str) {
    match unit {
        "s" => ("ref ÷ strata", ">1: strata faster"),
        "bytes/s" => ("strata ÷ ref", ">1: strata faster"),
        "bytes" => ("ref ÷ strata", ">1: strata smaller"),
        _ => ("ref ÷ strata", "ratio of medians"),
    }
}

/// `strata (overlay)`, `podman`.
pub(super) fn series_name(m: &Measurement) -> String {
    match &m.driver {
        Some(d) => format!("{} ({d})", m.tool),
        None => m.tool.clone(),
    }
}

/// `k=v, k=v`, leaving out `skip`.
pub(super) fn params_text(m: &Measurement, skip: Option<&str>) -> String {
    m.params
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plot's name for a row or a curve: the series and the parameters not on an axis.
pub(super) fn row_label(m: &Measurement, skip: Option<&str>) -> String {
    let params = params_text(m, skip);
    let label = if params.is_empty() {
        series_name(m)
    } else {
        format!("{} · {params}", series_name(m))
    };
    shorten(&label, 48)
}

pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One colour per (tool, driver), the same in every plot: strata's first.
#[derive(Debug)]
pub(super) struct Colors(BTreeMap<(String, Option<String>), RGBColor>);

/// Tableau 10: distinct, and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

impl Colors {
    pub(super) fn new(all: &[Measurement]) -> Colors {
        let mut keys: Vec<(&str, Option<&str>)> = all
            .iter()
            .map(|m| (m.tool.as_str(), m.driver.as_deref()))
            .collect();
        keys.sort_by_key(|(tool, driver)| (tool_rank(tool), *tool, driver_rank(*driver)));
        keys.dedup();
        let map = keys
            .into_iter()
            .enumerate()
            .map(|(i, (tool, driver))| {
                let base = PALETTE[i % PALETTE.len()];
                // Past the palette, darker variants (a second round is still told apart).
                let dim = 1.0 - 0.3 * ((i / PALETTE.len()) as f64).min(2.0);
                let shade = |c: u8| (f64::from(c) * dim).round() as u8;
                let color = RGBColor(shade(base.0), shade(base.1), shade(base.2));
                ((tool.to_owned(), driver.map(str::to_owned)), color)
            })
            .collect();
        Colors(map)
    }

    pub(super) fn of(&self, m: &Measurement) -> RGBColor {
        self.0
            .get(&(m.tool.clone(), m.driver.clone()))
            .copied()
            .unwrap_or(PALETTE[9])
    }

    pub(super) fn hex(&self, m: &Measurement) -> String {
        let c = self.of(m);
        format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
    }
}

/// Unique file names (and anchors) made of `[a-z0-9-]` only.
#[derive(Debug, Default)]
pub(super) struct Names(BTreeSet<String>);

impl Names {
    pub(super) fn unique(&mut self, raw: &str) -> String {
        let base = slug(raw);
        let mut name = base.clone();
        let mut i = 2;
        while !self.0.insert(name.clone()) {
            name = format!("{base}-{i}");
            i += 1;
        }
        name
    }
}

fn slug(raw: &str) -> String {
    let mut s = String::new();
    for c in raw.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
        if s.len() >= 48 {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    if s.is_empty() {
        "plot".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::m;

    #[test]
    fn names_are_safe_and_unique() {
        let mut n = Names::default();
        let got: Vec<String> = [
            "Pull",
            "pull",
            "create+mount",
            "../../etc/passwd",
            "",
            "ünï",
            "a--b-",
        ]
        .iter()
        .map(|s| n.unique(s))
        .collect();
        assert_eq!(
            got,
            [
                "pull",
                "pull-2",
                "create-mount",
                "etc-passwd",
                "plot",
                "n",
                "a-b"
            ]
        );
        assert_eq!(slug(&"x".repeat(200)).len(), 48);
    }

    #[test]
    fn colours_are_one_per_series_and_strata_comes_first() {
        let all = vec![
            m("x", "podman", Some("overlay"), "s", vec![1.0]),
            m("x", "harness", None, "s", vec![1.0]),
            m("x", "strata", Some("vfs"), "s", vec![1.0]),
            m("y", "strata", Some("overlay"), "s", vec![1.0]),
            m("y", "podman", Some("overlay"), "s", vec![2.0]),
        ];
        let c = Colors::new(&all);
        let got: Vec<RGBColor> = all.iter().map(|x| c.of(x)).collect();
        assert_eq!(
            got,
            [PALETTE[2], PALETTE[3], PALETTE[1], PALETTE[0], PALETTE[2]]
        );
        assert_eq!(c.hex(&all[3]), "#4e79a7");
    }
}
