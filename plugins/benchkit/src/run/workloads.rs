//! The workloads: what each side does for one sample. Whole commands are timed as users run
//! them (process start included); what a sample needs first (a fresh store, a new container)
//! is done untimed inside the sample. The in-container I/O runs in this process on the
//! container's mounted root filesystem, through the driver's filesystem as a container's
//! processes would.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::env::{last_line, output, timed, which, Env, Store};
use super::measure::{measure, Ctx, Side};
use super::{Outcome, RunError, Workload};
use crate::synth::{self, Spec};

/// The name images get in every store.
pub(super) const NAME: &str = "bench";
/// The same, as containers/storage tools spell it (they qualify short names).
pub(super) const CS_NAME: &str = "localhost/bench:latest";

/// Runs one workload into `out`.
pub(crate) fn run(
    w: Workload,
    env: &Env,
    ctx: &Ctx<'_>,
    out: &mut Outcome,
) -> Result<(), RunError> {
    let cold = || env.drop_caches();
    match w {
        Workload::Empty => {
            let sides = vec![
                Side::new("empty", "harness", None, || {
                    let t = Instant::now();
                    Ok(t.elapsed().as_secs_f64())
                })
                .param("what", "nothing")
                .warm(),
                Side::new("empty", "harness", None, || {
                    timed(&mut Command::new("true"))
                })
                .param("what", "start /bin/true")
                .warm(),
            ];
            measure(ctx, &cold, "empty (the harness's overhead)", sides, out)
        }
        Workload::Pull => pull(env, ctx, out),
        Workload::Apply => apply(env, ctx, out),
        Workload::CreateMount => create_mount(env, ctx, out),
        Workload::Start => start(env, ctx, out),
        Workload::Io => io(env, ctx, out),
        Workload::Depth => depth(env, ctx, out),
        Workload::Concurrency => concurrency(env, ctx, out),
        Workload::Build => super::build::build(env, ctx, out),
        Workload::Cri => super::cri::cri(env, ctx, out),
        Workload::Space => space(env, ctx, out),
        Workload::Rmi => rmi(env, ctx, out),
        Workload::Gc => gc(env, ctx, out),
    }
}

/// The reference tools among `candidates` that can work on `driver` here (containers/storage
/// has no thin-pool setup of its own here, and its fuse-overlay is fuse-overlayfs).
fn references<'e>(env: &'e Env, driver: &str, candidates: &[&'e str]) -> Vec<&'e str> {
    if driver == "devicemapper" {
        return Vec::new();
    }
    if driver == "fuse-overlay" && !Path::new("/usr/bin/fuse-overlayfs").is_file() {
        return Vec::new();
    }
    candidates
        .iter()
        .copied()
        .filter(|t| env.tool(t).is_some())
        .collect()
}

/// A strata store on `driver` with the image loaded as `bench`.
fn strata_loaded(env: &Env, driver: &str, source: &str) -> Result<Store, RunError> {
    let s = env.store("strata", driver)?;
    output(s.strata().args(["storage", "load", "--name", NAME, source]))?;
    Ok(s)
}

/// A containers/storage store on `driver` with the image copied in by skopeo as `bench`.
fn cs_loaded(env: &Env, tool: &str, driver: &str, source: &str) -> Result<Store, RunError> {
    if which("skopeo").is_none() {
        return Err(RunError::Usage(format!(
            "{tool} on {driver}: skopeo is needed to load the image into its store"
        )));
    }
    let s = env.store(tool, driver)?;
    output(
        s.skopeo()
            .args(["copy", "--quiet", source, &s.cs_reference(CS_NAME)]),
    )?;
    Ok(s)
}

/// Prepared stores, or the sides that could not be prepared recorded as skipped.
fn prepared(out: &mut Outcome, what: String, store: Result<Store, RunError>) -> Option<Store> {
    match store {
        Ok(s) => Some(s),
        Err(e) => {
            out.skip(what, format!("setup failed: {e}"));
            None
        }
    }
}

/// A fresh store per sample: the previous one removed, the new one ready, all untimed.
struct Fresh<'e> {
    env: &'e Env,
    tool: &'static str,
    driver: String,
    current: Option<Store>,
}

