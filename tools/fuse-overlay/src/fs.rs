//! The filesystem's operations, independent of the FUSE library (the `serve` module adapts
//! them to it). Every operation returns an errno the kernel passes on.
//!
//! Concurrency: `big` is the structure lock. Operations that only read (lookup, getattr,
//! readdir, read-only open) share it; operations that change the upper directory's structure
//! or copy up take it exclusively, so a path computed from the node table always matches the
//! disk. Reads and writes of open files take no lock at all.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

use crate::attr::Attr;
use crate::ids::Ids;
use crate::layers::{dot, is_private_xattr, DirEnt, Layer, Layers};
use crate::options::Options;
use crate::tree::{DiskKey, Ino, Node, Tree, ROOT};

/// Who asks (the ids the kernel shows us, before translation to disk owners).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// An open regular file.
#[derive(Debug)]
pub struct Handle {
    pub fd: OwnedFd,
    pub ino: Ino,
    /// The disk file it is (for passthrough: one backing file per node at a time).
    pub key: DiskKey,
}

/// How a rename treats an existing destination (`renameat2` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace it (plain `rename`).
    Replace,
    /// Fail with EEXIST (`RENAME_NOREPLACE`).
    NoReplace,
    /// Swap the two (`RENAME_EXCHANGE`).
    Exchange,
}

/// A time to set.
#[derive(Debug, Clone, Copy)]
pub enum SetTime {
    Now,
    At(std::time::SystemTime),
}

/// The changes of a `setattr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// How many directory listings are kept at most (see [`Fs::listing`]).
const MAX_KEPT_LISTINGS: usize = 4096;

#[derive(Debug)]
pub struct Fs {
    pub(crate) layers: Layers,
    pub(crate) ids: Ids,
    /// `<workdir>/strata-fuse`: where copies are built before they are renamed into place.
    pub(crate) work: Option<Layer>,
    pub(crate) tree: Mutex<Tree>,
    big: RwLock<()>,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    /// Listings kept per directory node (see [`Fs::listing`]).
    dirs: Mutex<HashMap<Ino, Arc<Vec<DirEnt>>>>,
    next_fh: AtomicU64,
    pub(crate) tmp_seq: AtomicU64,
}

pub(crate) fn key_of(st: &Stat) -> DiskKey {
    #[allow(clippy::unnecessary_cast)]
    (st.st_dev as u64, st.st_ino as u64)
}

fn check_name(name: &OsStr) -> Result<(), Errno> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Errno::INVAL);
    }
    if b.len() > 255 {
        return Err(Errno::NAMETOOLONG);
    }
    Ok(())
}

