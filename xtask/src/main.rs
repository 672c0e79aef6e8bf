//! `cargo xtask`: the project's automation, written in Rust so it runs wherever cargo does.
//!
//! - `setup`: installs the Debian packages the tests need (as root; a no-op when present).
//! - `fixtures`: builds the test images with `tests/fixtures/make-images.sh`.
//! - `test`: the README's test command: fmt, the layering and plugin-protocol checks, clippy,
//!   setup, fixtures, build, the whole test suite as root, then proof that the privileged tier
//!   really ran.
//! - `install`: builds the release binary and plugins and installs them under a prefix
//!   (`bin/strata`, `lib/strata/plugins/*.so`).
//! - `bench`: the benchmark harness (storage and pulls, against the reference tools).
//! - `vm`: runs a command in a throwaway qemu guest (stock Debian kernel, pure cgroup v2,
//!   device-mapper) over the host's root; see `vm/mod.rs`.
//! - `pjdfstest`: POSIX conformance (pjdfstest) of strata-fuse-overlay next to the kernel
//!   overlay and fuse-overlayfs over the same layers; see `pjdfstest.rs`.
//! - `demo`: the README's demo: load the busybox image, create and mount a container, run
//!   busybox inside it with chroot, clean up.
//!
//! It deliberately does no work of its own beyond orchestration: images are made by the
//! fixture script with the reference tools, tests are run by `cargo test`, and the product is
//! driven only through the `strata` binary.

mod demo;
mod fixtures;
mod layers;
mod pjdfstest;
mod process;
mod protocol;
mod setup;
mod suite;
mod vm;
mod vmtier;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project automation for Strata.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the Debian packages the tests need (as root; skips apt when all are installed).
    Setup,
    /// Build the fixture images into <target>/fixtures (skipped when up to date).
    Fixtures {
        /// Build them here instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The full test run, as root: fmt, clippy, setup, fixtures, build, every test, and a
    /// check that the privileged tier ran.
    Test,
    /// Load the busybox image into a temporary store and run a container from it.
    Demo {
        /// Storage driver for the demo store.
        #[arg(long, default_value = "overlay", value_parser = ["overlay", "vfs"])]
        driver: String,
        /// Use this `strata` binary instead of building the release one.
        #[arg(long)]
        strata: Option<PathBuf>,
    },
    /// Build the release binary and plugins and install them: PREFIX/bin/strata,
    /// PREFIX/lib/strata/plugins/*.so (where strata looks for its plugins), and the helpers
    /// PREFIX/lib/strata/strata-monitor and strata-fuse-overlay.
    Install {
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
    },
    /// The benchmark, as users run it: builds the release binary and plugins and runs
    /// `strata bench run` (default: `--profile standard -o <target>/bench`); extra arguments
    /// go to it (`cargo xtask bench -- --profile full`). `cargo xtask bench legacy -- ARGS`
    /// runs the older developer harness (`benches/`: bare crun, before/after builds, the
    /// perf timeline) with ARGS (see `cargo xtask bench legacy -- --help`).
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a command in a throwaway qemu guest with Debian's stock kernel (pure cgroup v2,
    /// device-mapper), over the host's root: `cargo xtask vm -- <command> [args...]`.
    Vm(vm::VmArgs),
    /// POSIX conformance (as root): pjdfstest on the kernel overlay, fuse-overlayfs and
    /// strata-fuse-overlay over the same layers; report in <target>/pjdfstest/report.md.
    /// Fails when strata fails a test the kernel overlay passes (unless
    /// xtask/pjdfstest-known.toml lists it).
    Pjdfstest(pjdfstest::Args),
}

/// Paths of the workspace xtask works on.
#[derive(Debug)]
pub struct Workspace {
    /// The workspace root (parent of `xtask/`).
    pub root: PathBuf,
    /// Cargo's target directory: `$CARGO_TARGET_DIR` or `<root>/target`.
    pub target: PathBuf,
}

impl Workspace {
    fn locate() -> Workspace {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask/ lives inside the workspace root")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|t| !t.is_empty())
            // Relative to the current directory, as cargo reads it.
            .map(|t| std::path::absolute(&t).unwrap_or_else(|_| root.join(t)))
            .unwrap_or_else(|| root.join("target"));
        Workspace { root, target }
    }

