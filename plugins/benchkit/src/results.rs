//! The result file of `strata bench` (versioned JSON), and comparing two of them.
//!
//! ```json
//! {
//!   "schema": "strata-bench/1",
//!   "started": "2026-12-07T16:00:00Z",
//!   "machine": {"kernel": "6.18.0", "cpu": "...", "cpus": 2, "memory_bytes": 25769803776},
//!   "measurements": [
//!     {"workload": "pull", "tool": "strata", "driver": "overlay",
//!      "params": {"image": "layers=5,..."}, "unit": "s",
//!      "samples": [0.71, 0.73], "summary": {"n": 2, "median": 0.72, ...}}
//!   ]
//! }
//! ```
//!
//! A measurement is identified by workload, tool, driver and parameters; `compare` pairs the
//! measurements two files share and tests each pair for a significant change
//! ([`crate::stats::compare`]). A file of another schema version is refused, not guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stats::{self, Comparison, Summary};

/// The schema this crate writes and reads.
pub const SCHEMA: &str = "strata-bench/1";

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a strata bench result file: {why}")]
    Invalid { path: PathBuf, why: String },
}

/// Facts about the machine a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    /// The filesystem the run's scratch directory was on (absent in files that measured no
    /// storage, such as hand-made ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
}

/// A mounted filesystem, as `/proc/self/mountinfo` describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    /// The directory measured.
    pub path: String,
    /// Where the filesystem holding it is mounted.
    pub mount_point: String,
    /// `ext4`, `xfs`, `btrfs`, `tmpfs`, ...
    pub fstype: String,
    /// The mount's options and the filesystem's own (`rw,relatime` and `rw,errors=remount-ro`).
    pub options: String,
    /// What is mounted: a block device (`/dev/loop3`, `/dev/vda`) or a name (`tmpfs`).
    pub source: String,
    /// For a loop device, the file behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
}

impl Filesystem {
    /// The filesystem holding `path` (the mount with the longest mount point that is a prefix
    /// of it); `None` when mountinfo cannot be read or `path` is not absolute.
    pub fn of(path: &Path) -> Option<Filesystem> {
        let path = std::fs::canonicalize(path).ok()?;
        let mut best: Option<Filesystem> = None;
        for m in mountinfo() {
            if !path.starts_with(&m.point) {
                continue;
            }
            if best
                .as_ref()
                .is_some_and(|b| b.mount_point.len() > m.point.len())
            {
                continue;
            }
            let backing_file = m
                .source
                .strip_prefix("/dev/")
                .filter(|d| d.starts_with("loop"))
                .and_then(|d| {
                    std::fs::read_to_string(format!("/sys/block/{d}/loop/backing_file")).ok()
                })
                .map(|f| f.trim().to_owned());
            best = Some(Filesystem {
                path: path.to_string_lossy().into_owned(),
                mount_point: m.point,
                fstype: m.fstype,
                options: m.options,
                source: m.source,
                backing_file,
            });
        }
        best
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MountEntry {
    pub point: String,
    pub fstype: String,
    pub source: String,
    /// The mount's options, then the filesystem's.
    pub options: String,
}

/// This process's mounts (none when mountinfo cannot be read).
pub(crate) fn mountinfo() -> Vec<MountEntry> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point mount-options [optional...] - fstype source super-options
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            Some(MountEntry {
                point: unescape(l[4]),
                fstype: r[0].to_owned(),
                source: unescape(r[1]),
                options: format!("{},{}", l[5], r[2]),
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Machine {
    /// This machine's facts (best effort: what cannot be read stays empty).
    pub fn this() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory_bytes,
            filesystem: None,
        }
    }
}

/// One workload measured through one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub workload: String,
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// `s`, `bytes` or `bytes/s`.
    pub unit: String,
    pub samples: Vec<f64>,
    pub summary: Summary,
}

impl Measurement {
    /// A measurement of `samples` (none of them may be NaN or infinite).
    pub fn new(workload: &str, tool: &str, unit: &str, samples: Vec<f64>) -> Option<Measurement> {
        let summary = Summary::of(&samples)?;
        Some(Measurement {
            workload: workload.to_owned(),
            tool: tool.to_owned(),
            driver: None,
            params: BTreeMap::new(),
            unit: unit.to_owned(),
            samples,
            summary,
        })
    }

    /// What identifies it across files.
    pub fn key(&self) -> String {
        let mut k = format!("{} [{}", self.workload, self.tool);
        if let Some(d) = &self.driver {
            k.push_str(&format!(" on {d}"));
        }
        k.push(']');
        for (p, v) in &self.params {
            k.push_str(&format!(" {p}={v}"));
        }
        k
    }
}

/// A whole result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    pub schema: String,
    pub started: String,
    pub machine: Machine,
    /// How the run was asked for (`runs`, `warmup`, `cold`, `profile`, `image`, ...), as the
    /// user gave it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    pub measurements: Vec<Measurement>,
    /// Drivers, tools and workloads the run could not measure, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// Something a run left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// `driver btrfs`, `tool podman`, `workload pull on vfs`, ...
    pub what: String,
    pub why: String,
}