impl<'e> Fresh<'e> {
    fn new(env: &'e Env, tool: &'static str, driver: &str) -> Fresh<'e> {
        Fresh {
            env,
            tool,
            driver: driver.to_owned(),
            current: None,
        }
    }

    fn next(&mut self) -> Result<&Store, RunError> {
        if let Some(s) = self.current.take() {
            s.remove();
        }
        rustix::fs::sync();
        Ok(self
            .current
            .insert(self.env.store(self.tool, &self.driver)?))
    }
}

impl Drop for Fresh<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.current.take() {
            s.remove();
        }
    }
}

fn pull(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    if env.registry_address.is_none() {
        return Ok(());
    }
    let src = format!("docker://{}", env.pull_reference());
    let plain = env.pull_reference();
    let mut sides = Vec::new();
    for d in &env.drivers {
        let mut fresh = Fresh::new(env, "strata", d);
        let src2 = src.clone();
        sides.push(Side::new("pull", "strata", Some(d.as_str()), move || {
            let s = fresh.next()?;
            timed(s.strata().args([
                "copy",
                "--src-tls-verify=false",
                &src2,
                &format!("store:{NAME}"),
            ]))
        }));
        for t in references(env, d, &["skopeo", "podman"]) {
            let mut fresh = Fresh::new(env, if t == "skopeo" { "skopeo" } else { "podman" }, d);
            let (src, plain) = (src.clone(), plain.clone());
            sides.push(Side::new("pull", t, Some(d.as_str()), move || {
                let s = fresh.next()?;
                if t == "skopeo" {
                    timed(s.skopeo().args([
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        &src,
                        &s.cs_reference(CS_NAME),
                    ]))
                } else {
                    timed(
                        s.podman()
                            .args(["pull", "--quiet", "--tls-verify=false", &plain]),
                    )
                }
            }));
        }
    }
    measure(ctx, &|| env.drop_caches(), "pull", sides, out)
}

fn apply(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let source = env.image.source.clone();
    let bytes = env.image.tar_bytes;
    let mut sides = Vec::new();
    for d in &env.drivers {
        let mut fresh = Fresh::new(env, "strata", d);
        let src = source.clone();
        sides.push(
            Side::new("apply", "strata", Some(d.as_str()), move || {
                let s = fresh.next()?;
                timed(s.strata().args(["storage", "load", "--name", NAME, &src]))
            })
            .rate("apply-rate", bytes),
        );
        for t in references(env, d, &["skopeo"]) {
            let mut fresh = Fresh::new(env, "skopeo", d);
            let src = source.clone();
            sides.push(
                Side::new("apply", t, Some(d.as_str()), move || {
                    let s = fresh.next()?;
                    timed(
                        s.skopeo()
                            .args(["copy", "--quiet", &src, &s.cs_reference(CS_NAME)]),
                    )
                })
                .rate("apply-rate", bytes),
            );
        }
    }
    measure(ctx, &|| env.drop_caches(), "apply", sides, out)
}

/// A container a sample made, to remove after it (untimed), so that every sample finds the
/// store as the first did and vfs copies do not pile up until the disk is full.
struct Made {
    id: String,
    path: PathBuf,
}

/// Creates a container of `bench` and mounts it with `tool` on `s`.
fn create_and_mount(tool: &str, s: &Store) -> Result<Made, RunError> {
    let (id, path) = match tool {
        "strata" => {
            let id = last_line(&output(s.strata().args(["storage", "create", NAME]))?);
            let path = output(s.strata().args(["storage", "mount", &id]))?;
            (id, path)
        }
        "buildah" => {
            let id = last_line(&output(s.buildah().args([
                "from",
                "--pull=never",
                "--quiet",
                CS_NAME,
            ]))?);
            let path = output(s.buildah().args(["mount", &id]))?;
            (id, path)
        }
        _ => {
            let id = last_line(&output(s.cs().args(["create-container", CS_NAME]))?);
            let id = id.split_whitespace().last().unwrap_or_default().to_owned();
            let path = output(s.cs().args(["mount", &id]))?;
            (id, path)
        }
    };
    Ok(Made {
        id,
        path: PathBuf::from(last_line(&path)),
    })
}

