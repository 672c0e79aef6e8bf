//! `strata bench run`: every selected workload on every selected driver, and the same work
//! through each installed reference tool, in one run, interleaved so that drift hits all
//! sides alike.
//!
//! - Everything happens below a scratch directory (`env`), optionally on a loop-mounted
//!   filesystem of a chosen type; the btrfs driver gets a loop-mounted btrfs of its own when
//!   the scratch is not btrfs. Nothing touches the user's own stores: every tool is pointed
//!   at stores, configuration and run directories of the scratch.
//! - A workload is a set of *sides* (a tool on a driver, with parameters); the measuring
//!   loop (`measure`) warms every side up, then takes one sample of each side per round until
//!   each side's [`RunPolicy`] is satisfied, so a slow minute of the machine lands on every
//!   side of the comparison.
//! - A side that fails (a reference tool too old for a driver, a kernel without a feature) is
//!   recorded in the result file's `skipped` list with the error and the run goes on; a driver
//!   the host cannot run is skipped before it starts, with why.
//! - Stopping: the caller's `stop` flag (set on Ctrl-C) is checked before every sample; the
//!   run then ends with [`RunError::Interrupted`] after the scratch is cleaned up.

mod build;
mod cri;
mod env;
mod measure;
mod workloads;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::results::{Filesystem, Machine, Measurement, ResultFile, Skipped, SCHEMA};
use crate::stats::RunPolicy;
use crate::synth::Spec;

pub use env::ScratchFs;

/// What went wrong, for the whole run (a failing side is skipped, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {why}")]
    Command { command: String, why: String },
    #[error("interrupted; the scratch directory was cleaned up")]
    Interrupted,
}

impl RunError {
    /// An I/O error, with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
        let what = what.into();
        move |source| RunError::Io { what, source }
    }
}

/// The workloads, in the order a run measures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// The harness's own overhead: an empty sample, and starting `/bin/true`.
    Empty,
    /// Pull from a registry (a local `docker-registry` the run starts, or `--registry`).
    Pull,
    /// Load the image from its OCI layout into an empty store (layer apply).
    Apply,
    /// Create a container and mount its root filesystem.
    CreateMount,
    /// `run --rm IMAGE true`.
    Start,
    /// I/O on a mounted container through the driver: sequential write and read, small-file
    /// create/stat/unlink, walking and reading the tree, copy-up of a large file, of small
    /// files and of metadata only.
    Io,
    /// Create + mount latency against the depth of the layer chain.
    Depth,
    /// Many creates + mounts (and starts) at once.
    Concurrency,
    /// `build` beside `buildah bud` and `podman build`: cold, fully cached, a big context.
    Build,
    /// The CRI beside containerd's: the pod lifecycle call by call, image and container lists.
    Cri,
    /// Disk space per image and per container.
    Space,
    /// Removing the image.
    Rmi,
    /// Garbage collection of a store.
    Gc,
}

impl Workload {
    pub const ALL: [Workload; 13] = [
        Workload::Empty,
        Workload::Pull,
        Workload::Apply,
        Workload::CreateMount,
        Workload::Start,
        Workload::Io,
        Workload::Depth,
        Workload::Concurrency,
        Workload::Build,
        Workload::Cri,
        Workload::Space,
        Workload::Rmi,
        Workload::Gc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Empty => "empty",
            Workload::Pull => "pull",
            Workload::Apply => "apply",
            Workload::CreateMount => "create+mount",
            Workload::Start => "start",
            Workload::Io => "io",
            Workload::Depth => "depth",
            Workload::Concurrency => "concurrency",
            Workload::Build => "build",
            Workload::Cri => "cri",
            Workload::Space => "space",
            Workload::Rmi => "rmi",
            Workload::Gc => "gc",
        }
    }

    pub fn parse(s: &str) -> Result<Workload, RunError> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                RunError::Usage(format!(
                    "unknown workload {s:?}; the workloads: {}",
                    Workload::ALL.map(Workload::name).join(", ")
                ))
            })
    }
}

/// The drivers a run knows, in the order it measures them.
pub const DRIVERS: [&str; 5] = ["overlay", "fuse-overlay", "vfs", "btrfs", "devicemapper"];