    /// Where `cargo xtask fixtures` puts the full fixture set.
    pub fn fixtures_dir(&self) -> PathBuf {
        self.target.join("fixtures")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, not anyhow's Debug form: no backtrace noise under RUST_BACKTRACE.
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    let ws = Workspace::locate();
    match task {
        Task::Setup => setup::ensure_packages(setup::TEST_PACKAGES),
        Task::Fixtures { out } => {
            let out = out.unwrap_or_else(|| ws.fixtures_dir());
            fixtures::build(&ws, &out, fixtures::Selection::All)
        }
        Task::Test => suite::run(&ws),
        Task::Demo { driver, strata } => demo::run(&ws, &driver, strata),
        Task::Vm(args) => vm::run_cli(&ws, args),
        Task::Pjdfstest(args) => pjdfstest::run(&ws, args),
        Task::Install { prefix } => {
            process::run(process::cargo(&ws.root).args([
                "build",
                "--release",
                "-p",
                "strata-tools",
                "-p",
                "strata-plugin-copy",
                "-p",
                "strata-plugin-run",
                "-p",
                "strata-plugin-build",
                "-p",
                "strata-plugin-cri",
                "-p",
                "strata-plugin-bench",
                "-p",
                "strata-tools-monitor",
                "-p",
                "strata-tools-fuse-overlay",
            ]))?;
            let release = ws.target.join("release");
            let libexec = prefix.join("lib/strata");
            std::fs::create_dir_all(&libexec)?;
            for helper in ["strata-monitor", "strata-fuse-overlay"] {
                let tmp = libexec.join(format!(".{helper}.tmp"));
                std::fs::copy(release.join(helper), &tmp)?;
                std::fs::rename(&tmp, libexec.join(helper))?;
            }
            let bin = prefix.join("bin");
            std::fs::create_dir_all(&bin)?;
            let tmp = bin.join(".strata.tmp");
            std::fs::copy(release.join("strata"), &tmp)?;
            std::fs::rename(&tmp, bin.join("strata"))?;
            let plugins = install_plugins(&release, &prefix.join("lib/strata/plugins"))?;
            eprintln!(
                "xtask: installed {} and its plugins in {}",
                bin.join("strata").display(),
                plugins.display()
            );
            Ok(())
        }
        Task::Bench { args } => {
            setup::ensure_packages(setup::TEST_PACKAGES)?;
            setup::ensure_packages(setup::BENCH_PACKAGES)?;
            setup::prepare_host()?;
            process::run(process::cargo(&ws.root).args([
                "build",
                "--release",
                "-p",
                "strata-tools",
                "-p",
                "strata-plugin-copy",
                "-p",
                "strata-plugin-run",
                "-p",
                "strata-plugin-build",
                "-p",
                "strata-plugin-cri",
                "-p",
                "strata-plugin-bench",
                "-p",
                "strata-tools-monitor",
                "-p",
                "strata-tools-fuse-overlay",
                "-p",
                "strata-benches",
            ]))?;
            let release = ws.target.join("release");
            install_plugins(&release, &release.join("lib/strata/plugins"))?;
            if args.first().map(String::as_str) == Some("legacy") {
                let json = ws.target.join("bench-results.json");
                return process::run(
                    std::process::Command::new(ws.target.join("release/strata-bench"))
                        .arg("--strata")
                        .arg(ws.target.join("release/strata"))
                        .arg("--json")
                        .arg(&json)
                        .args(args.iter().skip(1).filter(|a| *a != "--")),
                );
            }
            // The same code users run: `strata bench run`, from the release build.
            let given = |flag: &str| {
                args.iter()
                    .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
            };
            let mut cmd = std::process::Command::new(release.join("strata"));
            cmd.args(["bench", "run"]);
            if !given("--profile") {
                cmd.args(["--profile", "standard"]);
            }
            if !given("-o") && !given("--output") {
                let out = ws.target.join("bench");
                if out.exists() {
                    std::fs::remove_dir_all(&out)?;
                }
                cmd.arg("-o").arg(&out);
            }
            process::run(cmd.args(args.iter().filter(|a| *a != "--")))
        }
    }
}

/// The plugins the workspace builds (library names).
const PLUGINS: &[&str] = &[
    "strata_plugin_copy",
    "strata_plugin_run",
    "strata_plugin_build",
    "strata_plugin_cri",
    "strata_plugin_bench",
];

/// Copies the built plugins of `profile_dir` (those it has) into `dest` (atomically, file by
/// file) and returns `dest`. `<profile dir>/lib/strata/plugins` is where that profile's `strata` looks.
pub(crate) fn install_plugins(
    profile_dir: &std::path::Path,
    dest: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dest)?;
    for p in PLUGINS {
        let file = format!("lib{p}.so");
        if !profile_dir.join(&file).exists() {
            // A build of a few packages (the demo's) makes only the plugins it needs.
            continue;
        }
        let tmp = dest.join(format!(".{file}.tmp"));
        std::fs::copy(profile_dir.join(&file), &tmp)?;
        std::fs::rename(&tmp, dest.join(&file))?;
    }
    Ok(dest.to_path_buf())
}
