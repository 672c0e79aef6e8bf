//! `cargo xtask pjdfstest`: POSIX conformance of strata-fuse-overlay next to the kernel
//! overlay and Debian's fuse-overlayfs, with pjdfstest (the Rust edition, pinned to
//! [`PJDFSTEST_VERSION`], installed into `<target>/tools` on first use). As root, it makes a
//! loop-mounted ext4 image below `$TMPDIR/strata-pjdfstest` (short paths: see `mounts`) with
//! one small lower layer, mounts each filesystem in turn over it with an empty upper and work
//! directory, runs the whole suite inside the merged `t/` directory, runs each test strata
//! fails again alone on the same mount (to tell flaky failures), and writes to
//! `<target>/pjdfstest/`: `report.md` (see `report`), the raw logs (`<kind>.log`,
//! `strata-reruns.log`, the FUSE servers' stderr) and the `pjdfstest.toml` it used.
//!
//! It fails when strata-fuse-overlay fails a test the kernel overlay passes, unless
//! `xtask/pjdfstest-known.toml` lists it (see `known`). The configuration enables the
//! features Linux has: `posix_fallocate`, `utimensat`, `utime_now`, and `rename_ctime` (Linux
//! filesystems update ctime on rename); not `chflags`, `chflags_sf_snapshot`,
//! `stat_st_birthtime` (BSD) or `nfsv4_acls`. `naptime` must exceed the kernel's coarse clock
//! tick (4 ms at HZ=250) or the timestamp tests fail even on the kernel overlay: 10 ms.
//! `allow_remount` stays off: FUSE mounts cannot be remounted read-only through mount(8), so
//! the EROFS tests are skipped everywhere. The dummy users are existing ones (nobody/nogroup,
//! daemon/daemon): it creates no users.
//!
//! It does not judge fuse-overlayfs (its failures are context) and it is not part of
//! `cargo xtask test`.

mod known;
mod mounts;
mod report;
mod results;
mod tables;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{self, cargo, describe};
use crate::{setup, Workspace};
use mounts::{Kind, Mounted, Scratch};
use report::{Rerun, Run};
use results::{RunLog, Status};

/// The pjdfstest release the report is made with.
pub const PJDFSTEST_VERSION: &str = "0.2.2";

/// What building pjdfstest and mounting the three filesystems need.
const PACKAGES: &[&str] = &[
    "libacl1-dev",
    "fuse-overlayfs",
    "fuse3",
    "e2fsprogs",
    "util-linux",
];

/// Existing users and their groups for the tests that switch users.
const DUMMY_USERS: [(&str, &str); 2] = [("nobody", "nogroup"), ("daemon", "daemon")];

/// Options of `cargo xtask pjdfstest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The strata-fuse-overlay binary to test [default: build the release one, then use
    /// <target>/release/strata-fuse-overlay]
    #[arg(long)]
    strata: Option<PathBuf>,
    /// More -o options for strata-fuse-overlay, such as `passthrough=off` or `threads=1`.
    #[arg(long, default_value = "")]
    strata_options: String,
    /// pjdfstest's naptime in seconds (the pause before checking that timestamps changed).
    #[arg(long, default_value_t = 0.01)]
    naptime: f64,
    /// Time limit for each filesystem's run, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// How often each test strata fails (and the kernel overlay passes) is run again alone.
    #[arg(long, default_value_t = 3)]
    reruns: usize,
    /// Only tests whose names contain one of these (pjdfstest's own filter).
    patterns: Vec<String>,
}

impl Args {
    /// What `cargo xtask test` runs: the debug server it just built, default settings.
    pub fn for_suite(ws: &Workspace) -> Args {
        Args {
            strata: Some(ws.target.join("debug/strata-fuse-overlay")),
            strata_options: String::new(),
            naptime: 0.01,
            timeout: 900,
            reruns: 3,
            patterns: Vec::new(),
        }
    }
}

