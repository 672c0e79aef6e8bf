//! Creating one entry in the tree: regular files, directories, symlinks, hardlinks and device
//! nodes, with their owners, modes, xattrs and times.
//!
//! Every call works on a [`Target`]: an in-root-resolved parent directory fd plus a single name
//! component, used with `*at` calls that never follow the final component. An existing path of
//! another type is removed first (a directory over a directory merges); an existing file is
//! unlinked and re-created, never written through.
//!
//! Order of metadata: content, then owner (chown clears setuid/setgid and file capabilities),
//! then mode, then xattrs (incl. `security.capability`), then times. Directory modes and times
//! are deferred to [`Extractor::finish`], after their children are written.
//!
//! It does not parse tar, decide whiteouts (see `whiteout`) or know about tar-split.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use crate::error::show;
use crate::paths;
use crate::pax::Time;
use crate::sparse::{self, PaxSparse};
use crate::tree::{self, Root};
use crate::{ApplyOptions, ArchiveError, Ownership, WhiteoutFormat, COPY_BUFFER};

mod attrs;
mod links;

use attrs::{timestamps, Xattr};

/// Metadata of an entry, from its header and PAX records.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: Time,
    pub(crate) atime: Time,
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where an entry goes: its resolved parent directory and its name in it.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) parent: Rc<OwnedFd>,
    pub(crate) name: CString,
    /// The normalised entry path (for messages and bookkeeping).
    pub(crate) path: Vec<u8>,
}

/// How a regular file's data is laid out in the entry.
#[derive(Debug)]
pub(crate) enum FileData<'a> {
    Plain,
    /// A GNU sparse entry expanded by the tar crate.
    GnuSparse,
    PaxSparse(&'a PaxSparse),
}

/// Why copying an entry's data failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading the stream failed (classified by the caller from the tap's state).
    Stream(io::Error),
    /// The stream ended inside the entry.
    Truncated,
    /// The entry's data is inconsistent (sparse maps).
    Format(String),
    /// Writing the file failed.
    Write(io::Error),
}

/// An entry failure: either final, or a copy failure the caller must classify.
#[derive(Debug)]
pub(crate) enum Fail {
    Archive(ArchiveError),
    Copy(CopyError),
}

impl From<ArchiveError> for Fail {
    fn from(e: ArchiveError) -> Self {
        Fail::Archive(e)
    }
}

pub(crate) fn extract_err(path: &[u8], op: &str, e: impl Into<io::Error>) -> ArchiveError {
    ArchiveError::Extract {
        entry: show(path),
        op: op.to_owned(),
        source: e.into(),
    }
}

/// A directory whose mode and times are set once everything is extracted.
#[derive(Debug)]
struct DirFix {
    path: Vec<u8>,
    mode: u32,
    times: Option<Timestamps>,
}

/// Extraction state for one layer.
#[derive(Debug)]
pub(crate) struct Extractor {
    pub(crate) root: Root,
    pub(crate) whiteouts: WhiteoutFormat,
    pub(crate) ownership: Ownership,
    /// Whether we run as real root (else some failures are tolerated, like rootless podman
    /// does). Root of a user namespace is not: it cannot make devices or set `trusted.*`.
    pub(crate) privileged: bool,
    /// Paths this layer created (only tracked for [`WhiteoutFormat::Apply`], for opaque dirs).
    pub(crate) created: Option<HashSet<Vec<u8>>>,
    dir_fixes: Vec<DirFix>,
    pub(crate) buf: Vec<u8>,
}

impl Extractor {
    pub(crate) fn new(root: &Path, opts: &ApplyOptions) -> Result<Self, ArchiveError> {
        let root = Root::open(root).map_err(|source| ArchiveError::Open {
            path: root.to_owned(),
            source,
        })?;
        Ok(Extractor {
            root,
            whiteouts: opts.whiteouts,
            ownership: opts.ownership,
            privileged: rustix::process::geteuid().is_root() && !attrs::in_user_namespace(),
            created: (opts.whiteouts == WhiteoutFormat::Apply).then(HashSet::new),
            dir_fixes: Vec::new(),
            buf: vec![0; COPY_BUFFER],
        })
    }

    /// Resolves the parent of `path` (creating missing directories) and names the entry.
    pub(crate) fn target(&mut self, path: &[u8]) -> Result<Target, ArchiveError> {
        let (dir, name) = paths::split(path);
        let parent = self.dir_create(dir, path)?;
        let name = tree::cstr(name).map_err(|e| extract_err(path, "name", e))?;
        Ok(Target {
            parent,
            name,
            path: path.to_vec(),
        })
    }

    /// The directory `dir`, creating missing components (recorded as created by this layer,
    /// with mode 0755 set at the end); `entry` names the entry for errors.
    pub(crate) fn dir_create(
        &mut self,
        dir: &[u8],
        entry: &[u8],
    ) -> Result<Rc<OwnedFd>, ArchiveError> {
        let mut made = Vec::new();
        let fd = self.root.dir_create(dir, &mut made).map_err(|e| {
            if [Errno::NOTDIR, Errno::LOOP]
                .iter()
                .any(|x| e.raw_os_error() == Some(x.raw_os_error()))
            {
                ArchiveError::Refused {
                    entry: show(entry),
                    reason: "a parent is not a directory inside the layer (a file, or a symlink \
                             that does not lead to a directory within the root, is in the way)"
                        .into(),
                }
            } else {
                extract_err(entry, "resolve parent directory", e)
            }
        })?;
        for d in made {
            self.dir_fixes.push(DirFix {
                path: d.clone(),
                mode: 0o755,
                times: None,
            });
            self.note_created(&d);
        }
        Ok(fd)
    }

