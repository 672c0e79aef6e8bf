//! Reads `/proc/self/mountinfo` to answer "which mounts use this directory?", so that a driver
//! can refuse to delete payload that a mounted view still shows.
//!
//! A directory is in use when a mount of the same filesystem has its root at or below it (a
//! bind of it), when a mount point lies at or below it, or when an overlay mount names it (or a
//! path below it) as a lower, upper or work directory.
//!
//! It sees only the calling process's mount namespace: views mounted in another namespace (and
//! not propagated to this one) are invisible to it.

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::MountError;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of mountinfo (the fields this crate needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// (major, minor) of the mounted filesystem.
    pub dev: (u32, u32),
    /// The directory of the filesystem that is the root of this mount.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: String,
}

impl MountEntry {
    /// Overlay directories named by the superblock options (`lowerdir=`, `lowerdir+=`,
    /// `datadir+=`, `upperdir=`, `workdir=`); empty for other filesystems.
    pub fn overlay_dirs(&self) -> Vec<PathBuf> {
        if self.fs_type != "overlay" {
            return Vec::new();
        }
        let mut out = Vec::new();
        for opt in self.super_options.split(',') {
            let Some((key, value)) = opt.split_once('=') else {
                continue;
            };
            match key {
                "lowerdir" => {
                    let value = unescape(value);
                    out.extend(
                        split_lowerdir(&value.to_string_lossy())
                            .into_iter()
                            .map(PathBuf::from),
                    );
                }
                "lowerdir+" | "datadir+" | "upperdir" | "workdir" => out.push(unescape(value)),
                _ => {}
            }
        }
        out
    }
}

/// Splits a legacy `lowerdir=a:b::c` value on unescaped colons (`\:` is a literal colon, `::`
/// separates data-only layers).
fn split_lowerdir(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n != ':' {
                        cur.push('\\');
                    }
                    cur.push(n);
                }
            }
            ':' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Undoes the kernel's `\ooo` octal escapes (space, tab, newline, backslash, comma...).
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Parses the text of a mountinfo file.
pub(crate) fn parse(text: &str) -> Result<Vec<MountEntry>, MountError> {
    let bad = |line: &str, reason| MountError::MountInfo {
        path: MOUNTINFO.into(),
        line: line.into(),
        reason,
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // id parent major:minor root mount_point options [optional...] - fstype source super
        let (head, tail) = line
            .split_once(" - ")
            .ok_or_else(|| bad(line, "no ' - ' separator"))?;
        let head: Vec<&str> = head.split(' ').collect();
        let tail: Vec<&str> = tail.splitn(3, ' ').collect();
        if head.len() < 6 || tail.len() < 2 {
            return Err(bad(line, "too few fields"));
        }
        let (major, minor) = head[2]
            .split_once(':')
            .ok_or_else(|| bad(line, "bad major:minor"))?;
        let dev = (
            major.parse().map_err(|_| bad(line, "bad major"))?,
            minor.parse().map_err(|_| bad(line, "bad minor"))?,
        );
        out.push(MountEntry {
            dev,
            root: unescape(head[3]),
            mount_point: unescape(head[4]),
            fs_type: tail[0].to_owned(),
            super_options: tail.get(2).copied().unwrap_or_default().to_owned(),
        });
    }
    Ok(out)
}

/// Reads and parses this process's mount table.
pub(crate) fn read() -> Result<Vec<MountEntry>, MountError> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(MountError::io("read", MOUNTINFO))?;
    parse(&text)
}

/// Mount points of mounts that use `dir` (see the module docs), in mount-table order.
/// A missing `dir` is used by nothing.
pub fn mounts_using(dir: &Path) -> Result<Vec<PathBuf>, MountError> {
    let dir = match std::fs::canonicalize(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MountError::io("resolve", dir)(e)),
    };
    let meta = std::fs::metadata(&dir).map_err(MountError::io("stat", &dir))?;
    let dev = (rustix::fs::major(meta.dev()), rustix::fs::minor(meta.dev()));
    Ok(users(&read()?, &dir, dev))
}

