//! Mounts of a filesystem on a block device (a devicemapper thin device, a loop device), for
//! drivers that keep one filesystem per layer. Legacy `mount(2)`, which takes the filesystem's
//! own options as one string: the block filesystems here (ext4, xfs) need no more than a few.
//!
//! What it does not do: activate devices (the driver does, tied to its crash-recovery
//! records), make filesystems, or choose the target.

use std::path::Path;

use rustix::mount::MountFlags;

use crate::MountError;

/// Mounts the `fs_type` filesystem on `device` at `target`, read-only if asked, with the
/// filesystem options `data` (comma-separated, may be empty).
pub fn mount_block(
    device: &Path,
    fs_type: &str,
    read_only: bool,
    data: &str,
    target: &Path,
) -> Result<(), MountError> {
    let flags = if read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let fail = |errno| MountError::Mount {
        description: format!(
            "{fs_type} on {}{}",
            device.display(),
            if read_only { " (read-only)" } else { "" }
        ),
        target: target.into(),
        step: "mount(2)".into(),
        errno,
        log: Vec::new(),
    };
    let data = std::ffi::CString::new(data).map_err(|_| MountError::InvalidSpec {
        target: target.into(),
        reason: "a NUL byte in the mount options".into(),
    })?;
    rustix::mount::mount(device, target, fs_type, flags, data.as_c_str()).map_err(fail)?;
    tracing::debug!(target = %target.display(), device = %device.display(), fs_type, "mounted block device");
    Ok(())
}
