//! The FUSE side: the one module that knows the `fuser` crate. It turns kernel requests into
//! calls of [`crate::fs::Fs`] and their results into replies, negotiates the kernel's
//! features, and hands file data to the kernel (passthrough) where it can.
//!
//! - **Threads:** `fuser` reads requests on `threads` threads, each with its own cloned
//!   `/dev/fuse` descriptor; `Fs` does its own locking.
//! - **Caching:** entries and attributes are cached for `timeout` (only this server changes
//!   the upper directory while it is mounted, and the kernel learns of every change through its
//!   own requests); file pages stay cached across opens (`FOPEN_KEEP_CACHE`); directory
//!   listings are cached by the kernel (`FOPEN_CACHE_DIR`, dropped by the kernel when the
//!   directory changes); symlinks are cached; every listing is a `readdirplus`, which answers
//!   listing and lookups in one request per page of entries. No `flush` handler: the kernel
//!   stops sending one per `close` after the first "not implemented".
//! - **Passthrough** (Linux 6.9+): reads, writes and mmap of an open file go straight to the
//!   layer's file, small files too (measured: `tar c` of 5,700 files twice as fast as through
//!   READ requests; a request round trip costs far more than registering a backing file). Registering a backing file needs `CAP_SYS_ADMIN` in the initial user
//!   namespace, so a rootless server (and `passthrough=off`) serves data itself through the page
//!   cache. One backing file per node at a time: an open of a node whose other opens still use
//!   another file (a read-only open from before a copy-up) is served without passthrough.
//! - **Locks:** POSIX and BSD locks are left to the kernel (neither lock capability is
//!   requested), which keeps them correct for every process using this mount.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use fuser::{
    BackingId, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, Session, SessionACL, TimeOrNow,
};

use crate::attr::Attr;
use crate::fs::{Caller, Fs, RenameMode, SetAttr, SetTime};
use crate::options::{Options, Passthrough};
use crate::tree::DiskKey;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn kind(k: rustix::fs::FileType) -> FileType {
    use rustix::fs::FileType as R;
    match k {
        R::Directory => FileType::Directory,
        R::Symlink => FileType::Symlink,
        R::Fifo => FileType::NamedPipe,
        R::CharacterDevice => FileType::CharDevice,
        R::BlockDevice => FileType::BlockDevice,
        R::Socket => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    })
}

/// Backing files registered with the kernel: one per node at a time, kept while an open
/// handle uses it; and the handles served through the page cache instead, per node (the
/// kernel does not mix the two on one inode).
#[derive(Debug, Default)]
struct Backing {
    by_node: HashMap<u64, (DiskKey, Weak<BackingId>)>,
    by_handle: HashMap<u64, Arc<BackingId>>,
    cached_handles: HashMap<u64, u64>,
    cached_per_node: HashMap<u64, usize>,
}

#[derive(Debug)]
struct Server {
    fs: Fs,
    ttl: Duration,
    want_passthrough: bool,
    passthrough: AtomicBool,
    backing: Mutex<Backing>,
}

const GEN: Generation = Generation(0);

