//! How whiteouts (deleted paths) and opaque directories are represented on disk.

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
