//! Shared helpers for the archive integration tests: building tars, compressing them,
//! applying and exporting, and describing trees for comparison.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_graph_archive::{
    apply, compressor, export_tarsplit, Applied, ApplyOptions, ArchiveError, Compression,
    WhiteoutFormat,
};
use strata_types::Digest;

/// Compresses `data`.
pub fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    let mut w = compressor(Vec::new(), c).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// Applies `input` into `root` with `opts`; returns the result and the tar-split record.
pub fn apply_with(
    input: &[u8],
    root: &Path,
    opts: &ApplyOptions,
) -> (Result<Applied, ArchiveError>, Vec<u8>) {
    let mut split = Vec::new();
    let res = apply(input, root, &mut split, opts);
    (res, split)
}

/// Applies `input` into `root` with default options for `fmt`, panicking on error.
pub fn apply_ok(input: &[u8], root: &Path, fmt: WhiteoutFormat) -> (Applied, Vec<u8>) {
    let (res, split) = apply_with(input, root, &ApplyOptions::new(fmt));
    (res.unwrap_or_else(|e| panic!("apply failed: {e}")), split)
}

/// Re-creates the tar from a tar-split record and a tree.
pub fn export(split: &[u8], root: &Path) -> (Digest, u64, Vec<u8>) {
    let mut out = Vec::new();
    let (d, n) =
        export_tarsplit(split, root, &mut out).unwrap_or_else(|e| panic!("export failed: {e}"));
    (d, n, out)
}

/// Runs a shell command, panicking with its output on failure.
pub fn sh(script: &str) {
    let out = Command::new("sh").arg("-ec").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "command failed: {script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar builder over a Vec with helpers for raw and PAX entries.
pub struct TarBuilder {
    pub b: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An entry whose name bytes are written verbatim into the header (no validation), for
    /// hostile names the tar crate refuses to build.
    pub fn raw(&mut self, name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::new(kind), 0o644, data.len() as u64);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// What a test compares about one path of a tree.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub content: Option<Digest>,
    pub link: Option<PathBuf>,
    pub rdev: u64,
    pub mtime: i64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The first path (in walk order) sharing this inode, when it has several links.
    pub hardlink_of: Option<String>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:o} {}:{} size={} mtime={} link={:?} rdev={} xattrs={:?} hl={:?} {}",
            self.kind,
            self.mode,
            self.uid,
            self.gid,
            self.size,
            self.mtime,
            self.link,
            self.rdev,
            self.xattrs,
            self.hardlink_of,
            self.content
                .as_ref()
                .map(|d| d.short().to_owned())
                .unwrap_or_default()
        )
    }
}

/// Reads the xattrs of `path` (not following symlinks), sorted.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut list = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let name_s = String::from_utf8_lossy(name).into_owned();
        if name_s == "security.selinux" {
            continue;
        }
        if let Ok(len) = rustix::fs::lgetxattr(path, name, &mut v[..]) {
            v.truncate(len);
            out.push((name_s, v));
        }
    }
    out.sort();
    out
}

/// Describes every path under `root` (the root itself as ".").
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    p: &Path,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut HashMap<(u64, u64), String>,
) {
    let md = std::fs::symlink_metadata(p).unwrap();
    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let rel = if rel.is_empty() { ".".to_owned() } else { rel };
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        'f'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    let hardlink_of = if kind != 'd' && md.nlink() > 1 {
        let key = (md.dev(), md.ino());
        match inodes.get(&key) {
            Some(first) => Some(first.clone()),
            None => {
                inodes.insert(key, rel.clone());
                None
            }
        }
    } else {
        None
    };
    out.insert(
        rel,
        Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if kind == 'f' { md.len() } else { 0 },
            content: (kind == 'f').then(|| Digest::of(&std::fs::read(p).unwrap())),
            link: (kind == 'l').then(|| std::fs::read_link(p).unwrap()),
            rdev: md.rdev(),
            mtime: md.mtime(),
            xattrs: xattrs(p),
            hardlink_of,
        },
    );
    if kind == 'd' {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            walk(root, &p.join(n), out, inodes);
        }
    }
}

/// Asserts two snapshots are equal, listing the differing paths.
pub fn assert_same_tree(expected: &BTreeMap<String, Node>, actual: &BTreeMap<String, Node>) {
    let mut diffs = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => diffs.push(format!("missing {k}: {v:?}")),
            Some(a) if a != v => diffs.push(format!("differs {k}:\n  want {v:?}\n  got  {a:?}")),
            _ => {}
        }
    }
    for (k, v) in actual {
        if !expected.contains_key(k) {
            diffs.push(format!("unexpected {k}: {v:?}"));
        }
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}

/// A temporary area with `root/` (where layers go) and `sibling/` (which must stay empty).
pub struct Area {
    pub dir: tempfile::TempDir,
}

impl Area {
    pub fn new() -> Area {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("sibling")).unwrap();
        Area { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn sibling(&self) -> PathBuf {
        self.dir.path().join("sibling")
    }

    /// Nothing was created next to the root or in the sibling.
    pub fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["root", "sibling"],
            "something was created beside the root"
        );
        assert_eq!(
            std::fs::read_dir(self.sibling()).unwrap().count(),
            0,
            "sibling was written"
        );
    }
}

impl Default for Area {
    fn default() -> Self {
        Self::new()
    }
}
