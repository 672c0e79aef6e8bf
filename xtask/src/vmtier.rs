//! The VM tier of `cargo xtask test`: the tests this host's kernel cannot run (pure cgroup v2,
//! device-mapper), plus the overlay conformance suite on Debian 12's stock kernel (6.1, which
//! lacks `lowerdir+`, so the legacy mount path is proven there), run inside one throwaway guest
//! (see `vm`). The host tier leaves those tests out explicitly (`STRATA_LEAVE_OUT`); here they
//! must run: their results are read from the guest's console, and their privileged markers come
//! back through a shared directory and are counted.
//!
//! It does not build anything: the host tier's `cargo build --workspace --all-targets` did.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::process::cargo;
use crate::suite::Totals;
use crate::vm::GuestCommand;
use crate::Workspace;

/// What the host tier leaves out because this tier runs it.
pub const LEFT_OUT: &str = "cgroup2,devicemapper";

/// (package, test target, libtest filters) run in the guest.
const SUITES: &[(&str, &str, &[&str])] = &[
    ("strata-driver-overlay", "conformance", &[]),
    ("strata-driver-devicemapper", "conformance", &[]),
    ("strata-driver-devicemapper", "devices", &[]),
    ("strata-driver-devicemapper", "crash", &[]),
    ("strata-tests", "run_devicemapper", &[]),
    ("strata-tests", "cgroup2", &[]),
    ("strata-tests", "rootless", &["cgroup2"]),
];

/// The fewest markers the guest must leave (every test above is privileged).
const MIN_MARKERS: usize = 35;

/// Runs the tier; returns the summed test counts. Fails when the guest's tests fail, the guest
/// reports no status, or too few markers came back.
pub fn run(ws: &Workspace, fixtures_dir: &Path) -> Result<Totals> {
    let markers = ws.target.join("privileged-markers-vm");
    if markers.exists() {
        std::fs::remove_dir_all(&markers)
            .with_context(|| format!("cannot clear {}", markers.display()))?;
    }
    std::fs::create_dir_all(&markers)
        .with_context(|| format!("cannot create {}", markers.display()))?;
    let mut script = String::from("rc=0\n");
    for (package, test, filters) in SUITES {
        let bin = test_binary(ws, package, test)?;
        script.push_str(&format!(
            "echo \"== {package} --test {test} {}\"\n{} {} || rc=1\n",
            filters.join(" "),
            bin.display(),
            filters.join(" ")
        ));
    }
    script.push_str("exit $rc\n");
    let strata = ws.target.join("debug").join("strata");
    eprintln!(
        "xtask: VM tier: {} test binaries in one guest (Debian's stock kernel, cgroup v2)",
        SUITES.len()
    );
    let mut totals = Totals::default();
    let mut guest = GuestCommand::new(["sh", "-c", &script]);
    // The guest has its own /tmp and /run over the host root's: a workspace there (a CI clone
    // in /tmp, say) is shared into the guest at the same path, read-write.
    if [Path::new("/tmp"), Path::new("/run")]
        .iter()
        .any(|p| ws.root.starts_with(p))
    {
        guest = guest.share_rw(&ws.root);
    }
    let exit = guest
        .cwd(&ws.root)
        .env("STRATA_FIXTURES", fixtures_dir.display().to_string())
        .env("STRATA_PRIVILEGED_MARKERS", markers.display().to_string())
        .env("STRATA_BIN", strata.display().to_string())
        .env("RUST_BACKTRACE", "1")
        .share_rw(&markers)
        .run(ws, &mut |line| {
            println!("{line}");
            if let Some(t) = Totals::parse(line) {
                totals.add(t);
            }
        })?;
    let marker_count = std::fs::read_dir(&markers)
        .with_context(|| format!("cannot read {}", markers.display()))?
        .count();
    eprintln!(
        "xtask: VM tier: {} passed, {} failed; {marker_count} markers (at least {MIN_MARKERS} \
         required); guest ran {:.0}s of {:.0}s",
        totals.passed,
        totals.failed,
        exit.command.as_secs_f64(),
        exit.total.as_secs_f64()
    );
    if !exit.success() || totals.failed > 0 {
        bail!(
            "the VM tier failed ({} failed, guest exit {}); see the output above",
            totals.failed,
            exit.code
        );
    }
    if marker_count < MIN_MARKERS {
        bail!(
            "the VM tier did not run its privileged tests: {marker_count} markers in {}",
            markers.display()
        );
    }
    Ok(totals)
}

/// The executable of `package`'s test target `test`, as cargo reports it (already built).
fn test_binary(ws: &Workspace, package: &str, test: &str) -> Result<PathBuf> {
    let out = cargo(&ws.root)
        .args(["test", "--no-run", "-p", package, "--test", test])
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo test --no-run")?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("cargo test --no-run -p {package} --test {test} failed:\n{text}");
    }
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Executable "))
        .find_map(|l| {
            let (_, path) = l.split_once(" (")?;
            Some(ws.root.join(path.strip_suffix(')')?))
        })
        .with_context(|| format!("cargo did not name the executable of {package} --test {test}"))
}
