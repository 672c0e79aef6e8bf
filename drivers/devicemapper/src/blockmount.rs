//! Making and mounting the filesystem of a thin device.
//!
//! The mount itself is `strata_mount::mount_block` (only the mount crate mounts). The driver
//! keeps every committed layer's filesystem mounted in its home (see the crate docs), and its
//! `mounts()` answers are plain bind mounts of those directories.
//!
//! Mount options: ext4 read-write mounts get `noinit_itable` (the base filesystem is made
//! with lazily initialised inode tables; without it every snapshot's first read-write mount
//! would zero them again and provision pool blocks for it); xfs mounts get `nouuid` (every
//! snapshot carries the base's UUID, which xfs otherwise refuses to mount twice). No
//! `nodev`/`nosuid`: views are bind mounts of these mounts and inherit their flags, and
//! container images need device nodes and set-id programs.
//!
//! What it does not do: choose mount points or keep any record of mounts.

use std::path::Path;

use crate::error::{Error, Result};
use crate::options::FsType;
use crate::program::run;

/// Makes the base filesystem on `node` (a fresh thin device: discards are pointless and
/// would only slow mkfs down).
pub fn mkfs(node: &Path, fs: FsType) -> Result<()> {
    let node = node.to_string_lossy();
    match fs {
        FsType::Ext4 => run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
                &node,
            ],
        ),
        FsType::Xfs => run("mkfs.xfs", &["-q", "-f", "-K", &node]),
    }
    .map(drop)
}

/// Mount data for `fs` (see the module docs).
pub fn mount_data(fs: FsType, read_only: bool) -> &'static std::ffi::CStr {
    match (fs, read_only) {
        (FsType::Ext4, false) => c"noinit_itable",
        (FsType::Ext4, true) => c"",
        (FsType::Xfs, _) => c"nouuid",
    }
}

/// Mounts the filesystem on block device `node` at `target`.
pub fn mount_device(node: &Path, fs: FsType, read_only: bool, target: &Path) -> Result<()> {
    let data = mount_data(fs, read_only).to_str().unwrap_or_default();
    strata_mount::mount_block(node, fs.as_str(), read_only, data, target).map_err(|e| Error::Io {
        op: "mount",
        path: target.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// How often an unmount that finds the filesystem busy is retried, and how long apart: a
/// process forked elsewhere in this program (another thread running `losetup`) holds copies
/// of every open file descriptor until it execs, so a just-closed file can keep a mount busy
/// for a moment.
const UNMOUNT_TRIES: u32 = 20;
const UNMOUNT_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// Unmounts `target` (not mounted is fine). A mount that stays busy is an error of kind Busy.
pub fn unmount(target: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match strata_mount::unmount(target) {
            Ok(()) => return Ok(()),
            Err(strata_mount::MountError::Unmount { errno, .. })
                if errno == rustix::io::Errno::BUSY =>
            {
                tries += 1;
                if tries == UNMOUNT_TRIES {
                    return Err(Error::Busy {
                        what: target.display().to_string(),
                        detail: "a process still uses files under it".into(),
                    });
                }
                std::thread::sleep(UNMOUNT_PAUSE);
            }
            Err(other) => {
                return Err(Error::Io {
                    op: "unmount",
                    path: target.to_path_buf(),
                    source: std::io::Error::other(other.to_string()),
                })
            }
        }
    }
}

/// Detaches `target` lazily: gone from the tree now, released when its last user leaves.
pub fn unmount_lazily(target: &Path) -> Result<()> {
    strata_mount::unmount_detach(target).map_err(|e| Error::Io {
        op: "detach",
        path: target.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Whether something is mounted on `target`.
pub fn is_mounted(target: &Path) -> Result<bool> {
    strata_mount::is_mounted(target).map_err(|e| Error::Io {
        op: "check the mount at",
        path: target.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_mount_with_the_options_their_filesystem_needs() {
        assert_eq!(mount_data(FsType::Ext4, false), c"noinit_itable");
        assert_eq!(mount_data(FsType::Ext4, true), c"");
        assert_eq!(mount_data(FsType::Xfs, true), c"nouuid");
        assert_eq!(mount_data(FsType::Xfs, false), c"nouuid");
    }
}
