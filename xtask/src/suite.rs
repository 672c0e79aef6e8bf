//! `cargo xtask test`, the README's test command and what CI runs: formatting, the layering
//! and plugin-protocol checks and lints first (fail fast), then packages, fixtures, a full build, every test of the workspace as root,
//! and proof that the privileged tier ran (marker files written by
//! `strata_tests::require_privileged`), pjdfstest over the FUSE overlay next to the kernel
//! overlay and fuse-overlayfs (`pjdfstest`), then the VM tier (`vmtier`: what this kernel
//! cannot run, in a qemu guest).
//!
//! It ends with the plain closing line `summary: N passed, N failed, N skipped` summed over
//! every test binary. It does not select or filter tests: the suite runs whole.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::process::{self, cargo, describe};
use crate::{fixtures, setup, Workspace};

/// The fewest privileged markers a passing run must leave. Raise it as privileged tests land,
/// so that a run where the privileged tier silently shrinks fails.
const MIN_PRIVILEGED_MARKERS: usize = 200;

/// Runs the whole pipeline; fails on the first failing step.
pub fn run(ws: &Workspace) -> Result<()> {
    let started = Instant::now();
    if !process::is_root()? {
        bail!("`cargo xtask test` runs the privileged test tier and must run as root (sudo -E cargo xtask test)");
    }
    // Packages first: clippy builds the whole workspace, which needs libdevmapper and libclang.
    setup::ensure_packages(setup::TEST_PACKAGES)?;
    setup::prepare_host()?;
    setup::prepare_test_host()?;
    process::run(cargo(&ws.root).args(["fmt", "--all", "--check"]))
        .context("code is not formatted: run `cargo fmt --all`")?;
    crate::layers::check(&ws.root)?;
    crate::protocol::check(&ws.root)?;
    process::run(cargo(&ws.root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
    .context("clippy found problems")?;
    let fixtures_dir = ws.fixtures_dir();
    fixtures::build(ws, &fixtures_dir, fixtures::Selection::All)?;
    process::run(cargo(&ws.root).args(["build", "--workspace", "--all-targets"]))?;

    let markers = ws.target.join("privileged-markers");
    if markers.exists() {
        fs::remove_dir_all(&markers)
            .with_context(|| format!("cannot clear {}", markers.display()))?;
    }
    fs::create_dir_all(&markers).with_context(|| format!("cannot create {}", markers.display()))?;

    let (mut totals, tests_ok) = cargo_test(ws, &fixtures_dir, &markers)?;
    let marker_count = fs::read_dir(&markers)
        .with_context(|| format!("cannot read {}", markers.display()))?
        .count();
    eprintln!(
        "xtask: privileged tier: {marker_count} markers in {} (at least {MIN_PRIVILEGED_MARKERS} required); \
         finished in {}s",
        markers.display(),
        started.elapsed().as_secs()
    );
    // POSIX conformance of the FUSE overlay next to the kernel overlay and fuse-overlayfs.
    let posix = crate::pjdfstest::run(ws, crate::pjdfstest::Args::for_suite(ws));
    if let Err(e) = &posix {
        eprintln!("xtask: pjdfstest: {e:#}");
    }
    // The VM tier runs even when the host tier failed, so one run shows both.
    let vm = crate::vmtier::run(ws, &fixtures_dir);
    if let Ok(t) = &vm {
        totals.add(*t);
    }
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    vm?;
    posix.context("pjdfstest: strata-fuse-overlay fails POSIX tests the kernel overlay passes")?;
    if !tests_ok {
        bail!(
            "tests failed ({} failed); see the output above",
            totals.failed
        );
    }
    if totals.passed == 0 {
        bail!("cargo test ran no test at all");
    }
    if marker_count < MIN_PRIVILEGED_MARKERS {
        bail!(
            "the privileged tier did not run: {marker_count} markers in {}, expected at least \
             {MIN_PRIVILEGED_MARKERS}; privileged tests must call strata_tests::require_privileged",
            markers.display()
        );
    }
    Ok(())
}

/// Runs `cargo test --workspace --no-fail-fast`, echoing its stdout while summing the
/// `test result:` lines. Returns the totals and whether cargo exited 0.
fn cargo_test(ws: &Workspace, fixtures_dir: &Path, markers: &Path) -> Result<(Totals, bool)> {
    let mut cmd = cargo(&ws.root);
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .env("STRATA_FIXTURES", fixtures_dir)
        .env("STRATA_PRIVILEGED_MARKERS", markers)
        .env("STRATA_LEAVE_OUT", crate::vmtier::LEFT_OUT)
        .env_remove("STRATA_SKIP_PRIVILEGED")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let line = describe(&cmd);
    eprintln!(
        "$ STRATA_FIXTURES={} STRATA_PRIVILEGED_MARKERS={} {line}",
        fixtures_dir.display(),
        markers.display()
    );
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let stdout = child.stdout.take().context("child stdout is piped")?;
    let mut totals = Totals::default();
    let mut echo = std::io::stdout().lock();
    for raw in BufReader::new(stdout).split(b'\n') {
        let raw = raw.context("cannot read cargo test output")?;
        let text = String::from_utf8_lossy(&raw);
        writeln!(echo, "{text}").context("cannot write to stdout")?;
        if let Some(t) = Totals::parse(&text) {
            totals.add(t);
        }
    }
    drop(echo);
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{line}`"))?;
    Ok((totals, status.success()))
}

/// Test counts from libtest's closing lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) ignored: u64,
}

impl Totals {
    /// Parses `test result: ok. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; ...`.
    pub(crate) fn parse(line: &str) -> Option<Totals> {
        let rest = line.trim().strip_prefix("test result: ")?;
        let (_, counts) = rest.split_once(". ")?;
        let mut totals = Totals::default();
        for part in counts.split("; ") {
            let Some((n, what)) = part.split_once(' ') else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => totals.passed = n,
                "failed" => totals.failed = n,
                "ignored" => totals.ignored = n,
                _ => {}
            }
        }
        Some(totals)
    }

    pub(crate) fn add(&mut self, other: Totals) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_closing_lines() {
        let ok = "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.31s";
        assert_eq!(
            Totals::parse(ok),
            Some(Totals {
                passed: 12,
                failed: 0,
                ignored: 1
            })
        );
        let failed = "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s";
        assert_eq!(
            Totals::parse(failed),
            Some(Totals {
                passed: 3,
                failed: 2,
                ignored: 0
            })
        );
    }

    #[test]
    fn other_lines_are_not_results() {
        assert_eq!(Totals::parse("test store::tests::open ... ok"), None);
        assert_eq!(Totals::parse("running 12 tests"), None);
    }

    #[test]
    fn totals_add_up_across_binaries() {
        let mut t = Totals::default();
        t.add(Totals {
            passed: 2,
            failed: 1,
            ignored: 0,
        });
        t.add(Totals {
            passed: 5,
            failed: 0,
            ignored: 3,
        });
        assert_eq!(
            t,
            Totals {
                passed: 7,
                failed: 1,
                ignored: 3
            }
        );
    }
}
