//! Measuring the workloads on the three filesystems: every workload's runs, the filesystems
//! taking turns in an order that rotates from round to round, then the median, p90 and rate
//! of each timing, and where the filesystems disagree on what a run moved.
//!
//! A [`Setup::Warm`] workload runs on one mount per filesystem kept for all its runs, after
//! one untimed run on it; a [`Setup::Fresh`] one on a fresh mount per run (page caches
//! optionally dropped after mounting), after one untimed round.
//!
//! What it deliberately does not do: retry a filesystem that failed (its failure is reported
//! and it sits out the rest of that workload).

use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::mounts::{drop_caches, Kind, Mounted, Mounter};
use super::workloads::{Ctx, Phase, Setup, Unit, Workload, WORKLOADS};
use crate::layer::sh;

/// The median and p90 of one filesystem in one row.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub median_ms: f64,
    pub p90_ms: f64,
    /// In the row's unit, from the median.
    pub rate: f64,
    pub bytes: Option<u64>,
    pub items: Option<u64>,
    /// Whether every run moved the same bytes and entries.
    pub consistent: bool,
    pub samples_ms: Vec<f64>,
}

/// One timing of one workload on the three filesystems (`cells` in [`Kind::ALL`] order;
/// `None` where the filesystem failed).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: u8,
    pub group: &'static str,
    pub unit: Unit,
    pub cells: Vec<Option<Cell>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub group: &'static str,
    pub tool: &'static str,
    pub error: String,
}

/// Everything measured.
#[derive(Debug, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
    pub failures: Vec<Failure>,
    pub problems: Vec<String>,
}

