//! Reports of a `strata bench` result file, for a person to read: SVG plots, one
//! self-contained HTML page and a Markdown summary.
//!
//! ```text
//! <dir>/
//! ├── report.html          the whole report on one page (below)
//! ├── summary.md           the same facts and tables in Markdown, linking the plots
//! └── plots/
//!     ├── <workload>.svg   a latency distribution or a scaling curve, one per workload
//!     ├── throughput.svg   the bytes/s medians of every throughput workload, grouped
//!     └── space.svg        the bytes used of every space workload, grouped
//! ```
//!
//! What a measurement is decides how it is drawn:
//! - a *scaling* point (a `depth` or `n` parameter that is a number) joins the curve of its
//!   workload, tool, driver and other parameters: medians with their 95% intervals against
//!   the parameter, on a log₂ axis;
//! - any other duration (`s`) is a distribution, one row per tool, driver and parameters:
//!   every sample a dot, the quartiles a box, the median's 95% interval a band, the median
//!   and the p95 marked;
//! - throughput (`bytes/s`, in MB/s) and space (`bytes`, in MiB) are bars of medians with
//!   the medians' intervals as whiskers, grouped per workload;
//! - other units get a table and no plot.
//!
//! Each (tool, driver) keeps one colour in every plot. A value axis turns logarithmic when
//! its values span more than 30 times; bars always start at zero. File names are
//! made of `[a-z0-9-]` only, whatever the workload is called.
//!
//! `report.html` fetches nothing and runs from `file://`: styles and plots are inline, and
//! its content security policy forbids every load, allowing only its one small script, by
//! hash. That script marks each plot that rendered to a box with content (`data-rendered`)
//! and counts them on `<body>`, so a headless browser can prove the page renders
//! (`tests/report_browser.rs`). Every string from the result file is escaped in HTML, SVG
//! and Markdown: a result file may come from anywhere.
//!
//! This file reads top to bottom: the sections and ratios (what is shown where), numbers
//! for humans, axes, plots, the HTML page, the Markdown summary.
//!
//! Not here: measuring, statistics (the summaries are `stats`'s; only the quartiles of the
//! boxes are computed here) and comparing two runs (`results::compare`). The report is
//! written to be read, never read back, so it has no format version; files of an earlier
//! report in the same directory that this one does not rewrite are left alone.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use plotters::backend::SVGBackend;
use plotters::chart::ChartBuilder;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::drawing::{DrawingArea, DrawingAreaErrorKind, IntoDrawingArea};
use plotters::element::{Circle, EmptyElement, ErrorBar, PathElement, Rectangle, Text};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, IntoFont, RGBColor, TextStyle, WHITE};
use sha2::{Digest, Sha256};
use strata_types::{ErrorKind, HasKind};

use crate::results::{Measurement, ResultFile};
use crate::stats::quantile_sorted;

/// How many times its smallest value the largest must be for an axis to turn logarithmic.
const LOG_SPAN: f64 = 30.0;

const STRATA: &str = "strata";
/// The tool name of the harness's own overhead.
const HARNESS: &str = "harness";
/// The workload that measures the harness doing nothing.
const OVERHEAD: &str = "empty";
/// Parameters that make a measurement a point of a scaling curve when they are numbers.
const SCALING_PARAMS: [&str; 2] = ["depth", "n"];

const MB: f64 = 1e6;
const MIB: f64 = 1024.0 * 1024.0;

/// What went wrong writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("draw plot {name}: {source}")]
    Plot {
        name: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HasKind for ReportError {
    fn kind(&self) -> ErrorKind {
        match self {
            ReportError::CreateDir { source, .. } | ReportError::Write { source, .. } => {
                ErrorKind::from_io(source)
            }
            ReportError::Plot { .. } => ErrorKind::Internal,
        }
    }
}

/// What [`write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub html: PathBuf,
    pub summary: PathBuf,
    /// Every plot, in the order the page shows them.
    pub plots: Vec<PathBuf>,
}

impl Written {
    /// Every file written.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        [self.html.as_path(), self.summary.as_path()]
            .into_iter()
            .chain(self.plots.iter().map(PathBuf::as_path))
    }
}

/// Writes the report of `file` into `dir` (created if missing), replacing the files of an
/// earlier report there.
pub fn write(file: &ResultFile, dir: &Path) -> Result<Written, ReportError> {
    let report = Report::build(file)?;
    let plots_dir = dir.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::CreateDir {
        path: plots_dir.clone(),
        source,
    })?;
    let mut plots = Vec::with_capacity(report.plots.len());
    for plot in report.plots_in_page_order() {
        let path = plots_dir.join(format!("{}.svg", plot.name));
        put(&path, &plot.svg)?;
        plots.push(path);
    }
    let html = dir.join("report.html");
    put(&html, &render_html(file, &report))?;
    let summary = dir.join("summary.md");
    put(&summary, &render_markdown(file, &report))?;
    Ok(Written {
        html,
        summary,
        plots,
    })
}

fn put(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

// ---------------------------------------------------------------------------------------
// What is shown where

/// What a measurement shows, which decides its plot and its chapter (in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Latency,
    Scaling,
    Throughput,
    Space,
    Other,
}

impl Kind {
    const ALL: [Kind; 5] = [
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

    fn title(self) -> &'static str {
        match self {
            Kind::Latency => "Latency",
            Kind::Scaling => "Scaling",
            Kind::Throughput => "Throughput",
            Kind::Space => "Space",
            Kind::Other => "Other measurements",
        }
    }

    fn anchor(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Scaling => "scaling",
            Kind::Throughput => "throughput",
            Kind::Space => "space",
            Kind::Other => "other",
        }
    }

    fn explanation(self) -> &'static str {
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
fn scaling_param(m: &Measurement) -> Option<(&'static str, f64)> {
    SCALING_PARAMS.into_iter().find_map(|p| {
        let v = m.params.get(p)?.trim().parse::<f64>().ok()?;
        v.is_finite().then_some((p, v))
    })
}