/// Removes what [`create_and_mount`] made.
fn remove(tool: &str, s: &Store, made: &Made) -> Result<(), RunError> {
    match tool {
        "strata" => output(s.strata().args(["storage", "rm", &made.id])).map(drop),
        "buildah" => output(s.buildah().args(["rm", &made.id])).map(drop),
        _ => {
            output(s.cs().args(["unmount", &made.id]))?;
            output(s.cs().args(["delete-container", &made.id])).map(drop)
        }
    }
}

/// Times a create + mount, then removes the container.
fn timed_create_mount(tool: &str, s: &Store) -> Result<f64, RunError> {
    let t0 = Instant::now();
    let made = create_and_mount(tool, s)?;
    let secs = t0.elapsed().as_secs_f64();
    remove(tool, s, &made)?;
    Ok(secs)
}

/// Stores of the image for strata and `refs` on every driver (those that failed skipped).
pub(super) fn loaded_stores<'e>(
    env: &'e Env,
    out: &mut Outcome,
    workload: &str,
    refs: &[&'e str],
    source: &str,
) -> Vec<(&'e str, String, Store)> {
    let mut stores = Vec::new();
    for d in &env.drivers {
        let tools = std::iter::once("strata").chain(references(env, d, refs));
        for t in tools {
            let s = if t == "strata" {
                strata_loaded(env, d, source)
            } else {
                cs_loaded(env, t, d, source)
            };
            if let Some(s) = prepared(out, format!("{workload} [{t} on {d}]"), s) {
                stores.push((t, d.clone(), s));
            }
        }
    }
    stores
}

fn create_mount(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let stores = loaded_stores(
        env,
        out,
        "create+mount",
        &["containers-storage", "buildah"],
        &env.image.source,
    );
    let sides = stores
        .iter()
        .map(|(t, d, s)| {
            Side::new("create+mount", t, Some(d.as_str()), move || {
                timed_create_mount(t, s)
            })
        })
        .collect();
    let r = measure(ctx, &|| env.drop_caches(), "create+mount", sides, out);
    remove_all(stores);
    r
}

pub(super) fn remove_all(stores: Vec<(&str, String, Store)>) {
    for (_, _, s) in stores {
        s.remove();
    }
}

fn run_true(tool: &str, s: &Store) -> Result<f64, RunError> {
    if tool == "strata" {
        timed(
            s.strata()
                .args(["run", "--rm", "--network", "none", NAME, "true"]),
        )
    } else {
        timed(
            s.podman()
                .args(["run", "--rm", "--network", "none", CS_NAME, "true"]),
        )
    }
}

fn start(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    if !env.image.runnable {
        return Ok(());
    }
    let stores = loaded_stores(env, out, "start", &["podman"], &env.image.source);
    let sides = stores
        .iter()
        .map(|(t, d, s)| Side::new("start", t, Some(d.as_str()), move || run_true(t, s)))
        .collect();
    let r = measure(
        ctx,
        &|| env.drop_caches(),
        "start (run --rm true)",
        sides,
        out,
    );
    remove_all(stores);
    r
}

