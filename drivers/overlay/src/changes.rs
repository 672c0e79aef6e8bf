//! Native diff: the changes of an overlay layer are read from its upper (`diff`) directory
//! alone, never by comparing merged trees.
//!
//! - a 0:0 character device, or a zero-size file carrying `trusted.overlay.whiteout` /
//!   `user.overlay.whiteout`, is a whiteout: `Deleted`;
//! - a directory with `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) is `Opaque`, and
//!   its entries are reported below it;
//! - everything else is `Modified`, including a directory that is only in the upper dir because
//!   a child was copied up (the OCI format allows re-stating a directory).
//!
//! This relies on the driver's fixed mount options: with `metacopy=off` and `redirect_dir=off`
//! the upper dir never holds metadata-only copies or renamed directories.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use strata_driver_api::{DriverError, Result};
use strata_types::{Change, ChangeKind};

/// The changes recorded in the upper directory `diff`, sorted by path.
pub fn upper_changes(diff: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(diff, Path::new(""), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(DriverError::io("read", dir))? {
        names.push(e.map_err(DriverError::io("read", dir))?.file_name());
    }
    names.sort();
    for name in names {
        let (abs, r) = (dir.join(&name), rel.join(&name));
        let m = std::fs::symlink_metadata(&abs).map_err(DriverError::io("stat", &abs))?;
        let ft = m.file_type();
        if is_whiteout(&abs, &m)? {
            out.push(Change {
                path: r,
                kind: ChangeKind::Deleted,
            });
        } else if ft.is_dir() {
            let kind = if is_opaque(&abs)? {
                ChangeKind::Opaque
            } else {
                ChangeKind::Modified
            };
            out.push(Change {
                path: r.clone(),
                kind,
            });
            walk(&abs, &r, out)?;
        } else {
            out.push(Change {
                path: r,
                kind: ChangeKind::Modified,
            });
        }
    }
    Ok(())
}

fn xattr_is(path: &Path, names: &[&str], want: Option<&[u8]>) -> Result<bool> {
    let mut buf = [0u8; 8];
    for name in names {
        match rustix::fs::lgetxattr(path, *name, &mut buf) {
            Ok(n) if want.is_none_or(|w| &buf[..n] == w) => return Ok(true),
            Ok(_)
            | Err(
                rustix::io::Errno::NODATA | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::RANGE,
            ) => {}
            Err(e) => return Err(DriverError::io("read xattrs", path)(e.into())),
        }
    }
    Ok(false)
}

fn is_whiteout(path: &Path, m: &std::fs::Metadata) -> Result<bool> {
    let ft = m.file_type();
    if ft.is_char_device() {
        return Ok(m.rdev() == 0);
    }
    if ft.is_file() && m.len() == 0 {
        return xattr_is(
            path,
            &["trusted.overlay.whiteout", "user.overlay.whiteout"],
            None,
        );
    }
    Ok(false)
}

fn is_opaque(path: &Path) -> Result<bool> {
    xattr_is(
        path,
        &["trusted.overlay.opaque", "user.overlay.opaque"],
        Some(b"y"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use rustix::fs::XattrFlags;

    fn list(c: &[Change]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{:?} {}", c.kind, c.path.display()))
            .collect()
    }

    #[test]
    fn user_xattr_whiteouts_and_opaque_dirs_are_recognised_without_root() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("etc/opq")).unwrap();
        std::fs::write(d.join("etc/opq/new"), "n").unwrap();
        std::fs::write(d.join("etc/conf"), "c").unwrap();
        std::fs::write(d.join("gone"), "").unwrap();
        std::fs::write(d.join("empty-file"), "").unwrap();
        rustix::fs::lsetxattr(
            d.join("gone"),
            "user.overlay.whiteout",
            b"",
            XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::lsetxattr(
            d.join("etc/opq"),
            "user.overlay.opaque",
            b"y",
            XattrFlags::empty(),
        )
        .unwrap();
        // "x" marks a directory holding xattr whiteouts, not an opaque one.
        rustix::fs::lsetxattr(
            d.join("etc"),
            "user.overlay.opaque",
            b"x",
            XattrFlags::empty(),
        )
        .unwrap();
        assert_eq!(
            list(&upper_changes(d).unwrap()),
            [
                "Modified empty-file",
                "Modified etc",
                "Modified etc/conf",
                "Opaque etc/opq",
                "Modified etc/opq/new",
                "Deleted gone"
            ]
        );
    }

    #[test]
    fn an_empty_upper_has_no_changes() {
        let t = tempfile::tempdir().unwrap();
        assert!(upper_changes(t.path()).unwrap().is_empty());
    }
}