/// The reference tools a run knows.
pub const TOOLS: [&str; 6] = [
    "podman",
    "skopeo",
    "buildah",
    "containers-storage",
    "fuse-overlayfs",
    "containerd",
];

/// How much a run does: sizes, depths, concurrency and how hard it tries for tight intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub policy: RunPolicy,
    pub warmup: usize,
    /// The synthetic image's shape when none is given.
    pub image: &'static str,
    /// Bytes of the sequential write.
    pub io_bytes: u64,
    /// Bytes of the image's large file (read sequentially, copied up); it is part of every
    /// pull and apply, so it stays moderate.
    pub large_file: u64,
    /// Files of the small-file workload.
    pub small_files: usize,
    /// Lower files the small-file and metadata copy-ups touch.
    pub copy_up_files: usize,
    pub max_depth: usize,
    pub max_concurrency: usize,
    /// Steps of the many-step cached build.
    pub build_steps: usize,
    /// Bytes and files of the build context the `COPY` case copies.
    pub build_context: u64,
    pub build_files: usize,
    /// Images in each CRI store for ListImages and ImageStatus, containers for ListContainers.
    pub cri_images: usize,
    pub cri_containers: usize,
}

impl Profile {
    /// About a minute on a small machine with two drivers: what CI runs.
    pub fn quick() -> Profile {
        Profile {
            name: "quick",
            policy: RunPolicy {
                min_runs: 3,
                max_runs: 5,
                target: 0.05,
            },
            warmup: 1,
            image: "layers=3,files=200,dirs=10,size=1k..16k,dup=0.1,whiteouts=0.02,seed=1",
            io_bytes: 16 << 20,
            large_file: 8 << 20,
            small_files: 500,
            copy_up_files: 50,
            max_depth: 8,
            max_concurrency: 4,
            build_steps: 10,
            build_context: 8 << 20,
            build_files: 200,
            cri_images: 20,
            cri_containers: 50,
        }
    }

    /// The default: tight enough intervals to compare tools, in minutes.
    pub fn standard() -> Profile {
        Profile {
            name: "standard",
            policy: RunPolicy {
                min_runs: 10,
                max_runs: 20,
                target: 0.05,
            },
            warmup: 2,
            image: "layers=5,files=1000,dirs=50,size=1k..128k,dup=0.1,whiteouts=0.02,seed=1",
            io_bytes: 256 << 20,
            large_file: 64 << 20,
            small_files: 5000,
            copy_up_files: 200,
            max_depth: 64,
            max_concurrency: 16,
            build_steps: 50,
            build_context: 256 << 20,
            build_files: 5000,
            cri_images: 200,
            cri_containers: 500,
        }
    }

    /// Everything the issue names: depth to 128, 64 at once, 1 GiB of sequential I/O.
    pub fn full() -> Profile {
        Profile {
            name: "full",
            policy: RunPolicy {
                min_runs: 20,
                max_runs: 100,
                target: 0.02,
            },
            warmup: 3,
            image: "layers=8,files=2000,dirs=100,size=1k..256k,dup=0.1,whiteouts=0.02,seed=1",
            io_bytes: 1 << 30,
            large_file: 256 << 20,
            small_files: 20_000,
            copy_up_files: 500,
            max_depth: 128,
            max_concurrency: 64,
            build_steps: 50,
            build_context: 1 << 30,
            build_files: 30_000,
            cri_images: 200,
            cri_containers: 500,
        }
    }

    pub fn named(name: &str) -> Result<Profile, RunError> {
        match name {
            "quick" => Ok(Profile::quick()),
            "standard" => Ok(Profile::standard()),
            "full" => Ok(Profile::full()),
            other => Err(RunError::Usage(format!(
                "unknown profile {other:?} (quick, standard, full)"
            ))),
        }
    }
}

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A synthetic image of this shape (with the run's extra layer).
    Synthetic(Spec),
    /// An OCI layout the user gives (`oci:DIR[:REF]`), used as it is.
    Layout { dir: PathBuf, reference: String },
}