/// Runs every workload `runs` times on each filesystem.
pub fn run_all(m: &Mounter, ctx: &Ctx, runs: usize) -> Measured {
    let mut out = Measured::default();
    for w in WORKLOADS {
        let t = Instant::now();
        let mut samples: Vec<Vec<Vec<Phase>>> = vec![Vec::new(); Kind::ALL.len()];
        let mut errors: Vec<Option<String>> = vec![None; Kind::ALL.len()];
        match w.setup {
            Setup::Warm => warm(w, m, ctx, runs, &mut samples, &mut errors),
            Setup::Fresh { drop_caches } => {
                fresh(w, m, ctx, runs, drop_caches, &mut samples, &mut errors)
            }
        }
        for (k, e) in errors.into_iter().enumerate() {
            if let Some(error) = e {
                eprintln!(
                    "fuse: {} on {} FAILED: {error}",
                    w.phases[0].0,
                    Kind::ALL[k].name()
                );
                out.failures.push(Failure {
                    group: w.phases[0].0,
                    tool: Kind::ALL[k].name(),
                    error,
                });
                samples[k].clear();
            }
        }
        for (i, &(group, unit)) in w.phases.iter().enumerate() {
            let cells: Vec<Option<Cell>> = samples
                .iter()
                .map(|s| cell(s.iter().filter_map(|run| run.get(i).copied()), unit))
                .collect();
            out.problems.extend(disagreements(group, &cells));
            eprintln!(
                "fuse: {group}: {} ({:.0} s)",
                cells
                    .iter()
                    .zip(Kind::ALL)
                    .map(|(c, k)| match c {
                        Some(c) => format!("{} {:.1} ms", k.name(), c.median_ms),
                        None => format!("{} failed", k.name()),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                t.elapsed().as_secs_f64()
            );
            out.rows.push(Row {
                workload: w.number,
                group,
                unit,
                cells,
            });
        }
        out.problems.extend(m.leftovers());
    }
    out
}

/// The filesystems' indices in round `round`'s order.
fn order(round: usize) -> impl Iterator<Item = usize> {
    let n = Kind::ALL.len();
    (0..n).map(move |j| (j + round) % n)
}

type Samples = [Vec<Vec<Phase>>];
type Errors = [Option<String>];

fn warm(w: &Workload, m: &Mounter, ctx: &Ctx, runs: usize, s: &mut Samples, e: &mut Errors) {
    let mut mounts: Vec<Option<Mounted>> = Kind::ALL
        .iter()
        .enumerate()
        .map(|(k, &kind)| {
            let first = m
                .mount(kind)
                .and_then(|mt| (w.run)(ctx, &mt.target).map(|_| mt));
            first.map_err(|err| e[k] = Some(format!("{err:#}"))).ok()
        })
        .collect();
    for round in 0..runs {
        for k in order(round) {
            let Some(mt) = mounts[k].as_ref().filter(|_| e[k].is_none()) else {
                continue;
            };
            match (w.run)(ctx, &mt.target) {
                Ok(p) => s[k].push(p),
                Err(err) => e[k] = Some(format!("{err:#}")),
            }
        }
    }
    for (k, mt) in mounts.iter_mut().enumerate() {
        if let Some(mt) = mt.take() {
            if let Err(err) = mt.unmount() {
                e[k].get_or_insert(format!("{err:#}"));
            }
        }
    }
}

fn fresh(
    w: &Workload,
    m: &Mounter,
    ctx: &Ctx,
    runs: usize,
    drop: bool,
    s: &mut Samples,
    e: &mut Errors,
) {
    for round in 0..=runs {
        for k in order(round) {
            if e[k].is_some() {
                continue;
            }
            let once = || -> Result<Vec<Phase>> {
                sh(&mut Command::new("sync"))?;
                let mt = m.mount(Kind::ALL[k])?;
                if drop {
                    drop_caches()?;
                }
                let p = (w.run)(ctx, &mt.target)?;
                mt.unmount()?;
                Ok(p)
            };
            match once() {
                Ok(p) if round > 0 => s[k].push(p),
                Ok(_) => {}
                Err(err) => e[k] = Some(format!("{err:#}")),
            }
        }
    }
}

/// Median, p90 (nearest rank) and rate of one filesystem's timings; `None` without any.
fn cell(phases: impl Iterator<Item = Phase>, unit: Unit) -> Option<Cell> {
    let phases: Vec<Phase> = phases.collect();
    let mut ms: Vec<f64> = phases.iter().map(|p| p.time.as_secs_f64() * 1e3).collect();
    let first = *phases.first()?;
    ms.sort_by(f64::total_cmp);
    let median_ms = ms[ms.len() / 2];
    let p90_ms = ms[(ms.len() * 9).div_ceil(10).max(1) - 1];
    let amount = match unit {
        Unit::Megabytes => first.bytes.unwrap_or(0) as f64 / 1e6,
        _ => first.items.unwrap_or(0) as f64,
    };
    Some(Cell {
        median_ms,
        p90_ms,
        rate: amount / (median_ms / 1e3),
        bytes: first.bytes,
        items: first.items,
        consistent: phases
            .iter()
            .all(|p| (p.bytes, p.items) == (first.bytes, first.items)),
        samples_ms: phases.iter().map(|p| p.time.as_secs_f64() * 1e3).collect(),
    })
}

/// Where the filesystems (or one filesystem's runs) disagree on what a run moved.
fn disagreements(group: &str, cells: &[Option<Cell>]) -> Vec<String> {
    let mut out = Vec::new();
    let seen: Vec<(&str, Option<u64>, Option<u64>)> = cells
        .iter()
        .zip(Kind::ALL)
        .filter_map(|(c, k)| c.as_ref().map(|c| (k.name(), c.bytes, c.items)))
        .collect();
    for (c, k) in cells.iter().zip(Kind::ALL) {
        if c.as_ref().is_some_and(|c| !c.consistent) {
            out.push(format!(
                "{group}: {}'s runs moved different amounts of bytes or entries",
                k.name()
            ));
        }
    }
    if let Some(&(first, bytes, items)) = seen.first() {
        for &(name, b, i) in &seen[1..] {
            if (b, i) != (bytes, items) {
                out.push(format!(
                    "{group}: {name} moved {b:?} bytes / {i:?} entries, {first} {bytes:?} / {items:?}"
                ));
            }
        }
    }
    out
}
