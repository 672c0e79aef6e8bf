//! Full tree copies: what makes a vfs layer out of its parent.
//!
//! Everything a user could observe is preserved: file types (regular files, directories,
//! symlinks, device nodes, fifos, sockets), owners, permission bits including setuid/setgid/
//! sticky, extended attributes (including `security.capability` and ACLs), access and
//! modification times with nanoseconds, and hardlinks within the tree. File data is cloned
//! with `FICLONE` where the filesystem supports reflinks (btrfs, xfs), else copied in the
//! kernel with `copy_file_range`; sparse files stay sparse (only their data extents are copied).
//!
//! The walk works on directory file descriptors (`*at` calls, never following symlinks), so it
//! does not re-resolve paths and cannot be redirected out of the tree. Metadata is applied in
//! the order the kernel requires: owner first (chown clears setuid and file capabilities), then
//! xattrs, then mode, then times (directories after their children).
//!
//! What it deliberately does not do: copy across mount points inside the tree differently from
//! other directories, preserve inode numbers or change times, or run in parallel (on the two
//! cores here the copy is bound by metadata syscalls and the disk).

use std::collections::HashMap;
use std::ffi::CStr;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as fs, AtFlags, FileType, Gid, Mode, OFlags, SeekFrom, Statx, StatxFlags, Timespec,
    Timestamps, Uid,
};
use rustix::io::Errno;
use strata_driver_api::DriverError;

use crate::xattrs::{self, Node};

/// What [`copy_tree`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub entries: u64,
    /// Bytes of file data copied or cloned.
    pub bytes: u64,
    /// Whether file data was shared by reflink.
    pub reflinked: bool,
}

/// Copies the contents of directory `src` into the existing, empty directory `dst`, then gives
/// `dst` the metadata of `src`. With `strict_ownership` false (not root), owners, privileged
/// xattrs and device nodes that the process may not create are skipped instead of failing.
pub fn copy_tree(src: &Path, dst: &Path, strict_ownership: bool) -> Result<CopyStats, DriverError> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let sfd = fs::open(src, dir_flags, Mode::empty()).map_err(io("open", src))?;
    let dfd = fs::open(dst, dir_flags, Mode::empty()).map_err(io("open", dst))?;
    let mut sdir = fs::Dir::new(sfd).map_err(io("read dir", src))?;
    let mut c = Copier {
        strict: strict_ownership,
        try_reflink: true,
        links: HashMap::new(),
        dst_root: dfd
            .try_clone()
            .map_err(|e| DriverError::io("dup", dst)(e))?,
        stats: CopyStats::default(),
        buf: Vec::new(),
    };
    c.copy_dir(&mut sdir, dfd.as_fd(), src, dst, Path::new(""))?;
    let sfd = sdir.fd().map_err(io("read dir", src))?;
    let st = statx_fd(sfd).map_err(io("statx", src))?;
    c.finish_fd(sfd, dfd.as_fd(), &st, src, dst)?;
    Ok(c.stats)
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> DriverError + 'a {
    move |e| DriverError::io(op, path)(e.into())
}

fn statx_fd(fd: BorrowedFd<'_>) -> Result<Statx, Errno> {
    fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
}

fn timestamps(st: &Statx) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.stx_atime.tv_sec,
            tv_nsec: st.stx_atime.tv_nsec.into(),
        },
        last_modification: Timespec {
            tv_sec: st.stx_mtime.tv_sec,
            tv_nsec: st.stx_mtime.tv_nsec.into(),
        },
    }
}

fn perm(st: &Statx) -> Mode {
    Mode::from_raw_mode(u32::from(st.stx_mode) & 0o7777)
}

fn owner(st: &Statx) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw(st.stx_uid)),
        Some(Gid::from_raw(st.stx_gid)),
    )
}

struct Copier {
    strict: bool,
    try_reflink: bool,
    /// (dev major, dev minor, inode) of a multiply-linked source file -> its copy, relative to
    /// the destination root.
    links: HashMap<(u32, u32, u64), PathBuf>,
    dst_root: OwnedFd,
    stats: CopyStats,
    buf: Vec<u8>,
}

