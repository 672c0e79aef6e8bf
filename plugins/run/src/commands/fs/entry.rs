//! One directory entry, looked at through its parent directory's file descriptor and never
//! through a symbolic link: what `cp` and `export` walk with. Each step opens one name with
//! `O_NOFOLLOW` relative to an already-open directory, so a link (or a link swapped in by a
//! running container) is seen as a link, never entered.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};

/// What `lstat` says about an entry, in the units the callers need.
#[derive(Debug, Clone)]
pub struct Meta {
    pub kind: FileType,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

// The field types of `struct stat` differ between architectures; the casts are needed on some.
#[allow(clippy::unnecessary_cast)]
impl From<Stat> for Meta {
    fn from(st: Stat) -> Meta {
        Meta {
            kind: FileType::from_raw_mode(st.st_mode as _),
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            rdev: st.st_rdev as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            atime: (st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }
}

impl Meta {
    pub fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: Timespec {
                tv_sec: self.atime.0,
                tv_nsec: self.atime.1,
            },
            last_modification: Timespec {
                tv_sec: self.mtime.0,
                tv_nsec: self.mtime.1,
            },
        }
    }
}

/// `lstat` of `name` in `dir`; `None` if it does not exist.
pub fn lstat(dir: impl AsFd, name: &OsStr) -> Result<Option<Meta>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st.into())),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("stat {}", name.to_string_lossy())),
    }
}

/// Opens directory `name` of `dir` for reading, refusing a symbolic link.
pub fn open_dir(dir: impl AsFd, name: &OsStr) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open directory {}", name.to_string_lossy()))
}

/// Opens regular file `name` of `dir` for reading, refusing a symbolic link.
pub fn open_file(dir: impl AsFd, name: &OsStr) -> Result<std::fs::File> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(std::fs::File::from)
    .with_context(|| format!("open {}", name.to_string_lossy()))
}

/// The target of symbolic link `name` of `dir`.
pub fn read_link(dir: impl AsFd, name: &OsStr) -> Result<OsString> {
    let target: CString = rustix::fs::readlinkat(dir, name, Vec::new())
        .with_context(|| format!("read link {}", name.to_string_lossy()))?;
    Ok(OsStr::from_bytes(target.as_bytes()).to_owned())
}

/// The names in directory `dir` (an fd opened for reading), sorted, without `.` and `..`.
pub fn names(dir: impl AsFd) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(dir).context("read directory")? {
        let e = e.context("read directory")?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    out.sort();
    Ok(out)
}
