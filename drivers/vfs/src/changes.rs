//! Changes between two full trees (a vfs layer and its parent), as the OCI layer format needs
//! them.
//!
//! A path is `Modified` when it is new or when anything a tar entry carries differs: file type,
//! permission bits, owner, extended attributes, symlink target, device number, and for
//! non-directories size and modification time (with nanoseconds). Like containers/storage,
//! regular files with equal size and mtime are taken as unchanged without reading them.
//! Directory mtimes and sizes are ignored (they change whenever a child does). A new directory
//! is reported, then every entry below it. A path present only in the parent is `Deleted`
//! (only the topmost such path: its children go with it). A directory replaced by a
//! non-directory is one `Modified` entry: applying it removes the old directory.
//!
//! It never reports `Opaque`: a directory emptied and refilled shows up as deletions plus
//! additions, which applies to the same result.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_driver_api::{DriverError, Key, Result};
use strata_types::{Change, ChangeKind};

use crate::xattrs::{self, Node};

/// The changes of the whole tree `dir(key)` against its nearest parent's whole tree, for
/// drivers whose layers are full trees (vfs, btrfs): a missing layer or parent is
/// `DriverError::Missing`.
pub fn full_tree_changes(
    dir: impl Fn(&Key) -> PathBuf,
    key: &Key,
    parents: &[Key],
) -> Result<Vec<Change>> {
    let new = dir(key);
    if !new.is_dir() {
        return Err(DriverError::Missing(key.to_string()));
    }
    let old = match parents.first() {
        Some(p) if !dir(p).is_dir() => return Err(DriverError::Missing(p.to_string())),
        Some(p) => Some(dir(p)),
        None => None,
    };
    tree_changes(&new, old.as_deref())
}

