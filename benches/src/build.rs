//! `--only build`: `strata build` against `buildah bud --layers` (chroot isolation, its
//! fastest) and `podman build --layers`, side by side in one run, from the same busybox base
//! image on the same scratch filesystem, every RUN with network `host` (buildah's chroot
//! isolation allows no other):
//!
//! - a cold 5-step build (`--no-cache`, the base image present);
//! - a fully cached rebuild of it;
//! - a fully cached rebuild of a 50-step file (the per-step cost is the difference to the
//!   5-step one over 45 steps);
//! - the 5-step cached rebuild again with 300 unrelated images in each store;
//! - a COPY of a 1 GiB, 30,000-file context, cold and cached; and how many bytes of file
//!   data Strata read to hash the context on the cached build (its debug log says).
//!
//! Each round runs the tools in a freshly shuffled order. Whole commands are timed, process
//! start included. It reports; it asserts nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engines::{Podman, Strata};
use crate::layer::sh;
use crate::run::{latency, Shuffler};
use crate::storage::{fresh, unmount_below, Measurement};

pub const COLD5: &str = "build: cold, 5 steps";
pub const CACHED5: &str = "build: fully cached, 5 steps";
pub const CACHED50: &str = "build: fully cached, 50 steps";
pub const CACHED5_300: &str = "build: fully cached, 5 steps, 300 other images";
pub const CACHED5_TWIN: &str = "build: fully cached, 5 steps, same rounds, no other images";
pub const BIG_COLD: &str = "build: COPY of a 1 GiB, 30000-file context, cold";
pub const BIG_CACHED: &str = "build: COPY of a 1 GiB, 30000-file context, cached";

#[derive(Debug)]
pub struct BuildOptions {
    /// Timed runs of each cached case (cold cases run a third of them, at least 2).
    pub runs: usize,
    pub layout: PathBuf,
    /// The big context: size and file count.
    pub big_mib: u64,
    pub big_files: usize,
    /// Unrelated images added to every store.
    pub unrelated: usize,
}

/// What the build section found besides the latencies.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    pub buildah_version: String,
    pub podman_version: String,
    /// Strata's median ms per extra cached step ((50-step - 5-step) / 45).
    pub strata_ms_per_cached_step: f64,
    /// Each tool's cached 5-step time with 300 other images over the same without them,
    /// measured in the same rounds (the target for Strata: below 1.10).
    pub other_images_slowdown: Vec<(String, f64)>,
    /// Bytes of context file data Strata read on the cached big-context build.
    pub strata_cached_bytes_hashed: Option<u64>,
    pub ratios: Vec<(String, f64, f64)>,
}

/// buildah with a store of its own, the busybox image tagged `busybox`.
struct Buildah {
    dir: PathBuf,
}

impl Buildah {
    fn setup(dir: PathBuf, layout: &Path) -> Result<Buildah> {
        fresh(&dir)?;
        let b = Buildah { dir };
        let out = sh(&mut b.cmd(&[
            "pull",
            "--quiet",
            &format!("oci:{}:latest", layout.display()),
        ]))
        .context("load the busybox image into buildah's store")?;
        let id = out.lines().last().unwrap_or_default().trim().to_owned();
        sh(&mut b.cmd(&["tag", &id, "busybox"]))?;
        Ok(b)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "overlay"])
            .args(args);
        c
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        let _ = sh(&mut self.cmd(&["rm", "--all"]));
        unmount_below(&self.dir);
        let _ = Command::new("rm").arg("-rf").arg(&self.dir).status();
    }
}

const FIVE: &str = "FROM busybox
ENV APP=/app
COPY app.txt /app/app.txt
RUN echo built > /app/built.txt
WORKDIR /app
CMD [\"cat\", \"/app/built.txt\"]
";

fn fifty() -> String {
    let mut s = String::from("FROM busybox\n");
    for i in 0..49 {
        match i % 3 {
            0 => s.push_str(&format!("RUN echo {i} > /f{i}\n")),
            1 => s.push_str(&format!("ENV V{i}={i}\n")),
            _ => s.push_str(&format!("COPY app.txt /c/{i}.txt\n")),
        }
    }
    s
}

/// A context of `files` files of pseudo-random bytes totalling about `mib` MiB, in 100-file
/// directories (xorshift data: incompressible enough, and fast to make).
fn big_context(dir: &Path, mib: u64, files: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("Containerfile"), "FROM busybox\nCOPY . /ctx/\n")?;
    let per = ((mib << 20) / files.max(1) as u64) as usize;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; per];
    for i in 0..files {
        let d = dir.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&d)?;
        }
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        std::fs::File::create(d.join(format!("f{i}")))?.write_all(&buf)?;
    }
    Ok(())
}

