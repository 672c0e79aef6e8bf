//! `strata-bench`: the benchmark harness (run it with `cargo xtask bench`).
//!
//! It measures, side by side in one run and on the same inputs:
//! - **layer apply**: a realistic rootfs layer (host files, pax tar as image builders write it),
//!   uncompressed and gzip, applied by `strata storage load` (overlay and vfs), by
//!   `containers-storage import-layer` (overlay and vfs), and extracted by GNU tar;
//!   reported as MB/s of uncompressed tar and files/s;
//! - **container create + mount latency**: `strata storage create` + `storage mount` against
//!   `containers-storage create-container` + `mount`, median of many runs; and the same two
//!   calls through the store library in one process that opened the store once (what a
//!   front-end plugin or the CRI daemon pays per container, without process start-up).
//!
//! - **pulls** from a local `docker-registry`: `strata copy docker:// store:` against
//!   `podman pull`, and `strata copy docker:// oci:` against `skopeo copy`, on a ~100 MB
//!   three-layer image and a ~1 GiB four-layer one; wall time and peak memory.
//!
//! - **containers** (`--only run`): `strata run --rm busybox true` against `podman run` and a
//!   bare `crun run` of a prepared bundle, `create` against `podman create`, and `ps` with
//!   100 created containers; median and p90, with the targets checked (see `run`).
//!
//! - **chain depth** (`--only depth`): layer create and container create + mount latency at
//!   chain depths 1 to 128, btrfs (on a loop btrfs), overlay and vfs side by side, through the
//!   driver API in one process; median, p90 and the deepest-to-depth-1 ratio (see `depth`).
//!
//! - **FUSE overlay** (`--only fuse`): sequential reads and writes, small-file metadata, `find`
//!   and `tar c` through the kernel overlay, Debian's `fuse-overlayfs` and `strata-fuse-overlay`
//!   on the same layers (a distro rootfs of host files in three lowers, a big file), with the
//!   issue's targets checked (see `fuse`).
//!
//! Builds and the CRI are measured by `strata bench run --workloads build,cri` (the bench
//! plugin), beside buildah, podman and containerd.
//!
//! Everything but the depth section runs as whole commands (process start included, as users run them) on a
//! loop-mounted ext4 image, because the root filesystem's timings swing widely on this machine
//! (see shared/notes/MACHINE.md). It needs root. It is a benchmark, not a test: it asserts
//! nothing and only reports.

