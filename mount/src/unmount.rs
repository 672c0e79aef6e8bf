//! Unmounting and mount checks.
//!
//! Decisions:
//! - [`unmount`] is a plain `umount2(target, UMOUNT_NOFOLLOW)`: a busy mount is reported as
//!   `Busy` rather than hidden by a lazy detach, so a caller never believes a view is gone while
//!   a process still works in it. [`unmount_detach`] exists for callers that decided to force it.
//! - Unmounting a path that is not a mount point (`EINVAL`) or does not exist (`ENOENT`) is a
//!   success: the postcondition "nothing is mounted there" holds, and callers such as `rm` after
//!   a crash can unmount idempotently.
//! - One call removes one mount: if several are stacked on the target, the topmost goes.
//! - [`is_mounted`] asks the kernel (`statx` `STATX_ATTR_MOUNT_ROOT`) whether the path is the
//!   root of a mount; nothing is recorded on disk.

use std::path::Path;

use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::UnmountFlags;

use crate::{mountinfo, MountError};

/// Unmounts the topmost mount at `target` (see the module docs for the decisions).
pub fn unmount(target: &Path) -> Result<(), MountError> {
    unmount_with(target, UnmountFlags::NOFOLLOW)
}

/// Lazily detaches the topmost mount at `target` (`MNT_DETACH`): it disappears from the tree
/// now and is freed when the last user leaves. Not-mounted is a success, as for [`unmount`].
pub fn unmount_detach(target: &Path) -> Result<(), MountError> {
    unmount_with(target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)
}

fn unmount_with(target: &Path, flags: UnmountFlags) -> Result<(), MountError> {
    match rustix::mount::unmount(target, flags) {
        Ok(()) => {
            tracing::debug!(target = %target.display(), "unmounted");
            Ok(())
        }
        Err(Errno::NOENT) => Ok(()),
        // EINVAL: not a mount point. Confirm, so that a future kernel using EINVAL for
        // something else is not silently ignored.
        Err(Errno::INVAL) if !is_mounted(target)? => Ok(()),
        Err(errno) => Err(MountError::Unmount {
            target: target.into(),
            errno,
        }),
    }
}

/// Whether `target` is the root of a mount (something is mounted on it). A missing path is not
/// mounted. Symlinks are not followed.
pub fn is_mounted(target: &Path) -> Result<bool, MountError> {
    let st = match statx(
        CWD,
        target,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        // A FUSE mount whose server died: mounted, and unusable until unmounted.
        Err(Errno::NOTCONN) => return Ok(true),
        Err(e) => return Err(MountError::io("statx", target)(e.into())),
    };
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    // Kernels before 5.8 do not report the attribute: look the path up in the mount table.
    let canonical = std::fs::canonicalize(target).map_err(MountError::io("resolve", target))?;
    Ok(mountinfo::read()?
        .iter()
        .any(|m| m.mount_point == canonical))
}
