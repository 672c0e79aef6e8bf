//! Owners, xattrs and times of extracted entries.
//!
//! Overlay xattrs (`trusted.overlay.*`, `user.overlay.*`) in a layer are never applied: they
//! are the driver's own representation and a layer must not forge them. Without privileges,
//! xattrs the kernel refuses are skipped with a warning, as rootless podman does.

use rustix::fd::BorrowedFd;
use rustix::fs::{self, AtFlags, Gid, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use strata_types::idmap::{describe_inside, is_initial_map, parse_proc_map};
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
            .map_err(|e| chown_err(path, meta, e))?;
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
            .map_err(|e| chown_err(&t.path, meta, e))?;
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

/// A chown error; `EINVAL` means the owner is not mapped in this user namespace (rootless),
/// which is said with the ranges that are.
fn chown_err(path: &[u8], meta: &Meta, e: Errno) -> ArchiveError {
    if e != Errno::INVAL || !in_user_namespace() {
        return extract_err(path, "chown", e);
    }
    let ranges = |file: &str| {
        describe_inside(&parse_proc_map(
            &std::fs::read_to_string(file).unwrap_or_default(),
        ))
    };
    extract_err(
        path,
        &format!(
            "chown to {}:{}, outside the ids this user namespace maps (uids {}, gids {}); \
             give the user a larger subordinate range in /etc/subuid and /etc/subgid",
            meta.uid,
            meta.gid,
            ranges("/proc/self/uid_map"),
            ranges("/proc/self/gid_map")
        ),
        e,
    )
}

/// Whether this process is in a user namespace other than the initial one (its uid map is not
/// the identity map).
pub(super) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| !is_initial_map(&parse_proc_map(&m)))
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

#[cfg(test)]
mod tests {
    use strata_types::idmap::{describe_inside, parse_proc_map};

    fn mapped_ranges(map: &str) -> String {
        describe_inside(&parse_proc_map(map))
    }

    #[test]
    fn adjacent_mapped_ranges_are_merged() {
        assert_eq!(mapped_ranges("0 1000 1\n1 100000 65536\n"), "0-65536");
        assert_eq!(mapped_ranges("0 1000 1\n5 100000 10\n"), "0-0,5-14");
        assert_eq!(mapped_ranges(""), "none");
    }
}