/// The measurements of one workload (and unit) of one kind: a table, and for latency and
/// scaling a plot of its own.
#[derive(Debug)]
struct Section<'a> {
    kind: Kind,
    workload: &'a str,
    unit: &'a str,
    rows: Vec<&'a Measurement>,
    /// The index of its own plot in [`Report::plots`].
    plot: Option<usize>,
    /// Its HTML anchor.
    id: String,
}

/// Everything the HTML page and the summary are made of.
#[derive(Debug)]
struct Report<'a> {
    sections: Vec<Section<'a>>,
    plots: Vec<Plot>,
    /// The plots of whole chapters (throughput, space), by kind.
    chapter_plots: BTreeMap<Kind, usize>,
    colors: Colors,
    all: &'a [Measurement],
}

#[derive(Debug)]
struct Plot {
    /// The file name without `.svg`: `[a-z0-9-]+`, unique in the report.
    name: String,
    title: String,
    svg: String,
}

impl<'a> Report<'a> {
    fn build(file: &'a ResultFile) -> Result<Report<'a>, ReportError> {
        let all = file.measurements.as_slice();
        let colors = Colors::new(all);
        let mut sections = sections(all);
        let mut names = Names::default();
        let mut ids = Names::default();
        let mut plots = Vec::new();
        let mut chapter_plots = BTreeMap::new();
        let failed = |name: &str| {
            let name = name.to_owned();
            move |e: DrawingAreaErrorKind<std::io::Error>| ReportError::Plot {
                name,
                source: Box::new(e),
            }
        };
        for (kind, unit, what) in [
            (Kind::Throughput, "bytes/s", "throughput"),
            (Kind::Space, "bytes", "space"),
        ] {
            let members: Vec<&Section> = sections.iter().filter(|s| s.kind == kind).collect();
            if members.is_empty() {
                continue;
            }
            let name = names.unique(what);
            let title = format!("{}: medians per workload", kind.title());
            let svg = bars_plot(&title, unit, &members, &colors).map_err(failed(&name))?;
            chapter_plots.insert(kind, plots.len());
            plots.push(Plot { name, title, svg });
        }
        for s in &mut sections {
            s.id = format!(
                "w-{}",
                ids.unique(&format!("{}-{}", s.workload, s.kind.anchor()))
            );
            let drawn = match s.kind {
                Kind::Latency => {
                    let name = names.unique(s.workload);
                    let title = format!("{}: time per operation", s.workload);
                    let svg = latency_plot(&title, &s.rows, &colors).map_err(failed(&name))?;
                    Some(Plot { name, title, svg })
                }
                Kind::Scaling => {
                    let name = names.unique(s.workload);
                    let title = format!("{}: scaling", s.workload);
                    let svg =
                        scaling_plot(&title, s.unit, &s.rows, &colors).map_err(failed(&name))?;
                    Some(Plot { name, title, svg })
                }
                Kind::Throughput | Kind::Space | Kind::Other => None,
            };
            if let Some(plot) = drawn {
                s.plot = Some(plots.len());
                plots.push(plot);
            }
        }
        Ok(Report {
            sections,
            plots,
            chapter_plots,
            colors,
            all,
        })
    }

    /// The plots in the order the page shows them.
    fn plots_in_page_order(&self) -> Vec<&Plot> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            if let Some(p) = self.chapter_plots.get(&kind) {
                out.extend(self.plots.get(*p));
            }
            for s in self.sections.iter().filter(|s| s.kind == kind) {
                out.extend(s.plot.and_then(|p| self.plots.get(p)));
            }
        }
        out
    }
}

