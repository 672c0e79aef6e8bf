//! Metadata-only copies in an upper directory: how the FUSE overlay (`strata-fuse-overlay`)
//! records a lower file whose owner, mode, times or xattrs changed but whose data did not.
//!
//! Such a file is an empty regular file in the upper directory with the new metadata and the
//! xattr `trusted.strata.metacopy` (`user.strata.metacopy` in a user namespace) holding the
//! absolute path of the lower file with its data (layers never change, and the path stays
//! right when the upper file is renamed). [`complete`] gives it its data and drops the mark;
//! whoever reads the upper directory as a layer diff (the drivers' `changes`) completes every
//! such file first ([`complete_all`]), so exported diffs and commits are always whole files.
//! Completing takes an exclusive `flock` on the file and re-reads the mark under it, so the
//! FUSE server (completing on a write) and a diff never both copy.
//!
//! The kernel's own metacopy format is not used: Strata mounts kernel overlays with
//! `metacopy=off`, and the kernel refuses such files then. A kernel overlay mount of an upper
//! directory that still holds marked files (a FUSE server killed before a diff) shows them
//! empty until a diff or the next FUSE mount completes them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, Timespec, Timestamps, CWD};
use rustix::io::Errno;

/// The mark, root's and user-namespace form.
pub const XATTRS: [&str; 2] = ["trusted.strata.metacopy", "user.strata.metacopy"];

/// The mark's name for a store (`userxattr`: in a user namespace).
pub fn xattr(userxattr: bool) -> &'static str {
    XATTRS[usize::from(userxattr)]
}

/// The data file a marked file points at, if `path` is marked.
pub fn source(path: &Path) -> Option<PathBuf> {
    let mut buf = vec![0u8; 4096];
    XATTRS.iter().find_map(|name| {
        let n = rustix::fs::lgetxattr(path, *name, &mut buf[..]).ok()?;
        Some(PathBuf::from(OsStr::from_bytes(&buf[..n])))
    })
}

/// Gives the marked file at `path` its data and removes the mark. Returns whether it was
/// marked. Times are kept (writing the data would change them).
pub fn complete(path: &Path) -> Result<bool, Errno> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::flock(&fd, FlockOperation::LockExclusive)?;
    let Some(src_path) = source(path) else {
        return Ok(false);
    };
    let st = rustix::fs::fstat(&fd)?;
    let src = rustix::fs::open(
        &src_path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    copy_data(&src, &fd)?;
    #[allow(clippy::unnecessary_cast)]
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(&fd, &times)?;
    for name in XATTRS {
        match rustix::fs::fremovexattr(&fd, name) {
            Ok(()) | Err(Errno::NODATA) | Err(Errno::PERM) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    rustix::fs::fsync(&fd)?;
    Ok(true)
}

/// Completes every marked file below `upper`. Returns how many there were.
pub fn complete_all(upper: &Path) -> Result<usize, Errno> {
    let mut n = 0;
    let mut stack = vec![upper.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let p = e.path();
                let empty = rustix::fs::statat(CWD, &p, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_size == 0);
                if empty && source(&p).is_some() && complete(&p)? {
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// Copies file data: a reflink where the filesystem shares extents, else `copy_file_range`,
/// else read/write. `dst` is written from its current offset (a new or empty file: 0).
pub fn copy_data(src: &impl std::os::fd::AsFd, dst: &impl std::os::fd::AsFd) -> Result<(), Errno> {
    if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    loop {
        match rustix::fs::copy_file_range(src, None, dst, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => break,
            Err(e) => return Err(e),
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut off = rustix::fs::seek(dst, rustix::fs::SeekFrom::Current(0))?;
    loop {
        let n = rustix::io::pread(src, &mut buf, off)?;
        if n == 0 {
            return Ok(());
        }
        let mut w = 0;
        while w < n {
            w += rustix::io::pwrite(dst, &buf[w..n], off + w as u64)?;
        }
        off += n as u64;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn marked_files_get_their_data_and_keep_their_metadata() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower-data");
        std::fs::write(&lower, "the data").unwrap();
        let up = t.path().join("up");
        std::fs::create_dir_all(up.join("d")).unwrap();
        let f = up.join("d/f");
        std::fs::write(&f, "").unwrap();
        let when = Timestamps {
            last_access: Timespec {
                tv_sec: 1000,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: 2000,
                tv_nsec: 5,
            },
        };
        rustix::fs::utimensat(CWD, &f, &when, AtFlags::empty()).unwrap();
        // user.* works unprivileged on the test's filesystem (tmpfs/ext4).
        if rustix::fs::lsetxattr(
            &f,
            xattr(true),
            lower.as_os_str().as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .is_err()
        {
            return; // a filesystem without user xattrs: nothing to test here
        }
        assert_eq!(source(&f), Some(lower.clone()));
        assert_eq!(complete_all(&up).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "the data");
        assert_eq!(source(&f), None);
        let st = rustix::fs::stat(&f).unwrap();
        #[allow(clippy::unnecessary_cast)]
        let mtime = (st.st_mtime as i64, st.st_mtime_nsec as i64);
        assert_eq!(mtime, (2000, 5));
        assert_eq!(complete_all(&up).unwrap(), 0, "nothing left to do");
        assert!(!complete(&f).unwrap());
    }
}
