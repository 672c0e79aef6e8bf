//! The FUSE overlay benchmark (`--only fuse`): the same layers read and written through three
//! overlay filesystems side by side in one run: the kernel's overlay, Debian's C
//! `fuse-overlayfs`, and Strata's `strata-fuse-overlay`.
//!
//! The layers ([`rootfs`]) are a distro rootfs of the host's Debian files split into three
//! lower layers (with whiteouts and overridden files, so the merge is exercised), plus a big
//! file of random bytes in the bottom layer; every mount gets an empty upper and work
//! directory of its own, all on the harness's loop-mounted ext4. The workloads ([`workloads`]):
//! 1. sequential read of the big lower file in 1 MiB blocks, in process: warm (one mount,
//!    after a first read) and cold (fresh mount, page caches dropped);
//! 2. sequential write of a new file in 1 MiB blocks, fsync at the end (fresh mount);
//! 3. small-file metadata in a new directory: create, stat, unlink (three timings);
//! 4. GNU `find -printf '%s\n'` over the rootfs (a stat of every entry), its output read and
//!    counted: fresh mount, fresh mount with caches dropped, and warm;
//! 5. GNU `tar c` of the rootfs to a pipe that is read and counted (fresh mount).
//!
//! Every measurement ([`measure`]) is the median of `--fuse-runs` runs after one untimed
//! warm-up, the three filesystems taking turns in rotating order within each round. The
//! report gives ms and MB/s or ops/s, the ratios strata/kernel and fuse-overlayfs/strata,
//! and checks the targets (see [`report`]). Mounts and server processes are undone
//! by guards ([`mounts`]), also when a workload fails; a filesystem that fails a workload is
//! reported, not fatal.
//!
//! What it deliberately does not do: go through the store or the mount crate (it runs the
//! filesystems as a user would, from their command lines), measure rootless mounts, or check
//! file contents (only that the three views agree on entry counts and archive sizes).

mod measure;
mod mounts;
mod report;
mod rootfs;
mod workloads;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::storage::{fresh, Measurement};
pub use report::print;

/// Settings of the FUSE benchmark.
#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// The `strata-fuse-overlay` binary.
    pub strata: PathBuf,
    /// Extra `-o` options for `strata-fuse-overlay` (e.g. `passthrough=off,threads=4`).
    pub strata_options: String,
    /// Timed runs per measurement (after one warm-up).
    pub runs: usize,
    /// Size of the big lower file and of the written file, in MiB.
    pub big_mib: u64,
    /// Files created, stat'ed and unlinked by the metadata workload.
    pub files: usize,
}

/// What the section found besides the numbers (which are [`Measurement`]s).
#[derive(Debug, Clone, Serialize)]
pub struct FuseSummary {
    pub runs: usize,
    pub kernel: String,
    pub fuse_overlayfs_version: String,
    pub strata_binary: String,
    pub strata_options: String,
    /// `/proc/loadavg` before and after (other work on the machine skews FUSE servers most).
    pub load_average_before: String,
    pub load_average_after: String,
    pub layers: Vec<rootfs::LayerInfo>,
    pub big_file_bytes: u64,
    pub files: usize,
    /// Entries the kernel overlay's `find` saw under the rootfs.
    pub merged_entries: Option<u64>,
    pub rows: Vec<measure::Row>,
    pub targets: Vec<report::Target>,
    pub failures: Vec<measure::Failure>,
    /// Disagreements between the filesystems, leftovers, server log lines.
    pub problems: Vec<String>,
}

/// Runs the benchmark in `scratch/fuse` and removes everything it made there.
pub fn fuse_benchmarks(
    scratch: &Path,
    opts: &FuseOptions,
) -> Result<(Vec<Measurement>, FuseSummary)> {
    if opts.runs == 0 || opts.big_mib == 0 || opts.files == 0 {
        bail!("--fuse-runs, --fuse-big-mib and --fuse-files must be at least 1");
    }
    let strata = std::fs::canonicalize(&opts.strata).with_context(|| {
        format!(
            "strata-fuse-overlay binary {} not found; build it with cargo build --release -p \
             strata-tools-fuse-overlay",
            opts.strata.display()
        )
    })?;
    let fuse_overlayfs_version = mounts::fuse_overlayfs_version()?;
    let dir = scratch.join("fuse");
    fresh(&dir)?;
    let layers = rootfs::build(&dir.join("layers"), opts.big_mib << 20)?;
    for l in &layers.info {
        eprintln!(
            "fuse: layer {}: {} files, {} symlinks, {} dirs, {:.1} MB",
            l.name,
            l.files,
            l.symlinks,
            l.dirs,
            l.bytes as f64 / 1e6
        );
    }
    let mounter = mounts::Mounter::new(
        dir.join("mounts"),
        layers.lowers.clone(),
        strata.clone(),
        opts.strata_options.clone(),
        dir.join("strata-fuse-overlay.log"),
    )?;
    let load_average_before = load_average();
    let ctx = workloads::Ctx::new(&layers, opts.big_mib << 20, opts.files);
    let measured = measure::run_all(&mounter, &ctx, opts.runs);
    let mut problems = measured.problems;
    problems.extend(mounter.leftovers());
    problems.extend(mounter.server_log());
    let merged_entries = measured
        .rows
        .iter()
        .find(|r| r.workload == 4)
        .and_then(|r| r.cells[0].as_ref())
        .and_then(|c| c.items);
    let targets = report::targets(&measured.rows);
    let summary = FuseSummary {
        runs: opts.runs,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        fuse_overlayfs_version,
        strata_binary: strata.display().to_string(),
        strata_options: opts.strata_options.clone(),
        load_average_before,
        load_average_after: load_average(),
        layers: layers.info,
        big_file_bytes: opts.big_mib << 20,
        files: opts.files,
        merged_entries,
        rows: measured.rows,
        targets,
        failures: measured.failures,
        problems,
    };
    drop(mounter);
    fresh(&dir)?;
    std::fs::remove_dir(&dir)?;
    Ok((report::measurements(&summary.rows), summary))
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