/// I/O through each driver on a mounted container. The reference is the other FUSE overlay,
/// fuse-overlayfs (as containers/storage mounts it): the kernel overlay is the same code under
/// strata and containers/storage.
fn io(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let mut stores: Vec<(&str, String, Store, PathBuf)> = Vec::new();
    for d in &env.drivers {
        let mut tools = vec!["strata"];
        if d == "fuse-overlay" && env.tool("fuse-overlayfs").is_some() {
            tools.push("fuse-overlayfs");
        }
        for t in tools {
            let what = format!("io [{t} on {d}]");
            let s = if t == "strata" {
                strata_loaded(env, d, &env.image.source)
            } else {
                cs_loaded(env, t, d, &env.image.source)
            };
            let Some(s) = prepared(out, what.clone(), s) else {
                continue;
            };
            match create_and_mount(t, &s) {
                Ok(m) => stores.push((t, d.clone(), s, m.path)),
                Err(e) => {
                    out.skip(what, format!("setup failed: {e}"));
                    s.remove();
                }
            }
        }
    }
    let bytes = env.profile.io_bytes;
    let large = env.profile.large_file;
    let small = env.profile.small_files;
    let k = env.profile.copy_up_files;
    let cold = || env.drop_caches();
    let r = (|| -> Result<(), RunError> {
        // Sequential write, then read of the lower large file.
        let sides = stores
            .iter()
            .map(|(t, d, _, m)| {
                Side::new("io-seq-write", t, Some(d.as_str()), move || {
                    seq_write(m, bytes)
                })
                .rate("io-seq-write-rate", bytes)
            })
            .collect();
        measure(ctx, &cold, "io: sequential write", sides, out)?;
        let sides = stores
            .iter()
            .map(|(t, d, _, m)| {
                Side::new("io-seq-read", t, Some(d.as_str()), move || {
                    read_file(&m.join("bench/large"))
                })
                .rate("io-seq-read-rate", large)
            })
            .collect();
        measure(ctx, &cold, "io: sequential read", sides, out)?;
        let sides = stores
            .iter()
            .map(|(t, d, _, m)| {
                Side::new("io-small-files", t, Some(d.as_str()), move || {
                    small_files(m, small)
                })
                .param("files", small)
            })
            .collect();
        measure(ctx, &cold, "io: small files", sides, out)?;
        let sides = stores
            .iter()
            .map(|(t, d, _, m)| Side::new("io-find", t, Some(d.as_str()), move || walk(m, false)))
            .collect();
        measure(ctx, &cold, "io: find", sides, out)?;
        let sides = stores
            .iter()
            .map(|(t, d, _, m)| Side::new("io-tar", t, Some(d.as_str()), move || walk(m, true)))
            .collect();
        measure(ctx, &cold, "io: tar (read every file)", sides, out)?;
        // Copy-ups need a container whose files are still all below: a new one per sample.
        for op in ["copy-up-large", "copy-up-small", "copy-up-meta"] {
            let sides = stores
                .iter()
                .map(|(t, d, s, m)| {
                    let files = lower_files(m, k);
                    let side = Side::new(op, t, Some(d.as_str()), move || {
                        let fresh = create_and_mount(t, s)?;
                        let secs = copy_up(op, &fresh.path, &files);
                        remove(t, s, &fresh)?;
                        secs
                    });
                    if op == "copy-up-large" {
                        side
                    } else {
                        side.param("files", k)
                    }
                })
                .collect();
            measure(ctx, &cold, op, sides, out)?;
        }
        Ok(())
    })();
    for (_, _, s, _) in stores {
        s.remove();
    }
    r
}

fn io_err(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> RunError {
    RunError::io(format!("{what} {}", p.display()))
}

/// Writes `bytes` to a new file and syncs it; the seconds taken.
fn seq_write(m: &Path, bytes: u64) -> Result<f64, RunError> {
    let p = m.join("bench-seq-write");
    let _ = std::fs::remove_file(&p);
    let mut buf = vec![0u8; 1 << 20];
    crate::rng::SplitMix64::derive(7, 7).fill(&mut buf);
    let t = Instant::now();
    let mut f = std::fs::File::create(&p).map_err(io_err("create", &p))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).map_err(io_err("write", &p))?;
        left -= n as u64;
    }
    f.sync_all().map_err(io_err("sync", &p))?;
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
    Ok(secs)
}

/// Reads a file to its end; the seconds taken.
fn read_file(p: &Path) -> Result<f64, RunError> {
    let t = Instant::now();
    let mut f = std::fs::File::open(p).map_err(io_err("open", p))?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).map_err(io_err("read", p))? > 0 {}
    Ok(t.elapsed().as_secs_f64())
}

/// Creates `n` 4 KiB files, stats each, unlinks each; the seconds taken.
fn small_files(m: &Path, n: usize) -> Result<f64, RunError> {
    let dir = m.join("bench-small");
    let _ = std::fs::remove_dir_all(&dir);
    let data = [0x5au8; 4096];
    let t = Instant::now();
    std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    for i in 0..n {
        let p = dir.join(format!("f{i}"));
        std::fs::write(&p, data).map_err(io_err("write", &p))?;
    }
    for i in 0..n {
        let p = dir.join(format!("f{i}"));
        std::fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
    }
    for i in 0..n {
        let p = dir.join(format!("f{i}"));
        std::fs::remove_file(&p).map_err(io_err("unlink", &p))?;
    }
    std::fs::remove_dir(&dir).map_err(io_err("remove", &dir))?;
    Ok(t.elapsed().as_secs_f64())
}