    pub(crate) fn note_created(&mut self, path: &[u8]) {
        if let Some(set) = &mut self.created {
            set.insert(path.to_vec());
        }
    }

    /// Removes whatever is at `t` (recursively).
    pub(crate) fn clear(&mut self, t: &Target) -> Result<(), ArchiveError> {
        let removed = tree::remove_all(t.parent.as_fd(), &t.name)
            .map_err(|e| extract_err(&t.path, "remove existing path", e))?;
        if removed {
            // A cached directory may have lived under (or been) the removed path.
            self.root.invalidate();
        }
        Ok(())
    }

    /// Creates a regular file with `size` bytes of `content`.
    pub(crate) fn regular(
        &mut self,
        t: &Target,
        meta: &Meta,
        content: &mut dyn Read,
        size: u64,
        data: FileData<'_>,
    ) -> Result<(), Fail> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match fs::openat(&*t.parent, &t.name, flags, mode) {
            Err(Errno::EXIST) => {
                self.clear(t)?;
                fs::openat(&*t.parent, &t.name, flags, mode)
            }
            other => other,
        }
        .map_err(|e| extract_err(&t.path, "create file", e))?;
        let mut file = File::from(fd);
        let buf = &mut self.buf;
        match data {
            FileData::Plain => copy_exact(&mut file, content, size, buf),
            FileData::GnuSparse => sparse::write_detecting_holes(&file, content, size, buf),
            FileData::PaxSparse(sp) => sparse::write_pax(&file, content, size, sp, buf),
        }
        .map_err(Fail::Copy)?;
        self.own_fd(file.as_fd(), &t.path, meta)?;
        fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
            .map_err(|e| extract_err(&t.path, "chmod", e))?;
        self.xattrs(Xattr::Fd(file.as_fd()), &t.path, meta)?;
        fs::futimens(&file, &timestamps(meta)).map_err(|e| extract_err(&t.path, "set times", e))?;
        self.note_created(&t.path);
        Ok(())
    }

    /// Creates (or merges into) a directory; `path` empty means the root itself.
    pub(crate) fn directory(&mut self, path: &[u8], meta: &Meta) -> Result<(), ArchiveError> {
        if path.is_empty() {
            let root = self
                .root
                .open_in(b"", OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| extract_err(path, "open root", e))?;
            self.own_fd(root.as_fd(), path, meta)?;
            self.xattrs(Xattr::Fd(root.as_fd()), path, meta)?;
        } else {
            let t = self.target(path)?;
            let mode = Mode::from_raw_mode(0o700);
            match fs::mkdirat(&*t.parent, &t.name, mode) {
                Ok(()) => {}
                Err(Errno::EXIST) if self.is_dir(&t) => {}
                Err(Errno::EXIST) => {
                    self.clear(&t)?;
                    fs::mkdirat(&*t.parent, &t.name, mode)
                        .map_err(|e| extract_err(path, "create directory", e))?;
                }
                Err(e) => return Err(extract_err(path, "create directory", e)),
            }
            self.own_at(&t, meta)?;
            if !meta.xattrs.is_empty() {
                let dir = fs::openat(
                    &*t.parent,
                    &t.name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| extract_err(path, "open directory", e))?;
                self.xattrs(Xattr::Fd(dir.as_fd()), path, meta)?;
            }
            self.note_created(path);
        }
        self.dir_fixes.push(DirFix {
            path: path.to_vec(),
            mode: meta.mode,
            times: Some(timestamps(meta)),
        });
        Ok(())
    }

    fn is_dir(&self, t: &Target) -> bool {
        fs::statat(&*t.parent, &t.name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }

    /// Sets the deferred directory modes and times. Directories replaced or removed later in
    /// the stream are skipped.
    pub(crate) fn finish(&mut self) -> Result<(), ArchiveError> {
        for fix in std::mem::take(&mut self.dir_fixes) {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
            let fd = match self.root.open_in(&fix.path, flags) {
                Ok(fd) => fd,
                Err(e)
                    if [Errno::NOENT, Errno::NOTDIR, Errno::LOOP]
                        .iter()
                        .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
                {
                    continue
                }
                Err(e) => return Err(extract_err(&fix.path, "open directory", e)),
            };
            fs::fchmod(&fd, Mode::from_raw_mode(fix.mode))
                .map_err(|e| extract_err(&fix.path, "chmod", e))?;
            if let Some(times) = &fix.times {
                fs::futimens(&fd, times).map_err(|e| extract_err(&fix.path, "set times", e))?;
            }
        }
        Ok(())
    }
}

/// Copies exactly `size` bytes from `content` to `out`.
fn copy_exact(
    out: &mut File,
    content: &mut dyn Read,
    size: u64,
    buf: &mut [u8],
) -> Result<(), CopyError> {
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match content.read(&mut buf[..want]) {
            Ok(0) => return Err(CopyError::Truncated),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Stream(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        left -= n as u64;
    }
    Ok(())
}