impl Server {
    /// A backing id for `key` on `node`, registering `fd` if the node has none; `None` when
    /// the node's open files use another file or the kernel refuses.
    fn backing(
        &self,
        node: u64,
        key: DiskKey,
        fd: &OwnedFd,
        register: impl FnOnce(&OwnedFd) -> std::io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        let mut b = self.backing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, weak)) = b.by_node.get(&node) {
            if let Some(id) = weak.upgrade() {
                return (*k == key).then_some(id);
            }
        }
        if b.cached_per_node.get(&node).is_some_and(|n| *n > 0) {
            return None;
        }
        match register(fd) {
            Ok(id) => {
                let id = Arc::new(id);
                b.by_node.insert(node, (key, Arc::downgrade(&id)));
                Some(id)
            }
            Err(e) => {
                tracing::debug!(error = %e, "passthrough refused; serving data ourselves");
                None
            }
        }
    }

    fn keep(&self, fh: u64, id: Arc<BackingId>) {
        self.backing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_handle
            .insert(fh, id);
    }

    fn cached(&self, fh: u64, node: u64) {
        let mut b = self.backing.lock().unwrap_or_else(|p| p.into_inner());
        b.cached_handles.insert(fh, node);
        *b.cached_per_node.entry(node).or_default() += 1;
    }

    fn released(&self, fh: u64) {
        let mut b = self.backing.lock().unwrap_or_else(|p| p.into_inner());
        b.by_handle.remove(&fh);
        if let Some(node) = b.cached_handles.remove(&fh) {
            if let Some(n) = b.cached_per_node.get_mut(&node) {
                *n -= 1;
                if *n == 0 {
                    b.cached_per_node.remove(&node);
                }
            }
        }
    }

    fn entry(&self, r: Result<Attr, rustix::io::Errno>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), GEN),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(r: Result<(), rustix::io::Errno>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for Server {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // readdirplus always (not `_AUTO`, which lists with attributes only the first page of
        // a directory): one request per page of entries instead of a lookup per entry.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_ASYNC_DIO,
        ] {
            let _ = config.add_capabilities(cap);
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(u32::MAX);
        let _ = config.set_max_background(64);
        if self.want_passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        tracing::debug!(
            passthrough = self.passthrough.load(Ordering::Relaxed),
            "fuse session ready"
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(self.fs.lookup(parent.0, name), reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
        };
        match self.fs.setattr(ino.0, set, fh.map(|f| f.0)) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.entry(
            self.fs.mknod(parent.0, name, mode, rdev, caller(req)),
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(self.fs.mkdir(parent.0, name, mode, caller(req)), reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.fs.unlink(parent.0, name), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.fs.rmdir(parent.0, name), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.entry(
            self.fs.symlink(parent.0, link_name, target, caller(req)),
            reply,
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        Self::empty(
            self.fs.rename(
                parent.0,
                name,
                newparent.0,
                newname,
                if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                    RenameMode::Exchange
                } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    RenameMode::NoReplace
                } else {
                    RenameMode::Replace
                },
            ),
            reply,
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.entry(self.fs.link(ino.0, newparent.0, newname), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (fh, h) = match self.fs.open(ino.0, flags.0) {
            Ok(v) => v,
            Err(e) => return reply.error(errno(e)),
        };
        if self.passthrough.load(Ordering::Relaxed) {
            if let Some(id) = self.backing(ino.0, h.key, &h.fd, |fd| reply.open_backing(fd)) {
                reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id);
                self.keep(fh, id);
                return;
            }
        }
        self.cached(fh, ino.0);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (attr, fh) = match self.fs.create(parent.0, name, mode, flags, caller(req)) {
            Ok(v) => v,
            Err(e) => return reply.error(errno(e)),
        };
        let attr = file_attr(&attr);
        if self.passthrough.load(Ordering::Relaxed) {
            if let Ok(h) = self.fs.handle(fh) {
                if let Some(id) =
                    self.backing(attr.ino.0, h.key, &h.fd, |fd| reply.open_backing(fd))
                {
                    reply.created_passthrough(
                        &self.ttl,
                        &attr,
                        GEN,
                        FileHandle(fh),
                        FopenFlags::empty(),
                        &id,
                    );
                    self.keep(fh, id);
                    return;
                }
            }
        }
        self.cached(fh, attr.ino.0);
        reply.created(
            &self.ttl,
            &attr,
            GEN,
            FileHandle(fh),
            FopenFlags::FOPEN_KEEP_CACHE,
        );
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(fh.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        self.released(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.fs.fsync(fh.0, datasync), reply);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // "Not implemented": the kernel then opens directories without asking (no OPENDIR
        // and RELEASEDIR round trips per directory walked) and keeps their listings
        // (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, which it drops itself when a directory changes
        // through this mount, the only way it changes).
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let ents = match self.fs.listing(ino.0, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in ents.iter().enumerate().skip(start) {
            if reply.add(INodeNo(e.ino.max(1)), (i + 1) as u64, kind(e.kind), &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ents = match self.fs.listing(ino.0, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let dir = match self.fs.dir_context(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(e)),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in ents.iter().enumerate().skip(start) {
            let dot = e.name == "." || e.name == "..";
            // The kernel counts a lookup for every entry but `.` and `..`.
            let attr = if dot {
                self.fs.getattr(if e.name == "." { ino.0 } else { e.ino })
            } else {
                self.fs.lookup_in(ino.0, &dir, &e.name)
            };
            let Ok(attr) = attr else { continue };
            let full = reply.add(
                INodeNo(attr.ino),
                (i + 1) as u64,
                &e.name,
                &self.ttl,
                &file_attr(&attr),
                GEN,
            );
            if full {
                if !dot {
                    self.fs.forget(attr.ino, 1);
                }
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            #[allow(clippy::cast_possible_truncation)]
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.fs.setxattr(ino.0, name, value, flags), reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr_reply(self.fs.getxattr(ino.0, name), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(self.fs.listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.fs.removexattr(ino.0, name), reply);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // `default_permissions`: the kernel checks permissions from our attributes.
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.fs.fallocate(fh.0, offset, length, mode), reply);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.fs.lseek(fh.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn xattr_reply(r: Result<Vec<u8>, rustix::io::Errno>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(u32::try_from(v.len()).unwrap_or(u32::MAX)),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(e)),
    }
}

/// Serves the filesystem on `dev`, a `/dev/fuse` descriptor already mounted, until it is
/// unmounted. `ready` is called once the layers are open (before the kernel's first request).
pub fn serve(fs: Fs, o: &Options, dev: OwnedFd) -> std::io::Result<()> {
    let real_root = rustix::process::geteuid().is_root() && !strata_mount::in_user_namespace();
    let server = Server {
        fs,
        ttl: o.timeout,
        want_passthrough: o.passthrough == Passthrough::Auto && real_root,
        passthrough: AtomicBool::new(false),
        backing: Mutex::new(Backing::default()),
    };
    let mut config = Config::default();
    config.n_threads = Some(o.threads);
    config.clone_fd = o.threads > 1;
    config.acl = SessionACL::All;
    let session = Session::from_fd(server, dev, SessionACL::All, config)?;
    session.run()
}