/// Walks the tree as `find` does (lstat of every entry), and with `read` reads every regular
/// file as `tar c` does; the seconds taken.
fn walk(m: &Path, read: bool) -> Result<f64, RunError> {
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    let mut stack = vec![m.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let e = e.map_err(io_err("read", &dir))?;
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
            if md.is_dir() {
                stack.push(p);
            } else if read && md.is_file() {
                let mut f = std::fs::File::open(&p).map_err(io_err("open", &p))?;
                while f.read(&mut buf).map_err(io_err("read", &p))? > 0 {}
            }
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Up to `k` regular files of the image's lower layers (the synthetic tree's `dNNN/` files, or
/// any regular files of another image), relative to the root, in a fixed order.
fn lower_files(m: &Path, k: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![m.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() && !p.starts_with(m.join("bench")) {
                if let Ok(rel) = p.strip_prefix(m) {
                    found.push(rel.to_path_buf());
                }
            }
        }
    }
    found.sort();
    found.truncate(k);
    found
}

/// The copy-ups on a fresh container: a byte appended to the large file, a byte appended to
/// each small file, or a chmod of each (metadata only); the seconds taken.
fn copy_up(op: &str, m: &Path, files: &[PathBuf]) -> Result<f64, RunError> {
    let t = Instant::now();
    match op {
        "copy-up-large" => {
            let p = m.join("bench/large");
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .map_err(io_err("open", &p))?;
            f.write_all(b"x").map_err(io_err("write", &p))?;
        }
        "copy-up-small" => {
            for rel in files {
                let p = m.join(rel);
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&p)
                    .map_err(io_err("open", &p))?;
                f.write_all(b"x").map_err(io_err("write", &p))?;
            }
        }
        _ => {
            for rel in files {
                let p = m.join(rel);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_err("chmod", &p))?;
            }
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Powers of two from 1 to `max`.
fn powers(max: usize) -> Vec<usize> {
    std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|n| *n <= max.max(1))
        .collect()
}

/// Create + mount latency against the depth of the layer chain: images of 1 to
/// `max_depth` layers of the same small shape.
fn depth(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let seed = env.image.spec.as_ref().map_or(1, |s| s.seed);
    for depth in powers(env.profile.max_depth) {
        let spec: Spec = Spec {
            layers: depth as u32,
            files: 20,
            dirs: 4,
            min_size: 1 << 10,
            max_size: 4 << 10,
            dup: 0.0,
            whiteouts: 0.0,
            seed,
        };
        let layout = env.work().join("images").join(format!("depth-{depth}"));
        synth::generate(&spec, &layout, "latest").map_err(|e| RunError::Command {
            command: format!("generate the depth-{depth} image"),
            why: e.to_string(),
        })?;
        let source = format!("oci:{}:latest", layout.display());
        let stores = loaded_stores(env, out, "depth", &["containers-storage"], &source);
        let sides = stores
            .iter()
            .map(|(t, d, s)| {
                Side::new("depth", t, Some(d.as_str()), move || {
                    timed_create_mount(t, s)
                })
                .param("depth", depth)
            })
            .collect();
        let r = measure(
            ctx,
            &|| env.drop_caches(),
            &format!("depth {depth}"),
            sides,
            out,
        );
        remove_all(stores);
        let _ = std::fs::remove_dir_all(&layout);
        r?;
    }
    Ok(())
}

/// `n` creates + mounts (and `n` starts) at once; the wall time of the batch.
fn concurrency(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let stores = loaded_stores(
        env,
        out,
        "concurrency",
        &["containers-storage", "podman"],
        &env.image.source,
    );
    let r = (|| -> Result<(), RunError> {
        for n in powers(env.profile.max_concurrency) {
            let mut sides = Vec::new();
            for (t, d, s) in &stores {
                if *t != "podman" {
                    sides.push(
                        Side::new("concurrency", t, Some(d.as_str()), move || {
                            let made = std::sync::Mutex::new(Vec::new());
                            let secs = batch(n, || {
                                let m = create_and_mount(t, s)?;
                                made.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                                Ok(())
                            });
                            for m in made.into_inner().unwrap_or_else(|e| e.into_inner()) {
                                remove(t, s, &m)?;
                            }
                            secs
                        })
                        .param("n", n)
                        .param("op", "create+mount"),
                    );
                }
                if env.image.runnable && matches!(*t, "strata" | "podman") {
                    sides.push(
                        Side::new("concurrency", t, Some(d.as_str()), move || {
                            batch(n, || run_true(t, s).map(drop))
                        })
                        .param("n", n)
                        .param("op", "start"),
                    );
                }
            }
            measure(
                ctx,
                &|| env.drop_caches(),
                &format!("concurrency {n}"),
                sides,
                out,
            )?;
        }
        Ok(())
    })();
    remove_all(stores);
    r
}

/// Runs `f` on `n` threads at once; the seconds until the last ended.
fn batch(n: usize, f: impl Fn() -> Result<(), RunError> + Sync) -> Result<f64, RunError> {
    let t = Instant::now();
    let results: Vec<Result<(), RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n).map(|_| scope.spawn(&f)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(RunError::Usage("a concurrent operation panicked".into()))
                })
            })
            .collect()
    });
    let secs = t.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(secs)
}

