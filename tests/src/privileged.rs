//! The privileged-tier gate.

use std::path::PathBuf;

/// Where markers go: `$STRATA_PRIVILEGED_MARKERS`, else `$CARGO_TARGET_DIR` or `./target`
/// relative to the workspace, under `privileged-markers/`.
pub fn markers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STRATA_PRIVILEGED_MARKERS") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("privileged-markers")
}

/// Gate for a privileged test named `test` that needs `what` (e.g. "kernel overlay mounts").
/// Returns `true` when the test must run, `false` when the run explicitly excluded the
/// privileged tier. Panics (fails the test) when it must run but cannot.
pub fn require_privileged(test: &str, what: &str) -> bool {
    if std::env::var("STRATA_SKIP_PRIVILEGED").is_ok_and(|v| v == "1") {
        eprintln!("privileged test {test} left out (STRATA_SKIP_PRIVILEGED=1)");
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        panic!(
            "privileged test {test} needs root for {what}; run the test suite as root \
             (see README), or set STRATA_SKIP_PRIVILEGED=1 to leave the privileged tier out"
        );
    }
    let dir = markers_dir();
    let _ = std::fs::create_dir_all(&dir);
    let name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let _ = std::fs::write(dir.join(name), what);
    true
}