/// The measurements grouped into sections by kind, workload and unit: kinds in their
/// order, workloads in the order the file has them, rows sorted (parameters, driver, strata
/// before the reference tools before the harness).
fn sections(all: &[Measurement]) -> Vec<Section<'_>> {
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
fn ratio(m: &Measurement, all: &[Measurement]) -> Option<f64> {
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
fn ratio_heading(unit: &str) -> (&'static str, &'static str) {
    match unit {
        "s" => ("ref ÷ strata", ">1: strata faster"),
        "bytes/s" => ("strata ÷ ref", ">1: strata faster"),
        "bytes" => ("ref ÷ strata", ">1: strata smaller"),
        _ => ("ref ÷ strata", "ratio of medians"),
    }
}

/// `strata (overlay)`, `podman`.
fn series_name(m: &Measurement) -> String {
    match &m.driver {
        Some(d) => format!("{} ({d})", m.tool),
        None => m.tool.clone(),
    }
}

/// `k=v, k=v`, leaving out `skip`.
fn params_text(m: &Measurement, skip: Option<&str>) -> String {
    m.params
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plot's name for a row or a curve: the series and the parameters not on an axis.
fn row_label(m: &Measurement, skip: Option<&str>) -> String {
    let params = params_text(m, skip);
    let label = if params.is_empty() {
        series_name(m)
    } else {
        format!("{} · {params}", series_name(m))
    };
    shorten(&label, 48)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One colour per (tool, driver), the same in every plot: strata's first.
#[derive(Debug)]
struct Colors(BTreeMap<(String, Option<String>), RGBColor>);

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
const INK: RGBColor = RGBColor(36, 41, 47);
const GRID: RGBColor = RGBColor(222, 226, 230);

impl Colors {
    fn new(all: &[Measurement]) -> Colors {
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

    fn of(&self, m: &Measurement) -> RGBColor {
        self.0
            .get(&(m.tool.clone(), m.driver.clone()))
            .copied()
            .unwrap_or(PALETTE[9])
    }

    fn hex(&self, m: &Measurement) -> String {
        let c = self.of(m);
        format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
    }
}

/// Unique file names (and anchors) made of `[a-z0-9-]` only.
#[derive(Debug, Default)]
struct Names(BTreeSet<String>);

impl Names {
    fn unique(&mut self, raw: &str) -> String {
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

// ---------------------------------------------------------------------------------------
// Numbers for humans

/// Three significant digits: `1.23`, `12.3`, `123`, `1234`.
fn sig3(v: f64) -> String {
    let digits = if v == 0.0 || !v.is_finite() {
        2
    } else {
        (2 - v.abs().log10().floor() as i32).clamp(0, 9) as usize
    };
    format!("{v:.digits$}")
}

/// Like [`sig3`] without trailing zeros (axis ticks: `0.5`, `1`, `250`).
fn tidy(v: f64) -> String {
    let s = sig3(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// The unit a duration reads best in: its divisor and name.
fn time_unit(seconds: f64) -> (f64, &'static str) {
    let a = seconds.abs();
    if a >= 1.0 || a == 0.0 {
        (1.0, "s")
    } else if a >= 1e-3 {
        (1e-3, "ms")
    } else if a >= 1e-6 {
        (1e-6, "µs")
    } else {
        (1e-9, "ns")
    }
}

fn duration(seconds: f64) -> String {
    let (div, name) = time_unit(seconds);
    format!("{} {name}", sig3(seconds / div))
}

fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b.abs() < 1024.0 {
        return format!("{b:.0} B");
    }
    let mut v = b;
    let mut unit = UNITS[0];
    for u in UNITS {
        v /= 1024.0;
        unit = u;
        if v.abs() < 1024.0 {
            break;
        }
    }
    format!("{} {unit}", sig3(v))
}

/// Throughput in MB/s (10⁶ bytes per second), the unit storage is compared in, or kB/s
/// below one.
fn rate(bytes_per_second: f64) -> String {
    let v = bytes_per_second;
    if v.abs() >= MB || v == 0.0 {
        format!("{} MB/s", sig3(v / MB))
    } else {
        format!("{} kB/s", sig3(v / 1e3))
    }
}

/// A value of `unit` for a person (an unknown unit follows the number as it is).
fn human(unit: &str, v: f64) -> String {
    match unit {
        "s" => duration(v),
        "bytes" => bytes(v),
        "bytes/s" => rate(v),
        other => format!("{} {other}", sig3(v)),
    }
}

// ---------------------------------------------------------------------------------------
// Axes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log10,
    Log2,
}

impl Scale {
    fn apply(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 => v.max(f64::MIN_POSITIVE).log10(),
            Scale::Log2 => v.max(f64::MIN_POSITIVE).log2(),
        }
    }
}

/// How an axis writes its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ticks {
    /// Seconds, each tick in the unit that suits it (`100 µs`, `1 ms`): for log axes.
    Duration,
    /// A plain number: the value divided by this (the unit is in the axis description).
    Scaled(f64),
}

/// How an axis is fitted to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Distributions: from zero, unless the values sit in a band far from it (zero would
    /// squash them into a line).
    Spread,
    /// Curves: from zero.
    FromZero,
    /// Bars: linear from zero, with room for the value labels.
    Bars,
}

/// A numeric axis: linear or logarithmic, ticks at round values.
#[derive(Debug, Clone)]
struct ValueAxis {
    lo: f64,
    hi: f64,
    scale: Scale,
    ticks: Ticks,
    desc: String,
}

impl ValueAxis {
    /// An axis for `values` of `unit`.
    fn fit(unit: &str, values: impl IntoIterator<Item = f64>, fit: Fit) -> ValueAxis {
        let (min, max) = bounds(values);
        let scale = if fit != Fit::Bars && min > 0.0 && max / min > LOG_SPAN {
            Scale::Log10
        } else {
            Scale::Linear
        };
        let (lo, hi) = match scale {
            Scale::Linear => {
                let lo = if fit == Fit::Spread && min > max / 2.0 {
                    min - (max - min) * 0.15
                } else {
                    min.min(0.0)
                };
                let room = if fit == Fit::Bars { 0.25 } else { 0.06 };
                widen(lo, max + (max - lo) * room)
            }
            Scale::Log10 | Scale::Log2 => (min / 1.3, max * 1.3),
        };
        let log = if scale == Scale::Linear {
            ""
        } else {
            ", log scale"
        };
        let (ticks, desc) = match unit {
            "s" if scale != Scale::Linear => (Ticks::Duration, "time (log scale)".to_owned()),
            "s" => {
                let (div, name) = time_unit(hi);
                (Ticks::Scaled(div), format!("time ({name})"))
            }
            "bytes/s" => (Ticks::Scaled(MB), format!("throughput (MB/s{log})")),
            "bytes" => (Ticks::Scaled(MIB), format!("space used (MiB{log})")),
            other => (Ticks::Scaled(1.0), format!("{}{log}", shorten(other, 24))),
        };
        ValueAxis {
            lo,
            hi,
            scale,
            ticks,
            desc,
        }
    }

    /// An axis for the values of a scaling parameter: log₂ when they are all positive.
    fn parameter(name: &str, values: impl IntoIterator<Item = f64>) -> ValueAxis {
        let (min, max) = bounds(values);
        let (lo, hi, scale, desc) = if min > 0.0 {
            let pad = 2f64.powf(0.35);
            (
                min / pad,
                max * pad,
                Scale::Log2,
                format!("{name} (log₂ scale)"),
            )
        } else {
            let (lo, hi) = widen(min.min(0.0), max + (max - min) * 0.06);
            (lo, hi, Scale::Linear, name.to_owned())
        };
        ValueAxis {
            lo,
            hi,
            scale,
            ticks: Ticks::Scaled(1.0),
            desc,
        }
    }

    /// Where the ticks go (or the light grid lines, when `light`): round numbers in the
    /// unit the labels show.
    fn tick_values(&self, max: usize, light: bool) -> Vec<f64> {
        let div = match self.ticks {
            Ticks::Duration => 1.0,
            Ticks::Scaled(div) => div,
        };
        let (lo, hi) = (self.lo / div, self.hi / div);
        let ticks = match (self.scale, light) {
            (_, _) if max == 0 => Vec::new(),
            (Scale::Log10, true) => {
                let minor = decades(lo, hi)
                    .flat_map(|d| (2..10).map(move |m| f64::from(m) * d))
                    .filter(|v| (lo..=hi).contains(v))
                    .collect::<Vec<_>>();
                if minor.len() <= max {
                    minor
                } else {
                    Vec::new()
                }
            }
            (_, true) => Vec::new(),
            (Scale::Linear, false) => linear_ticks(lo, hi, max),
            (Scale::Log10, false) => {
                let mut t: Vec<f64> = decades(lo, hi).filter(|v| (lo..=hi).contains(v)).collect();
                if t.len() < 3 {
                    t = decades(lo, hi)
                        .flat_map(|d| [d, 2.0 * d, 5.0 * d])
                        .filter(|v| (lo..=hi).contains(v))
                        .collect();
                }
                thin(t, max)
            }
            (Scale::Log2, false) => {
                let (a, b) = (lo.log2().ceil() as i32, hi.log2().floor() as i32);
                let t: Vec<f64> = (a..=b).map(|k| 2f64.powi(k)).collect();
                if t.len() < 2 {
                    linear_ticks(lo, hi, max)
                } else {
                    thin(t, max)
                }
            }
        };
        ticks.into_iter().map(|t| t * div).collect()
    }

    fn label(&self, v: f64) -> String {
        match self.ticks {
            Ticks::Duration => {
                let (div, name) = time_unit(v);
                format!("{} {name}", tidy(v / div))
            }
            Ticks::Scaled(div) => tidy(v / div),
        }
    }
}

fn bounds(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if min > max {
        (0.0, 1.0)
    } else {
        (min, max)
    }
}

/// A range that is not empty.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        let pad = lo.abs() * 0.1;
        (lo - pad, hi + pad)
    }
}

/// The powers of ten from the one below `lo` to the one below `hi`.
fn decades(lo: f64, hi: f64) -> impl Iterator<Item = f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().floor() as i32);
    (a..=b).map(|k| 10f64.powi(k))
}