impl Fs {
    /// Opens the layers and prepares the work directory. Errors are for the user.
    pub fn new(o: &Options) -> Result<Fs, String> {
        let mut dirs = Vec::new();
        if let Some(u) = &o.upper {
            dirs.push(Layer::open(u)?);
        }
        for l in &o.lower {
            dirs.push(Layer::open(l)?);
        }
        let work = match &o.work {
            Some(w) => Some(prepare_work(w)?),
            None => None,
        };
        let layers = Layers {
            dirs,
            has_upper: o.upper.is_some(),
            userxattr: o.userxattr,
        };
        let root_layers: Vec<usize> = {
            let mut v = Vec::new();
            for l in 0..layers.dirs.len() {
                v.push(l);
                if l >= layers.first_lower() && layers.is_opaque(l, Path::new("")) {
                    break;
                }
            }
            v
        };
        let st = layers
            .stat(0, Path::new(""))
            .map_err(|e| format!("cannot stat {}: {e}", layers.dirs[0].path.display()))?;
        let root = Node {
            names: Vec::new(),
            is_dir: true,
            layer: 0,
            dir_layers: root_layers,
            keys: vec![key_of(&st)],
            data: None,
            nlookup: 1,
        };
        Ok(Fs {
            layers,
            ids: Ids::new(o),
            work,
            tree: Mutex::new(Tree::new(root)),
            big: RwLock::new(()),
            handles: RwLock::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub(crate) fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.big.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.big.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A node and its path (ENOENT once it has no name).
    pub(crate) fn node(&self, ino: Ino) -> Result<(Node, PathBuf), Errno> {
        let t = self.tree();
        let n = t.get(ino).ok_or(Errno::NOENT)?.clone();
        let p = t.path(ino).ok_or(Errno::NOENT)?;
        Ok((n, p))
    }

    fn dir_node(&self, ino: Ino) -> Result<(Node, PathBuf), Errno> {
        let (n, p) = self.node(ino)?;
        if !n.is_dir {
            return Err(Errno::NOTDIR);
        }
        Ok((n, p))
    }

    fn attr(&self, ino: Ino, node: &Node, st: &Stat) -> Attr {
        let mut a = Attr::from_stat(ino, st, &self.ids, node.is_dir && node.dir_layers.len() > 1);
        if let Some(data) = &node.data {
            // Size and blocks are the data's.
            if let Ok(d) = rustix::fs::lstat(data) {
                #[allow(clippy::unnecessary_cast)]
                {
                    a.size = d.st_size as u64;
                    a.blocks = d.st_blocks as u64;
                }
            }
        }
        a
    }

    fn handle_of(&self, ino: Ino) -> Option<Arc<Handle>> {
        self.handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|h| h.ino == ino)
            .cloned()
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(Errno::BADF)
    }

    /// The attributes of a node (through an open handle once it has no name).
    pub(crate) fn attr_of(&self, ino: Ino) -> Result<Attr, Errno> {
        match self.node(ino) {
            Ok((n, p)) => {
                let st = self.layers.stat(n.layer, &p)?;
                Ok(self.attr(ino, &n, &st))
            }
            Err(e) => {
                let h = self.handle_of(ino).ok_or(e)?;
                let st = rustix::fs::fstat(&h.fd)?;
                let n = self.tree().get(ino).cloned().ok_or(e)?;
                Ok(self.attr(ino, &n, &st))
            }
        }
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Attr, Errno> {
        check_name(name)?;
        let _g = self.shared();
        self.lookup_locked(parent, name)
    }

    pub(crate) fn lookup_locked(&self, parent: Ino, name: &OsStr) -> Result<Attr, Errno> {
        let dir = self.dir_node(parent)?;
        self.lookup_at(parent, &dir, name)
    }

    /// A directory's node and path, for several lookups in it ([`Fs::lookup_in`]).
    pub fn dir_context(&self, ino: Ino) -> Result<(Node, PathBuf), Errno> {
        let _g = self.shared();
        self.dir_node(ino)
    }

    /// [`Fs::lookup`] in a directory whose context the caller already has (a listing with
    /// attributes looks up every entry of one directory).
    pub fn lookup_in(
        &self,
        parent: Ino,
        dir: &(Node, PathBuf),
        name: &OsStr,
    ) -> Result<Attr, Errno> {
        check_name(name)?;
        let _g = self.shared();
        self.lookup_at(parent, dir, name)
    }

    fn lookup_at(&self, parent: Ino, dir: &(Node, PathBuf), name: &OsStr) -> Result<Attr, Errno> {
        let (pnode, ppath) = dir;
        let rel = ppath.join(name);
        let known = self.tree().child(parent, name);
        if let Some(ino) = known {
            let attr = self.attr_of(ino)?;
            if let Some(n) = self.tree().get_mut(ino) {
                n.nlookup += 1;
            }
            return Ok(attr);
        }
        let found = self
            .layers
            .probe(&pnode.dir_layers, &rel)?
            .ok_or(Errno::NOENT)?;
        let kind = FileType::from_raw_mode(found.stat.st_mode);
        let is_dir = kind == FileType::Directory;
        // A metadata-only copy is an empty upper file with the mark.
        let data = (self.layers.is_upper(found.layer)
            && kind == FileType::RegularFile
            && found.stat.st_size == 0)
            .then(|| strata_driver_overlay::metacopy::source(&self.layers.dirs[0].abs(&rel)))
            .flatten();
        let node = Node {
            names: Vec::new(),
            is_dir,
            layer: found.layer,
            dir_layers: found.dir_layers,
            keys: vec![key_of(&found.stat)],
            data,
            nlookup: 0,
        };
        #[allow(clippy::unnecessary_cast)]
        let ino = self
            .tree()
            .insert(parent, name, node, found.stat.st_ino as u64);
        // Another name of a node seen before (a hardlink): its own top file is the truth.
        let node = self.tree().get(ino).cloned().ok_or(Errno::NOENT)?;
        if node.layer != found.layer {
            return self.attr_of(ino);
        }
        Ok(self.attr(ino, &node, &found.stat))
    }

    pub fn forget(&self, ino: Ino, n: u64) {
        self.tree().forget(ino, n);
        if self.tree().get(ino).is_none() {
            self.drop_listing(ino);
        }
    }

    /// A node's attributes; an unlinked but open file's come from one of its handles.
    pub fn getattr(&self, ino: Ino) -> Result<Attr, Errno> {
        let _g = self.shared();
        self.attr_of(ino)
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        let _g = self.shared();
        let (n, p) = self.node(ino)?;
        let target = rustix::fs::readlinkat(&self.layers.dirs[n.layer].fd, dot(&p), Vec::new())?;
        Ok(target.into_bytes())
    }

    pub fn setattr(&self, ino: Ino, set: SetAttr, fh: Option<u64>) -> Result<Attr, Errno> {
        let _g = self.exclusive();
        if set.size.is_some() {
            self.copy_up(ino)?;
        } else {
            self.copy_up_meta(ino)?;
        }
        let (n, p) = self.node(ino)?;
        let upper = &self.layers.upper()?.fd;
        let kind = FileType::from_raw_mode(self.layers.stat(0, &p)?.st_mode);
        if set.uid.is_some() || set.gid.is_some() {
            let uid = match set.uid {
                Some(u) => self.ids.disk_uid(u).ok_or(Errno::INVAL)?,
                None => None,
            };
            let gid = match set.gid {
                Some(g) => self.ids.disk_gid(g).ok_or(Errno::INVAL)?,
                None => None,
            };
            if uid.is_some() || gid.is_some() {
                rustix::fs::chownat(
                    upper,
                    dot(&p),
                    uid.map(rustix::fs::Uid::from_raw),
                    gid.map(rustix::fs::Gid::from_raw),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
        }
        if let Some(mode) = set.mode {
            if kind == FileType::Symlink {
                return Err(Errno::OPNOTSUPP);
            }
            rustix::fs::chmodat(
                upper,
                dot(&p),
                Mode::from_raw_mode(mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        if let Some(size) = set.size {
            let via_fh = fh.and_then(|fh| self.handle(fh).ok()).filter(|h| {
                rustix::fs::fstat(&h.fd).is_ok_and(|st| {
                    self.layers
                        .stat(0, &p)
                        .is_ok_and(|u| key_of(&u) == key_of(&st))
                })
            });
            match via_fh {
                Some(h) => rustix::fs::ftruncate(&h.fd, size)?,
                None => {
                    let fd = rustix::fs::openat(
                        upper,
                        dot(&p),
                        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    rustix::fs::ftruncate(&fd, size)?;
                }
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let ts = |t: Option<SetTime>| match t {
                None => Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
                Some(SetTime::Now) => Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_NOW,
                },
                Some(SetTime::At(t)) => timespec(t),
            };
            let times = Timestamps {
                last_access: ts(set.atime),
                last_modification: ts(set.mtime),
            };
            rustix::fs::utimensat(upper, dot(&p), &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        let st = self.layers.stat(0, &p)?;
        Ok(self.attr(ino, &n, &st))
    }

    /// Makes a new entry in the upper directory with `make` (which gets the upper fd and the
    /// relative path), gives it the caller's owner, and looks it up.
    fn make_entry(
        &self,
        parent: Ino,
        name: &OsStr,
        caller: Caller,
        is_dir: bool,
        make: impl FnOnce(&OwnedFd, &Path) -> Result<Option<OwnedFd>, Errno>,
    ) -> Result<(Attr, Option<OwnedFd>), Errno> {
        check_name(name)?;
        let (_, ppath) = self.dir_node(parent)?;
        let rel = ppath.join(name);
        // The kernel looked the name up before asking (and only this filesystem changes the
        // upper directory), so it does not exist in the merged view; only a whiteout in the
        // upper directory can be there.
        if self.tree().child(parent, name).is_some() {
            return Err(Errno::EXIST);
        }
        self.copy_up(parent)?;
        let upper = &self.layers.upper()?.fd;
        // A whiteout hides a lower entry here: replace it; a new directory must then be opaque
        // so that nothing of the lower one shows through. (Without a whiteout, no lower entry
        // of this name is merged here: it would have been found.)
        let had_whiteout = match self.layers.stat(0, &rel) {
            Ok(st) if self.layers.is_whiteout(0, &rel, &st) => {
                rustix::fs::unlinkat(upper, &rel, AtFlags::empty())?;
                true
            }
            Ok(_) => return Err(Errno::EXIST),
            Err(Errno::NOENT) => false,
            Err(e) => return Err(e),
        };
        let fd = make(upper, &rel)?;
        let cleanup = |e: Errno| {
            let flags = if is_dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            let _ = rustix::fs::unlinkat(upper, &rel, flags);
            if had_whiteout {
                let _ = self.make_whiteout(&rel);
            }
            e
        };
        self.set_new_owner(&rel, &ppath, caller).map_err(cleanup)?;
        if is_dir && had_whiteout {
            rustix::fs::lsetxattr(
                self.layers.dirs[0].abs(&rel),
                self.layers.opaque_xattr(),
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(cleanup)?;
        }
        let attr = self.lookup_locked(parent, name)?;
        Ok((attr, fd))
    }

    /// Gives a new upper entry its owner: the caller's ids, or the directory's group when the
    /// directory is set-group-ID (as the kernel would).
    fn set_new_owner(&self, rel: &Path, parent: &Path, caller: Caller) -> Result<(), Errno> {
        // A new file belongs to this server's ids (and the directory's group under a
        // set-group-ID directory); change only what differs.
        let uid = self
            .ids
            .disk_uid(caller.uid)
            .ok_or(Errno::OVERFLOW)?
            .filter(|u| *u != rustix::process::geteuid().as_raw());
        let gid = self.ids.disk_gid(caller.gid).ok_or(Errno::OVERFLOW)?;
        let gid = match gid {
            Some(g) if g != rustix::process::getegid().as_raw() => {
                let pst = self.layers.stat(0, parent)?;
                (pst.st_mode & libc::S_ISGID == 0).then_some(g)
            }
            _ => None,
        };
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        rustix::fs::chownat(
            &self.layers.upper()?.fd,
            dot(rel),
            uid.map(rustix::fs::Uid::from_raw),
            gid.map(rustix::fs::Gid::from_raw),
            AtFlags::SYMLINK_NOFOLLOW,
        )
    }

    pub fn mknod(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<Attr, Errno> {
        let _g = self.exclusive();
        let ft = FileType::from_raw_mode(mode);
        let perm = Mode::from_raw_mode(mode & 0o7777);
        let (attr, _) = self.make_entry(parent, name, caller, false, |up, rel| {
            if ft == FileType::RegularFile {
                let fd = rustix::fs::openat(
                    up,
                    rel,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    perm,
                )?;
                drop(fd);
            } else {
                rustix::fs::mknodat(up, rel, ft, perm, u64::from(rdev))?;
            }
            // mknod's mode is not masked by our umask here (ours is 0, see `serve`).
            Ok(None)
        })?;
        Ok(attr)
    }

    pub fn mkdir(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> Result<Attr, Errno> {
        let _g = self.exclusive();
        let (attr, _) = self.make_entry(parent, name, caller, true, |up, rel| {
            rustix::fs::mkdirat(up, rel, Mode::from_raw_mode(mode & 0o7777))?;
            Ok(None)
        })?;
        Ok(attr)
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Attr, Errno> {
        let _g = self.exclusive();
        let (attr, _) = self.make_entry(parent, name, caller, false, |up, rel| {
            rustix::fs::symlinkat(target, up, rel)?;
            Ok(None)
        })?;
        Ok(attr)
    }

    /// Creates and opens a regular file. Returns its attributes and handle.
    pub fn create(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Attr, u64), Errno> {
        let _g = self.exclusive();
        let oflags = open_flags(flags) | OFlags::CREATE | OFlags::EXCL;
        let (attr, fd) = self.make_entry(parent, name, caller, false, |up, rel| {
            Ok(Some(rustix::fs::openat(
                up,
                rel,
                oflags,
                Mode::from_raw_mode(mode & 0o7777),
            )?))
        })?;
        let fd = fd.ok_or(Errno::IO)?;
        let st = rustix::fs::fstat(&fd)?;
        let fh = self.add_handle(Handle {
            fd,
            ino: attr.ino,
            key: key_of(&st),
        });
        Ok((attr, fh))
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(h));
        fh
    }

    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &OsStr) -> Result<Attr, Errno> {
        check_name(new_name)?;
        let _g = self.exclusive();
        let (node, _) = self.node(ino)?;
        if node.is_dir {
            return Err(Errno::PERM);
        }
        let (pnode, ppath) = self.dir_node(new_parent)?;
        let rel = ppath.join(new_name);
        if self.tree().child(new_parent, new_name).is_some()
            || self.layers.probe(&pnode.dir_layers, &rel)?.is_some()
        {
            return Err(Errno::EXIST);
        }
        self.copy_up(ino)?;
        self.copy_up(new_parent)?;
        let (_, src) = self.node(ino)?;
        let upper = &self.layers.upper()?.fd;
        if self.layers.stat(0, &rel).is_ok() {
            rustix::fs::unlinkat(upper, &rel, AtFlags::empty())?;
        }
        rustix::fs::linkat(upper, &src, upper, &rel, AtFlags::empty())?;
        self.tree().add_name(ino, new_parent, new_name);
        self.attr_of(ino)
    }

    pub fn unlink(&self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let _g = self.exclusive();
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let _g = self.exclusive();
        self.remove(parent, name, true)
    }

    fn remove(&self, parent: Ino, name: &OsStr, dir: bool) -> Result<(), Errno> {
        check_name(name)?;
        let (pnode, ppath) = self.dir_node(parent)?;
        let rel = ppath.join(name);
        let found = self
            .layers
            .probe(&pnode.dir_layers, &rel)?
            .ok_or(Errno::NOENT)?;
        let is_dir = FileType::from_raw_mode(found.stat.st_mode) == FileType::Directory;
        match (dir, is_dir) {
            (true, false) => return Err(Errno::NOTDIR),
            (false, true) => return Err(Errno::ISDIR),
            _ => {}
        }
        if is_dir && !self.layers.merged(&found.dir_layers, &rel)?.is_empty() {
            return Err(Errno::NOTEMPTY);
        }
        let needs_whiteout = self.layers.lower_has(&pnode.dir_layers, &rel)?;
        self.copy_up(parent)?;
        let upper = &self.layers.upper()?.fd;
        if found.layer == 0 && self.layers.has_upper {
            if is_dir {
                clear_whiteouts(&self.layers, &rel)?;
                rustix::fs::unlinkat(upper, &rel, AtFlags::REMOVEDIR)?;
            } else {
                rustix::fs::unlinkat(upper, &rel, AtFlags::empty())?;
            }
        }
        if needs_whiteout {
            self.make_whiteout(&rel)?;
        }
        let mut t = self.tree();
        t.remove_name(parent, name);
        // The upper file is gone for good (its last link): its inode number is free for reuse.
        #[allow(clippy::unnecessary_cast)]
        if found.layer == 0 && self.layers.has_upper && (is_dir || found.stat.st_nlink as u64 <= 1)
        {
            t.drop_key(key_of(&found.stat));
        }
        Ok(())
    }

    pub fn open(&self, ino: Ino, flags: i32) -> Result<(u64, Arc<Handle>), Errno> {
        let oflags = open_flags(flags);
        let writes = oflags.contains(OFlags::WRONLY)
            || oflags.contains(OFlags::RDWR)
            || oflags.contains(OFlags::TRUNC);
        let fd = if writes {
            let _g = self.exclusive();
            self.copy_up(ino)?;
            let (_, p) = self.node(ino)?;
            rustix::fs::openat(&self.layers.upper()?.fd, dot(&p), oflags, Mode::empty())?
        } else {
            let _g = self.shared();
            let (n, p) = self.node(ino)?;
            match &n.data {
                Some(data) => rustix::fs::open(data, oflags, Mode::empty())?,
                None => rustix::fs::openat(
                    &self.layers.dirs[n.layer].fd,
                    dot(&p),
                    oflags,
                    Mode::empty(),
                )?,
            }
        };
        let st = rustix::fs::fstat(&fd)?;
        let fh = self.add_handle(Handle {
            fd,
            ino,
            key: key_of(&st),
        });
        let h = self.handle(fh)?;
        Ok((fh, h))
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let h = self.handle(fh)?;
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pread(&h.fd, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let h = self.handle(fh)?;
        let n = rustix::io::pwrite(&h.fd, data, offset)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub fn release(&self, fh: u64) {
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh);
    }

    pub fn fsync(&self, fh: u64, datasync: bool) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        if datasync {
            rustix::fs::fdatasync(&h.fd)
        } else {
            rustix::fs::fsync(&h.fd)
        }
    }

    pub fn fallocate(&self, fh: u64, offset: u64, len: u64, mode: i32) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        #[allow(clippy::cast_sign_loss)]
        let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
        rustix::fs::fallocate(&h.fd, flags, offset, len)
    }

    pub fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64, Errno> {
        let h = self.handle(fh)?;
        let pos = match whence {
            libc::SEEK_SET => {
                rustix::fs::SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::INVAL)?)
            }
            libc::SEEK_CUR => rustix::fs::SeekFrom::Current(offset),
            libc::SEEK_END => rustix::fs::SeekFrom::End(offset),
            libc::SEEK_DATA => {
                rustix::fs::SeekFrom::Data(u64::try_from(offset).map_err(|_| Errno::INVAL)?)
            }
            libc::SEEK_HOLE => {
                rustix::fs::SeekFrom::Hole(u64::try_from(offset).map_err(|_| Errno::INVAL)?)
            }
            _ => return Err(Errno::INVAL),
        };
        let at = rustix::fs::seek(&h.fd, pos)?;
        i64::try_from(at).map_err(|_| Errno::OVERFLOW)
    }

    /// The merged listing of a directory (with `.` and `..`) from entry `offset` on. The
    /// kernel opens directories without telling us (no `opendir`), so listings are kept per
    /// directory: a listing from the start is made afresh, a continuation reuses it, so the
    /// offsets of one pass through the directory stay consistent.
    pub fn listing(&self, ino: Ino, offset: u64) -> Result<Arc<Vec<DirEnt>>, Errno> {
        if offset > 0 {
            let kept = self
                .dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ino)
                .cloned();
            if let Some(l) = kept {
                return Ok(l);
            }
        }
        let _g = self.shared();
        let (n, p) = self.dir_node(ino)?;
        let parent = n.names.first().map_or(ROOT, |(p, _)| *p);
        let mut ents = vec![
            DirEnt {
                name: OsString::from("."),
                kind: FileType::Directory,
                ino,
            },
            DirEnt {
                name: OsString::from(".."),
                kind: FileType::Directory,
                ino: parent,
            },
        ];
        ents.extend(self.layers.merged(&n.dir_layers, &p)?);
        let ents = Arc::new(ents);
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        // Listings of directories listed long ago are not worth keeping.
        if dirs.len() >= MAX_KEPT_LISTINGS {
            dirs.clear();
        }
        dirs.insert(ino, Arc::clone(&ents));
        Ok(ents)
    }

    /// Forgets the kept listing of a directory (the kernel forgot the directory).
    pub fn drop_listing(&self, ino: Ino) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ino);
    }

    pub fn statfs(&self) -> Result<rustix::fs::StatVfs, Errno> {
        rustix::fs::fstatvfs(&self.layers.dirs[0].fd)
    }

    /// The path of a node's top file, for the path-only xattr calls.
    fn top_path(&self, ino: Ino) -> Result<PathBuf, Errno> {
        let (n, p) = self.node(ino)?;
        Ok(self.layers.dirs[n.layer].abs(&p))
    }

    pub fn getxattr(&self, ino: Ino, name: &OsStr) -> Result<Vec<u8>, Errno> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Errno::NODATA);
        }
        let _g = self.shared();
        crate::layers::get_xattr(&self.top_path(ino)?, name)
    }

    pub fn listxattr(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        let _g = self.shared();
        let mut out = Vec::new();
        for n in crate::layers::list_xattrs(&self.top_path(ino)?)? {
            if !is_private_xattr(&n) {
                out.extend_from_slice(&n);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], flags: i32) -> Result<(), Errno> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Errno::PERM);
        }
        let _g = self.exclusive();
        self.copy_up_meta(ino)?;
        #[allow(clippy::cast_sign_loss)]
        let flags = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
        rustix::fs::lsetxattr(self.top_path(ino)?, name, value, flags)
    }

    pub fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<(), Errno> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Errno::PERM);
        }
        let _g = self.exclusive();
        // Nothing to remove is ENODATA, and then nothing is copied up.
        crate::layers::get_xattr(&self.top_path(ino)?, name)?;
        self.copy_up_meta(ino)?;
        rustix::fs::lremovexattr(self.top_path(ino)?, name)
    }

    pub fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        mode: RenameMode,
    ) -> Result<(), Errno> {
        check_name(name)?;
        check_name(new_name)?;
        let _g = self.exclusive();
        self.rename_locked(parent, name, new_parent, new_name, mode)
    }
}