/// Bytes the store at `dir` takes on disk. On btrfs, `btrfs filesystem du` (extents shared
/// by snapshots and reflinks counted once: a file walk would count a layer's snapshot as a
/// full copy); elsewhere a walk adding each inode's blocks once. Container root filesystems
/// mounted inside (overlay, FUSE) are not walked: their files are the layers'. Bind mounts
/// (containers/storage mounts its own home) are walked; their inodes count once.
fn disk_usage(dir: &Path) -> Result<u64, RunError> {
    let on_btrfs = crate::results::Filesystem::of(dir).is_some_and(|f| f.fstype == "btrfs");
    if on_btrfs {
        return btrfs_usage(dir);
    }
    let views: HashSet<PathBuf> = crate::results::mountinfo()
        .into_iter()
        .filter(|m| m.fstype == "overlay" || m.fstype.starts_with("fuse"))
        .map(|m| PathBuf::from(m.point))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = std::fs::symlink_metadata(&d).map_err(io_err("stat", &d))?;
        if seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        for e in std::fs::read_dir(&d).map_err(io_err("read", &d))? {
            let p = e.map_err(io_err("read", &d))?.path();
            if views.contains(&p) {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
            if md.is_dir() {
                stack.push(p);
            } else if seen.insert((md.dev(), md.ino())) {
                total += md.blocks() * 512;
            }
        }
    }
    Ok(total)
}

/// `btrfs filesystem du -s --raw DIR`: its exclusive bytes plus the bytes shared within the
/// set, which is what the directory takes on disk.
fn btrfs_usage(dir: &Path) -> Result<u64, RunError> {
    let out = output(
        Command::new("btrfs")
            .args(["filesystem", "du", "-s", "--raw"])
            .arg(dir),
    )?;
    // "     Total   Exclusive  Set shared  Filename" then the numbers.
    let numbers: Vec<u64> = out
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    match numbers[..] {
        [_, exclusive, shared] => Ok(exclusive + shared),
        _ => Err(RunError::Command {
            command: format!("btrfs filesystem du -s {}", dir.display()),
            why: format!("unexpected output {out:?}"),
        }),
    }
}

/// Containers each space sample creates (the per-container figure is their mean).
const SPACE_CONTAINERS: u64 = 5;

/// Space per image (the store after loading it) and per container (what creating and
/// mounting one adds), for strata and containers/storage on every driver.
fn space(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let source = env.image.source.clone();
    let mut sides = Vec::new();
    for d in &env.drivers {
        for t in std::iter::once("strata").chain(references(env, d, &["containers-storage"])) {
            let src = source.clone();
            sides.push(
                Side::new("space-image", t, Some(d.as_str()), move || {
                    let s = if t == "strata" {
                        strata_loaded(env, d, &src)?
                    } else {
                        cs_loaded(env, t, d, &src)?
                    };
                    rustix::fs::sync();
                    let used = disk_usage(&s.dir);
                    s.remove();
                    Ok(used? as f64)
                })
                .bytes(1),
            );
            let src = source.clone();
            sides.push(
                Side::new("space-container", t, Some(d.as_str()), move || {
                    let s = if t == "strata" {
                        strata_loaded(env, d, &src)?
                    } else {
                        cs_loaded(env, t, d, &src)?
                    };
                    let r = (|| {
                        rustix::fs::sync();
                        let before = disk_usage(&s.dir)?;
                        for _ in 0..SPACE_CONTAINERS {
                            create_and_mount(t, &s)?;
                        }
                        rustix::fs::sync();
                        let after = disk_usage(&s.dir)?;
                        Ok(after.saturating_sub(before) as f64 / SPACE_CONTAINERS as f64)
                    })();
                    s.remove();
                    r
                })
                .bytes(1),
            );
        }
    }
    measure(ctx, &|| env.drop_caches(), "space", sides, out)
}