/// Ticks at multiples of 1, 2 or 5 times a power of ten, at most `max` of them.
fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo];
    }
    let mag = 10f64.powf((span / max as f64).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= max as f64)
        .unwrap_or(10.0 * mag);
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Every k-th of `ticks`, so that at most `max` remain.
fn thin(ticks: Vec<f64>, max: usize) -> Vec<f64> {
    let every = ticks.len().div_ceil(max.max(1)).max(1);
    ticks.into_iter().step_by(every).collect()
}

impl Ranged for ValueAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (lo, hi) = (self.scale.apply(self.lo), self.scale.apply(self.hi));
        let f = (self.scale.apply(*v) - lo) / (hi - lo);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        self.tick_values(hint.max_num_points(), hint.weight().allow_light_points())
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for ValueAxis {
    fn format_ext(&self, v: &f64) -> String {
        self.label(*v)
    }
}

/// Named rows, the first at the top: row `i` is centred on value `i`.
#[derive(Debug, Clone)]
struct RowAxis(Vec<String>);

impl Ranged for RowAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let n = self.0.len().max(1) as f64;
        let f = (n - 0.5 - v) / n;
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        (0..self.0.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.0.len() as f64 - 0.5
    }
}

impl ValueFormatter<f64> for RowAxis {
    fn format_ext(&self, v: &f64) -> String {
        let i = v.round();
        if i < 0.0 {
            return String::new();
        }
        self.0.get(i as usize).cloned().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// Plots

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

fn text_style(size: u32, anchor: HPos) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .color(&INK)
        .pos(Pos::new(anchor, VPos::Center))
}

/// The pixels a label needs at the tick label size (a guess: the browser lays text out).
fn label_width(labels: &[String]) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    (chars as u32 * 8 + 24).clamp(60, 360)
}

/// Where the `k`-th sample of a row is drawn, off the row's centre: spread by the golden
/// ratio so that equal values do not hide each other.
fn jitter(k: usize) -> f64 {
    ((k as f64 * 0.618_033_988_75).fract() - 0.5) * 0.44
}

fn quartiles(samples: &[f64]) -> Option<(f64, f64)> {
    if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    Some((quantile_sorted(&s, 0.25), quantile_sorted(&s, 0.75)))
}