/// Changes that turn `old` (or an empty tree) into `new`, sorted by path.
pub fn tree_changes(new: &Path, old: Option<&Path>) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    compare_dir(new, old, Path::new(""), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(DriverError::io("read", dir))? {
        names.push(e.map_err(DriverError::io("read", dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn lstat(p: &Path) -> Result<Metadata> {
    std::fs::symlink_metadata(p).map_err(DriverError::io("stat", p))
}

fn compare_dir(new: &Path, old: Option<&Path>, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    let new_names = sorted_names(new)?;
    let old_names = match old {
        Some(o) => sorted_names(o)?,
        None => Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while i < new_names.len() || j < old_names.len() {
        let ord = match (new_names.get(i), old_names.get(j)) {
            (Some(n), Some(o)) => n.cmp(o),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Greater => {
                out.push(change(rel.join(&old_names[j]), ChangeKind::Deleted));
                j += 1;
            }
            std::cmp::Ordering::Less => {
                added(&new.join(&new_names[i]), &rel.join(&new_names[i]), out)?;
                i += 1;
            }
            std::cmp::Ordering::Equal => {
                let name = &new_names[i];
                let (np, op) = (
                    new.join(name),
                    old.map(|o| o.join(name)).unwrap_or_default(),
                );
                let (nm, om) = (lstat(&np)?, lstat(&op)?);
                let r = rel.join(name);
                if nm.file_type() != om.file_type() {
                    added(&np, &r, out)?;
                } else {
                    if differs(&np, &nm, &op, &om)? {
                        out.push(change(r.clone(), ChangeKind::Modified));
                    }
                    if nm.is_dir() {
                        compare_dir(&np, Some(&op), &r, out)?;
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn change(path: PathBuf, kind: ChangeKind) -> Change {
    Change { path, kind }
}

/// Reports `path` and, for a directory, everything below it.
fn added(abs: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    out.push(change(rel.to_path_buf(), ChangeKind::Modified));
    if lstat(abs)?.is_dir() {
        for name in sorted_names(abs)? {
            added(&abs.join(&name), &rel.join(&name), out)?;
        }
    }
    Ok(())
}

fn differs(np: &Path, n: &Metadata, op: &Path, o: &Metadata) -> Result<bool> {
    if n.mode() != o.mode() || n.uid() != o.uid() || n.gid() != o.gid() {
        return Ok(true);
    }
    let ft = n.file_type();
    if !ft.is_dir() {
        if n.size() != o.size()
            || n.mtime() != o.mtime()
            || n.mtime_nsec() != o.mtime_nsec()
            || n.rdev() != o.rdev()
        {
            return Ok(true);
        }
        if ft.is_symlink()
            && std::fs::read_link(np).map_err(DriverError::io("readlink", np))?
                != std::fs::read_link(op).map_err(DriverError::io("readlink", op))?
        {
            return Ok(true);
        }
    }
    let nx = xattrs::read_all(Node::Path(np))
        .map_err(|e| DriverError::io("read xattrs", np)(e.into()))?;
    let ox = xattrs::read_all(Node::Path(op))
        .map_err(|e| DriverError::io("read xattrs", op)(e.into()))?;
    Ok(nx != ox)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn list(c: &[Change]) -> Vec<String> {
        c.iter()
            .map(|c| {
                let k = match c.kind {
                    ChangeKind::Modified => "M",
                    ChangeKind::Deleted => "D",
                    ChangeKind::Opaque => "O",
                };
                format!("{k} {}", c.path.display())
            })
            .collect()
    }

    /// A parent tree and a byte-identical child copy (cp -a keeps mtimes).
    fn pair() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (old, new) = (t.path().join("old"), t.path().join("new"));
        std::fs::create_dir_all(old.join("dir/sub")).unwrap();
        std::fs::create_dir_all(old.join("gone-dir/x")).unwrap();
        std::fs::create_dir_all(old.join("becomes-file/y")).unwrap();
        for f in [
            "keep",
            "edit",
            "chmod",
            "gone",
            "dir/a",
            "dir/sub/b",
            "gone-dir/x/c",
            "becomes-file/y/d",
        ] {
            std::fs::write(old.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("keep", old.join("link")).unwrap();
        std::fs::create_dir(&new).unwrap();
        crate::copy::copy_tree(&old, &new, false).unwrap();
        (t, old, new)
    }

    #[test]
    fn an_identical_copy_has_no_changes() {
        let (_t, old, new) = pair();
        assert_eq!(
            list(&tree_changes(&new, Some(&old)).unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reports_additions_edits_deletions_and_replacements() {
        let (_t, old, new) = pair();
        std::fs::write(new.join("edit"), "edited, longer").unwrap();
        std::fs::set_permissions(new.join("chmod"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::remove_file(new.join("gone")).unwrap();
        std::fs::remove_dir_all(new.join("gone-dir")).unwrap();
        std::fs::remove_dir_all(new.join("becomes-file")).unwrap();
        std::fs::write(new.join("becomes-file"), "now a file").unwrap();
        std::fs::create_dir_all(new.join("dir/newdir/deep")).unwrap();
        std::fs::write(new.join("dir/newdir/deep/e"), "e").unwrap();
        std::fs::remove_file(new.join("link")).unwrap();
        std::os::unix::fs::symlink("edit", new.join("link")).unwrap();
        rustix::fs::lsetxattr(
            new.join("dir/a"),
            "user.k",
            b"v",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let got = list(&tree_changes(&new, Some(&old)).unwrap());
        assert_eq!(
            got,
            [
                "M becomes-file",
                "M chmod",
                "M dir/a",
                "M dir/newdir",
                "M dir/newdir/deep",
                "M dir/newdir/deep/e",
                "M edit",
                "D gone",
                "D gone-dir",
                "M link",
            ]
        );
    }

    #[test]
    fn without_a_parent_everything_is_new_and_sorted_component_wise() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a.b"), "").unwrap();
        std::fs::write(t.path().join("a/b/c"), "").unwrap();
        let got = list(&tree_changes(t.path(), None).unwrap());
        assert_eq!(got, ["M a", "M a/b", "M a/b/c", "M a.b"]);
    }
}
