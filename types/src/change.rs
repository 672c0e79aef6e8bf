//! Filesystem changes of a layer relative to its parents.

use std::path::PathBuf;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New path, or a path whose content or metadata changed (the OCI layer format does not
    /// distinguish the two: both are written as the full entry).
    Modified,
    /// The path was removed: written as a `.wh.<name>` whiteout.
    Deleted,
    /// A directory whose lower contents are all hidden (written as the directory entry plus a
    /// `.wh..wh..opq` marker; its own children appear as separate changes).
    Opaque,
}

/// One change. `path` is relative to the layer root, without a leading `/`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: PathBuf,
    pub kind: ChangeKind,
}
