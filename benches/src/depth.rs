//! The chain-depth benchmark (`--only depth`): how creating a layer and creating + mounting a
//! container scale with the number of layers below them, every driver side by side in one run.
//!
//! For each driver, in one process through the driver API (no store metadata, no process
//! start-up: the cost the driver itself adds), a chain is built one layer at a time on top of a
//! base layer of [`BASE_FILES`] small files. Whenever the chain is 1, 2, 4, ... `--depth-max`
//! layers deep, it measures `--depth-runs` times each (after one untimed warm-up):
//! - **layer create**: `stage` on the chain, one 4 KiB file written into the staging area (what
//!   extracting a one-file layer writes), `commit`;
//! - **container create + mount**: `create_writable` on the chain, then every mount the driver
//!   describes performed by `strata_mount` at a fresh target.
//!
//! Alongside each sample, alternating with it, the same operation runs on the base layer alone
//! (the **control**: depth 1, but on the filesystem as it is at that point). Samples are
//! unmounted and removed, untimed, after they are measured. The report gives the median and
//! p90 per depth and driver, and two ratios of the deepest median: to the depth-1 median (what
//! the issue asks: snapshot creation O(1) in chain depth means a ratio near 1), and to the
//! control's median at the same point, which separates the cost of depth from the cost of a
//! filesystem that has aged (a btrfs holding more subvolumes, with deleted ones still being
//! cleaned, commits its transactions more slowly whatever the depth).
//!
//! Drivers and their filesystems: btrfs on a loop-mounted btrfs image (made inside the scratch
//! filesystem), overlay and vfs on the scratch loop ext4, devicemapper with its own thin pool on
//! sparse loop files (only where the kernel has device-mapper: this machine's does not, so it
//! is measured in the VM tier's guest, `--depth-drivers` choosing the columns). A driver is one
//! [`Backend`] entry (filesystem preparation, how to open it, its options, how deep it goes).
//!
//! What it deliberately does not do: go through the `strata` binary or the store (the storage
//! section measures whole commands), extract real tars, or assert anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use strata_driver_api::{Driver, DriverConfig, Key};

use crate::storage::{fresh, Measurement};

/// Files in the base layer (a small distribution's worth of small files).
pub const BASE_FILES: usize = 1000;
/// Size of every file written (base files and the one file of each new layer).
const FILE_BYTES: usize = 4096;
/// Size of the sparse btrfs image.
const BTRFS_IMAGE_BYTES: u64 = 8 << 30;

/// Settings of the depth benchmark.
#[derive(Debug, Clone)]
pub struct DepthOptions {
    /// Timed samples per depth and operation.
    pub runs: usize,
    /// The deepest chain measured (powers of two up to it, and it).
    pub max_depth: usize,
    /// The drivers to measure, by name (`btrfs`, `overlay`, `vfs`, `devicemapper`).
    pub drivers: Vec<String>,
}

/// A driver's home, on a filesystem made for it when `_keep` is set (undone when dropped).
struct Prepared {
    home: PathBuf,
    _keep: Option<Box<dyn std::any::Any>>,
}

/// Which statistic of a [`Point`] a table shows.
type Pick = fn(&Point) -> Stats;

/// One driver column of the report.
struct Backend {
    name: &'static str,
    /// Makes the filesystem the driver's home lives on, below the given directory; returns the
    /// home and what must stay alive while the driver is used.
    prepare: fn(&Path) -> Result<Prepared>,
    open: fn(&DriverConfig) -> strata_driver_api::Result<Box<dyn Driver>>,
    /// A cap below `--depth-max` for drivers too slow to go all the way (none so far).
    max_depth: Option<usize>,
    /// Driver options (`--storage-opt`).
    options: &'static [(&'static str, &'static str)],
    /// Why the driver cannot run on this machine, if it cannot.
    unavailable: fn() -> Option<&'static str>,
}

