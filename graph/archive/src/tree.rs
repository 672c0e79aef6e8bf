//! A directory tree addressed only through a directory file descriptor.
//!
//! [`Root`] resolves directories with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..`
//! and absolute symlinks are clamped at the root, so whatever symlinks a layer plants, a
//! resolved directory is always inside it. Callers then operate on the final component with
//! `*at` calls that do not follow symlinks. Resolved directories are cached by path; any
//! removal clears the cache, since it may have replaced a cached path's component.
//!
//! It does not decide what to create; `extract` and `whiteout` do.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{self, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// At most this many resolved directories are kept open.
const CACHE_LIMIT: usize = 256;

/// A directory tree rooted at a directory file descriptor.
#[derive(Debug)]
pub(crate) struct Root {
    fd: Rc<OwnedFd>,
    cache: HashMap<Vec<u8>, Rc<OwnedFd>>,
}

impl Root {
    /// Opens `path` (which must be a directory).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd: Rc::new(fd),
            cache: HashMap::new(),
        })
    }

    #[cfg(test)]
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Forgets every resolved directory (call after removing anything).
    pub(crate) fn invalidate(&mut self) {
        self.cache.clear();
    }

    /// Opens `path` (normalised, relative) inside the root with `flags`; symlinks in it are
    /// resolved as if the root were `/`.
    pub(crate) fn open_in(&self, path: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
        open_in_root(self.fd.as_fd(), path, flags)
    }

    /// The directory `dir` (normalised, relative; empty for the root), if it exists.
    pub(crate) fn dir(&mut self, dir: &[u8]) -> io::Result<Rc<OwnedFd>> {
        if dir.is_empty() {
            return Ok(self.fd.clone());
        }
        if let Some(fd) = self.cache.get(dir) {
            return Ok(fd.clone());
        }
        let fd = Rc::new(self.open_in(dir, dir_flags())?);
        self.remember(dir, fd.clone());
        Ok(fd)
    }

    /// The directory `dir`, creating missing components (mode 0755 before umask); the
    /// normalised paths of the directories it created are appended to `created`.
    pub(crate) fn dir_create(
        &mut self,
        dir: &[u8],
        created: &mut Vec<Vec<u8>>,
    ) -> io::Result<Rc<OwnedFd>> {
        match self.dir(dir) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            other => return other,
        }
        let mut cur = self.fd.clone();
        let mut start = 0;
        for end in dir
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| i)
            .chain([dir.len()])
        {
            let prefix = &dir[..end];
            let comp = &dir[start..end];
            start = end + 1;
            cur = match self.open_in(prefix, dir_flags()) {
                Ok(fd) => Rc::new(fd),
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    match fs::mkdirat(&*cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => created.push(prefix.to_vec()),
                        // Something (a dangling symlink) is in the way: the open below fails.
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    // `comp` is a single component inside an in-root directory; not following
                    // a symlink there keeps us in the root.
                    Rc::new(fs::openat(
                        &*cur,
                        comp,
                        dir_flags() | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )?)
                }
                Err(e) => return Err(e),
            };
        }
        self.remember(dir, cur.clone());
        Ok(cur)
    }

    fn remember(&mut self, dir: &[u8], fd: Rc<OwnedFd>) {
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(dir.to_vec(), fd);
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, retrying the
/// kernel's EAGAIN (a concurrent rename raced the resolution).
pub(crate) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match fs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            Err(Errno::INTR) => {}
            other => return other.map_err(Into::into),
        }
    }
}

/// Removes `name` in `parent`, recursively if it is a directory. A missing name is fine;
/// returns whether anything was removed.
pub(crate) fn remove_all(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    match fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {
            let st = match fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            if fs::FileType::from_raw_mode(st.st_mode) != fs::FileType::Directory {
                return Err(Errno::PERM.into());
            }
            let dir = fs::openat(parent, name, dir_flags() | OFlags::NOFOLLOW, Mode::empty())?;
            empty_dir(dir.as_fd(), |_| false)?;
            match fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => Ok(true),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes every child of `dir` for which `keep(name)` is false.
pub(crate) fn empty_dir(
    dir: BorrowedFd<'_>,
    mut keep: impl FnMut(&CStr) -> bool,
) -> io::Result<()> {
    for name in list_dir(dir)? {
        if !keep(&name) {
            remove_all(dir, &name)?;
        }
    }
    Ok(())
}

/// The names in `dir`, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut d = fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// A `/proc/self/fd/N/NAME` path naming `name` inside the directory `dir` for the path-based
/// xattr calls (`l*xattr`), which is how xattrs are read and set on symlinks and device nodes.
/// The magic link is the already-resolved directory, and `l*xattr` does not follow `name`.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(OsStr::from_bytes(&p))
}

/// Converts a path component to a C string (the callers have rejected NUL bytes already).
pub(crate) fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in name"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolution_is_clamped_to_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root_path = outer.path().join("root");
        std::fs::create_dir(&root_path).unwrap();
        std::os::unix::fs::symlink("/", root_path.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root_path.join("rel")).unwrap();
        let mut root = Root::open(&root_path).unwrap();
        for via in [&b"abs"[..], b"rel"] {
            let fd = root.dir(via).unwrap();
            fs::mkdirat(&*fd, "made", Mode::from_raw_mode(0o755)).unwrap();
            assert!(root_path.join("made").is_dir());
            std::fs::remove_dir(root_path.join("made")).unwrap();
        }
        assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 1);
    }

    #[test]
    fn creates_missing_parents_and_removes_trees() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = Root::open(dir.path()).unwrap();
        let mut created = Vec::new();
        root.dir_create(b"a/b/c", &mut created).unwrap();
        assert_eq!(
            created,
            vec![b"a".to_vec(), b"a/b".to_vec(), b"a/b/c".to_vec()]
        );
        std::fs::write(dir.path().join("a/b/c/f"), b"x").unwrap();
        remove_all(root.fd(), c"a").unwrap();
        assert!(!dir.path().join("a").exists());
        remove_all(root.fd(), c"missing").unwrap();
    }
}