/// One row per measurement: its samples, quartiles, median interval, median and p95.
fn latency_plot(title: &str, rows: &[&Measurement], colors: &Colors) -> Drawn<String> {
    let labels: Vec<String> = rows.iter().map(|m| row_label(m, None)).collect();
    let values = rows.iter().flat_map(|m| {
        let s = &m.summary;
        m.samples
            .iter()
            .copied()
            .chain([s.median, s.p95, s.median_ci.0, s.median_ci.1])
    });
    let x = ValueAxis::fit("s", values, Fit::Spread);
    let label_w = label_width(&labels);
    let height = 150 + 48 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, key) = root.split_vertically(height - 34);
        let mut chart = ChartBuilder::on(&top)
            .caption(title, (FONT, 22))
            .margin(14)
            .margin_right(30)
            .x_label_area_size(48)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x.clone(), RowAxis(labels))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .x_labels(8)
            .y_labels(rows.len())
            .x_desc(x.desc.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let area = chart.plotting_area();
        for (i, m) in rows.iter().enumerate() {
            let y = i as f64;
            let c = colors.of(m);
            let s = &m.summary;
            if let Some((q1, q3)) = quartiles(&m.samples) {
                let corners = [(q1, y - 0.32), (q3, y + 0.32)];
                area.draw(&Rectangle::new(corners, c.mix(0.14).filled()))?;
                area.draw(&Rectangle::new(corners, c.stroke_width(1)))?;
            }
            let band = [(s.median_ci.0, y - 0.09), (s.median_ci.1, y + 0.09)];
            area.draw(&Rectangle::new(band, c.mix(0.7).filled()))?;
            for (k, v) in m.samples.iter().enumerate() {
                area.draw(&Circle::new((*v, y + jitter(k)), 3, c.mix(0.55).filled()))?;
            }
            let bar = |v: f64, half: f64| vec![(v, y - half), (v, y + half)];
            area.draw(&PathElement::new(bar(s.p95, 0.24), INK.stroke_width(1)))?;
            area.draw(&PathElement::new(bar(s.median, 0.4), INK.stroke_width(3)))?;
        }
        latency_key(&key, label_w as i32 + 14)?;
        root.present()?;
    }
    Ok(svg)
}

/// The key under a latency plot: what the marks mean.
fn latency_key(area: &Area, x0: i32) -> Drawn<()> {
    let grey = RGBColor(110, 118, 129);
    let y = 14;
    let mut x = x0;
    let say = |x: &mut i32, text: &str| -> Drawn<()> {
        area.draw(&Text::new(
            text.to_owned(),
            (*x, y),
            text_style(14, HPos::Left),
        ))?;
        *x += text.chars().count() as i32 * 7 + 26;
        Ok(())
    };
    area.draw(&Circle::new((x + 4, y), 3, grey.mix(0.6).filled()))?;
    x += 14;
    say(&mut x, "sample")?;
    area.draw(&Rectangle::new(
        [(x, y - 7), (x + 18, y + 7)],
        grey.mix(0.2).filled(),
    ))?;
    area.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], grey))?;
    x += 24;
    say(&mut x, "quartiles")?;
    area.draw(&Rectangle::new(
        [(x, y - 2), (x + 18, y + 2)],
        grey.mix(0.8).filled(),
    ))?;
    x += 24;
    say(&mut x, "95% CI of the median")?;
    area.draw(&PathElement::new(
        vec![(x, y - 8), (x, y + 8)],
        INK.stroke_width(3),
    ))?;
    x += 8;
    say(&mut x, "median")?;
    area.draw(&PathElement::new(
        vec![(x, y - 6), (x, y + 6)],
        INK.stroke_width(1),
    ))?;
    x += 8;
    say(&mut x, "p95")
}

/// A legend: a swatch and a name per entry, down the left of `area`.
fn legend(area: &Area, entries: &[(String, RGBColor)], top: i32) -> Drawn<()> {
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = top + i as i32 * 24;
        area.draw(&Rectangle::new([(6, y - 6), (20, y + 6)], color.filled()))?;
        area.draw(&Text::new(
            label.clone(),
            (28, y),
            text_style(16, HPos::Left),
        ))?;
    }
    Ok(())
}

/// The legend's entries for `rows`, once each.
fn legend_entries<'m>(
    rows: impl IntoIterator<Item = &'m Measurement>,
    label: impl Fn(&Measurement) -> String,
    colors: &Colors,
) -> Vec<(String, RGBColor)> {
    let mut entries: Vec<(String, RGBColor)> = Vec::new();
    for m in rows {
        let l = label(m);
        if !entries.iter().any(|(e, _)| *e == l) {
            entries.push((l, colors.of(m)));
        }
    }
    entries
}

/// The pixels a legend needs beside its plot.
fn legend_width(entries: &[(String, RGBColor)]) -> u32 {
    let labels: Vec<String> = entries.iter().map(|(l, _)| l.clone()).collect();
    label_width(&labels) + 20
}

/// One series' medians against a scaling parameter.
#[derive(Debug)]
struct Curve<'m> {
    label: String,
    color: RGBColor,
    points: Vec<(f64, &'m Measurement)>,
}

