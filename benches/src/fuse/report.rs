//! The FUSE benchmark's report: the layers, one Markdown table of every timing on the three
//! filesystems with the ratios strata/kernel and fuse-overlayfs/strata, and the issue's
//! targets: strata at least [`FASTER_THAN_FUSE_OVERLAYFS`] times as fast as fuse-overlayfs on
//! reads and metadata-heavy work (workloads 1, 3, 4, 5), and within [`OF_KERNEL`] times the
//! kernel overlay's time on sequential reads of unchanged files (workload 1).
//!
//! What it deliberately does not do: judge the write workload (the issue sets no target for
//! it) or average ratios across workloads.

use serde::Serialize;

use super::measure::{Cell, Row};
use super::mounts::Kind;
use super::workloads::Unit;
use super::FuseSummary;
use crate::storage::Measurement;

/// Target: fuse-overlayfs's median over strata's, at least this (workloads 1, 3, 4, 5).
const FASTER_THAN_FUSE_OVERLAYFS: f64 = 2.0;
/// Target: strata's median over the kernel overlay's, at most this (workload 1).
const OF_KERNEL: f64 = 1.5;

/// One of the targets, checked against one row's medians.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    /// The ratio of medians.
    pub value: Option<f64>,
    pub target: String,
    /// `None` when a filesystem failed the workload.
    pub met: Option<bool>,
}

fn cell(row: &Row, kind: Kind) -> Option<&Cell> {
    let i = Kind::ALL.iter().position(|k| *k == kind)?;
    row.cells.get(i)?.as_ref()
}

/// `num`'s median over `den`'s in `row`.
fn ratio(row: &Row, num: Kind, den: Kind) -> Option<f64> {
    Some(cell(row, num)?.median_ms / cell(row, den)?.median_ms)
}

/// The targets, for every row they apply to.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| [1, 3, 4, 5].contains(&r.workload)) {
        let value = ratio(r, Kind::FuseOverlayfs, Kind::Strata);
        out.push(Target {
            what: format!("{}: fuse-overlayfs / strata", r.group),
            value,
            target: format!(">= {FASTER_THAN_FUSE_OVERLAYFS:.2}x"),
            met: value.map(|v| v >= FASTER_THAN_FUSE_OVERLAYFS),
        });
    }
    for r in rows.iter().filter(|r| r.workload == 1) {
        let value = ratio(r, Kind::Strata, Kind::Kernel);
        out.push(Target {
            what: format!("{}: strata / kernel", r.group),
            value,
            target: format!("<= {OF_KERNEL:.2}x"),
            met: value.map(|v| v <= OF_KERNEL),
        });
    }
    out
}

/// The rows as the harness's JSON measurements (`tool` is the filesystem).
pub fn measurements(rows: &[Row]) -> Vec<Measurement> {
    let mut out = Vec::new();
    for r in rows {
        for (c, k) in r.cells.iter().zip(Kind::ALL) {
            let Some(c) = c else { continue };
            let bytes = matches!(r.unit, Unit::Megabytes).then_some(c.rate);
            out.push(Measurement {
                group: r.group,
                tool: k.name().to_owned(),
                median_ms: c.median_ms,
                p90_ms: Some(c.p90_ms),
                mb_per_s: bytes,
                files_per_s: bytes.is_none().then_some(c.rate),
                peak_rss_mib: None,
            });
        }
    }
    out
}

fn rate(v: f64, unit: &str) -> String {
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// Prints the section.
pub fn print(s: &FuseSummary) {
    println!(
        "\n## FUSE overlay: kernel overlay vs {} vs strata-fuse-overlay on the same layers \
         (median of {} runs after one warm-up; kernel {})\n",
        s.fuse_overlayfs_version, s.runs, s.kernel
    );
    println!(
        "strata-fuse-overlay: {} with {}. Every mount has an empty upper and work directory of \
         its own, on the loop-mounted ext4 scratch filesystem, as the layers are. Load \
         average before {}, after {}.\n",
        s.strata_binary,
        if s.strata_options.is_empty() {
            "its default options (passthrough on as root)".to_owned()
        } else {
            format!("`-o {}`", s.strata_options)
        },
        s.load_average_before,
        s.load_average_after
    );
    println!("| lower layer (topmost first) | taken from the host | files | symlinks | dirs | MB | also |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for l in &s.layers {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} |",
            l.name,
            l.sources.join(", "),
            l.files,
            l.symlinks,
            l.dirs,
            l.bytes as f64 / 1e6,
            l.extras.join("; ")
        );
    }
    println!(
        "\nMerged view: {} entries under /usr. Big file {:.0} MiB (read in workload 1, the \
         written file of workload 2 is as big); workload 3 uses {} files.\n",
        s.merged_entries
            .map_or("unknown".to_owned(), |n| n.to_string()),
        s.big_file_bytes as f64 / (1 << 20) as f64,
        s.files
    );
    let mut head = vec!["workload".to_owned()];
    for k in Kind::ALL {
        head.push(format!("{} ms", k.name()));
        head.push(format!("{} rate", k.name()));
    }
    head.push("strata / kernel".into());
    head.push("fuse-overlayfs / strata".into());
    println!("| {} |", head.join(" | "));
    println!("|---|{}", "---:|".repeat(head.len() - 1));
    let times = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}x"));
    for r in &s.rows {
        let mut row = vec![r.group.to_owned()];
        for c in &r.cells {
            match c {
                Some(c) => {
                    row.push(format!("{:.1}", c.median_ms));
                    row.push(rate(c.rate, r.unit.label()));
                }
                None => row.extend(["FAILED".to_owned(), String::new()]),
            }
        }
        row.push(times(ratio(r, Kind::Strata, Kind::Kernel)));
        row.push(times(ratio(r, Kind::FuseOverlayfs, Kind::Strata)));
        println!("| {} |", row.join(" | "));
    }
    println!(
        "\nRatios are of medians (times): strata / kernel above 1 means strata is slower than \
         the kernel overlay, fuse-overlayfs / strata above 1 means strata is faster than \
         fuse-overlayfs. Workload 1: the kernel overlay and strata (with passthrough) read \
         the lower file's pages; fuse-overlayfs serves the data itself and keeps a second copy \
         in its FUSE file's page cache, which warm runs read; cold runs drop both (`echo 3 > \
         /proc/sys/vm/drop_caches` after mounting), so they read the loop device's backing \
         file from disk. Workload 2 ends with an fsync of the whole file, so the disk below \
         the loop device bounds it. Per-run samples are in the JSON (`fuse.rows[].cells[]\
         .samples_ms`)."
    );
    println!("\n| target (ratio of medians) | value | target | met |");
    println!("|---|---:|---:|---|");
    for t in &s.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None => "n/a",
        };
        println!("| {} | {} | {} | {met} |", t.what, times(t.value), t.target);
    }
    for f in &s.failures {
        println!("\nFAILED: {} / {}: {}", f.group, f.tool, f.error);
    }
    if !s.problems.is_empty() {
        println!();
        for p in &s.problems {
            println!("- problem: {p}");
        }
    }
}
