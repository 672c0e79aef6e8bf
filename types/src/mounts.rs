//! Mount descriptions. A driver returns these; the `mount` crate performs them at a target
//! chosen by the caller.

use std::path::PathBuf;

/// One filesystem mount, described as plain data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mount {
    /// A bind mount of `source`.
    Bind { source: PathBuf, read_only: bool },
    /// A kernel overlay filesystem. `lower` is ordered **topmost first** (as `lowerdir=` is) and
    /// is never empty. Without `upper`/`work` the mount is read-only. `options` carries extra
    /// overlay options verbatim (`userxattr`, `metacopy=off`, `volatile`...). The mount crate
    /// passes every lower directory separately (`lowerdir+`), so chains deeper than the 4 KiB
    /// legacy option page work.
    Overlay {
        lower: Vec<PathBuf>,
        upper: Option<PathBuf>,
        work: Option<PathBuf>,
        options: Vec<String>,
    },
    /// Strata's FUSE overlay filesystem (`strata-fuse-overlay`) over the same layer
    /// directories as `Overlay` (same order, same whiteout and opaque formats). `options` are
    /// the filesystem's own (`userxattr`, `squash_to_root`, `passthrough=off`, ...); the mount
    /// crate adds the layers and, for a container with its own user namespace, the id maps,
    /// which this filesystem applies itself.
    FuseOverlay {
        lower: Vec<PathBuf>,
        upper: Option<PathBuf>,
        work: Option<PathBuf>,
        options: Vec<String>,
    },
}

impl Mount {
    /// Whether the mount is read-only.
    pub fn read_only(&self) -> bool {
        match self {
            Mount::Bind { read_only, .. } => *read_only,
            Mount::Overlay { upper, .. } | Mount::FuseOverlay { upper, .. } => upper.is_none(),
        }
    }
}
