//! `write_changes`: an OCI layer tar from a driver's change list.
//!
//! Entries are written in the order of the list. Modified paths are read from the source tree
//! (in-root resolution, final component not followed): type, mode (incl. setuid/setgid/sticky),
//! numeric owner, mtime (seconds), xattrs (all but `security.selinux`, which is host labelling,
//! and the overlay driver's own `trusted.overlay.*` / `user.overlay.*`), device numbers,
//! symlink targets and file data. A non-directory whose inode was already written in this tar
//! becomes a hardlink entry to the first path. Deleted paths become `dir/.wh.name` and opaque
//! directories get a `dir/.wh..wh..opq` marker after their own entry. Whiteouts carry no
//! owner, mode or time, so the output depends only on the tree and the list.
//!
//! Sockets are skipped (tar cannot carry them). It does not compute the change list or
//! compress.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::buffer::spare_capacity;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use strata_types::Digest;
use tracing::debug;

use crate::error::show;
use crate::export::HashWriter;
use crate::tarheader::{self, EntryHeader};
use crate::tree::{self, Root};
use crate::whiteout::{OPAQUE, PREFIX};
use crate::{paths, ArchiveError, Change, ChangeKind, COPY_BUFFER};

/// Writes an OCI layer tar (uncompressed) of `changes` (sorted, from Driver::changes), taking
/// added/modified entries from `source` (Driver::changes_source), emitting `.wh.` whiteouts for
/// deletions and `.wh..wh..opq` for opaque directories, keeping hardlinks together.
/// Returns (diff id, size).
pub fn write_changes(
    changes: &[Change],
    source: &Path,
    out: impl Write,
) -> Result<(Digest, u64), ArchiveError> {
    write_changes_with_owners(changes, source, &|uid, gid| (uid, gid), out)
}

/// Maps an on-disk (uid, gid) to the owner a tar entry records.
pub type OwnerMap<'a> = &'a dyn Fn(u32, u32) -> (u32, u32);

/// [`write_changes`] for a tree whose files carry host ids that differ from the image's: a
/// container in its own user namespace writes its upper directory with its host ids, and
/// `owners` maps them back to the ids the layer must record (containers/storage's reverse
/// mapping on diff).
pub fn write_changes_with_owners(
    changes: &[Change],
    source: &Path,
    owners: OwnerMap<'_>,
    out: impl Write,
) -> Result<(Digest, u64), ArchiveError> {
    let _span =
        tracing::debug_span!("write_changes", source = %source.display(), changes = changes.len())
            .entered();
    let root = Root::open(source).map_err(|e| ArchiveError::Open {
        path: source.to_owned(),
        source: e,
    })?;
    let mut w = Writer {
        root,
        owners,
        out: HashWriter::new(BufWriter::with_capacity(COPY_BUFFER, out)),
        links: HashMap::new(),
        hdr: Vec::with_capacity(4096),
        buf: vec![0; COPY_BUFFER],
    };
    let mut last_written: Option<Vec<u8>> = None;
    for change in changes {
        let raw = change.path.as_os_str().as_bytes();
        let path = paths::normalize(raw).map_err(|r| ArchiveError::Unrepresentable {
            path: show(raw),
            reason: r.to_owned(),
        })?;
        if path.is_empty() {
            continue; // the root itself is not an entry of a layer
        }
        match change.kind {
            ChangeKind::Modified => {
                w.entry(&path)?;
                last_written = Some(path);
            }
            ChangeKind::Deleted => {
                let (dir, name) = paths::split(&path);
                let mut wh = PREFIX.to_vec();
                wh.extend_from_slice(name);
                w.marker(&paths::join(dir, &wh))?;
            }
            ChangeKind::Opaque => {
                if last_written.as_deref() != Some(&path[..]) {
                    w.entry(&path)?;
                }
                w.marker(&paths::join(&path, OPAQUE))?;
                last_written = Some(path);
            }
        }
    }
    w.out.write_all(&[0u8; 1024]).map_err(write_err)?;
    w.out.flush().map_err(write_err)?;
    Ok(w.out.finish())
}

fn write_err(source: io::Error) -> ArchiveError {
    ArchiveError::Write { source }
}

struct Writer<'o, W: Write> {
    root: Root,
    owners: OwnerMap<'o>,
    out: HashWriter<BufWriter<W>>,
    /// (dev, ino) of multiply-linked inodes already written -> their path in this tar.
    links: HashMap<(u64, u64), Vec<u8>>,
    hdr: Vec<u8>,
    buf: Vec<u8>,
}

