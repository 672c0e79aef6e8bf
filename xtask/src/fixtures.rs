//! Building the fixture images by running `tests/fixtures/make-images.sh` (root needed).
//!
//! The script itself decides whether its output is up to date (a hash of the scripts and tool
//! versions in `OUTDIR/.done`); this module only picks the directory and the image selection.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::run;
use crate::Workspace;

/// Which images to build.
#[derive(Debug, Clone, Copy)]
pub enum Selection {
    /// Every fixture image and reference tree (what the tests use).
    All,
    /// Only `oci/busybox` and `unpacked/busybox` (what the demo uses; needs only umoci and
    /// busybox-static).
    Busybox,
}

/// Builds the `selection` of fixture images into `out`.
pub fn build(ws: &Workspace, out: &Path, selection: Selection) -> Result<()> {
    let script = ws.root.join("tests/fixtures/make-images.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(out);
    if let Selection::Busybox = selection {
        cmd.args(["--only", "busybox"]);
    }
    run(&mut cmd).with_context(|| format!("cannot build the fixture images into {}", out.display()))
}
