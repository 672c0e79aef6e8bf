//! [`MountGuard`]: mounts that are undone when the guard is dropped, so a failing caller (or a
//! panicking test) never leaves a mount behind.

use std::path::{Path, PathBuf};

use strata_types::Mount;

use crate::{mount_all, unmount, unmount_detach, MountError};

/// Owns the mounts it made at one target. Dropping it unmounts them (topmost first); a mount
/// that is still busy at that point is detached lazily and a warning is logged. Call
/// [`MountGuard::unmount`] to unmount explicitly and see errors.
#[derive(Debug)]
#[must_use = "dropping the guard unmounts immediately"]
pub struct MountGuard {
    target: PathBuf,
    count: usize,
}

impl MountGuard {
    /// Performs `mounts` at `target` (see [`mount_all`]).
    pub fn mount(mounts: &[Mount], target: &Path) -> Result<MountGuard, MountError> {
        mount_all(mounts, target)?;
        Ok(MountGuard {
            target: target.to_path_buf(),
            count: mounts.len(),
        })
    }

    /// Where the mounts are.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, without lazy detaching: a busy mount is an error (and stays mounted, so
    /// the guard's drop detaches it).
    pub fn unmount(mut self) -> Result<(), MountError> {
        while self.count > 0 {
            unmount(&self.target)?;
            self.count -= 1;
        }
        Ok(())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        for _ in 0..self.count {
            if let Err(e) = unmount(&self.target) {
                tracing::warn!(target = %self.target.display(), error = %e, "unmount failed; detaching lazily");
                if let Err(e) = unmount_detach(&self.target) {
                    tracing::warn!(target = %self.target.display(), error = %e, "lazy unmount failed");
                }
            }
        }
    }
}