/// Makes the build command of a context, a tag and whether to use `--no-cache`.
type BuildFn<'a> = Box<dyn Fn(&Path, &str, bool) -> Command + 'a>;

struct Tool<'a> {
    name: &'static str,
    /// Reported in this group instead of the case's (the twin stores of the 300-image case).
    group: Option<&'static str>,
    build: BuildFn<'a>,
}

/// The three builders on one set of stores.
fn tools<'a>(
    strata: &'a Strata,
    buildah: &'a Buildah,
    podman: &'a Podman,
    group: Option<&'static str>,
) -> Vec<Tool<'a>> {
    vec![
        Tool {
            name: "strata",
            group,
            build: Box::new(move |ctx: &Path, tag: &str, no_cache: bool| {
                let mut a = vec!["build", "-q", "--network", "host", "-t", tag];
                if no_cache {
                    a.push("--no-cache");
                }
                let mut c = strata.cmd(&a);
                c.arg(ctx);
                c
            }),
        },
        Tool {
            name: "buildah bud --layers",
            group,
            build: Box::new(move |ctx: &Path, tag: &str, no_cache: bool| {
                let mut a = vec![
                    "bud",
                    "--layers",
                    "-q",
                    "--isolation",
                    "chroot",
                    "--network",
                    "host",
                    "-t",
                    tag,
                ];
                if no_cache {
                    a.push("--no-cache");
                }
                let mut c = buildah.cmd(&a);
                c.arg(ctx);
                c
            }),
        },
        Tool {
            name: "podman build --layers",
            group,
            build: Box::new(move |ctx: &Path, tag: &str, no_cache: bool| {
                let mut a = vec!["build", "--layers", "-q", "--network", "host", "-t", tag];
                if no_cache {
                    a.push("--no-cache");
                }
                let mut c = podman.cmd(&a);
                c.arg(ctx);
                c
            }),
        },
    ]
}

