//! OCI whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`), written in the format the
//! driver asked for:
//!
//! | format           | whiteout `dir/.wh.NAME`                         | opaque `dir/.wh..wh..opq`            |
//! |------------------|-------------------------------------------------|--------------------------------------|
//! | `OverlayTrusted` | char device 0:0 `dir/NAME`                      | `trusted.overlay.opaque=y` on `dir`  |
//! | `OverlayUser`    | char device 0:0, else an empty file with `user.overlay.whiteout` (and `user.overlay.opaque=x` on `dir`, as the kernel requires for such "xwhiteouts") | `user.overlay.opaque=y` on `dir` |
//! | `Apply`          | removes `dir/NAME` recursively                  | removes every child of `dir` this layer did not create |
//!
//! Other `.wh..wh.*` names (aufs metadata) are ignored, as containers/storage does.
//! It does not decide which entries are whiteouts; `apply` does, by name.

use std::collections::HashSet;
use std::io;

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{self, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use tracing::debug;

use crate::error::show;
use crate::extract::{extract_err, Extractor, Meta};
use crate::paths;
use crate::tree;
use crate::{ArchiveError, WhiteoutFormat};

/// The OCI whiteout prefix.
pub(crate) const PREFIX: &[u8] = b".wh.";
/// The OCI opaque-directory marker.
pub(crate) const OPAQUE: &[u8] = b".wh..wh..opq";
/// Prefix of whiteout-metadata names (aufs), ignored.
const META_PREFIX: &[u8] = b".wh..wh.";

/// What a name in the tar means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker<'a> {
    /// `.wh.NAME`: hide NAME.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: hide the lower contents of the directory.
    Opaque,
    /// Another `.wh..wh.` name: ignored.
    Ignored,
}

/// Classifies the last component of an entry name.
pub(crate) fn marker(base: &[u8]) -> Option<Marker<'_>> {
    if base == OPAQUE {
        Some(Marker::Opaque)
    } else if base.starts_with(META_PREFIX) {
        Some(Marker::Ignored)
    } else {
        base.strip_prefix(PREFIX).map(Marker::Whiteout)
    }
}

impl Extractor {
    /// Applies the whiteout entry `entry` (`dir/.wh.name`).
    pub(crate) fn whiteout(
        &mut self,
        entry: &[u8],
        dir: &[u8],
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        if name.is_empty() || name == b"." || name == b".." {
            return Err(ArchiveError::Refused {
                entry: show(entry),
                reason: "whiteout of an invalid name".into(),
            });
        }
        let path = paths::join(dir, name);
        if self.whiteouts == WhiteoutFormat::Apply {
            let parent = match self.root.dir(dir) {
                Ok(fd) => fd,
                // Nothing below a missing (or non-directory) parent to hide.
                Err(e)
                    if [Errno::NOENT, Errno::NOTDIR]
                        .iter()
                        .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(extract_err(entry, "resolve whiteout directory", e)),
            };
            let name = tree::cstr(name).map_err(|e| extract_err(entry, "name", e))?;
            if tree::remove_all(parent.as_fd(), &name)
                .map_err(|e| extract_err(entry, "remove whited-out path", e))?
            {
                self.root.invalidate();
            }
            return Ok(());
        }
        // A non-directory this layer put at `dir` already hides everything below it (umoci
        // writes `f` then `f/.wh.x` when a directory became a file): nothing to mark.
        if let Err(e) = self.root.dir(dir) {
            if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) {
                return Ok(());
            }
        }
        let t = self.target(&path)?;
        self.clear(&t)?;
        let dev = fs::makedev(0, 0);
        match fs::mknodat(
            &*t.parent,
            &t.name,
            FileType::CharacterDevice,
            Mode::empty(),
            dev,
        ) {
            Ok(()) => self.own_at(&t, meta),
            Err(Errno::PERM) if self.whiteouts == WhiteoutFormat::OverlayUser => {
                debug!(entry = %show(entry), "cannot create a whiteout device; writing an xwhiteout");
                self.xwhiteout(entry, &t)
            }
            Err(e) => Err(extract_err(entry, "create whiteout device", e)),
        }
    }

    /// A zero-size file with `user.overlay.whiteout`, its directory marked `opaque=x`.
    fn xwhiteout(&mut self, entry: &[u8], t: &crate::extract::Target) -> Result<(), ArchiveError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = fs::openat(&*t.parent, &t.name, flags, Mode::empty())
            .map_err(|e| extract_err(entry, "create whiteout file", e))?;
        fs::fsetxattr(&file, "user.overlay.whiteout", b"", XattrFlags::empty())
            .map_err(|e| extract_err(entry, "set user.overlay.whiteout", e))?;
        let mut cur = [0u8; 1];
        let already_opaque = matches!(
            fs::fgetxattr(&*t.parent, "user.overlay.opaque", &mut cur),
            Ok(1) if cur[0] == b'y'
        );
        if !already_opaque {
            fs::fsetxattr(&*t.parent, "user.overlay.opaque", b"x", XattrFlags::empty())
                .map_err(|e| extract_err(entry, "mark directory as holding xwhiteouts", e))?;
        }
        Ok(())
    }

    /// Applies the opaque marker `entry` for directory `dir`.
    pub(crate) fn opaque(&mut self, entry: &[u8], dir: &[u8]) -> Result<(), ArchiveError> {
        let fd = self.dir_create(dir, entry)?;
        let xattr = match self.whiteouts {
            WhiteoutFormat::OverlayTrusted => "trusted.overlay.opaque",
            WhiteoutFormat::OverlayUser => "user.overlay.opaque",
            WhiteoutFormat::Apply => {
                if let Some(created) = &self.created {
                    prune(fd.as_fd(), dir, created)
                        .map_err(|e| extract_err(entry, "empty opaque directory", e))?;
                }
                self.root.invalidate();
                return Ok(());
            }
        };
        fs::fsetxattr(&*fd, xattr, b"y", XattrFlags::empty())
            .map_err(|e| extract_err(entry, &format!("set {xattr}"), e))
    }
}

