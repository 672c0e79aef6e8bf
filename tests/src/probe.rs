//! The syscall probe image: `tests/fixtures/syscall-probe.c`, built static with the host's C
//! compiler into a one-layer OCI layout (`/probe`), so a test can see what a container's
//! seccomp filter allows (`/probe add_key userfaultfd` prints `add_key errno=38`, ...).

use std::path::Path;
use std::process::Command;

use crate::{LayerSpec, Layout, LayoutBuilder, TarBuilder};

/// Builds the probe into `dir` (an OCI layout, tag `latest`); panics with what to install
/// when the compiler or static libc is missing.
pub fn probe_layout(dir: &Path) -> Layout {
    let src = crate::cli::workspace_dir().join("tests/fixtures/syscall-probe.c");
    std::fs::create_dir_all(dir).expect("create the probe's directory");
    let bin = dir.join("probe.bin");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc (install gcc and libc6-dev): {e}"));
    assert!(
        out.status.success(),
        "cc -static {}: {} (install gcc and libc6-dev)",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = std::fs::read(&bin).expect("read the probe");
    let mut tar = TarBuilder::new();
    tar.file_mode("probe", &exe, 0o755);
    LayoutBuilder::new()
        .layer(LayerSpec::tar(tar.finish()))
        .reference(Some("latest"))
        .write(&dir.join("layout"))
        .expect("write the probe layout")
}

/// Parses the probe's output into (syscall, result) pairs: `ok` or `errno=N`.
pub fn results(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, r)| (n.to_owned(), r.to_owned()))
        .collect()
}
