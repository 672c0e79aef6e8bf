//! Owners, xattrs and times of extracted entries.
//!
//! Overlay xattrs (`trusted.overlay.*`, `user.overlay.*`) in a layer are never applied: they
//! are the driver's own representation and a layer must not forge them. Without privileges,
//! xattrs the kernel refuses are skipped with a warning, as rootless podman does.

use rustix::fd::BorrowedFd;
use rustix::fs::{self, AtFlags, Gid, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tracing::{debug, warn};

use super::{extract_err, Extractor, Meta, Target};
use crate::error::show;
use crate::pax::Time;
use crate::tree;
use crate::{ArchiveError, Ownership};

impl Extractor {
    pub(super) fn own_fd(
        &self,
        fd: BorrowedFd<'_>,
        path: &[u8],
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        if self.ownership == Ownership::Preserve {
            fs::fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| extract_err(path, "chown", e))?;
        }
        Ok(())
    }

    pub(crate) fn own_at(&self, t: &Target, meta: &Meta) -> Result<(), ArchiveError> {
        if self.ownership == Ownership::Preserve {
            fs::chownat(
                &*t.parent,
                &t.name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| extract_err(&t.path, "chown", e))?;
        }
        Ok(())
    }

    pub(super) fn times_at(&self, t: &Target, meta: &Meta) -> Result<(), ArchiveError> {
        fs::utimensat(
            &*t.parent,
            &t.name,
            &timestamps(meta),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| extract_err(&t.path, "set times", e))
    }

    pub(super) fn xattrs(
        &self,
        on: Xattr<'_>,
        path: &[u8],
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        for (name, value) in &meta.xattrs {
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                debug!(entry = %show(path), xattr = %show(name), "ignoring overlay xattr from layer");
                continue;
            }
            let res = match on {
                Xattr::Fd(fd) => fs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()),
                Xattr::At(dir, n) => fs::lsetxattr(
                    tree::proc_path(dir, n),
                    name.as_slice(),
                    value,
                    XattrFlags::empty(),
                ),
            };
            match res {
                Ok(()) => {}
                Err(Errno::OPNOTSUPP) => {
                    warn!(entry = %show(path), xattr = %show(name), "filesystem does not support xattr; skipped")
                }
                Err(Errno::PERM | Errno::ACCESS) if !self.privileged => {
                    warn!(entry = %show(path), xattr = %show(name), "xattr not permitted without privileges; skipped")
                }
                Err(e) => return Err(extract_err(path, &format!("set xattr {}", show(name)), e)),
            }
        }
        Ok(())
    }
}

/// Where to set xattrs: an open fd, or a name in a directory (symlinks, device nodes).
#[derive(Clone, Copy)]
pub(super) enum Xattr<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

pub(super) fn timestamps(meta: &Meta) -> Timestamps {
    let ts = |t: Time| Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    };
    Timestamps {
        last_access: ts(meta.atime),
        last_modification: ts(meta.mtime),
    }
}