mod depth;
mod engines;
mod fuse;
mod layer;
mod pull;
mod report;
mod run;
mod storage;
mod timeline;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "Benchmark Strata against containers-storage, GNU tar, podman, skopeo and crun")]
struct Args {
    /// The strata binary to measure (build it with --release)
    #[arg(long, default_value = "target/release/strata")]
    strata: PathBuf,
    /// Scratch directory; a loop-mounted ext4 image is created inside it
    #[arg(long, default_value = "/tmp/strata-bench")]
    workdir: PathBuf,
    /// Approximate size of the rootfs layer to build from host files, in MiB
    #[arg(long, default_value_t = 400)]
    layer_mib: u64,
    /// Repetitions of each apply measurement (the median is reported)
    #[arg(long, default_value_t = 3)]
    apply_runs: usize,
    /// Repetitions of each create+mount measurement (the median is reported)
    #[arg(long, default_value_t = 30)]
    create_runs: usize,
    /// Which benchmarks: storage (apply, create+mount), pull (registry pulls and copies), run
    /// (containers: run, create, ps against podman and bare crun), depth (layer create and
    /// container create+mount vs chain depth, per driver), fuse (kernel overlay vs
    /// fuse-overlayfs vs strata-fuse-overlay on the same layers), all
    #[arg(
        long,
        default_value = "all",
        value_parser = ["storage", "pull", "run", "depth", "fuse", "all"]
    )]
    only: String,
    /// Timed samples per depth and operation in the depth benchmark (after one warm-up)
    #[arg(long, default_value_t = 15)]
    depth_runs: usize,
    /// The deepest chain the depth benchmark builds (it measures at powers of two up to it)
    #[arg(long, default_value_t = 128)]
    depth_max: usize,
    /// The drivers the depth benchmark measures (devicemapper only where the kernel has it)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "btrfs,overlay,vfs,devicemapper"
    )]
    depth_drivers: Vec<String>,
    /// The strata-fuse-overlay binary the fuse benchmark measures (build it with --release)
    #[arg(long, default_value = "target/release/strata-fuse-overlay")]
    fuse_overlay: PathBuf,
    /// Extra `-o` options for strata-fuse-overlay in the fuse benchmark (e.g.
    /// passthrough=off,threads=4)
    #[arg(long, default_value = "")]
    fuse_overlay_options: String,
    /// Timed runs of each fuse measurement, after one warm-up (the median is reported)
    #[arg(long, default_value_t = 5)]
    fuse_runs: usize,
    /// Size of the big lower file the fuse benchmark reads (and of the file it writes), in MiB
    #[arg(long, default_value_t = 1024)]
    fuse_big_mib: u64,
    /// Files the fuse benchmark's metadata workload creates, stats and unlinks
    #[arg(long, default_value_t = 10_000)]
    fuse_files: usize,
    /// Repetitions of each pull measurement (the median is reported)
    #[arg(long, default_value_t = 3)]
    pull_runs: usize,
    /// Size of the big pull image, in MiB (four layers)
    #[arg(long, default_value_t = 1024)]
    big_image_mib: u64,
    /// Repetitions of each container measurement, after 3 warm-ups (median and p90 reported;
    /// the issue asks for at least 30)
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    run_runs: u64,
    /// Containers created in each tool for the `ps` measurements
    #[arg(long, default_value_t = 100)]
    ps_containers: usize,
    /// Another strata (a `bin/strata` of an install prefix, with its plugins and monitor
    /// installed beside it, as `cargo xtask install --prefix P` makes) measured in the same
    /// rounds as this one in the container benchmarks, as `strata (before)`: a before/after
    /// comparison of a change on one machine in one run
    #[arg(long)]
    baseline_strata: Option<PathBuf>,
    /// The busybox OCI layout (tag `latest`) the container benchmarks run; `cargo xtask
    /// fixtures` builds it [default: <target>/fixtures/oci/busybox, next to the strata
    /// binary's profile directory, else target/fixtures/oci/busybox]
    #[arg(long)]
    busybox: Option<PathBuf>,
    /// Write the results as JSON here too
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !rustix_is_root() {
        bail!("strata-bench needs root (real overlay mounts, a loop-mounted ext4 image)");
    }
    let want = |section: &str| args.only == "all" || args.only == section;
    // The depth and fuse sections do not run the strata binary.
    let strata = if ["storage", "pull", "run"].into_iter().any(want) {
        std::fs::canonicalize(&args.strata).with_context(|| {
            format!(
                "strata binary {} not found; build it with cargo build --release -p strata-tools",
                args.strata.display()
            )
        })?
    } else {
        args.strata.clone()
    };
    let scratch = storage::Scratch::create(&args.workdir, 24 << 30)?;
    let mut results = Vec::new();
    let mut run_summary = None;
    if want("storage") {
        let layer = layer::Layer::build(&scratch.path, args.layer_mib)?;
        eprintln!(
            "layer: {} entries, {:.1} MB uncompressed, {:.1} MB gzip",
            layer.entries,
            layer.tar_size as f64 / 1e6,
            layer.gz_size as f64 / 1e6
        );
        results.extend(storage::apply_benchmarks(
            &scratch.path,
            &strata,
            &layer,
            args.apply_runs,
        )?);
        results.extend(storage::create_mount_benchmarks(
            &scratch.path,
            &strata,
            &layer,
            args.create_runs,
        )?);
        report::print(&layer, &results);
    }
    if want("pull") {
        let registry = pull::Registry::start(&scratch.path)?;
        let quarter = (args.big_image_mib << 20) / 4;
        let images = [
            pull::build_and_push(
                &scratch.path,
                &registry,
                "distro",
                &[
                    (&["usr/bin", "usr/sbin"], 40 << 20),
                    (&["usr/lib"], 45 << 20),
                    (&["etc", "usr/share"], 15 << 20),
                ],
            )?,
            pull::build_and_push(
                &scratch.path,
                &registry,
                "big",
                &[
                    (&["usr/lib"], quarter),
                    (&["usr/lib"], quarter),
                    (&["usr/share", "usr/lib"], quarter),
                    (
                        &["usr/bin", "usr/libexec", "usr/include", "usr/lib"],
                        quarter,
                    ),
                ],
            )?,
        ];
        for i in &images {
            eprintln!(
                "image {}: {} layers, {:.1} MB compressed",
                i.name,
                i.layers,
                i.bytes as f64 / 1e6
            );
        }
        let pulls =
            pull::pull_benchmarks(&scratch.path, &strata, &registry, &images, args.pull_runs)?;
        report::print_pulls(&images, &pulls);
        results.extend(pulls);
    }
    if want("run") {
        let opts = run::RunOptions {
            runs: usize::try_from(args.run_runs)?,
            ps_containers: args.ps_containers,
            layout: busybox_layout(args.busybox.as_deref(), &strata)?,
            baseline: args.baseline_strata.clone(),
        };
        let (measured, summary) = run::run_benchmarks(&scratch.path, &strata, &opts)?;
        report::print_run(&measured, &summary);
        results.extend(measured);
        run_summary = Some(summary);
    }
    if want("depth") {
        let opts = depth::DepthOptions {
            runs: args.depth_runs,
            max_depth: args.depth_max,
            drivers: args.depth_drivers.clone(),
        };
        let points = depth::depth_benchmarks(&scratch.path, &opts)?;
        depth::print(&points, &opts);
        results.extend(depth::measurements(&points));
    }
    let mut fuse_summary = None;
    if want("fuse") {
        let opts = fuse::FuseOptions {
            strata: args.fuse_overlay.clone(),
            strata_options: args.fuse_overlay_options.clone(),
            runs: args.fuse_runs,
            big_mib: args.fuse_big_mib,
            files: args.fuse_files,
        };
        let (measured, summary) = fuse::fuse_benchmarks(&scratch.path, &opts)?;
        fuse::print(&summary);
        results.extend(measured);
        fuse_summary = Some(summary);
    }
    if let Some(p) = &args.json {
        let all = Results {
            measurements: results,
            run: run_summary,
            fuse: fuse_summary,
        };
        std::fs::write(p, serde_json::to_vec_pretty(&all)?)?;
    }
    Ok(())
}

/// The JSON written with `--json`.
#[derive(Debug, Serialize)]
struct Results {
    /// Every section's measurements (`group` and `tool` name them).
    measurements: Vec<storage::Measurement>,
    /// The container section's context, comparisons and targets (`--only run` or `all`).
    run: Option<run::RunSummary>,
    /// The FUSE section's layers, rows, targets and problems (`--only fuse` or `all`).
    fuse: Option<fuse::FuseSummary>,
}

/// `--busybox`, else the fixture of the target directory the strata binary was built in
/// (`target/release/strata` → `target/fixtures/oci/busybox`), else the one below the current
/// directory.
fn busybox_layout(given: Option<&std::path::Path>, strata: &std::path::Path) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(std::path::absolute(p)?);
    }
    let fixture = "fixtures/oci/busybox";
    let beside = strata
        .parent()
        .and_then(|profile| profile.parent())
        .map(|target| target.join(fixture));
    match beside {
        Some(p) if p.join("index.json").is_file() => Ok(p),
        _ => Ok(std::path::absolute(PathBuf::from("target").join(fixture))?),
    }
}

fn rustix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
