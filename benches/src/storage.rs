//! The storage measurements (layer apply, container create + mount), each a whole command run
//! into a fresh store, and the scratch filesystem every section of the harness runs on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::layer::Layer;

/// A loop-mounted ext4 image, unmounted and detached on drop.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
    image: PathBuf,
}

impl Scratch {
    pub fn create(workdir: &Path, bytes: u64) -> Result<Scratch> {
        std::fs::create_dir_all(workdir)?;
        let image = workdir.join("scratch.ext4");
        let path = workdir.join("mnt");
        if is_mountpoint(&path) {
            run(Command::new("umount").arg(&path))?;
        }
        let _ = std::fs::remove_file(&image);
        std::fs::File::create(&image)?.set_len(bytes)?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "nodiscard"])
            .arg(&image))?;
        std::fs::create_dir_all(&path)?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&path))?;
        Ok(Scratch { path, image })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Anything still mounted below the scratch dir first (stores' container mounts).
        let _ = Command::new("umount").arg("-R").arg(&self.path).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

fn is_mountpoint(p: &Path) -> bool {
    Command::new("mountpoint")
        .arg("-q")
        .arg(p)
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    run(cmd)?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Unmounts everything mounted at or below `dir`, deepest first (containers-storage leaves its
/// overlay home and container mounts behind).
pub fn unmount_below(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

pub fn fresh(dir: &Path) -> Result<()> {
    unmount_below(dir);
    if dir.exists() {
        run(Command::new("rm").arg("-rf").arg(dir))?;
    }
    std::fs::create_dir_all(dir)?;
    // Start every measurement from the same state: dirty pages of the previous run written.
    run(&mut Command::new("sync"))?;
    Ok(())
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub group: &'static str,
    pub tool: String,
    pub median_ms: f64,
    /// 90th percentile (the `--only run` latencies).
    pub p90_ms: Option<f64>,
    pub mb_per_s: Option<f64>,
    pub files_per_s: Option<f64>,
    /// Peak resident memory of the command (pull benchmarks).
    pub peak_rss_mib: Option<f64>,
}

fn strata(bin: &Path, store: &Path, driver: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root")
        .arg(store.join("root"))
        .arg("--runroot")
        .arg(store.join("run"))
        .arg("--driver")
        .arg(driver);
    c
}

fn cstorage(store: &Path, driver: &str) -> Command {
    let mut c = Command::new("containers-storage");
    c.arg("--graph")
        .arg(store.join("root"))
        .arg("--run")
        .arg(store.join("run"))
        .arg("--storage-driver")
        .arg(driver);
    c
}

pub fn apply_benchmarks(
    scratch: &Path,
    bin: &Path,
    layer: &Layer,
    runs: usize,
) -> Result<Vec<Measurement>> {
    let dest = scratch.join("apply");
    type Make<'a> = Box<dyn Fn(&Path) -> Command + 'a>;
    let cases: Vec<(String, Make<'_>)> = vec![
        (
            "GNU tar -x (uncompressed)".into(),
            Box::new(|d: &Path| {
                let mut c = Command::new("tar");
                c.arg("-xf").arg(&layer.tar).arg("-C").arg(d);
                c
            }),
        ),
        (
            "GNU tar -xz (gzip)".into(),
            Box::new(|d: &Path| {
                let mut c = Command::new("tar");
                c.arg("-xzf").arg(&layer.gz).arg("-C").arg(d);
                c
            }),
        ),
        (
            "containers-storage import-layer, overlay (gzip)".into(),
            Box::new(|d: &Path| {
                let mut c = cstorage(d, "overlay");
                c.arg("import-layer").arg("--file").arg(&layer.gz);
                c
            }),
        ),
        (
            "containers-storage import-layer, vfs (gzip)".into(),
            Box::new(|d: &Path| {
                let mut c = cstorage(d, "vfs");
                c.arg("import-layer").arg("--file").arg(&layer.gz);
                c
            }),
        ),
        (
            "strata storage load, overlay (gzip)".into(),
            Box::new(|d: &Path| {
                let mut c = strata(bin, d, "overlay");
                c.arg("storage")
                    .arg("load")
                    .arg(format!("oci:{}:latest", layer.layout.display()));
                c
            }),
        ),
        (
            "strata storage load, vfs (gzip)".into(),
            Box::new(|d: &Path| {
                let mut c = strata(bin, d, "vfs");
                c.arg("storage")
                    .arg("load")
                    .arg(format!("oci:{}:latest", layer.layout.display()));
                c
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, make) in &cases {
        let mut times = Vec::new();
        for r in 0..runs {
            // A new directory per run: nothing of an earlier run (containers-storage keeps its
            // home mounted) needs removing first. The scratch filesystem is dropped at the end.
            let d = dest.join(format!("{}-{r}", out.len()));
            fresh(&d)?;
            times.push(timed(&mut make(&d)).with_context(|| format!("benchmark {name}"))?);
        }
        let m = median(times);
        eprintln!("apply: {name}: {:.0} ms", m.as_secs_f64() * 1e3);
        out.push(Measurement {
            group: "apply",
            tool: name.clone(),
            median_ms: m.as_secs_f64() * 1e3,
            p90_ms: None,
            mb_per_s: Some(layer.tar_size as f64 / 1e6 / m.as_secs_f64()),
            files_per_s: Some(layer.entries as f64 / m.as_secs_f64()),
            peak_rss_mib: None,
        });
    }
    unmount_below(&dest);
    Ok(out)
}

pub fn create_mount_benchmarks(
    scratch: &Path,
    bin: &Path,
    layer: &Layer,
    runs: usize,
) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    for driver in ["overlay", "vfs"] {
        // Strata.
        let store = scratch.join(format!("cm-strata-{driver}"));
        fresh(&store)?;
        run(strata(bin, &store, driver)
            .args(["storage", "load", "--name", "bench"])
            .arg(format!("oci:{}:latest", layer.layout.display())))?;
        let (mut create, mut mount, mut both) = (Vec::new(), Vec::new(), Vec::new());
        let n = if driver == "vfs" { runs.min(5) } else { runs };
        for i in 0..n {
            let name = format!("c{i}");
            let c = timed(
                strata(bin, &store, driver).args(["storage", "create", "bench", "--name", &name]),
            )?;
            let m = timed(strata(bin, &store, driver).args(["storage", "mount", &name]))?;
            create.push(c);
            mount.push(m);
            both.push(c + m);
        }
        for i in 0..n {
            run(strata(bin, &store, driver).args(["storage", "rm", &format!("c{i}")]))?;
        }
        push_latency(&mut out, &format!("strata, {driver}"), create, mount, both);
        in_process(&mut out, &store, driver, n)?;
        fresh(&store)?;
        // containers-storage.
        let store = scratch.join(format!("cm-cs-{driver}"));
        fresh(&store)?;
        let layer_id = run(cstorage(&store, driver)
            .arg("import-layer")
            .arg("--file")
            .arg(&layer.gz))?;
        let layer_id = layer_id
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned();
        run(cstorage(&store, driver).args(["create-image", "--name", "bench", &layer_id]))?;
        let (mut create, mut mount, mut both) = (Vec::new(), Vec::new(), Vec::new());
        let mut ids = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            let id = run(cstorage(&store, driver).args([
                "create-container",
                "--name",
                &format!("c{i}"),
                "bench",
            ]))?;
            let c = t.elapsed();
            let id = id.split_whitespace().last().unwrap_or_default().to_owned();
            let m = timed(cstorage(&store, driver).args(["mount", &id]))?;
            create.push(c);
            mount.push(m);
            both.push(c + m);
            ids.push(id);
        }
        for id in &ids {
            let _ = run(cstorage(&store, driver).args(["unmount", id]));
        }
        push_latency(
            &mut out,
            &format!("containers-storage, {driver}"),
            create,
            mount,
            both,
        );
        let _ = run(cstorage(&store, driver).arg("shutdown"));
        fresh(&store)?;
    }
    Ok(out)
}

/// The same create + mount through the store library, in one process that opened the store once:
/// what a front-end plugin (loaded into `strata`) or the CRI daemon pays per container. Runs on
/// the store the CLI measurement just used (its image is loaded, its containers removed).
fn in_process(out: &mut Vec<Measurement>, store: &Path, driver: &str, n: usize) -> Result<()> {
    use strata_graph_store::{CreateOptions, Store, StoreOptions};
    let opts = StoreOptions {
        root: store.join("root"),
        runroot: store.join("run"),
        driver: driver.to_owned(),
        driver_options: Vec::new(),
        max_layer_size: strata_graph_store::DEFAULT_MAX_LAYER_SIZE,
    };
    let s = Store::open(opts, &make_driver)?;
    let (mut create, mut mount, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        let c = s.create_container(
            "bench",
            CreateOptions {
                name: Some(format!("lib{i}")),
                ..Default::default()
            },
        )?;
        let c_t = t.elapsed();
        let t = Instant::now();
        s.mount(c.id.as_str())?;
        let m_t = t.elapsed();
        create.push(c_t);
        mount.push(m_t);
        both.push(c_t + m_t);
    }
    for i in 0..n {
        s.remove_container(&format!("lib{i}"))?;
    }
    push_latency(
        out,
        &format!("strata library, {driver}"),
        create,
        mount,
        both,
    );
    Ok(())
}

fn make_driver(
    name: &str,
    cfg: strata_driver_api::DriverConfig,
) -> strata_driver_api::Result<Box<dyn strata_driver_api::Driver>> {
    Ok(match name {
        "overlay" => Box::new(strata_driver_overlay::OverlayDriver::open(&cfg)?),
        _ => Box::new(strata_driver_vfs::VfsDriver::open(&cfg)?),
    })
}

fn push_latency(
    out: &mut Vec<Measurement>,
    tool: &str,
    create: Vec<Duration>,
    mount: Vec<Duration>,
    both: Vec<Duration>,
) {
    for (group, v) in [("create", create), ("mount", mount), ("create+mount", both)] {
        let m = median(v);
        eprintln!("{group}: {tool}: {:.1} ms", m.as_secs_f64() * 1e3);
        out.push(Measurement {
            group,
            tool: tool.to_owned(),
            median_ms: m.as_secs_f64() * 1e3,
            p90_ms: None,
            mb_per_s: None,
            files_per_s: None,
            peak_rss_mib: None,
        });
    }
}