/// The pure part of [`mounts_using`]: `dir` is canonical and lives on the filesystem `dev`.
pub(crate) fn users(table: &[MountEntry], dir: &Path, dev: (u32, u32)) -> Vec<PathBuf> {
    // Where `dir` is inside its filesystem: through the mount that contains it (the longest
    // mount point prefix of the same filesystem).
    let containing = table
        .iter()
        .enumerate()
        .filter(|(_, m)| m.dev == dev && dir.starts_with(&m.mount_point))
        .max_by_key(|(_, m)| m.mount_point.as_os_str().len());
    let fs_path = containing.and_then(|(_, m)| {
        dir.strip_prefix(&m.mount_point)
            .ok()
            .map(|rel| m.root.join(rel))
    });
    let containing_idx = containing.map(|(i, _)| i);
    let mut out = Vec::new();
    for (i, m) in table.iter().enumerate() {
        let binds_it = Some(i) != containing_idx
            && m.dev == dev
            && fs_path.as_ref().is_some_and(|p| m.root.starts_with(p));
        let below = m.mount_point.starts_with(dir);
        let overlay = m.overlay_dirs().iter().any(|d| d.starts_with(dir));
        if binds_it || below || overlay {
            out.push(m.mount_point.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
45 22 0:39 / /run/m/c1 rw,relatime - overlay overlay rw,lowerdir+=/s/overlay/layers/a/diff,lowerdir+=/s/overlay/layers/b/diff,upperdir=/s/overlay/layers/c/diff,workdir=/s/overlay/layers/c/work,uuid=on
46 22 0:40 / /run/m/old ro,relatime - overlay overlay ro,lowerdir=/s/with\\134:colon/diff:/s/overlay/layers/d/diff,redirect_dir=on
47 22 254:0 /s/vfs/dir/k1 /run/m/v1 ro,relatime - ext4 /dev/vda rw
48 22 254:0 /s/my\\040home/dir/k2 /run/my\\040mnt rw,relatime - ext4 /dev/vda rw
";

    #[test]
    fn parses_fields_and_unescapes_paths() {
        let t = parse(TABLE).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].dev, (254, 0));
        assert_eq!(t[1].fs_type, "overlay");
        assert_eq!(t[4].root, Path::new("/s/my home/dir/k2"));
        assert_eq!(t[4].mount_point, Path::new("/run/my mnt"));
        assert_eq!(
            t[1].overlay_dirs(),
            [
                "/s/overlay/layers/a/diff",
                "/s/overlay/layers/b/diff",
                "/s/overlay/layers/c/diff",
                "/s/overlay/layers/c/work"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            t[2].overlay_dirs(),
            ["/s/with:colon/diff", "/s/overlay/layers/d/diff"].map(PathBuf::from)
        );
        assert!(t[3].overlay_dirs().is_empty());
    }

    #[test]
    fn finds_overlays_and_binds_using_a_dir() {
        let t = parse(TABLE).unwrap();
        let dev = (254, 0);
        assert_eq!(
            users(&t, Path::new("/s/overlay/layers/b"), dev),
            [PathBuf::from("/run/m/c1")]
        );
        assert_eq!(
            users(&t, Path::new("/s/overlay/layers/d"), dev),
            [PathBuf::from("/run/m/old")]
        );
        assert_eq!(
            users(&t, Path::new("/s/vfs/dir/k1"), dev),
            [PathBuf::from("/run/m/v1")]
        );
        assert_eq!(
            users(&t, Path::new("/s/my home/dir/k2"), dev),
            [PathBuf::from("/run/my mnt")]
        );
        assert!(users(&t, Path::new("/s/vfs/dir/k10"), dev).is_empty());
        assert!(users(&t, Path::new("/s/overlay/layers/e"), dev).is_empty());
        // A mount point inside the directory uses it too.
        assert_eq!(
            users(&t, Path::new("/run/m"), dev),
            ["/run/m/c1", "/run/m/old", "/run/m/v1"].map(PathBuf::from)
        );
        assert!(parse("1 2 3\n").is_err());
    }
}
