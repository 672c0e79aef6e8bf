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
//! The module reads in the same order as the report is made: `sections` (the sections and
//! ratios: what is shown where, with the series' names, colours and file names), `numbers`
//! (numbers for humans), `axes`, `plots`, `html` (the page) and `markdown` (the summary).
//! This file holds the public API and puts the pieces together.
//!
//! Not here: measuring, statistics (the summaries are `stats`'s; only the quartiles of the
//! boxes are computed here) and comparing two runs (`results::compare`). The report is
//! written to be read, never read back, so it has no format version; files of an earlier
//! report in the same directory that this one does not rewrite are left alone.

mod axes;
mod html;
mod markdown;
mod numbers;
mod plots;
mod sections;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::drawing::DrawingAreaErrorKind;
use strata_types::{ErrorKind, HasKind};

use crate::results::{Measurement, ResultFile};
use html::render_html;
use markdown::render_markdown;
use plots::{bars_plot, latency_plot, scaling_plot};
use sections::{Colors, Kind, Names, Section};

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
        let mut sections = sections::sections(all);
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
