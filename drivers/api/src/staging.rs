//! Staging areas: where a new layer's payload is built before it is committed.

use std::fs::File;
use std::path::PathBuf;

/// How the layer pipeline must represent OCI whiteouts while extracting into a staging area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutFormat {
    /// Overlay kernel format, as root: a whiteout is a 0:0 character device, an opaque
    /// directory has `trusted.overlay.opaque=y`.
    OverlayTrusted,
    /// Overlay format inside a user namespace: whiteouts are 0:0 character devices where
    /// allowed (else zero-size files with `user.overlay.whiteout`), opaque directories have
    /// `user.overlay.opaque=y`.
    OverlayUser,
    /// Apply in place: a whiteout deletes the path from the tree, an opaque marker empties the
    /// directory of everything this layer did not add. Used by full-copy drivers (vfs).
    Apply,
}

/// A staging area handed out by [`crate::Driver::stage`]. It holds an exclusive `flock` on a
/// lock file for as long as it lives, so that cleanup never removes a staging area that a live
/// process is filling. Dropping it without committing leaves debris that
/// [`crate::Driver::cleanup_staging`] removes.
#[derive(Debug)]
pub struct Staging {
    /// The whole staging area (renamed into place on commit).
    pub area: PathBuf,
    /// The directory to extract the layer tree into (inside `area`).
    pub root: PathBuf,
    /// The whiteout format the pipeline must write.
    pub whiteouts: WhiteoutFormat,
    /// The held lock; released when dropped or on process death.
    pub lock: File,
}