impl Copier {
    /// An ownership or permission failure that a non-root copy tolerates.
    fn tolerable(&self, e: Errno) -> bool {
        !self.strict && matches!(e, Errno::PERM | Errno::INVAL | Errno::ACCESS)
    }

    fn copy_dir(
        &mut self,
        sdir: &mut fs::Dir,
        dfd: BorrowedFd<'_>,
        src: &Path,
        dst: &Path,
        rel: &Path,
    ) -> Result<(), DriverError> {
        while let Some(entry) = sdir.read() {
            let entry = entry.map_err(io("read dir", src))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let name_os = OsStr::from_bytes(name.to_bytes());
            let (s, d, r) = (src.join(name_os), dst.join(name_os), rel.join(name_os));
            let sfd = sdir.fd().map_err(io("read dir", src))?;
            self.copy_entry(sfd, dfd, name, &s, &d, &r)?;
        }
        Ok(())
    }

    fn copy_entry(
        &mut self,
        sfd: BorrowedFd<'_>,
        dfd: BorrowedFd<'_>,
        name: &CStr,
        src: &Path,
        dst: &Path,
        rel: &Path,
    ) -> Result<(), DriverError> {
        let st = fs::statx(
            sfd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )
        .map_err(io("statx", src))?;
        self.stats.entries += 1;
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        if ftype != FileType::Directory && st.stx_nlink > 1 {
            let id = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
            if let Some(first) = self.links.get(&id) {
                return fs::linkat(&self.dst_root, first, dfd, name, AtFlags::empty())
                    .map_err(io("link", dst));
            }
            self.links.insert(id, rel.to_path_buf());
        }
        match ftype {
            FileType::Directory => {
                fs::mkdirat(dfd, name, Mode::RWXU).map_err(io("mkdir", dst))?;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let s = fs::openat(sfd, name, flags, Mode::empty()).map_err(io("open", src))?;
                let d = fs::openat(dfd, name, flags, Mode::empty()).map_err(io("open", dst))?;
                let mut sdir = fs::Dir::new(s).map_err(io("read dir", src))?;
                self.copy_dir(&mut sdir, d.as_fd(), src, dst, rel)?;
                let s = sdir.fd().map_err(io("read dir", src))?;
                self.finish_fd(s, d.as_fd(), &st, src, dst)
            }
            FileType::RegularFile => {
                let s = fs::openat(
                    sfd,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io("open", src))?;
                let d = fs::openat(
                    dfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::RUSR | Mode::WUSR,
                )
                .map_err(io("create", dst))?;
                self.copy_data(&s, &d, &st).map_err(io("copy data", dst))?;
                self.finish_fd(s.as_fd(), d.as_fd(), &st, src, dst)
            }
            FileType::Symlink => {
                let target = fs::readlinkat(sfd, name, Vec::new()).map_err(io("readlink", src))?;
                fs::symlinkat(&target, dfd, name).map_err(io("symlink", dst))?;
                self.finish_path(dfd, name, &st, src, dst, false)
            }
            _ => {
                let dev = fs::makedev(st.stx_rdev_major, st.stx_rdev_minor);
                match fs::mknodat(dfd, name, ftype, Mode::RUSR | Mode::WUSR, dev) {
                    Ok(()) => {}
                    Err(e) if self.tolerable(e) => {
                        tracing::warn!(path = %src.display(), "skipped a device node this process may not create");
                        return Ok(());
                    }
                    Err(e) => return Err(io("mknod", dst)(e)),
                }
                self.finish_path(dfd, name, &st, src, dst, true)
            }
        }
    }

