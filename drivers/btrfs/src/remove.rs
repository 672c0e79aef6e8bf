//! Deleting a subvolume, as root or not, read-only or not.
//!
//! 1. `BTRFS_IOC_SNAP_DESTROY_V2` on the parent directory. The caller waits for no data to be
//!    freed (the kernel's cleaner thread does that later), so this takes the same short time
//!    for any size. Root may delete any subvolume this way, read-only ones included.
//! 2. If that is refused with `EACCES` or `EROFS`: a non-root caller needs write and search
//!    permission on the subvolume's root directory, which a read-only subvolume never grants.
//!    Clear the read-only flag (its owner may), give the owner `rwx` on the root, retry.
//! 3. If it is refused with `EPERM` (a non-root user on a filesystem mounted without
//!    `user_subvol_rm_allowed`), or the subvolume holds another subvolume (`ENOTEMPTY`): make
//!    it writable as in step 2, delete the contents file by file, then `rmdir` the empty
//!    subvolume, which Linux (4.18 and later) allows anyone who may remove the directory.
//!    Slow: proportional to the number of files. If this fails too, the error names the mount
//!    option that makes step 1 work, and what is left is debris that staging cleanup retries.
//!
//! Callers pass paths that are already out of the key namespace (staging areas, retired keys:
//! see `area`), so a deletion that stops half way never shows a half-deleted key.
//! Plain directories (debris that is not a subvolume) are removed as trees.
//!
//! What it deliberately does not do: wait for the space to be freed, or check for mounts (the
//! driver does that before it removes a key).

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::io::Errno;
use strata_driver_api::{DriverError, Result};
use strata_driver_vfs::area::remove_tree;

use crate::{subvol, sys};

const MOUNT_OPTION_HINT: &str = "a non-root user can delete whole btrfs subvolumes only where \
     the filesystem is mounted with user_subvol_rm_allowed";

/// Deletes the subvolume (or plain directory tree) at `path`. A missing path is fine.
pub fn delete(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DriverError::io("stat", path)(e)),
    };
    if !subvol::is_subvolume_root(&meta) {
        return remove_tree(path);
    }
    let refused = match destroy(path) {
        Ok(()) => return Ok(()),
        Err(e @ (Errno::PERM | Errno::ACCESS | Errno::ROFS | Errno::NOTEMPTY)) => e,
        Err(e) => return Err(subvol::errno("delete subvolume", path)(e)),
    };
    // Steps 2 and 3 both need a writable subvolume whose root its owner may write.
    subvol::set_read_only(path, false).map_err(|e| with_hint(path, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o700 != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700))
            .map_err(|e| with_hint(path, DriverError::io("chmod", path)(e)))?;
    }
    if matches!(refused, Errno::ACCESS | Errno::ROFS) {
        match destroy(path) {
            Ok(()) => return Ok(()),
            Err(Errno::PERM | Errno::NOTEMPTY) => {}
            Err(e) => return Err(subvol::errno("delete subvolume", path)(e)),
        }
    }
    by_contents(path)
}

fn destroy(path: &Path) -> std::result::Result<(), Errno> {
    let (dir, name) = subvol::split(path)?;
    sys::snap_destroy(dir.as_fd(), name.as_bytes())
}

/// Step 3 of the module docs.
fn by_contents(path: &Path) -> Result<()> {
    tracing::warn!(
        path = %path.display(),
        "deleting a subvolume file by file; {MOUNT_OPTION_HINT}, which makes this one quick call"
    );
    remove_tree(path).map_err(|e| with_hint(path, e))
}

/// Adds the mount-option hint to a deletion failure, keeping its kind.
fn with_hint(path: &Path, e: DriverError) -> DriverError {
    let kind = match &e {
        DriverError::Io { source, .. } => source.kind(),
        _ => ErrorKind::Other,
    };
    DriverError::io("delete subvolume", path)(std::io::Error::new(
        kind,
        format!("{e} ({MOUNT_OPTION_HINT})"),
    ))
}
