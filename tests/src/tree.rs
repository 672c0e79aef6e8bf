//! Compares two directory trees the way a user checking an unpacked image would: paths, file
//! types, permission bits (including setuid/setgid/sticky), ownership, extended attributes,
//! file contents (by SHA-256), symlink targets, device numbers and hardlink grouping.
//!
//! What it deliberately does not compare:
//! - **directory mtimes**: creating, renaming or removing a child updates its directory's mtime,
//!   and extractors restore directory times at different moments (umoci at the very end, an
//!   overlay merged view shows the upper directory's time after any copy-up or whiteout), so a
//!   directory's mtime says nothing about the correctness of the tree;
//! - mtimes of symlinks (not all extractors `lutimes` them), and sub-second parts of any mtime
//!   (tar headers carry whole seconds unless PAX times are used);
//! - the overlay driver's own xattrs (`trusted.overlay.*`, `user.overlay.*`), which are
//!   implementation details of a layer's storage, not content;
//! - inode numbers, link counts and access times.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The type of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl Kind {
    fn of(m: &Metadata) -> Kind {
        let t = m.file_type();
        if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_char_device() {
            Kind::CharDevice
        } else if t.is_block_device() {
            Kind::BlockDevice
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else {
            Kind::File
        }
    }
}

/// What is recorded about one path of a tree.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Whole seconds.
    pub mtime: i64,
    /// SHA-256 of a regular file's content.
    pub sha256: Option<[u8; 32]>,
    pub link_target: Option<PathBuf>,
    /// (major, minor) of a device node.
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes, minus the overlay driver's own.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// (st_dev, st_ino), to group hardlinks.
    pub inode: (u64, u64),
    pub nlink: u64,
}

/// A whole tree: relative path (the root itself is `""`) to entry.
pub type Snapshot = BTreeMap<PathBuf, Entry>;

/// Reads every entry under `root` without following symlinks.
pub fn snapshot(root: &Path) -> std::io::Result<Snapshot> {
    let mut out = Snapshot::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut Snapshot) -> std::io::Result<()> {
    let abs = root.join(rel);
    let meta = std::fs::symlink_metadata(&abs)?;
    let entry = read_entry(&abs, &meta)?;
    let is_dir = entry.kind == Kind::Dir;
    out.insert(rel.to_path_buf(), entry);
    if is_dir {
        let mut names: Vec<_> = std::fs::read_dir(&abs)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            walk(root, &rel.join(n), out)?;
        }
    }
    Ok(())
}

fn read_entry(abs: &Path, m: &Metadata) -> std::io::Result<Entry> {
    let kind = Kind::of(m);
    let sha256 = if kind == Kind::File {
        Some(hash_file(abs)?)
    } else {
        None
    };
    let link_target = if kind == Kind::Symlink {
        Some(std::fs::read_link(abs)?)
    } else {
        None
    };
    let rdev = matches!(kind, Kind::CharDevice | Kind::BlockDevice)
        .then(|| (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())));
    Ok(Entry {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: m.mtime(),
        sha256,
        link_target,
        rdev,
        xattrs: read_xattrs(abs)?,
        inode: (m.dev(), m.ino()),
        nlink: m.nlink(),
    })
}