    /// Owner, xattrs, mode and times of an opened file or directory.
    fn finish_fd(
        &self,
        s: BorrowedFd<'_>,
        d: BorrowedFd<'_>,
        st: &Statx,
        src: &Path,
        dst: &Path,
    ) -> Result<(), DriverError> {
        let (uid, gid) = owner(st);
        match fs::fchown(d, uid, gid) {
            Err(e) if !self.tolerable(e) => return Err(io("chown", dst)(e)),
            _ => {}
        }
        xattrs::copy(Node::Fd(s), Node::Fd(d), self.strict).map_err(io("copy xattrs", src))?;
        fs::fchmod(d, perm(st)).map_err(io("chmod", dst))?;
        fs::futimens(d, &timestamps(st)).map_err(io("set times", dst))
    }

    /// The same for a symlink or device node, by name (they cannot be opened for this).
    fn finish_path(
        &self,
        dfd: BorrowedFd<'_>,
        name: &CStr,
        st: &Statx,
        src: &Path,
        dst: &Path,
        chmod: bool,
    ) -> Result<(), DriverError> {
        let (uid, gid) = owner(st);
        match fs::chownat(dfd, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW) {
            Err(e) if !self.tolerable(e) => return Err(io("chown", dst)(e)),
            _ => {}
        }
        xattrs::copy(Node::Path(src), Node::Path(dst), self.strict)
            .map_err(io("copy xattrs", src))?;
        if chmod {
            fs::chmodat(dfd, name, perm(st), AtFlags::empty()).map_err(io("chmod", dst))?;
        }
        fs::utimensat(dfd, name, &timestamps(st), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io("set times", dst))
    }

    fn copy_data(&mut self, s: &OwnedFd, d: &OwnedFd, st: &Statx) -> Result<(), Errno> {
        let size = st.stx_size;
        if size == 0 {
            return Ok(());
        }
        self.stats.bytes += size;
        if self.try_reflink {
            match fs::ioctl_ficlone(d, s) {
                Ok(()) => {
                    self.stats.reflinked = true;
                    return Ok(());
                }
                // Not supported here (or across these files): stop trying for this tree.
                Err(
                    Errno::OPNOTSUPP
                    | Errno::XDEV
                    | Errno::INVAL
                    | Errno::NOTTY
                    | Errno::NOSYS
                    | Errno::PERM,
                ) => {
                    self.try_reflink = false;
                }
                Err(e) => return Err(e),
            }
        }
        let sparse = st.stx_blocks.saturating_mul(512) < size;
        if !sparse {
            return self.copy_range(s, d, 0, size);
        }
        let mut off = 0;
        while off < size {
            let data = match fs::seek(s, SeekFrom::Data(off)) {
                Ok(p) => p,
                Err(Errno::NXIO) => break,
                Err(e) => return Err(e),
            };
            let hole = fs::seek(s, SeekFrom::Hole(data))?.min(size);
            self.copy_range(s, d, data, hole - data)?;
            off = hole;
        }
        fs::ftruncate(d, size)
    }

    /// Copies `len` bytes at `off` (same offset in both files), in the kernel when possible.
    fn copy_range(&mut self, s: &OwnedFd, d: &OwnedFd, off: u64, len: u64) -> Result<(), Errno> {
        let (mut i, mut o, end) = (off, off, off + len);
        while i < end {
            let want = usize::try_from(end - i).unwrap_or(usize::MAX).min(1 << 30);
            match fs::copy_file_range(s, Some(&mut i), d, Some(&mut o), want) {
                Ok(0) => return Ok(()), // the file shrank under us
                Ok(_) => {}
                Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    return self.copy_range_userspace(s, d, i, end - i);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn copy_range_userspace(
        &mut self,
        s: &OwnedFd,
        d: &OwnedFd,
        mut off: u64,
        len: u64,
    ) -> Result<(), Errno> {
        self.buf.resize(1 << 20, 0);
        let end = off + len;
        while off < end {
            let want = usize::try_from(end - off)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = rustix::io::pread(s, &mut self.buf[..want], off)?;
            if n == 0 {
                return Ok(());
            }
            let mut written = 0;
            while written < n {
                written += rustix::io::pwrite(d, &self.buf[written..n], off + written as u64)?;
            }
            off += n as u64;
        }
        Ok(())
    }
}

/// Whether the process may set any owner (`strict` copies need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