/// Removing the image from a store holding only it.
fn rmi(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let source = env.image.source.clone();
    let mut sides = Vec::new();
    for d in &env.drivers {
        for t in std::iter::once("strata").chain(references(env, d, &["podman"])) {
            let src = source.clone();
            let mut last: Option<Store> = None;
            sides.push(Side::new("rmi", t, Some(d.as_str()), move || {
                if let Some(s) = last.take() {
                    s.remove();
                }
                let s = if t == "strata" {
                    strata_loaded(env, d, &src)?
                } else {
                    cs_loaded(env, t, d, &src)?
                };
                rustix::fs::sync();
                let secs = if t == "strata" {
                    timed(s.strata().args(["rmi", NAME]))
                } else {
                    timed(s.podman().args(["rmi", CS_NAME]))
                };
                last = Some(s);
                secs
            }));
        }
    }
    measure(ctx, &|| env.drop_caches(), "rmi", sides, out)
}

/// `strata storage gc` of a store holding the image and a removed container's debris. No
/// reference tool has a store garbage collection of its own to compare.
fn gc(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    let mut stores = Vec::new();
    for d in &env.drivers {
        if let Some(s) = prepared(
            out,
            format!("gc [strata on {d}]"),
            strata_loaded(env, d, &env.image.source),
        ) {
            stores.push((d.clone(), s));
        }
    }
    let sides = stores
        .iter()
        .map(|(d, s)| {
            Side::new("gc", "strata", Some(d.as_str()), move || {
                let id = last_line(&output(s.strata().args(["storage", "create", NAME]))?);
                output(s.strata().args(["storage", "rm", &id]))?;
                timed(s.strata().args(["storage", "gc"]))
            })
        })
        .collect();
    let r = measure(ctx, &|| env.drop_caches(), "gc", sides, out);
    for (_, s) in stores {
        s.remove();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_up_to_the_bound() {
        assert_eq!(powers(1), [1]);
        assert_eq!(powers(8), [1, 2, 4, 8]);
        assert_eq!(powers(100), [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(powers(0), [1]);
    }

    #[test]
    fn io_operations_work_on_a_directory_tree() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = t.path();
        std::fs::create_dir_all(m.join("bench")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(m.join("d000")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(m.join("bench/large"), vec![1u8; 1 << 16]).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..5 {
            std::fs::write(m.join(format!("d000/f{i}")), b"abc").unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(seq_write(m, 3 << 20).is_ok_and(|s| s > 0.0));
        assert!(!m.join("bench-seq-write").exists());
        assert!(read_file(&m.join("bench/large")).is_ok());
        assert!(small_files(m, 50).is_ok());
        assert!(!m.join("bench-small").exists());
        assert!(walk(m, true).is_ok());
        let files = lower_files(m, 3);
        assert_eq!(
            files,
            [PathBuf::from("d000/f0"), "d000/f1".into(), "d000/f2".into()]
        );
        for op in ["copy-up-large", "copy-up-small", "copy-up-meta"] {
            assert!(copy_up(op, m, &files).is_ok(), "{op}");
        }
        assert_eq!(
            std::fs::read(m.join("d000/f0")).ok(),
            Some(b"abcx".to_vec())
        );
        let mode = std::fs::metadata(m.join("d000/f1"))
            .map(|md| md.mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o600));
        let used = disk_usage(m).unwrap_or(0);
        assert!(used >= 1 << 16, "{used}");
        assert!(batch(4, || Ok(())).is_ok());
        assert!(batch(2, || Err(RunError::Usage("no".into()))).is_err());
    }
}