fn hash_file(p: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Whether an xattr belongs to the overlay driver's bookkeeping rather than to the content.
fn is_overlay_private(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// Reads all extended attributes of `p` (not following symlinks), minus the overlay ones.
pub fn read_xattrs(p: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let len = match rustix::fs::llistxattr_query(p) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Ok(out);
    }
    let mut names = vec![0u8; len];
    let n = rustix::fs::llistxattr(p, &mut names[..])?;
    for raw in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(raw).into_owned();
        if is_overlay_private(&name) {
            continue;
        }
        let vlen = match rustix::fs::lgetxattr_query(p, raw) {
            Ok(v) => v,
            // Removed between list and get, or not readable in this namespace: not content.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; vlen];
        if vlen > 0 {
            let got = rustix::fs::lgetxattr(p, raw, &mut value[..])?;
            value.truncate(got);
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// Options for [`compare_with`].
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Relative paths left out of the comparison, with everything below them.
    pub ignore: Vec<PathBuf>,
    /// Do not compare mtimes of regular files, devices and fifos (for trees whose files were
    /// written by a program rather than extracted from the same tar).
    pub ignore_file_mtimes: bool,
}

/// Compares `expected` with `actual`; returns one human-readable line per difference (empty
/// when the trees are equal). Panics if either tree cannot be read.
pub fn compare(expected: &Path, actual: &Path) -> Vec<String> {
    compare_with(expected, actual, &CompareOptions::default())
}

/// [`compare`] with options.
pub fn compare_with(expected: &Path, actual: &Path, opts: &CompareOptions) -> Vec<String> {
    let a = snapshot(expected)
        .unwrap_or_else(|e| panic!("cannot read tree {}: {e}", expected.display()));
    let b =
        snapshot(actual).unwrap_or_else(|e| panic!("cannot read tree {}: {e}", actual.display()));
    compare_snapshots(&a, &b, opts)
}

/// Compares two snapshots (see [`compare`]).
pub fn compare_snapshots(a: &Snapshot, b: &Snapshot, opts: &CompareOptions) -> Vec<String> {
    let ignored = |p: &Path| opts.ignore.iter().any(|i| p.starts_with(i));
    let mut diffs = Vec::new();
    for (path, ea) in a.iter().filter(|(p, _)| !ignored(p)) {
        let shown = show(path);
        match b.get(path) {
            None => diffs.push(format!("{shown}: missing (expected a {:?})", ea.kind)),
            Some(eb) => compare_entry(&shown, ea, eb, opts, &mut diffs),
        }
    }
    for (path, eb) in b.iter().filter(|(p, _)| !ignored(p)) {
        if !a.contains_key(path) {
            diffs.push(format!("{}: unexpected {:?}", show(path), eb.kind));
        }
    }
    diffs.extend(compare_hardlinks(a, b, &ignored));
    diffs
}

fn show(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", p.display())
    }
}

fn compare_entry(
    shown: &str,
    a: &Entry,
    b: &Entry,
    opts: &CompareOptions,
    diffs: &mut Vec<String>,
) {
    if a.kind != b.kind {
        diffs.push(format!(
            "{shown}: type: expected {:?}, got {:?}",
            a.kind, b.kind
        ));
        return;
    }
    if a.kind != Kind::Symlink && a.mode != b.mode {
        diffs.push(format!(
            "{shown}: mode: expected {:04o}, got {:04o}",
            a.mode, b.mode
        ));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        diffs.push(format!(
            "{shown}: owner: expected {}:{}, got {}:{}",
            a.uid, a.gid, b.uid, b.gid
        ));
    }
    if a.sha256 != b.sha256 {
        diffs.push(format!(
            "{shown}: content differs (expected {} bytes, got {} bytes)",
            a.size, b.size
        ));
    }
    if a.link_target != b.link_target {
        diffs.push(format!(
            "{shown}: symlink target: expected {:?}, got {:?}",
            a.link_target, b.link_target
        ));
    }
    if a.rdev != b.rdev {
        diffs.push(format!(
            "{shown}: device: expected {:?}, got {:?}",
            a.rdev, b.rdev
        ));
    }
    let keys: BTreeSet<&String> = a.xattrs.keys().chain(b.xattrs.keys()).collect();
    for k in keys {
        match (a.xattrs.get(k), b.xattrs.get(k)) {
            (x, y) if x == y => {}
            (Some(x), None) => diffs.push(format!(
                "{shown}: xattr {k} missing (expected {})",
                lossy(x)
            )),
            (None, Some(y)) => diffs.push(format!("{shown}: unexpected xattr {k}={}", lossy(y))),
            (Some(x), Some(y)) => diffs.push(format!(
                "{shown}: xattr {k}: expected {}, got {}",
                lossy(x),
                lossy(y)
            )),
            (None, None) => {}
        }
    }
    let timed = !matches!(a.kind, Kind::Dir | Kind::Symlink);
    if timed && !opts.ignore_file_mtimes && a.mtime != b.mtime {
        diffs.push(format!(
            "{shown}: mtime: expected {}, got {}",
            a.mtime, b.mtime
        ));
    }
}

fn lossy(v: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(v))
}

/// For every hardlinked non-directory, the set of paths (within the tree) sharing its inode.
fn link_groups(s: &Snapshot) -> HashMap<&Path, BTreeSet<&Path>> {
    let mut by_inode: HashMap<(u64, u64), BTreeSet<&Path>> = HashMap::new();
    for (p, e) in s.iter().filter(|(_, e)| e.kind != Kind::Dir && e.nlink > 1) {
        by_inode.entry(e.inode).or_default().insert(p.as_path());
    }
    let mut out = HashMap::new();
    for group in by_inode.into_values().filter(|g| g.len() > 1) {
        for p in &group {
            out.insert(*p, group.clone());
        }
    }
    out
}

/// Files that share an inode in `a` must share one in `b`, and vice versa.
fn compare_hardlinks(a: &Snapshot, b: &Snapshot, ignored: &dyn Fn(&Path) -> bool) -> Vec<String> {
    let (ga, gb) = (link_groups(a), link_groups(b));
    let mut seen = BTreeSet::new();
    let mut diffs = Vec::new();
    let paths: BTreeSet<&Path> = ga.keys().chain(gb.keys()).copied().collect();
    for p in paths {
        if ignored(p) || !a.contains_key(p) || !b.contains_key(p) {
            continue;
        }
        let single = BTreeSet::from([p]);
        let want = ga.get(p).unwrap_or(&single);
        let got = gb.get(p).unwrap_or(&single);
        // Only paths present in both trees matter (missing ones are reported already).
        let want: BTreeSet<&Path> = want
            .iter()
            .copied()
            .filter(|q| b.contains_key(*q))
            .collect();
        let got: BTreeSet<&Path> = got.iter().copied().filter(|q| a.contains_key(*q)).collect();
        if want != got && seen.insert(want.clone()) {
            let list =
                |g: &BTreeSet<&Path>| g.iter().map(|q| show(q)).collect::<Vec<_>>().join(", ");
            diffs.push(format!(
                "{}: hardlinks: expected one inode for [{}], got one inode for [{}]",
                show(p),
                list(&want),
                list(&got)
            ));
        }
    }
    diffs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir/a"), b"hello").unwrap();
        std::fs::hard_link(d.path().join("dir/a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("dir/a", d.path().join("link")).unwrap();
        d
    }

    fn copy_times(from: &Path, to: &Path) {
        for p in ["dir/a", "b"] {
            let m = std::fs::metadata(from.join(p)).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(to.join(p))
                .unwrap();
            f.set_modified(m.modified().unwrap()).unwrap();
        }
    }

    #[test]
    fn equal_trees_have_no_differences() {
        let (a, b) = (tree(), tree());
        copy_times(a.path(), b.path());
        assert_eq!(compare(a.path(), b.path()), Vec::<String>::new());
    }

    #[test]
    fn reports_content_mode_link_and_missing() {
        let (a, b) = (tree(), tree());
        copy_times(a.path(), b.path());
        std::fs::remove_file(b.path().join("b")).unwrap();
        std::fs::write(b.path().join("b"), b"hello").unwrap(); // same content, no longer a hardlink
        let f = std::fs::File::options()
            .write(true)
            .open(b.path().join("b"))
            .unwrap();
        f.set_modified(
            std::fs::metadata(a.path().join("b"))
                .unwrap()
                .modified()
                .unwrap(),
        )
        .unwrap();
        std::fs::set_permissions(
            b.path().join("dir/a"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        std::fs::remove_file(b.path().join("link")).unwrap();
        std::os::unix::fs::symlink("elsewhere", b.path().join("link")).unwrap();
        std::fs::write(b.path().join("extra"), b"").unwrap();
        let d = compare(a.path(), b.path());
        assert!(
            d.iter()
                .any(|l| l.starts_with("/dir/a: mode: expected 0644, got 4755")),
            "{d:#?}"
        );
        assert!(
            d.iter().any(|l| l.starts_with("/link: symlink target")),
            "{d:#?}"
        );
        assert!(d.iter().any(|l| l == "/extra: unexpected File"), "{d:#?}");
        assert!(d.iter().any(|l| l.contains("hardlinks")), "{d:#?}");
        assert_eq!(
            d.iter().filter(|l| l.contains("hardlinks")).count(),
            1,
            "{d:#?}"
        );
    }

    #[test]
    fn content_and_xattrs_differ() {
        let (a, b) = (tree(), tree());
        copy_times(a.path(), b.path());
        std::fs::write(b.path().join("dir/a"), b"HELLO").unwrap();
        copy_times(a.path(), b.path());
        rustix::fs::lsetxattr(
            b.path().join("dir"),
            "user.test",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::lsetxattr(
            b.path().join("dir"),
            "user.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let d = compare(a.path(), b.path());
        assert!(
            d.iter().any(|l| l.starts_with("/dir/a: content differs")),
            "{d:#?}"
        );
        assert!(
            d.iter()
                .any(|l| l == "/dir: unexpected xattr user.test=\"1\""),
            "{d:#?}"
        );
        assert!(!d.iter().any(|l| l.contains("overlay")), "{d:#?}");
    }

    #[test]
    fn ignore_skips_subtrees() {
        let (a, b) = (tree(), tree());
        copy_times(a.path(), b.path());
        std::fs::write(b.path().join("dir/new"), b"x").unwrap();
        let opts = CompareOptions {
            ignore: vec![PathBuf::from("dir")],
            ..Default::default()
        };
        assert_eq!(
            compare_with(a.path(), b.path(), &opts),
            Vec::<String>::new()
        );
    }
}