impl<W: Write> Writer<'_, W> {
    /// A zero-size whiteout or opaque marker entry.
    fn marker(&mut self, path: &[u8]) -> Result<(), ArchiveError> {
        self.header(&EntryHeader {
            path,
            typeflag: b'0',
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        })
    }

    fn header(&mut self, h: &EntryHeader<'_>) -> Result<(), ArchiveError> {
        self.hdr.clear();
        tarheader::encode(h, &mut self.hdr).map_err(|reason| ArchiveError::Unrepresentable {
            path: show(h.path),
            reason,
        })?;
        self.out.write_all(&self.hdr).map_err(write_err)
    }

    /// The entry for the path `path` of the source tree.
    fn entry(&mut self, path: &[u8]) -> Result<(), ArchiveError> {
        let src_err = |e: io::Error| ArchiveError::Source {
            path: show(path),
            source: e,
        };
        let (dir, name) = paths::split(path);
        let parent = self.root.dir(dir).map_err(src_err)?;
        let cname = tree::cstr(name).map_err(src_err)?;
        let mut st = fs::statat(&*parent, &cname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| src_err(e.into()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut file = None;
        let mut link = Vec::new();
        let mut typeflag = match ft {
            FileType::RegularFile => b'0',
            FileType::Directory => b'5',
            FileType::Symlink => b'2',
            FileType::CharacterDevice => b'3',
            FileType::BlockDevice => b'4',
            FileType::Fifo => b'6',
            _ => {
                debug!(path = %show(path), "skipping a socket or unknown file type");
                return Ok(());
            }
        };
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            match self.links.get(&key) {
                Some(first) => {
                    typeflag = b'1';
                    link = first.clone();
                }
                None => {
                    self.links.insert(key, path.to_vec());
                }
            }
        }
        if typeflag == b'0' {
            let fd = fs::openat(
                &*parent,
                &cname,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| src_err(e.into()))?;
            st = fs::fstat(&fd).map_err(|e| src_err(e.into()))?;
            file = Some(File::from(fd));
        } else if typeflag == b'2' {
            link = fs::readlinkat(&*parent, &cname, Vec::new())
                .map_err(|e| src_err(e.into()))?
                .into_bytes();
        }
        // A hardlink entry shares the first entry's inode, xattrs included.
        let xattrs = if typeflag == b'1' {
            Vec::new()
        } else {
            read_xattrs(parent.as_fd(), name).map_err(src_err)?
        };
        let mut tar_path = path.to_vec();
        if typeflag == b'5' {
            tar_path.push(b'/');
        }
        let dev = if matches!(typeflag, b'3' | b'4') {
            (fs::major(st.st_rdev), fs::minor(st.st_rdev))
        } else {
            (0, 0)
        };
        let size = if file.is_some() { st.st_size as u64 } else { 0 };
        let (uid, gid) = (self.owners)(st.st_uid, st.st_gid);
        self.header(&EntryHeader {
            path: &tar_path,
            typeflag,
            mode: st.st_mode & 0o7777,
            uid: u64::from(uid),
            gid: u64::from(gid),
            mtime: st.st_mtime,
            size,
            link: &link,
            dev,
            xattrs: &xattrs,
        })?;
        if let Some(mut file) = file {
            self.data(&mut file, size, path)?;
        }
        Ok(())
    }

    /// Copies exactly `size` bytes of `file`, then the block padding.
    fn data(&mut self, file: &mut File, size: u64, path: &[u8]) -> Result<(), ArchiveError> {
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(ArchiveError::Source {
                        path: show(path),
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while being written",
                        ),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ArchiveError::Source {
                        path: show(path),
                        source: e,
                    })
                }
            };
            self.out.write_all(&self.buf[..n]).map_err(write_err)?;
            left -= n as u64;
        }
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(write_err)?;
        }
        Ok(())
    }
}

/// Whether an xattr belongs in a layer.
fn exported(name: &[u8]) -> bool {
    name != b"security.selinux"
        && !name.starts_with(b"trusted.overlay.")
        && !name.starts_with(b"user.overlay.")
}

/// The exported xattrs of `name` in `dir`, sorted by name.
fn read_xattrs(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = tree::proc_path(dir, name);
    let mut list = Vec::new();
    loop {
        let size = match fs::llistxattr_query(&path) {
            Ok(0) | Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Ok(n) => n,
            Err(e) => return Err(e.into()),
        };
        list.clear();
        list.reserve(size);
        match fs::llistxattr(&path, spare_capacity(&mut list)) {
            Ok(_) => break,
            Err(Errno::RANGE) => continue, // grew in between
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = Vec::new();
    for key in list
        .split(|&b| b == 0)
        .filter(|k| !k.is_empty() && exported(k))
    {
        let mut value = Vec::new();
        loop {
            let size = match fs::lgetxattr_query(&path, key) {
                Ok(n) => n,
                Err(Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            };
            value.clear();
            value.reserve(size);
            match fs::lgetxattr(&path, key, spare_capacity(&mut value)) {
                Ok(_) => {
                    out.push((key.to_vec(), std::mem::take(&mut value)));
                    break;
                }
                Err(Errno::RANGE) => continue,
                Err(Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    out.sort();
    Ok(out)
}
