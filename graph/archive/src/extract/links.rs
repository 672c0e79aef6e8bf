//! Symlinks, hardlinks and device nodes (including fifos).
//!
//! Hardlink targets are resolved inside the root and must exist there; linking never follows
//! the target's final component, so a hardlink to a symlink links the symlink itself.

use std::ffi::CString;
use std::rc::Rc;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self, AtFlags, Dev, FileType, Mode};
use rustix::io::Errno;
use tracing::warn;

use super::{extract_err, Extractor, Meta, Target, Xattr};
use crate::error::show;
use crate::paths;
use crate::tree;
use crate::ArchiveError;

impl Extractor {
    pub(crate) fn symlink(
        &mut self,
        t: &Target,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        match fs::symlinkat(target, &*t.parent, &t.name) {
            Err(Errno::EXIST) => {
                self.clear(t)?;
                fs::symlinkat(target, &*t.parent, &t.name)
            }
            other => other,
        }
        .map_err(|e| extract_err(&t.path, "create symlink", e))?;
        self.own_at(t, meta)?;
        self.xattrs(
            Xattr::At(t.parent.as_fd(), t.name.as_bytes()),
            &t.path,
            meta,
        )?;
        self.times_at(t, meta)?;
        self.note_created(&t.path);
        Ok(())
    }

    /// Links `t` to the existing path `link` (normalised, in the root).
    pub(crate) fn hardlink(&mut self, t: &Target, link: &[u8]) -> Result<(), ArchiveError> {
        let refuse = |reason: &str| ArchiveError::Refused {
            entry: show(&t.path),
            reason: format!("hardlink target {:?} {reason}", show(link)),
        };
        let (ldir, lname) = paths::split(link);
        if lname.is_empty() {
            return Err(refuse("is the root"));
        }
        let lparent = match self.root.dir(ldir) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Err(refuse("does not exist in the layer"))
            }
            Err(e) => return Err(extract_err(&t.path, "resolve hardlink target", e)),
        };
        let lname = tree::cstr(lname).map_err(|e| extract_err(&t.path, "name", e))?;
        let link_it = || fs::linkat(&*lparent, &lname, &*t.parent, &t.name, AtFlags::empty());
        let res = match link_it() {
            Err(Errno::EXIST) => {
                let same = |a: &Rc<OwnedFd>, n: &CString| {
                    fs::statat(&**a, n, AtFlags::SYMLINK_NOFOLLOW).ok()
                };
                match (same(&lparent, &lname), same(&t.parent, &t.name)) {
                    (Some(a), Some(b)) if a.st_dev == b.st_dev && a.st_ino == b.st_ino => Ok(()),
                    _ => {
                        self.clear(t)?;
                        link_it()
                    }
                }
            }
            other => other,
        };
        match res {
            Ok(()) => {}
            Err(Errno::NOENT) => return Err(refuse("does not exist in the layer")),
            Err(Errno::PERM) => return Err(refuse("is a directory")),
            Err(e) => return Err(extract_err(&t.path, "create hardlink", e)),
        }
        self.note_created(&t.path);
        Ok(())
    }

    /// Creates a character/block device or a fifo. Without privileges a device that cannot be
    /// created is skipped with a warning (as rootless podman does).
    pub(crate) fn node(
        &mut self,
        t: &Target,
        kind: FileType,
        dev: Dev,
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        let perm = Mode::from_raw_mode(meta.mode & 0o777);
        let made = match fs::mknodat(&*t.parent, &t.name, kind, perm, dev) {
            Err(Errno::EXIST) => {
                self.clear(t)?;
                fs::mknodat(&*t.parent, &t.name, kind, perm, dev)
            }
            other => other,
        };
        match made {
            Ok(()) => {}
            Err(Errno::PERM) if !self.privileged && kind != FileType::Fifo => {
                warn!(entry = %show(&t.path), "skipping device node: not permitted without privileges");
                return Ok(());
            }
            Err(e) => return Err(extract_err(&t.path, "create node", e)),
        }
        self.own_at(t, meta)?;
        fs::chmodat(
            &*t.parent,
            &t.name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(|e| extract_err(&t.path, "chmod", e))?;
        self.xattrs(
            Xattr::At(t.parent.as_fd(), t.name.as_bytes()),
            &t.path,
            meta,
        )?;
        self.times_at(t, meta)?;
        self.note_created(&t.path);
        Ok(())
    }
}