/// One curve per (tool, driver, other parameters): medians and their intervals against the
/// scaling parameter.
fn scaling_plot(title: &str, unit: &str, rows: &[&Measurement], colors: &Colors) -> Drawn<String> {
    let param = rows
        .iter()
        .find_map(|m| scaling_param(m))
        .map_or("n", |(p, _)| p);
    let mut curves: Vec<Curve> = Vec::new();
    for m in rows {
        let Some((_, x)) = scaling_param(m) else {
            continue;
        };
        let label = row_label(m, Some(param));
        match curves.iter_mut().find(|c| c.label == label) {
            Some(c) => c.points.push((x, m)),
            None => curves.push(Curve {
                label,
                color: colors.of(m),
                points: vec![(x, m)],
            }),
        }
    }
    for c in &mut curves {
        c.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let points = || curves.iter().flat_map(|c| c.points.iter());
    let x = ValueAxis::parameter(param, points().map(|(x, _)| *x));
    let y = ValueAxis::fit(
        unit,
        points().flat_map(|(_, m)| {
            let s = &m.summary;
            [s.median, s.median_ci.0, s.median_ci.1]
        }),
        Fit::FromZero,
    );
    let entries: Vec<(String, RGBColor)> =
        curves.iter().map(|c| (c.label.clone(), c.color)).collect();
    let legend_w = legend_width(&entries);
    let height = 480;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(WIDTH.saturating_sub(legend_w));
        let mut chart = ChartBuilder::on(&left)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(76)
            .build_cartesian_2d(x.clone(), y.clone())?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(RGBColor(240, 242, 244))
            .x_labels(10)
            .y_labels(8)
            .x_desc(x.desc.as_str())
            .y_desc(y.desc.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let area = chart.plotting_area();
        for Curve { color, points, .. } in &curves {
            let line: Vec<(f64, f64)> =
                points.iter().map(|(x, m)| (*x, m.summary.median)).collect();
            area.draw(&PathElement::new(line, color.stroke_width(2)))?;
            for (x, m) in points {
                let s = &m.summary;
                area.draw(&ErrorBar::new_vertical(
                    *x,
                    s.median_ci.0,
                    s.median,
                    s.median_ci.1,
                    color.filled().stroke_width(2),
                    10,
                ))?;
            }
        }
        legend(&right, &entries, 64)?;
        root.present()?;
    }
    Ok(svg)
}

/// Horizontal bars of medians: a group per workload and parameters, a bar per (tool,
/// driver), whiskers at the median's interval, the value written at the end.
fn bars_plot(title: &str, unit: &str, sections: &[&Section], colors: &Colors) -> Drawn<String> {
    let mut groups: Vec<(String, Vec<&Measurement>)> = Vec::new();
    for s in sections {
        for m in &s.rows {
            let params = params_text(m, None);
            let label = if params.is_empty() {
                s.workload.to_owned()
            } else {
                format!("{} · {params}", s.workload)
            };
            let label = shorten(&label, 48);
            match groups.iter_mut().find(|g| g.0 == label) {
                Some(g) => g.1.push(m),
                None => groups.push((label, vec![m])),
            }
        }
    }
    let per_group = groups.iter().map(|g| g.1.len()).max().unwrap_or(1).max(1);
    let all = || groups.iter().flat_map(|g| g.1.iter());
    let x = ValueAxis::fit(
        unit,
        all().flat_map(|m| [0.0, m.summary.median, m.summary.median_ci.1]),
        Fit::Bars,
    );
    let entries = legend_entries(all().copied(), series_name, colors);
    let legend_w = legend_width(&entries);
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    let label_w = label_width(&labels);
    let height = 140 + groups.len() as u32 * (per_group as u32 * 22 + 18);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(WIDTH.saturating_sub(legend_w));
        let mut chart = ChartBuilder::on(&left)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x.clone(), RowAxis(labels))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .x_labels(8)
            .y_labels(groups.len())
            .x_desc(x.desc.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let area = chart.plotting_area();
        for (i, (_, bars)) in groups.iter().enumerate() {
            let t = 0.8 / bars.len() as f64;
            for (j, m) in bars.iter().enumerate() {
                let s = &m.summary;
                let y0 = i as f64 - 0.4 + j as f64 * t;
                let (y1, yc) = (y0 + t * 0.9, y0 + t * 0.45);
                let c = colors.of(m);
                area.draw(&Rectangle::new([(0.0, y0), (s.median, y1)], c.filled()))?;
                let cap = t * 0.22;
                for path in [
                    vec![(s.median_ci.0, yc), (s.median_ci.1, yc)],
                    vec![(s.median_ci.0, yc - cap), (s.median_ci.0, yc + cap)],
                    vec![(s.median_ci.1, yc - cap), (s.median_ci.1, yc + cap)],
                ] {
                    area.draw(&PathElement::new(path, INK.stroke_width(1)))?;
                }
                let end = s.median.max(s.median_ci.1);
                area.draw(
                    &(EmptyElement::at((end, yc))
                        + Text::new(human(unit, s.median), (6, 0), text_style(14, HPos::Left))),
                )?;
            }
        }
        legend(&right, &entries, 64)?;
        root.present()?;
    }
    Ok(svg)
}

// ---------------------------------------------------------------------------------------
// HTML

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
const SCRIPT: &str = r#"
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

