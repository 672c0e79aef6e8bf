//! Metadata-only copies in an upper directory: how the FUSE overlay (`strata-fuse-overlay`)
//! records a lower file whose owner, mode, times or xattrs changed but whose data did not.
//!
//! Such a file is an empty regular file in the upper directory with the new metadata and the
//! xattr `trusted.strata.metacopy` (`user.strata.metacopy` in a user namespace) holding the
//! absolute path of the lower file with its data (layers never change, and the path stays
//! right when the upper file is renamed). [`complete`] gives it its data and drops the mark;
//! whoever reads the upper directory as a layer diff (the drivers' `changes`) completes every
//! such file first ([`complete_all`]), so exported diffs and commits are always whole files.
//! Completing builds the whole file (data, owner, mode, xattrs, times) in a scratch directory
//! on the same filesystem (the layer's `work/strata-fuse/`) and renames it over the marked one,
//! so a crash leaves either the marked file or the complete one, never a half-copied file. It
//! holds an exclusive `flock` on the marked file and re-reads the mark under it, so the FUSE
//! server (completing on a write) and a diff never both copy.
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

/// Gives the marked file at `path` its data, replacing it by a complete copy built in
/// `scratch` (a directory on the same filesystem). Returns whether it was marked.
pub fn complete(path: &Path, scratch: &Path) -> Result<bool, Errno> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
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
    match std::fs::create_dir(scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(Errno::from_io_error(&e).unwrap_or(Errno::IO))
        }
        _ => {}
    }
    let tmp = scratch.join(format!(
        "complete-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let built = (|| {
        let dst = rustix::fs::open(
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        copy_data(&src, &dst)?;
        rustix::fs::fchown(
            &dst,
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
        )?;
        rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        let mut names = vec![0u8; 4096];
        let n = rustix::fs::flistxattr(&fd, &mut names[..]).unwrap_or(0);
        for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = OsStr::from_bytes(name);
            if XATTRS.iter().any(|x| name == *x) {
                continue;
            }
            let mut value = vec![0u8; 65536];
            if let Ok(len) = rustix::fs::fgetxattr(&fd, name, &mut value[..]) {
                rustix::fs::fsetxattr(&dst, name, &value[..len], rustix::fs::XattrFlags::empty())?;
            }
        }
        rustix::fs::futimens(&dst, &stat_times(&st))?;
        rustix::fs::fsync(&dst)?;
        rustix::fs::renameat(CWD, &tmp, CWD, path)
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(true)
}

/// A file's access and modification times, to set on a copy of it.
pub fn stat_times(st: &rustix::fs::Stat) -> Timestamps {
    #[allow(clippy::unnecessary_cast)]
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The scratch directory completions of a writable key's files use: `<key>/work/strata-fuse`
/// (the FUSE server's own, cleared when a server starts), given the key's `diff` directory.
pub fn scratch_for(diff: &Path) -> PathBuf {
    diff.with_file_name("work").join("strata-fuse")
}

/// Completes every marked file below `upper` (a writable key's `diff` directory). Returns how
/// many there were.
pub fn complete_all(upper: &Path) -> Result<usize, Errno> {
    let scratch = scratch_for(upper);
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
                if empty && source(&p).is_some() && complete(&p, &scratch)? {
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
        let up = t.path().join("key/diff");
        std::fs::create_dir_all(up.join("d")).unwrap();
        std::fs::create_dir_all(t.path().join("key/work")).unwrap();
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
        // user.* needs no privilege (ext4, xfs, btrfs; tmpfs since 6.6).
        rustix::fs::lsetxattr(
            &f,
            xattr(true),
            lower.as_os_str().as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .expect("user xattrs on the temporary directory's filesystem");
        assert_eq!(source(&f), Some(lower.clone()));
        assert_eq!(complete_all(&up).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "the data");
        assert_eq!(source(&f), None);
        let st = rustix::fs::stat(&f).unwrap();
        #[allow(clippy::unnecessary_cast)]
        let mtime = (st.st_mtime as i64, st.st_mtime_nsec as i64);
        assert_eq!(mtime, (2000, 5));
        assert_eq!(complete_all(&up).unwrap(), 0, "nothing left to do");
        assert!(!complete(&f, &scratch_for(&up)).unwrap());
        assert_eq!(
            std::fs::read_dir(scratch_for(&up)).unwrap().count(),
            0,
            "no debris"
        );
    }
}