/// Removes from `dir` (at path `dir_path`) everything this layer did not create, descending
/// into the directories it did create (they may have merged into lower directories).
fn prune(dir: BorrowedFd<'_>, dir_path: &[u8], created: &HashSet<Vec<u8>>) -> io::Result<()> {
    for name in tree::list_dir(dir)? {
        let child = paths::join(dir_path, name.to_bytes());
        if !created.contains(&child) {
            tree::remove_all(dir, &name)?;
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match fs::openat(dir, &name, flags, Mode::empty()) {
            Ok(sub) => prune(sub.as_fd(), &child, created)?,
            Err(Errno::NOTDIR | Errno::LOOP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn xwhiteouts_mark_their_directory() {
        // The fallback used when a whiteout device cannot be created (no CAP_MKNOD).
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::ApplyOptions::new(WhiteoutFormat::OverlayUser);
        let mut ex = Extractor::new(dir.path(), &opts).unwrap();
        let t = ex.target(b"a/x").unwrap();
        ex.xwhiteout(b"a/.wh.x", &t).unwrap();
        let x = dir.path().join("a/x");
        assert_eq!(std::fs::metadata(&x).unwrap().len(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(
            fs::getxattr(&x, "user.overlay.whiteout", &mut buf[..]).unwrap(),
            0
        );
        let n = fs::getxattr(dir.path().join("a"), "user.overlay.opaque", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"x");

        // An opaque directory stays opaque ("y") when an xwhiteout is added to it.
        ex.opaque(b"a/.wh..wh..opq", b"a").unwrap();
        let t = ex.target(b"a/y").unwrap();
        ex.xwhiteout(b"a/.wh.y", &t).unwrap();
        let n = fs::getxattr(dir.path().join("a"), "user.overlay.opaque", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"y");
    }

    #[test]
    fn classifies_names() {
        assert_eq!(marker(b".wh.foo"), Some(Marker::Whiteout(b"foo")));
        assert_eq!(marker(b".wh..wh..opq"), Some(Marker::Opaque));
        assert_eq!(marker(b".wh..wh.plnk"), Some(Marker::Ignored));
        assert_eq!(marker(b"foo"), None);
        assert_eq!(marker(b".whfoo"), None);
    }
}
