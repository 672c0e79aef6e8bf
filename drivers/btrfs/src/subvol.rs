//! Subvolume operations on paths: create, snapshot, read-only flag, and the check that a path
//! is on btrfs at all. Errors carry the operation and the path.
//!
//! Every operation opens what it needs with `O_NOFOLLOW` (a symlink planted in place of a
//! subvolume is refused, not followed) and calls the `sys` module.
//!
//! What it deliberately does not do: decide how to delete a subvolume (see the `remove` module)
//! or where subvolumes live (see the crate docs).

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use strata_driver_api::{DriverError, Result};

use crate::sys;

/// Wraps an errno with the operation and path.
pub(crate) fn errno(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> DriverError {
    let f = DriverError::io(op, path.to_path_buf());
    move |e| f(e.into())
}

/// Opens the directory `path` (not following a symlink) for ioctls.
pub(crate) fn open_dir(path: &Path) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The parent directory of `path`, opened, and `path`'s last component.
pub(crate) fn split(path: &Path) -> std::result::Result<(OwnedFd, &OsStr), Errno> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok((open_dir(parent)?, name))
        }
        _ => Err(Errno::INVAL),
    }
}

/// Whether `meta` (from `lstat`) is the root directory of a subvolume. On btrfs every subvolume
/// root, and nothing else, has inode number 256.
pub fn is_subvolume_root(meta: &Metadata) -> bool {
    meta.is_dir() && meta.ino() == sys::FIRST_FREE_OBJECTID
}

/// Creates the empty subvolume `path` (its parent must exist).
pub fn create(path: &Path) -> Result<()> {
    let (dir, name) = split(path).map_err(errno("open the parent of", path))?;
    sys::subvol_create(dir.as_fd(), name.as_bytes()).map_err(errno("create subvolume", path))
}

/// Creates `dest` as a snapshot of the subvolume `source`: read-only if `read_only`, else
/// writable (even when `source` is read-only). Takes the same time whatever the size of
/// `source`: the snapshot shares every extent and metadata block with it.
pub fn snapshot(source: &Path, dest: &Path, read_only: bool) -> Result<()> {
    let src = open_dir(source).map_err(errno("open subvolume", source))?;
    let (dir, name) = split(dest).map_err(errno("open the parent of", dest))?;
    sys::snap_create(dir.as_fd(), name.as_bytes(), src.as_fd(), read_only).map_err(|e| {
        DriverError::io("snapshot into", dest)(std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("snapshot of {}: {e}", source.display()),
        ))
    })
}

/// Whether the subvolume `path` is read-only.
pub fn is_read_only(path: &Path) -> Result<bool> {
    let fd = open_dir(path).map_err(errno("open subvolume", path))?;
    let flags = sys::subvol_flags(fd.as_fd()).map_err(errno("read the flags of", path))?;
    Ok(flags & sys::SUBVOL_RDONLY != 0)
}

/// Makes the subvolume `path` read-only or writable (the owner of its root directory, or root,
/// may do this). A no-op when it already is.
pub fn set_read_only(path: &Path, read_only: bool) -> Result<()> {
    let fd = open_dir(path).map_err(errno("open subvolume", path))?;
    let flags = sys::subvol_flags(fd.as_fd()).map_err(errno("read the flags of", path))?;
    let wanted = if read_only {
        flags | sys::SUBVOL_RDONLY
    } else {
        flags & !sys::SUBVOL_RDONLY
    };
    if wanted == flags {
        return Ok(());
    }
    let op = if read_only {
        "make read-only"
    } else {
        "make writable"
    };
    sys::set_subvol_flags(fd.as_fd(), wanted).map_err(errno(op, path))
}

/// Refuses (kind `Unsupported`) a store directory that is not on btrfs. `home` need not exist
/// yet: its nearest existing ancestor is checked, so nothing is created on a wrong filesystem.
pub fn require_btrfs(home: &Path) -> Result<()> {
    let existing = home
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statfs(existing).map_err(errno("statfs", existing))?;
    // f_type is a signed or unsigned integer depending on the target; compare as u32 bits.
    if stat.f_type as u32 == sys::SUPER_MAGIC as u32 {
        return Ok(());
    }
    Err(DriverError::Unsupported {
        driver: "btrfs",
        reason: format!(
            "{} is on {}, not btrfs; put the store on a btrfs filesystem, or choose the \
             overlay or vfs driver",
            home.display(),
            strata_driver_vfs::home::fs_name(existing)
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn plain_directories_are_not_subvolume_roots() {
        let t = tempfile::tempdir().unwrap();
        assert!(!is_subvolume_root(&std::fs::metadata(t.path()).unwrap()));
        assert_eq!(split(Path::new("/")).err(), Some(Errno::INVAL));
    }
}