/// Everything a run is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `strata` binary measured (the running one, for the plugin).
    pub strata: PathBuf,
    pub drivers: Vec<String>,
    pub workloads: Vec<Workload>,
    pub image: Option<ImageSource>,
    /// The reference tools to run beside Strata (those not installed are skipped, with why).
    pub against: Vec<String>,
    pub profile: Profile,
    /// Exact runs per side (overrides the profile's adaptive policy).
    pub runs: Option<usize>,
    pub warmup: Option<usize>,
    /// Drop the page cache before every sample (root only).
    pub cold: bool,
    /// The scratch directory (made if missing; the run works in a new directory inside it).
    pub scratch: PathBuf,
    /// A loop-mounted filesystem of this type under the scratch directory to work on.
    pub scratch_fs: Option<ScratchFs>,
    /// A registry to pull from (`HOST:PORT`, plain HTTP) instead of the local one the run
    /// starts; the run pushes its image there first.
    pub registry: Option<String>,
    /// The settings as the user gave them, recorded in the result file.
    pub settings: BTreeMap<String, String>,
}

/// What the run tells the live view.
pub trait Observer: Sync {
    /// Workload `index` (from 1) of `total` begins (a workload may have several steps, each
    /// with its own [`Observer::begin`]).
    fn workload(&self, _index: usize, _total: usize, _name: &str) {}
    /// A workload begins; `samples` is the most it will take (warm-ups included).
    fn begin(&self, workload: &str, samples: usize);
    /// One sample of a side was taken.
    fn sample(&self, side: &str);
    /// A side is measured.
    fn measured(&self, m: &Measurement);
    /// Something worth a line: a skipped side, a setup step.
    fn note(&self, message: &str);
    /// The workload ended.
    fn end(&self);
}

/// Runs everything `opts` asks for; returns the result file (not yet written).
pub fn run(opts: &Options, obs: &dyn Observer, stop: &AtomicBool) -> Result<ResultFile, RunError> {
    let started = env::now_rfc3339();
    let mut env = env::Env::prepare(opts, obs)?;
    let mut machine = Machine::this();
    machine.filesystem = Filesystem::of(env.work());
    let mut out = Outcome::default();
    out.skipped.append(&mut env.skipped);
    let policy = match opts.runs {
        Some(n) => RunPolicy {
            min_runs: n.max(1),
            max_runs: n.max(1),
            target: 0.0,
        },
        None => opts.profile.policy,
    };
    let ctx = measure::Ctx {
        policy,
        warmup: opts.warmup.unwrap_or(opts.profile.warmup),
        cold: env.cold,
        obs,
        stop,
    };
    let mut workloads = opts.workloads.clone();
    workloads.sort();
    workloads.dedup();
    let total = workloads.len();
    for (i, w) in workloads.into_iter().enumerate() {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RunError::Interrupted);
        }
        obs.workload(i + 1, total, w.name());
        workloads::run(w, &env, &ctx, &mut out)?;
    }
    let mut settings = opts.settings.clone();
    settings.insert("profile".into(), opts.profile.name.into());
    settings.insert("image".into(), env.image.describe.clone());
    // Whether the page cache was really dropped before samples (`--cold` as root).
    settings.insert("cold caches".into(), env.cold.to_string());
    drop(env);
    Ok(ResultFile {
        schema: SCHEMA.into(),
        started,
        machine,
        settings,
        measurements: out.measurements,
        skipped: out.skipped,
    })
}

/// What the workloads produce.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub measurements: Vec<Measurement>,
    pub skipped: Vec<Skipped>,
}

impl Outcome {
    pub fn skip(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.skipped.push(Skipped {
            what: what.into(),
            why: why.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_and_profiles_parse_by_name() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()).ok(), Some(w));
        }
        let e = Workload::parse("nope").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("create+mount")));
        for p in ["quick", "standard", "full"] {
            let profile = Profile::named(p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(profile.name, p);
            assert!(
                profile.image.parse::<Spec>().is_ok(),
                "{p}: {}",
                profile.image
            );
            assert!(profile.policy.min_runs <= profile.policy.max_runs);
        }
        assert!(Profile::named("huge").is_err());
        assert_eq!(Profile::full().max_depth, 128);
        assert_eq!(Profile::full().max_concurrency, 64);
    }
}
