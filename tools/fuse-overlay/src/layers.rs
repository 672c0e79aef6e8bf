//! The layer stack: lookups through it, whiteouts and opaque directories, merged directory
//! listings. Everything here reads; changes are in `copyup` and `ops`.
//!
//! Layer 0 is the upper directory when there is one; the lower layers follow, topmost first.
//! Paths are relative to a layer's root ("" is the root). They are resolved with `*at` calls on
//! the layer's directory descriptor; a path is only ever used in a layer where every one of its
//! directories was seen to be a real directory (the merge stops at anything else), lower layers
//! never change, and the upper changes only through this filesystem under its structure lock,
//! so no path can wander through a symlink.
//!
//! Whiteouts are recognised in both forms the overlay driver writes: a 0:0 character device,
//! and (with `userxattr`) an empty file carrying `user.overlay.whiteout`. Opaque directories
//! carry `trusted.overlay.opaque=y`, or `user.overlay.opaque=y` with `userxattr`.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// One layer directory.
#[derive(Debug)]
pub struct Layer {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

impl Layer {
    pub fn open(path: &Path) -> Result<Layer, String> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open layer {}: {e}", path.display()))?;
        Ok(Layer {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// The absolute path of `rel` in this layer (for the path-only xattr calls).
    pub fn abs(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }
}

/// `rel`, or `.` for the root (the `*at` calls want a non-empty path).
pub fn dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The topmost layer holding the entry.
    pub layer: usize,
    pub stat: Stat,
    /// For a directory, every layer whose directory at this path is merged into it, topmost
    /// first (stops after an opaque one or at a non-directory or whiteout below).
    pub dir_layers: Vec<usize>,
}

/// One name of a merged directory listing.
#[derive(Debug, Clone)]
pub struct DirEnt {
    pub name: OsString,
    pub kind: FileType,
    /// The inode number on disk (only for `d_ino`; `stat` shows the node id).
    pub ino: u64,
}

#[derive(Debug)]
pub struct Layers {
    pub dirs: Vec<Layer>,
    pub has_upper: bool,
    /// `user.` or `trusted.`: where the overlay's own xattrs live.
    pub userxattr: bool,
}

impl Layers {
    pub fn first_lower(&self) -> usize {
        usize::from(self.has_upper)
    }

    pub fn is_upper(&self, l: usize) -> bool {
        self.has_upper && l == 0
    }

    pub fn upper(&self) -> Result<&Layer, Errno> {
        if self.has_upper {
            Ok(&self.dirs[0])
        } else {
            Err(Errno::ROFS)
        }
    }

    pub fn opaque_xattr(&self) -> &'static str {
        if self.userxattr {
            "user.overlay.opaque"
        } else {
            "trusted.overlay.opaque"
        }
    }

    pub fn stat(&self, l: usize, rel: &Path) -> Result<Stat, Errno> {
        rustix::fs::statat(&self.dirs[l].fd, dot(rel), AtFlags::SYMLINK_NOFOLLOW)
    }

    /// Whether `st` (found at `rel` in layer `l`) is a whiteout.
    pub fn is_whiteout(&self, l: usize, rel: &Path, st: &Stat) -> bool {
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice {
            return st.st_rdev == 0;
        }
        ft == FileType::RegularFile
            && st.st_size == 0
            && self.userxattr
            && has_xattr(&self.dirs[l].abs(rel), "user.overlay.whiteout")
    }

    pub fn is_opaque(&self, l: usize, rel: &Path) -> bool {
        let mut buf = [0u8; 4];
        matches!(
            rustix::fs::lgetxattr(self.dirs[l].abs(rel), self.opaque_xattr(), &mut buf[..]),
            Ok(1) if buf[0] == b'y'
        )
    }

    /// Looks `rel` up through `parent_layers` (the parent directory's merged layers).
    pub fn probe(&self, parent_layers: &[usize], rel: &Path) -> Result<Option<Found>, Errno> {
        let mut found: Option<Found> = None;
        for &l in parent_layers {
            let st = match self.stat(l, rel) {
                Ok(st) => st,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
                Err(e) => return Err(e),
            };
            if self.is_whiteout(l, rel, &st) {
                break;
            }
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            match &mut found {
                None => {
                    let mut f = Found {
                        layer: l,
                        stat: st,
                        dir_layers: Vec::new(),
                    };
                    if !is_dir {
                        return Ok(Some(f));
                    }
                    f.dir_layers.push(l);
                    let opaque = self.is_opaque(l, rel);
                    found = Some(f);
                    if opaque {
                        break;
                    }
                }
                Some(f) => {
                    if !is_dir {
                        break;
                    }
                    f.dir_layers.push(l);
                    if self.is_opaque(l, rel) {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Whether a lower layer (below the upper) shows something at `rel`, so that removing or
    /// renaming it from the merged view needs a whiteout.
    pub fn lower_has(&self, parent_layers: &[usize], rel: &Path) -> Result<bool, Errno> {
        for &l in parent_layers.iter().filter(|&&l| !self.is_upper(l)) {
            match self.stat(l, rel) {
                Ok(st) => return Ok(!self.is_whiteout(l, rel, &st)),
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// The merged listing of the directory at `rel` made of `dir_layers`: upper names first,
    /// each name once, whiteouts hidden (and hiding what is below them).
    pub fn merged(&self, dir_layers: &[usize], rel: &Path) -> Result<Vec<DirEnt>, Errno> {
        let mut seen: HashSet<OsString> = HashSet::new();
        let mut out = Vec::new();
        for &l in dir_layers {
            let fd = rustix::fs::openat(
                &self.dirs[l].fd,
                dot(rel),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::empty(),
            )?;
            let mut dir = rustix::fs::Dir::read_from(&fd)?;
            while let Some(ent) = dir.read() {
                let ent = ent?;
                let name = OsStr::from_bytes(ent.file_name().to_bytes());
                if name == "." || name == ".." || seen.contains(name) {
                    continue;
                }
                let name = name.to_os_string();
                let child = rel.join(&name);
                let mut kind = ent.file_type();
                let check = match kind {
                    FileType::CharacterDevice | FileType::Unknown => true,
                    FileType::RegularFile => self.userxattr,
                    _ => false,
                };
                if check {
                    let st = match self.stat(l, &child) {
                        Ok(st) => st,
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(e),
                    };
                    kind = FileType::from_raw_mode(st.st_mode);
                    if self.is_whiteout(l, &child, &st) {
                        seen.insert(name);
                        continue;
                    }
                }
                seen.insert(name.clone());
                out.push(DirEnt {
                    name,
                    kind,
                    ino: ent.ino(),
                });
            }
        }
        Ok(out)
    }
}

/// Whether the xattr `name` exists on `path` (not following a final symlink).
pub fn has_xattr(path: &Path, name: &str) -> bool {
    let mut buf = [0u8; 0];
    rustix::fs::lgetxattr(path, name, &mut buf[..]).is_ok()
}

/// Whether an xattr name is the overlay's own or Strata's (never shown, copied or settable).
pub fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"trusted.strata.")
        || name.starts_with(b"user.strata.")
}

/// All xattr names of `path` (not following a final symlink).
pub fn list_xattrs(path: &Path) -> Result<Vec<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                return Ok(buf[..n]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect())
            }
            Err(Errno::RANGE) => {
                let need: usize = rustix::fs::llistxattr(path, &mut [0u8; 0][..])?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

/// The value of xattr `name` on `path`.
pub fn get_xattr(path: &Path, name: &OsStr) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => {
                let need: usize = rustix::fs::lgetxattr(path, name, &mut [0u8; 0][..])?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(e),
        }
    }
}