const BACKENDS: &[Backend] = &[
    Backend {
        name: "btrfs",
        prepare: |dir| {
            let fs = LoopBtrfs::mount(dir)?;
            Ok(Prepared {
                home: fs.mount_point.join("home"),
                _keep: Some(Box::new(fs)),
            })
        },
        open: |c| Ok(Box::new(strata_driver_btrfs::BtrfsDriver::open(c)?)),
        max_depth: None,
        options: &[],
        unavailable: || None,
    },
    Backend {
        name: "overlay",
        prepare: |dir| {
            Ok(Prepared {
                home: dir.join("home"),
                _keep: None,
            })
        },
        open: |c| Ok(Box::new(strata_driver_overlay::OverlayDriver::open(c)?)),
        max_depth: None,
        options: &[],
        unavailable: || None,
    },
    Backend {
        name: "vfs",
        prepare: |dir| {
            Ok(Prepared {
                home: dir.join("home"),
                _keep: None,
            })
        },
        open: |c| Ok(Box::new(strata_driver_vfs::VfsDriver::open(c)?)),
        max_depth: None,
        options: &[],
        unavailable: || None,
    },
    Backend {
        name: "devicemapper",
        prepare: |dir| {
            Ok(Prepared {
                home: dir.join("home"),
                _keep: None,
            })
        },
        // Its own pool on sparse loop files in the home, released (devices, pool, loops)
        // when the driver is dropped.
        open: |c| {
            Ok(Box::new(
                strata_driver_devicemapper::DmDriver::open(c)?.release_on_drop(),
            ))
        },
        max_depth: None,
        options: &[
            ("dm.loopdatasize", "16G"),
            ("dm.loopmetadatasize", "256M"),
            ("dm.basesize", "1G"),
        ],
        unavailable: || {
            (!Path::new("/dev/mapper/control").exists()).then_some(
                "this kernel has no device-mapper; measure it in the VM tier's guest: \
                 cargo xtask vm -- target/release/strata-bench --only depth --depth-drivers \
                 devicemapper,btrfs,overlay",
            )
        },
    },
];

/// Median and p90 of one operation at one depth, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median_ms: f64,
    pub p90_ms: f64,
}

impl Stats {
    /// Nearest-rank median and 90th percentile of `times` (not empty).
    fn of(mut times: Vec<Duration>) -> Stats {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Stats {
            median_ms: ms(times[times.len() / 2]),
            p90_ms: ms(times[(times.len() * 9).div_ceil(10).max(1) - 1]),
        }
    }
}

/// Everything measured for one driver at one depth.
#[derive(Debug, Clone)]
pub struct Point {
    pub driver: &'static str,
    /// Layers below the new layer or container.
    pub depth: usize,
    pub layer: Stats,
    /// The same on the base layer alone, measured alongside (the control: same filesystem
    /// state, depth 1).
    pub layer_on_base: Stats,
    pub create: Stats,
    pub mount: Stats,
    pub create_mount: Stats,
    /// Container create + mount on the base layer alone, measured alongside.
    pub create_mount_on_base: Stats,
}