fn render_html(file: &ResultFile, r: &Report) -> String {
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

fn machine_facts(file: &ResultFile) -> Vec<(String, String)> {
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

fn filesystem_facts(file: &ResultFile) -> Vec<(String, String)> {
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
fn overhead(file: &ResultFile, escape: fn(&str) -> String) -> String {
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
fn cells(m: &Measurement, all: &[Measurement]) -> [String; 9] {
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

// ---------------------------------------------------------------------------------------
// Markdown

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

fn render_markdown(file: &ResultFile, r: &Report) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Filesystem, Machine, Skipped, SCHEMA};

    fn m(
        workload: &str,
        tool: &str,
        driver: Option<&str>,
        unit: &str,
        samples: Vec<f64>,
    ) -> Measurement {
        let mut m = Measurement::new(workload, tool, unit, samples)
            .unwrap_or_else(|| panic!("samples of {workload}"));
        m.driver = driver.map(str::to_owned);
        m
    }

    fn with(mut m: Measurement, key: &str, value: &str) -> Measurement {
        m.params.insert(key.into(), value.into());
        m
    }

    /// `n` samples around `center`, spread by a fixed formula.
    fn around(center: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| center * (1.0 + 0.04 * (((i * 7) % 11) as f64 / 10.0 - 0.5)))
            .collect()
    }

    fn file(measurements: Vec<Measurement>) -> ResultFile {
        ResultFile {
            schema: SCHEMA.into(),
            started: "2026-12-07T16:00:00Z".into(),
            machine: Machine {
                kernel: "6.1.0".into(),
                cpu: "Test CPU".into(),
                cpus: 4,
                memory_bytes: 8 << 30,
                filesystem: Some(Filesystem {
                    path: "/scratch/bench".into(),
                    mount_point: "/scratch".into(),
                    fstype: "ext4".into(),
                    options: "rw,relatime".into(),
                    source: "/dev/loop3".into(),
                    backing_file: Some("/var/tmp/bench.img".into()),
                }),
            },
            settings: BTreeMap::from([("runs".into(), "30".into())]),
            measurements,
            skipped: vec![Skipped {
                what: "driver devicemapper".into(),
                why: "no thin-pool support".into(),
            }],
        }
    }

    /// Measurements of every kind: latency (with a single-sample one), scaling, throughput,
    /// space, an unknown unit and the harness.
    fn every_kind() -> ResultFile {
        let mut all = vec![
            m("empty", "harness", None, "s", around(2e-6, 30)),
            m("pull", "strata", Some("overlay"), "s", around(0.5, 20)),
            m("pull", "podman", Some("overlay"), "s", around(1.0, 20)),
            m("pull", "strata", Some("vfs"), "s", around(2.0, 20)),
            m("start", "strata", Some("overlay"), "s", vec![0.25]),
            m(
                "gc",
                "strata",
                Some("overlay"),
                "s",
                around(1e-3, 10).into_iter().chain([0.2]).collect(),
            ),
            m(
                "io-seq-write",
                "strata",
                Some("overlay"),
                "bytes/s",
                around(400e6, 10),
            ),
            m(
                "io-seq-write",
                "podman",
                Some("overlay"),
                "bytes/s",
                around(200e6, 10),
            ),
            m(
                "io-seq-read",
                "strata",
                Some("overlay"),
                "bytes/s",
                around(1.5e9, 10),
            ),
            m(
                "space-image",
                "strata",
                Some("overlay"),
                "bytes",
                vec![50.0 * MIB],
            ),
            m(
                "space-image",
                "podman",
                Some("overlay"),
                "bytes",
                vec![75.0 * MIB],
            ),
            m("odd", "strata", None, "ops", vec![3.0, 4.0]),
        ];
        for (tool, slope) in [("strata", 0.01), ("podman", 0.03)] {
            for depth in [1, 2, 4, 8, 16, 32, 64, 128] {
                let t = 0.05 + slope * f64::from(depth);
                all.push(with(
                    m("depth", tool, Some("overlay"), "s", around(t, 8)),
                    "depth",
                    &depth.to_string(),
                ));
            }
        }
        for n in [1, 2, 4, 8] {
            all.push(with(
                m(
                    "concurrency",
                    "strata",
                    Some("vfs"),
                    "s",
                    around(0.1 * f64::from(n), 5),
                ),
                "n",
                &n.to_string(),
            ));
        }
        file(all)
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    fn names(w: &Written) -> Vec<String> {
        w.plots
            .iter()
            .filter_map(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_file_of_every_kind_writes_every_file_and_plot() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = t.path().join("new/report");
        let w = write(&every_kind(), &dir).unwrap_or_else(|e| panic!("{e}"));
        let mut got = names(&w);
        got.sort();
        assert_eq!(
            got,
            [
                "concurrency",
                "depth",
                "empty",
                "gc",
                "pull",
                "space",
                "start",
                "throughput"
            ]
        );
        for p in w.paths() {
            assert!(p.starts_with(&dir) && p.is_file(), "{}", p.display());
        }
        for p in &w.plots {
            let svg = read(p);
            assert!(
                svg.starts_with("<svg"),
                "{}: {}",
                p.display(),
                &svg[..svg.len().min(80)]
            );
            assert!(svg.trim_end().ends_with("</svg>"), "{}", p.display());
        }
        let md = read(&w.summary);
        for name in names(&w) {
            assert!(
                md.contains(&format!("(plots/{name}.svg)")),
                "{name} not linked"
            );
        }
        assert!(
            md.contains("no thin-pool support") && md.contains("| kernel | 6.1.0 |"),
            "{md}"
        );
        assert!(!md.contains("<svg"), "the summary embeds no plot");
    }

    #[test]
    fn the_page_inlines_every_plot_and_names_no_url() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let w = write(&every_kind(), t.path()).unwrap_or_else(|e| panic!("{e}"));
        let html = read(&w.html);
        assert_eq!(
            html.matches("<figure class=\"plot\"").count(),
            w.plots.len()
        );
        assert_eq!(html.matches("<svg ").count(), w.plots.len());
        for name in names(&w) {
            assert!(
                html.contains(&format!("id=\"plot-{name}\"")),
                "{name} not inline"
            );
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains(&format!("data-plots=\"{}\"", w.plots.len())));
        for fact in [
            "6.1.0",
            "Test CPU",
            "8.00 GiB",
            "ext4",
            "/dev/loop3",
            "/var/tmp/bench.img",
            "rw,relatime",
            "runs",
        ] {
            assert!(html.contains(fact), "{fact} missing");
        }
        assert!(
            html.contains("Harness overhead:</strong> 2.00 µs per sample"),
            "overhead"
        );
        assert!(html.contains("<strong>driver devicemapper</strong>: no thin-pool support"));
        // The policy allows exactly the page's script.
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
        assert!(html.contains(&format!("script-src 'sha256-{hash}'")));
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
    }

    #[test]
    fn hostile_strings_are_escaped_everywhere() {
        let evil = "<script>alert(1)</script>";
        let mut f = file(vec![
            with(m(evil, evil, Some(evil), "s", around(1.0, 6)), evil, evil),
            with(
                m("bars\"'&", evil, None, "bytes/s", around(1e6, 6)),
                "k",
                evil,
            ),
        ]);
        f.settings.insert(evil.into(), evil.into());
        f.skipped.push(Skipped {
            what: evil.into(),
            why: evil.into(),
        });
        f.started = evil.into();
        f.machine.cpu = evil.into();
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let w = write(&f, t.path()).unwrap_or_else(|e| panic!("{e}"));
        let html = read(&w.html);
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only the page's own script"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("\"'&<") && html.contains("bars&quot;&#39;&amp;"));
        for p in &w.plots {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(!read(p).contains("<script"), "{}", p.display());
        }
        let md = read(&w.summary);
        assert!(!md.contains("<script"), "{md}");
        assert!(
            md.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
            "{md}"
        );
    }

    #[test]
    fn ratios_favour_strata_above_one_for_time_throughput_and_space() {
        let f = file(vec![
            m("pull", "strata", Some("overlay"), "s", vec![1.0, 1.0, 1.0]),
            m("pull", "podman", Some("overlay"), "s", vec![2.5, 2.5, 2.5]),
            m("pull", "podman", Some("vfs"), "s", vec![2.0]),
            m("pull", "harness", Some("overlay"), "s", vec![0.1]),
            m("io", "strata", None, "bytes/s", vec![300e6]),
            m("io", "podman", None, "bytes/s", vec![100e6]),
            m("space", "strata", None, "bytes", vec![10.0]),
            m("space", "podman", None, "bytes", vec![40.0]),
            with(m("depth", "strata", None, "s", vec![1.0]), "depth", "4"),
            with(m("depth", "podman", None, "s", vec![3.0]), "depth", "4"),
            with(m("depth", "podman", None, "s", vec![3.0]), "depth", "8"),
        ]);
        let all = &f.measurements;
        let r: Vec<Option<f64>> = all.iter().map(|x| ratio(x, all)).collect();
        assert_eq!(
            r,
            [
                None,
                Some(2.5),
                None,
                None,
                None,
                Some(3.0),
                None,
                Some(4.0),
                None,
                Some(3.0),
                None
            ]
        );
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let w = write(&f, t.path()).unwrap_or_else(|e| panic!("{e}"));
        let html = read(&w.html);
        assert!(
            html.contains("<td class=\"num better\">2.50×</td>"),
            "{html}"
        );
        assert!(html.contains("ref ÷ strata<small>&gt;1: strata faster</small>"));
        assert!(html.contains("strata ÷ ref<small>&gt;1: strata faster</small>"));
        assert!(html.contains("ref ÷ strata<small>&gt;1: strata smaller</small>"));
    }

    #[test]
    fn an_empty_file_and_single_samples_work() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let w = write(&file(Vec::new()), &t.path().join("empty")).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.plots.is_empty());
        let html = read(&w.html);
        assert!(
            html.contains("No measurements in this file.") && html.contains("data-plots=\"0\"")
        );
        assert!(html.contains("not measured"));
        assert!(read(&w.summary).contains("No measurements in this file."));

        let mut one = file(vec![
            m("start", "strata", None, "s", vec![0.0]),
            m("io", "strata", None, "bytes/s", vec![0.0]),
            m("space", "strata", None, "bytes", vec![0.0]),
            with(m("depth", "strata", None, "s", vec![0.0]), "depth", "0"),
        ]);
        one.machine = Machine::default();
        let w = write(&one, &t.path().join("one")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.plots.len(), 4);
        assert!(read(&w.html).contains("unknown"));
    }

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
    fn numbers_read_well() {
        assert_eq!(duration(0.001_234), "1.23 ms");
        assert_eq!(duration(2.0), "2.00 s");
        assert_eq!(duration(0.000_045_6), "45.6 µs");
        assert_eq!(duration(123.4), "123 s");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1.5 * MIB), "1.50 MiB");
        assert_eq!(bytes(8.0 * 1024.0 * MIB), "8.00 GiB");
        assert_eq!(rate(250e6), "250 MB/s");
        assert_eq!(rate(1.5e9), "1500 MB/s");
        assert_eq!(rate(5e3), "5.00 kB/s");
        assert_eq!(human("ops", 3.0), "3.00 ops");
        assert_eq!(
            (tidy(0.5), tidy(250.0), tidy(0.1 + 0.2), tidy(0.0)),
            ("0.5".into(), "250".into(), "0.3".into(), "0".into())
        );
    }

    #[test]
    fn axes_go_logarithmic_past_the_span_and_tick_round_values() {
        let lin = ValueAxis::fit("s", [0.1, 0.5], Fit::Spread);
        assert_eq!(
            (lin.scale, lin.lo, lin.ticks),
            (Scale::Linear, 0.0, Ticks::Scaled(1e-3))
        );
        assert_eq!(lin.desc, "time (ms)");
        let labels = |a: &ValueAxis, max: usize| -> Vec<String> {
            a.tick_values(max, false)
                .into_iter()
                .map(|v| a.label(v))
                .collect()
        };
        assert_eq!(labels(&lin, 6), ["0", "100", "200", "300", "400", "500"]);
        // Ticks are round in the unit shown, not in bytes.
        let space = ValueAxis::fit("bytes", [0.0, 300.0 * MIB], Fit::Bars);
        assert_eq!(space.desc, "space used (MiB)");
        assert_eq!(
            labels(&space, 8),
            ["0", "50", "100", "150", "200", "250", "300", "350"]
        );
        let narrow = ValueAxis::fit("s", [1.0, 1.1], Fit::Spread);
        assert!(narrow.lo > 0.9, "{narrow:?}");
        let log = ValueAxis::fit("s", [1e-4, 1.0], Fit::Spread);
        assert_eq!((log.scale, log.ticks), (Scale::Log10, Ticks::Duration));
        assert_eq!(log.tick_values(10, false), [1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        assert_eq!(log.label(1e-4), "100 µs");
        let bars = ValueAxis::fit("bytes/s", [1e6, 1e9], Fit::Bars);
        assert_eq!((bars.scale, bars.lo), (Scale::Linear, 0.0));
        let x = ValueAxis::parameter("depth", [1.0, 128.0]);
        assert_eq!(x.scale, Scale::Log2);
        assert_eq!(
            x.tick_values(10, false),
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
        );
        assert_eq!(x.tick_values(4, false), [1.0, 4.0, 16.0, 64.0]);
        let flat = ValueAxis::fit("s", [3.0], Fit::Spread);
        assert!(flat.hi > flat.lo, "{flat:?}");
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