fn timed(mut c: Command) -> Result<Duration> {
    let t = Instant::now();
    let out = c.output().with_context(|| format!("cannot run {c:?}"))?;
    let d = t.elapsed();
    if !out.status.success() {
        bail!("{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(d)
}

/// Runs `case` for every tool `runs` times in shuffled rounds; returns the measurements.
fn measure(
    group: &'static str,
    tools: &[Tool<'_>],
    runs: usize,
    ctx: &Path,
    no_cache: bool,
) -> Result<Vec<Measurement>> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    let mut rng = Shuffler::new(group);
    // One untimed build first: the cached cases need their cache, the cold ones a warm disk.
    for t in tools {
        timed((t.build)(ctx, "bench", false))?;
    }
    for _ in 0..runs {
        let mut order: Vec<usize> = (0..tools.len()).collect();
        rng.shuffle(&mut order);
        for i in order {
            times[i].push(timed((tools[i].build)(ctx, "bench", no_cache))?);
        }
    }
    let out: Vec<Measurement> = tools
        .iter()
        .zip(times)
        .map(|(t, v)| latency(t.group.unwrap_or(group), t.name, v))
        .collect();
    for m in &out {
        eprintln!("{:55} {:22} {:9.1} ms", m.group, m.tool, m.median_ms);
    }
    Ok(out)
}

pub fn build_benchmarks(
    scratch: &Path,
    strata_bin: &Path,
    opts: &BuildOptions,
) -> Result<(Vec<Measurement>, BuildSummary)> {
    let base = scratch.join("build");
    fresh(&base)?;
    let strata = Strata::setup(strata_bin, base.join("strata"), &opts.layout)?;
    let buildah = Buildah::setup(base.join("buildah"), &opts.layout)?;
    let podman = Podman::setup(base.join("podman"), &opts.layout)?;
    let main_tools = tools(&strata, &buildah, &podman, None);
    let five = base.join("five");
    std::fs::create_dir_all(&five)?;
    std::fs::write(five.join("Containerfile"), FIVE)?;
    std::fs::write(five.join("app.txt"), "app\n")?;
    let fifty_dir = base.join("fifty");
    std::fs::create_dir_all(&fifty_dir)?;
    std::fs::write(fifty_dir.join("Containerfile"), fifty())?;
    std::fs::write(fifty_dir.join("app.txt"), "app\n")?;
    let cold_runs = (opts.runs / 3).max(2);
    let mut out = Vec::new();
    out.extend(measure(COLD5, &main_tools, cold_runs, &five, true)?);
    out.extend(measure(CACHED5, &main_tools, opts.runs, &five, false)?);
    out.extend(measure(
        CACHED50,
        &main_tools,
        opts.runs,
        &fifty_dir,
        false,
    )?);
    // 300 unrelated images in every store (podman's import writes buildah's store format,
    // so it fills buildah's too).
    let tars = base.join("tars");
    std::fs::create_dir_all(&tars)?;
    for i in 0..opts.unrelated {
        let d = tars.join(format!("i{i}"));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("file{i}")), format!("{i}\n"))?;
        let tar = tars.join(format!("i{i}.tar"));
        sh(Command::new("tar")
            .arg("-C")
            .arg(&d)
            .arg("-cf")
            .arg(&tar)
            .arg("."))?;
        let t = tar.display().to_string();
        let name = format!("unrelated{i}");
        sh(&mut strata.cmd(&["import", &t, &name]))?;
        sh(&mut podman.cmd(&["import", "-q", &t, &name]))?;
        sh(Command::new("podman")
            .arg("--root")
            .arg(base.join("buildah/root"))
            .arg("--runroot")
            .arg(base.join("buildah/run"))
            .args(["--storage-driver", "overlay", "import", "-q", &t, &name]))?;
    }
    // Measured in the same rounds as twin stores without them, so the ratio is not skewed by
    // what the machine did between two sections.
    let twin_strata = Strata::setup(strata_bin, base.join("strata-twin"), &opts.layout)?;
    let twin_buildah = Buildah::setup(base.join("buildah-twin"), &opts.layout)?;
    let twin_podman = Podman::setup(base.join("podman-twin"), &opts.layout)?;
    let mut both = tools(&strata, &buildah, &podman, None);
    both.extend(tools(
        &twin_strata,
        &twin_buildah,
        &twin_podman,
        Some(CACHED5_TWIN),
    ));
    out.extend(measure(CACHED5_300, &both, opts.runs, &five, false)?);
    drop(both);
    drop((twin_strata, twin_buildah, twin_podman));
    let big = base.join("big");
    big_context(&big, opts.big_mib, opts.big_files)?;
    out.extend(measure(BIG_COLD, &main_tools, 2, &big, true)?);
    out.extend(measure(
        BIG_CACHED,
        &main_tools,
        (opts.runs / 2).max(2),
        &big,
        false,
    )?);
    // How much file data the cached build read to hash the context.
    let log = strata
        .cmd(&[
            "--log-level",
            "debug",
            "build",
            "-q",
            "--network",
            "host",
            "-t",
            "bench",
        ])
        .arg(&big)
        .output()?;
    let text = String::from_utf8_lossy(&log.stderr);
    let hashed = text
        .split("hashed=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let get = |g: &str, t: &str| {
        out.iter()
            .find(|m: &&Measurement| m.group == g && m.tool == t)
            .map(|m| m.median_ms)
            .unwrap_or(f64::NAN)
    };
    let mut ratios = Vec::new();
    for g in [COLD5, CACHED5, CACHED50, CACHED5_300, BIG_COLD, BIG_CACHED] {
        let s = get(g, "strata");
        ratios.push((
            g.to_owned(),
            s / get(g, "buildah bud --layers"),
            s / get(g, "podman build --layers"),
        ));
    }
    let summary = BuildSummary {
        buildah_version: sh(Command::new("buildah").arg("--version"))
            .unwrap_or_default()
            .trim()
            .to_owned(),
        podman_version: sh(Command::new("podman").arg("--version"))
            .unwrap_or_default()
            .trim()
            .to_owned(),
        strata_ms_per_cached_step: (get(CACHED50, "strata") - get(CACHED5, "strata")) / 45.0,
        other_images_slowdown: ["strata", "buildah bud --layers", "podman build --layers"]
            .iter()
            .map(|t| (t.to_string(), get(CACHED5_300, t) / get(CACHED5_TWIN, t)))
            .collect(),
        strata_cached_bytes_hashed: hashed,
        ratios,
    };
    Ok((out, summary))
}

/// Prints the section's table of ratios and targets.
pub fn print(s: &BuildSummary) {
    println!("\nbuild ({}; {})", s.buildah_version, s.podman_version);
    println!(
        "{:55} {:>16} {:>16}",
        "case", "strata/buildah", "strata/podman"
    );
    for (g, b, p) in &s.ratios {
        println!("{g:55} {b:>15.2}x {p:>15.2}x");
    }
    for (t, r) in &s.other_images_slowdown {
        println!("{t}: 300 other images make a cached build {r:.2}x as long (strata's target: below 1.10x)");
    }
    println!(
        "strata: {:.2} ms per extra cached step (target at most 2); cached big context read {} bytes of file data (target 0)",
        s.strata_ms_per_cached_step,
        s.strata_cached_bytes_hashed
            .map(|b| b.to_string())
            .unwrap_or_else(|| "?".into())
    );
}