impl ResultFile {
    pub fn read(path: &Path) -> Result<ResultFile, ResultsError> {
        let bytes = std::fs::read(path).map_err(|source| ResultsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |why: String| ResultsError::Invalid {
            path: path.to_owned(),
            why,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        match v.get("schema").and_then(serde_json::Value::as_str) {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "schema {other:?}; this strata reads {SCHEMA:?}"
                )))
            }
            None => return Err(invalid("no \"schema\" field".into())),
        }
        let file: ResultFile = serde_json::from_value(v).map_err(|e| invalid(e.to_string()))?;
        for m in &file.measurements {
            // The summary is recomputed from the samples: a file cannot claim what its
            // samples do not say.
            if !Summary::of(&m.samples).is_some_and(|s| same(&s, &m.summary)) {
                return Err(invalid(format!(
                    "{}: the summary does not match the samples",
                    m.key()
                )));
            }
        }
        Ok(file)
    }
}

/// Whether two summaries agree to within rounding (JSON numbers are parsed to the nearest
/// double or one next to it).
fn same(a: &Summary, b: &Summary) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300);
    a.n == b.n
        && a.outliers == b.outliers
        && [
            (a.median, b.median),
            (a.p95, b.p95),
            (a.mean, b.mean),
            (a.stddev, b.stddev),
            (a.min, b.min),
            (a.max, b.max),
            (a.mad, b.mad),
            (a.median_ci.0, b.median_ci.0),
            (a.median_ci.1, b.median_ci.1),
        ]
        .iter()
        .all(|(x, y)| close(*x, *y))
}

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub unit: String,
    pub before: f64,
    pub after: f64,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// The measurements `a` and `b` share, compared (B against A), in `a`'s order; the keys only
/// one of them has are returned apart.
pub fn compare(
    a: &ResultFile,
    b: &ResultFile,
    alpha: f64,
    min_effect: f64,
) -> (Vec<Row>, Vec<String>) {
    let in_b: BTreeMap<String, &Measurement> =
        b.measurements.iter().map(|m| (m.key(), m)).collect();
    let in_a: BTreeMap<String, &Measurement> =
        a.measurements.iter().map(|m| (m.key(), m)).collect();
    let mut rows = Vec::new();
    for m in &a.measurements {
        let Some(other) = in_b.get(&m.key()) else {
            continue;
        };
        if let Some(c) = stats::compare(&m.samples, &other.samples, alpha, min_effect) {
            rows.push(Row {
                key: m.key(),
                unit: m.unit.clone(),
                before: m.summary.median,
                after: other.summary.median,
                comparison: c,
            });
        }
    }
    let only: Vec<String> = in_a
        .keys()
        .filter(|k| !in_b.contains_key(*k))
        .chain(in_b.keys().filter(|k| !in_a.contains_key(*k)))
        .cloned()
        .collect();
    (rows, only)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Verdict;

    fn file(measurements: Vec<Measurement>) -> ResultFile {
        ResultFile {
            schema: SCHEMA.into(),
            started: "2026-12-07T16:00:00Z".into(),
            machine: Machine::this(),
            settings: BTreeMap::new(),
            measurements,
            skipped: Vec::new(),
        }
    }

    fn m(workload: &str, samples: Vec<f64>) -> Measurement {
        Measurement::new(workload, "strata", "s", samples).unwrap_or_else(|| panic!("samples"))
    }

    #[test]
    fn files_round_trip_and_foreign_or_forged_ones_are_refused() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = file(vec![m("pull", vec![1.0, 1.1, 0.9])]);
        let p = t.path().join("r.json");
        std::fs::write(&p, serde_json::to_vec(&f).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let back = ResultFile::read(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((back.schema.as_str(), back.measurements.len()), (SCHEMA, 1));
        assert!(same(
            &back.measurements[0].summary,
            &f.measurements[0].summary
        ));
        assert!(
            f.machine.cpus > 0 && !f.machine.kernel.is_empty(),
            "{:?}",
            f.machine
        );

        let mut v = serde_json::to_value(&f).unwrap_or_default();
        v["schema"] = "strata-bench/99".into();
        std::fs::write(&p, v.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let e = ResultFile::read(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("strata-bench/99"), "{e}");

        let mut v = serde_json::to_value(&f).unwrap_or_default();
        v["measurements"][0]["summary"]["median"] = 0.5.into();
        std::fs::write(&p, v.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let e = ResultFile::read(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("does not match"), "{e}");

        std::fs::write(&p, "{not json").unwrap_or_else(|e| panic!("{e}"));
        assert!(ResultFile::read(&p).is_err());
    }

    #[test]
    fn comparing_files_pairs_measurements_by_key() {
        let base: Vec<f64> = (0..30).map(|i| 1.0 + f64::from(i % 7) * 0.01).collect();
        let slow: Vec<f64> = base.iter().map(|x| x * 1.5).collect();
        let a = file(vec![
            m("pull", base.clone()),
            m("rmi", base.clone()),
            m("gc", base.clone()),
        ]);
        let mut b = file(vec![
            m("pull", slow),
            m("rmi", base.clone()),
            m("start", base),
        ]);
        b.measurements[1].tool = "strata".into();
        let (rows, only) = compare(&a, &b, 0.01, 0.02);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].key, "pull [strata]");
        assert_eq!(rows[0].comparison.verdict, Verdict::Regression);
        assert!((rows[0].comparison.ratio - 1.5).abs() < 1e-9);
        assert_eq!(rows[1].comparison.verdict, Verdict::NoChange);
        assert_eq!(only, ["gc [strata]", "start [strata]"]);
    }
}