/// Turns the kernel's open flags into the ones we open the real file with.
fn open_flags(flags: i32) -> OFlags {
    #[allow(clippy::cast_sign_loss)]
    let f = OFlags::from_bits_retain(flags as u32);
    let keep = OFlags::RWMODE
        | OFlags::APPEND
        | OFlags::TRUNC
        | OFlags::DIRECT
        | OFlags::SYNC
        | OFlags::DSYNC
        | OFlags::NOATIME;
    (f & keep) | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

pub(crate) fn timespec(t: std::time::SystemTime) -> Timespec {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        },
        Err(e) => {
            let d = e.duration();
            let mut sec = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nsec = i64::from(d.subsec_nanos());
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            }
        }
    }
}

/// Removes the whiteouts an upper directory holds (all it holds once the merged view of it is
/// empty), so that it can be removed or replaced.
pub(crate) fn clear_whiteouts(layers: &Layers, rel: &Path) -> Result<(), Errno> {
    let upper = layers.upper()?;
    let fd = rustix::fs::openat(
        &upper.fd,
        dot(rel),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    let mut dir = rustix::fs::Dir::read_from(&fd)?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        let child = rel.join(&n);
        let st = layers.stat(0, &child)?;
        if !layers.is_whiteout(0, &child, &st) {
            return Err(Errno::NOTEMPTY);
        }
        rustix::fs::unlinkat(&fd, &n, AtFlags::empty())?;
    }
    Ok(())
}

fn prepare_work(w: &Path) -> Result<Layer, String> {
    let dir = w.join("strata-fuse");
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Debris of a server that died while copying: unfinished copies only.
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() && !p.is_symlink() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
        }
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    Layer::open(&dir)
}