/// Runs the benchmark for every driver in `scratch/depth`.
pub fn depth_benchmarks(scratch: &Path, opts: &DepthOptions) -> Result<Vec<Point>> {
    if opts.runs == 0 || opts.max_depth == 0 {
        bail!("--depth-runs and --depth-max must be at least 1");
    }
    for d in &opts.drivers {
        if !BACKENDS.iter().any(|b| b.name == d) {
            bail!("unknown driver {d:?} in --depth-drivers");
        }
    }
    let mut points = Vec::new();
    for b in BACKENDS
        .iter()
        .filter(|b| opts.drivers.iter().any(|d| d == b.name))
    {
        if let Some(why) = (b.unavailable)() {
            eprintln!("depth: {} left out: {why}", b.name);
            continue;
        }
        let dir = scratch.join("depth").join(b.name);
        fresh(&dir)?;
        let max = opts.max_depth.min(b.max_depth.unwrap_or(usize::MAX));
        let t = Instant::now();
        let prepared = (b.prepare)(&dir).with_context(|| format!("prepare {}", b.name))?;
        let cfg = DriverConfig {
            home: prepared.home.clone(),
            rootless: false,
            options: b
                .options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let driver = (b.open)(&cfg).with_context(|| format!("open the {} driver", b.name))?;
        points.extend(
            chain(b.name, &*driver, &dir.join("mnt"), max, opts.runs)
                .with_context(|| format!("depth benchmark of {}", b.name))?,
        );
        drop(driver);
        drop(prepared);
        fresh(&dir)?;
        eprintln!(
            "depth: {} done in {:.1} s",
            b.name,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(points)
}

/// Builds the chain of one driver and measures at each depth of interest.
fn chain(
    name: &'static str,
    driver: &dyn Driver,
    targets: &Path,
    max: usize,
    runs: usize,
) -> Result<Vec<Point>> {
    std::fs::create_dir_all(targets)?;
    let base = Key::new("base")?;
    let staging = driver.stage(&[])?;
    for i in 0..BASE_FILES {
        let d = staging.root.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("f{i}")), [b'b'; FILE_BYTES])?;
    }
    driver.commit(staging, &base)?;
    // Nearest first, as the driver API takes parents.
    let mut parents = vec![base];
    let mut out = Vec::new();
    loop {
        let depth = parents.len();
        if depth.is_power_of_two() || depth == max {
            let p = measure_at(name, driver, &parents, targets, runs)?;
            eprintln!(
                "depth: {name} at {depth}: layer create {:.2} ms, create+mount {:.2} ms (medians)",
                p.layer.median_ms, p.create_mount.median_ms
            );
            out.push(p);
        }
        if depth >= max {
            return Ok(out);
        }
        let key = Key::new(format!("l{depth}"))?;
        create_layer(driver, &parents, &key)?;
        parents.insert(0, key);
    }
}

/// Stage, write one file, commit.
fn create_layer(driver: &dyn Driver, parents: &[Key], key: &Key) -> Result<()> {
    let staging = driver.stage(parents)?;
    std::fs::write(
        staging.root.join(format!("layer-{}", key.as_str())),
        [b'l'; FILE_BYTES],
    )?;
    driver.commit(staging, key)?;
    Ok(())
}

fn measure_at(
    name: &'static str,
    driver: &dyn Driver,
    parents: &[Key],
    targets: &Path,
    runs: usize,
) -> Result<Point> {
    let depth = parents.len();
    let base = &parents[depth - 1..];
    // Every depth starts with the previous one's writes on disk.
    Command::new("sync").status().context("run sync")?;
    let mut chain = Samples::default();
    let mut control = Samples::default();
    // Sample 0 of each kind is a warm-up. Chain and control samples alternate, and swap
    // which goes first, so that neither sees the filesystem systematically fresher.
    for i in 0..=runs {
        let mut order = [(parents, &mut chain, "s"), (base, &mut control, "b")];
        if i % 2 == 1 {
            order.swap(0, 1);
        }
        for (on, samples, prefix) in order {
            let key = Key::new(format!("{prefix}{depth}-{i}"))?;
            let t = Instant::now();
            create_layer(driver, on, &key)?;
            let layer = t.elapsed();
            driver.remove(&key)?;
            let key = Key::new(format!("c{prefix}{depth}-{i}"))?;
            let (create, mount) = container(driver, on, &key, &targets.join(key.as_str()))?;
            if i > 0 {
                samples.layer.push(layer);
                samples.create.push(create);
                samples.mount.push(mount);
            }
        }
    }
    Ok(Point {
        driver: name,
        depth,
        layer: Stats::of(chain.layer),
        layer_on_base: Stats::of(control.layer),
        create_mount: Stats::of(sum(&chain.create, &chain.mount)),
        create_mount_on_base: Stats::of(sum(&control.create, &control.mount)),
        create: Stats::of(chain.create),
        mount: Stats::of(chain.mount),
    })
}

/// Timed samples of one kind at one depth.
#[derive(Debug, Default)]
struct Samples {
    layer: Vec<Duration>,
    create: Vec<Duration>,
    mount: Vec<Duration>,
}

fn sum(a: &[Duration], b: &[Duration]) -> Vec<Duration> {
    a.iter().zip(b).map(|(x, y)| *x + *y).collect()
}

/// Creates and mounts container layer `key` on `parents` at `target`; returns the two times,
/// then unmounts and removes it (untimed).
fn container(
    driver: &dyn Driver,
    parents: &[Key],
    key: &Key,
    target: &Path,
) -> Result<(Duration, Duration)> {
    std::fs::create_dir_all(target)?;
    let t = Instant::now();
    driver.create_writable(key, parents)?;
    let create = t.elapsed();
    let t = Instant::now();
    for m in driver.mounts(key, parents, true) {
        strata_mount::mount(&m, target)?;
    }
    let mount = t.elapsed();
    while strata_mount::is_mounted(target)? {
        strata_mount::unmount(target)?;
    }
    driver.remove(key)?;
    std::fs::remove_dir(target)?;
    Ok((create, mount))
}

/// A btrfs made on a sparse image and mounted with `-o loop` (the loop device goes away with
/// the unmount); unmounted on drop, lazily if something still holds it.
#[derive(Debug)]
struct LoopBtrfs {
    mount_point: PathBuf,
}

impl LoopBtrfs {
    fn mount(dir: &Path) -> Result<LoopBtrfs> {
        let image = dir.join("btrfs.img");
        let mount_point = dir.join("fs");
        std::fs::File::create(&image)?.set_len(BTRFS_IMAGE_BYTES)?;
        std::fs::create_dir_all(&mount_point)?;
        run(Command::new("mkfs.btrfs").arg("-q").arg(&image))?;
        run(Command::new("mount")
            .args(["-t", "btrfs", "-o", "loop"])
            .arg(&image)
            .arg(&mount_point))?;
        Ok(LoopBtrfs { mount_point })
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        if run(Command::new("umount").arg(&self.mount_point)).is_err() {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The points as rows of the JSON results (`tool` is `<driver>, depth <n>`).
pub fn measurements(points: &[Point]) -> Vec<Measurement> {
    let mut out = Vec::new();
    for p in points {
        for (group, s) in [
            ("depth: layer create", p.layer),
            ("depth: container create", p.create),
            ("depth: container mount", p.mount),
            ("depth: container create+mount", p.create_mount),
            ("depth: layer create on the base (control)", p.layer_on_base),
            (
                "depth: container create+mount on the base (control)",
                p.create_mount_on_base,
            ),
        ] {
            out.push(Measurement {
                group,
                tool: format!("{}, depth {}", p.driver, p.depth),
                median_ms: s.median_ms,
                p90_ms: Some(s.p90_ms),
                mb_per_s: None,
                files_per_s: None,
                peak_rss_mib: None,
            });
        }
    }
    out
}

/// Prints one Markdown table per operation: a row per depth, a column per driver (and its
/// control on the base layer, where measured), and the ratios of the deepest median to the
/// depth-1 median and to the control's median at the same point.
pub fn print(points: &[Point], opts: &DepthOptions) {
    // The measured drivers, in the table's order.
    let drivers: Vec<&str> = BACKENDS
        .iter()
        .map(|b| b.name)
        .filter(|n| points.iter().any(|p| p.driver == *n))
        .collect();
    let mut depths: Vec<usize> = points.iter().map(|p| p.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let tables: [(&str, Pick, Option<Pick>); 4] = [
        (
            "Layer create (stage + one 4 KiB file + commit)",
            |p| p.layer,
            Some(|p| p.layer_on_base),
        ),
        (
            "Container create + mount",
            |p| p.create_mount,
            Some(|p| p.create_mount_on_base),
        ),
        ("Container create (create_writable)", |p| p.create, None),
        ("Container mount", |p| p.mount, None),
    ];
    let cell = |s: Stats| format!("{:.2} / {:.2}", s.median_ms, s.p90_ms);
    for (title, stat, control) in tables {
        println!(
            "\n## {title} vs chain depth: median / p90 ms ({} runs per depth, in process, \
             base layer of {BASE_FILES} files)\n",
            opts.runs
        );
        let mut head = vec!["depth".to_owned()];
        for d in &drivers {
            head.push((*d).to_owned());
            if control.is_some() {
                head.push(format!("{d} on base"));
            }
        }
        println!("| {} |", head.join(" | "));
        println!("|---:|{}", "---:|".repeat(head.len() - 1));
        let at = |d: &str, depth: usize| points.iter().find(|p| p.driver == d && p.depth == depth);
        for &depth in &depths {
            let mut row = vec![depth.to_string()];
            for d in &drivers {
                let p = at(d, depth);
                row.push(p.map(stat).map(cell).unwrap_or_default());
                if let Some(c) = control {
                    row.push(p.map(c).map(cell).unwrap_or_default());
                }
            }
            println!("| {} |", row.join(" | "));
        }
        let mut from_one = vec!["deepest / depth 1".to_owned()];
        let mut from_base = vec!["deepest / on base, same time".to_owned()];
        for d in &drivers {
            let deepest = points
                .iter()
                .filter(|p| p.driver == *d)
                .max_by_key(|p| p.depth)
                .filter(|p| p.depth > 1);
            let ratio = |num: Stats, den: Stats| format!("{:.2}x", num.median_ms / den.median_ms);
            from_one.push(match (deepest, at(d, 1)) {
                (Some(p), Some(one)) => format!("{} (at {})", ratio(stat(p), stat(one)), p.depth),
                _ => "n/a".into(),
            });
            if let Some(c) = control {
                from_base.push(deepest.map_or("n/a".into(), |p| ratio(stat(p), c(p))));
                from_one.push(String::new());
                from_base.push(String::new());
            }
        }
        println!("| {} |", from_one.join(" | "));
        if control.is_some() {
            println!("| {} |", from_base.join(" | "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_are_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let s = Stats::of(ms(&[9, 1, 5, 3, 7, 2, 4, 6, 8, 10]));
        assert_eq!((s.median_ms, s.p90_ms), (6.0, 9.0));
        let one = Stats::of(ms(&[4]));
        assert_eq!((one.median_ms, one.p90_ms), (4.0, 4.0));
    }
}