pub fn run(ws: &Workspace, args: Args) -> Result<()> {
    if !process::is_root()? {
        bail!("pjdfstest needs root (loop devices, mounts, switching users): run it as root");
    }
    // Read first: a broken list should not cost a whole run.
    let known_file = ws.root.join("xtask/pjdfstest-known.toml");
    let known = known::load(&known_file)?;
    setup::ensure_packages(PACKAGES)?;
    let pjdfstest = ensure_pjdfstest(ws)?;
    let strata = strata_binary(ws, args.strata.as_deref())?;
    let out = ws.target.join("pjdfstest");
    clear_outputs(&out)?;

    let scratch = Scratch::create(&std::env::temp_dir().join("strata-pjdfstest"))?;
    let config = out.join("pjdfstest.toml");
    std::fs::write(&config, config_text(args.naptime, &scratch.secondary()))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let suite = Suite {
        bin: &pjdfstest,
        config: &config,
        timeout: Duration::from_secs(args.timeout),
    };

    let mut runs: Vec<Run> = Vec::new();
    let mut reruns = BTreeMap::new();
    for kind in Kind::ALL {
        let server_log = out.join(format!("{}-server.log", kind.short()));
        let mounted = scratch.mount(kind, &strata, &args.strata_options, &server_log)?;
        let log = out.join(format!("{}.log", kind.short()));
        let run = suite.run(&mounted, &args.patterns, false, &log)?;
        eprintln!("xtask: {}: {}", kind.name(), summary_line(&run));
        if kind == Kind::Strata {
            if let Some(kernel) = runs.iter().find(|r| r.kind == Kind::Kernel) {
                let failing = report::regressions(&kernel.log, &run.log);
                let rerun_log = out.join("strata-reruns.log");
                for test in failing {
                    let r = suite.rerun(&mounted, &test, args.reruns, &rerun_log)?;
                    reruns.insert(test, r);
                }
            }
        }
        runs.push(run);
        drop(mounted);
    }
    drop(scratch);

    let (kernel, strata_run) = (&runs[0], &runs[2]);
    let regressions = report::regressions(&kernel.log, &strata_run.log);
    let verdict = report::verdict(
        &regressions,
        &known,
        &[&kernel.log, &strata_run.log],
        args.patterns.is_empty(),
    );
    let about = about(&pjdfstest, &strata, &args);
    let md = report::render(&report::Input {
        about: &about,
        runs: &runs,
        reruns: &reruns,
        known: &known,
        verdict: &verdict,
    });
    let report_path = out.join("report.md");
    std::fs::write(&report_path, md)
        .with_context(|| format!("cannot write {}", report_path.display()))?;

    print_summary(&runs, &regressions, &verdict, &reruns);
    println!("report: {}", report_path.display());
    if kernel.incomplete.is_some() {
        bail!(
            "the kernel overlay's run did not finish, so nothing was compared; see {}",
            out.join("kernel.log").display()
        );
    }
    if !verdict.unexplained.is_empty() {
        bail!(
            "strata-fuse-overlay fails {} pjdfstest tests that the kernel overlay passes; fix \
             them or list them with a reason in {}",
            verdict.unexplained.len(),
            known_file.display()
        );
    }
    Ok(())
}

/// How to run the installed suite.
#[derive(Debug)]
struct Suite<'a> {
    bin: &'a Path,
    config: &'a Path,
    timeout: Duration,
}

impl Suite<'_> {
    /// Runs the tests matching `patterns` (all when empty) in `mounted`'s `t/` directory,
    /// output to `log`.
    fn run(&self, mounted: &Mounted, patterns: &[String], exact: bool, log: &Path) -> Result<Run> {
        let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(self.bin);
        cmd.arg("-c")
            .arg(self.config)
            .arg("-p")
            .arg(mounted.test_dir());
        if exact {
            cmd.arg("--exact");
        }
        cmd.arg("--")
            .args(patterns)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stderr(file.try_clone()?)
            .stdout(file);
        let line = describe(&cmd);
        eprintln!("$ {line} > {}", log.display());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let mut incomplete = None;
        while child.try_wait()?.is_none() {
            if started.elapsed() > self.timeout {
                // A hung FUSE request would keep the kill from ending it: abort the connection.
                mounted.abort();
                let _ = child.kill();
                let _ = child.wait();
                incomplete = Some(format!("timed out after {} s", self.timeout.as_secs()));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let elapsed = started.elapsed();
        let text = std::fs::read_to_string(log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        let parsed = RunLog::parse(&text);
        if parsed.summary.is_none() && incomplete.is_none() {
            // pjdfstest's own error (`Error: ...`) when it gave up, else the log's last line.
            let said = text
                .lines()
                .find(|l| l.starts_with("Error:"))
                .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("an empty log");
            incomplete = Some(format!("no summary line; {}", said.trim()));
        }
        Ok(Run {
            kind: mounted.kind,
            log: parsed,
            elapsed,
            incomplete,
        })
    }

    /// Runs `test` alone `times` times; each log is appended to `log`.
    fn rerun(&self, mounted: &Mounted, test: &str, times: usize, log: &Path) -> Result<Rerun> {
        let tmp = log.with_extension("tmp");
        let mut passed = 0;
        for _ in 0..times {
            let run = self.run(mounted, &[test.to_owned()], true, &tmp)?;
            if run.log.tests.get(test).map(|o| o.status) == Some(Status::Passed) {
                passed += 1;
            }
            let text = std::fs::read_to_string(&tmp).unwrap_or_default();
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .and_then(|mut f| writeln!(f, "==== {test} alone\n{text}"))
                .with_context(|| format!("cannot write {}", log.display()))?;
        }
        let _ = std::fs::remove_file(&tmp);
        Ok(Rerun {
            passed,
            runs: times,
        })
    }
}

/// `<root>/bin/pjdfstest` at [`PJDFSTEST_VERSION`], installed with `cargo install --locked`
/// (from cargo's local cache when it has the sources, else from crates.io).
fn ensure_pjdfstest(ws: &Workspace) -> Result<PathBuf> {
    let root = ws.target.join("tools");
    let bin = root.join("bin/pjdfstest");
    let version = Command::new(&bin).arg("--version").output().ok();
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if version.as_deref() == Some(&format!("pjdfstest {PJDFSTEST_VERSION}")) {
        return Ok(bin);
    }
    let install = |offline: bool| {
        let mut cmd = cargo(&ws.root);
        cmd.args([
            "install",
            "pjdfstest",
            "--locked",
            "--version",
            PJDFSTEST_VERSION,
        ])
        .arg("--root")
        .arg(&root)
        .arg("--target-dir")
        .arg(root.join("build"));
        if offline {
            cmd.arg("--offline");
        }
        process::run(&mut cmd)
    };
    if install(true).is_err() {
        eprintln!("xtask: pjdfstest {PJDFSTEST_VERSION} is not all in cargo's cache; fetching it");
        install(false).context("cannot install pjdfstest (building it needs libacl1-dev)")?;
    }
    Ok(bin)
}

/// The binary given, or the freshly built release one.
fn strata_binary(ws: &Workspace, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(bin) = given {
        if !bin.is_file() {
            bail!("{} is not a file", bin.display());
        }
        return Ok(std::path::absolute(bin)?);
    }
    // Always: a stale binary would report on code that no longer exists.
    process::run(cargo(&ws.root).args(["build", "--release", "-p", "strata-tools-fuse-overlay"]))?;
    Ok(ws.target.join("release/strata-fuse-overlay"))
}

/// Removes the files of an earlier run.
fn clear_outputs(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for entry in std::fs::read_dir(out)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn config_text(naptime: f64, secondary: &Path) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let users: Vec<String> = DUMMY_USERS
        .iter()
        .map(|(u, g)| format!("[{}, {}]", quote(u), quote(g)))
        .collect();
    format!(
        "# Written by `cargo xtask pjdfstest`.\n\
         [features]\n\
         posix_fallocate = {{}}\n\
         rename_ctime = {{}}\n\
         utime_now = {{}}\n\
         utimensat = {{}}\n\
         secondary_fs = {}\n\n\
         [settings]\n\
         naptime = {naptime}\n\
         allow_remount = false\n\n\
         [dummy_auth]\n\
         entries = [{}]\n",
        quote(&secondary.to_string_lossy()),
        users.join(", ")
    )
}

/// The report's environment lines.
fn about(pjdfstest: &Path, strata: &Path, args: &Args) -> Vec<String> {
    // The first line of a `--version` output that starts with `prefix`.
    let version = |program: &Path, prefix: &str| {
        let out = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    let pjd = version(pjdfstest, "pjdfstest").unwrap_or_else(|| "pjdfstest".to_owned());
    let fo = version(Path::new("fuse-overlayfs"), "fuse-overlayfs");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let strata_options = if args.strata_options.is_empty() {
        String::new()
    } else {
        format!(" with -o {}", args.strata_options)
    };
    let mut about = vec![
        format!("{pjd} ({})", pjdfstest.display()),
        format!("Linux {}", kernel.trim()),
        fo.unwrap_or_else(|| "fuse-overlayfs, version unknown".to_owned()),
        format!("strata-fuse-overlay: {}{strata_options}", strata.display()),
        "layers: one small lower layer, empty upper and work directories, on a loop-mounted \
         ext4 image; tests run in the merged `t/`"
            .to_owned(),
        format!(
            "configuration (`pjdfstest.toml`): features posix_fallocate, rename_ctime, \
             utime_now, utimensat; naptime {} s; secondary fs on the ext4 image; no remounts \
             (EROFS tests skipped); dummy users nobody/nogroup and daemon/daemon",
            args.naptime
        ),
    ];
    if !args.patterns.is_empty() {
        about.push(format!("only tests matching: {}", args.patterns.join(", ")));
    }
    about
}

/// The closing summary on stdout: each filesystem's counts, then strata's unexplained
/// failures with their messages.
fn print_summary(
    runs: &[Run],
    regressions: &[String],
    verdict: &report::Verdict,
    reruns: &BTreeMap<String, Rerun>,
) {
    println!("pjdfstest {PJDFSTEST_VERSION} on the same layers:");
    for run in runs {
        println!("  {:20} {}", run.kind.name(), summary_line(run));
    }
    let (kernel, fo, strata) = (&runs[0].log, &runs[1].log, &runs[2].log);
    println!(
        "  fuse-overlayfs fails {} tests the kernel overlay passes",
        report::regressions(kernel, fo).len()
    );
    println!(
        "  strata-fuse-overlay fails {} tests the kernel overlay passes ({} known)",
        regressions.len(),
        verdict.known.len()
    );
    for test in &verdict.unexplained {
        let said = strata.tests.get(test).map(|o| o.one_line());
        let alone = reruns.get(test).map_or(String::new(), |r| {
            format!(" [passed {} of {} reruns alone]", r.passed, r.runs)
        });
        println!(
            "    {test}{alone}: {}",
            said.as_deref().unwrap_or("did not run")
        );
    }
}

fn summary_line(run: &Run) -> String {
    let counts = match run.log.summary {
        Some(s) => format!(
            "{} passed, {} failed, {} skipped of {}",
            s.passed, s.failed, s.skipped, s.total
        ),
        None => format!("{} tests reported", run.log.tests.len()),
    };
    let late = run
        .incomplete
        .as_deref()
        .map_or(String::new(), |why| format!("; DID NOT FINISH: {why}"));
    format!("{counts} in {:.1} s{late}", run.elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_enables_the_linux_features_and_existing_users() {
        let text = config_text(0.01, Path::new("/s/ext4/secondary"));
        for line in [
            "posix_fallocate = {}",
            "rename_ctime = {}",
            "utime_now = {}",
            "utimensat = {}",
            "secondary_fs = \"/s/ext4/secondary\"",
            "naptime = 0.01",
            "allow_remount = false",
            "entries = [[\"nobody\", \"nogroup\"], [\"daemon\", \"daemon\"]]",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
