//! Reads `/proc/self/mountinfo` to answer "which mounts use this directory?", so that a driver
//! can refuse to delete payload that a mounted view still shows.
//!
//! A directory is in use when a mount of the same filesystem has its root at or below it (a
//! bind of it), when a mount point lies at or below it, or when an overlay mount names it (or a
//! path below it) as a lower, upper or work directory.
//!
//! "The same filesystem" is the superblock's device number in mountinfo (field 3), found
//! through the mount that holds the directory (`statx(STATX_MNT_ID)`), never through the
//! directory's own `st_dev`: on btrfs every subvolume reports its own anonymous `st_dev`, while
//! mountinfo shows the filesystem's for all of them, so comparing `st_dev` would miss every
//! bind of a subvolume. Where a mount shows is compared by path inside the filesystem (field
//! 4, which btrfs reports from its top-level subvolume), so a bind of a subvolume, or of a
//! directory inside it, is seen whatever `subvol=` the store's own mount used.
//!
//! A FUSE overlay (`fuse.strata-overlay`) uses the directories its server's command line names
//! (`-o lowerdir=...,upperdir=...`), for as long as the mount is in this namespace's table.
//!
//! It sees only the calling process's mount namespace: views mounted in another namespace (and
//! not propagated to this one) are invisible to it.

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxFlags, CWD};

use crate::MountError;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of mountinfo (the fields this crate needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// The mount's ID (what `statx(STATX_MNT_ID)` reports for files inside it).
    pub id: u64,
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
            id: head[0].parse().map_err(|_| bad(line, "bad mount ID"))?,
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

/// Mount points of every mount in this mount namespace whose filesystem is on device `dev`
/// (major, minor: mountinfo's field 3), e.g. every mount of a thin device's filesystem.
pub fn mounts_of_device(dev: (u32, u32)) -> Result<Vec<PathBuf>, MountError> {
    Ok(read()?
        .into_iter()
        .filter(|m| m.dev == dev)
        .map(|m| m.mount_point)
        .collect())
}

/// Mount points of mounts that use `dir` (see the module docs), in mount-table order.
/// A missing `dir` is used by nothing.
pub fn mounts_using(dir: &Path) -> Result<Vec<PathBuf>, MountError> {
    let dir = match std::fs::canonicalize(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MountError::io("resolve", dir)(e)),
    };
    let holder = match rustix::fs::statx(CWD, &dir, AtFlags::empty(), StatxFlags::MNT_ID) {
        Ok(st) if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 => Holder::Mount(st.stx_mnt_id),
        // Kernels before 5.8 do not report the mount: guess it from the device number (right
        // everywhere but on btrfs subvolumes).
        Ok(_) | Err(rustix::io::Errno::NOSYS) => {
            let meta = std::fs::metadata(&dir).map_err(MountError::io("stat", &dir))?;
            Holder::Device((rustix::fs::major(meta.dev()), rustix::fs::minor(meta.dev())))
        }
        Err(e) => return Err(MountError::io("statx", &dir)(e.into())),
    };
    let table = read()?;
    let mut out = users(&table, &dir, holder);
    // A FUSE overlay's layers are not in the mount table; its server's command line names
    // them. The process table is read only when such a mount exists.
    let fuse_mounted = table.iter().any(|m| m.fs_type == crate::fuse::FS_TYPE);
    let servers = if fuse_mounted {
        crate::fuse::servers_using(&dir)
    } else {
        Vec::new()
    };
    for mp in servers {
        let mounted_here = table
            .iter()
            .any(|m| m.mount_point == mp && m.fs_type == crate::fuse::FS_TYPE);
        if mounted_here && !out.contains(&mp) {
            out.push(mp);
        }
    }
    Ok(out)
}

/// How [`users`] finds the mount that holds the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The mount with this ID (`statx(STATX_MNT_ID)`).
    Mount(u64),
    /// The mount of the filesystem with this device number whose mount point is the longest
    /// prefix of the directory (a fallback: a btrfs subvolume's `st_dev` matches no mount).
    Device((u32, u32)),
}

/// The pure part of [`mounts_using`]: `dir` is canonical and `holder` finds its mount.
pub(crate) fn users(table: &[MountEntry], dir: &Path, holder: Holder) -> Vec<PathBuf> {
    let containing = match holder {
        Holder::Mount(id) => table.iter().position(|m| m.id == id),
        Holder::Device(dev) => table
            .iter()
            .enumerate()
            .filter(|(_, m)| m.dev == dev && dir.starts_with(&m.mount_point))
            .max_by_key(|(_, m)| m.mount_point.as_os_str().len())
            .map(|(i, _)| i),
    };
    // Where `dir` is inside its filesystem: the holding mount's root plus the path below its
    // mount point.
    let place = containing.and_then(|i| {
        let m = &table[i];
        dir.strip_prefix(&m.mount_point)
            .ok()
            .map(|rel| (m.dev, m.root.join(rel)))
    });
    let mut out = Vec::new();
    for (i, m) in table.iter().enumerate() {
        let binds_it = Some(i) != containing
            && place
                .as_ref()
                .is_some_and(|(dev, p)| m.dev == *dev && m.root.starts_with(p));
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

    #[test]
    fn mounts_of_a_device_come_from_this_process_mount_table() {
        // procfs is mounted at /proc, and its st_dev is the one mountinfo shows.
        let st = rustix::fs::stat("/proc").unwrap();
        let dev = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
        assert!(mounts_of_device(dev)
            .unwrap()
            .contains(&PathBuf::from("/proc")));
        assert!(mounts_of_device((u32::MAX, u32::MAX)).unwrap().is_empty());
    }

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
        for holder in [Holder::Mount(22), Holder::Device((254, 0))] {
            assert_eq!(
                users(&t, Path::new("/s/overlay/layers/b"), holder),
                [PathBuf::from("/run/m/c1")]
            );
            assert_eq!(
                users(&t, Path::new("/s/overlay/layers/d"), holder),
                [PathBuf::from("/run/m/old")]
            );
            assert_eq!(
                users(&t, Path::new("/s/vfs/dir/k1"), holder),
                [PathBuf::from("/run/m/v1")]
            );
            assert_eq!(
                users(&t, Path::new("/s/my home/dir/k2"), holder),
                [PathBuf::from("/run/my mnt")]
            );
            assert!(users(&t, Path::new("/s/vfs/dir/k10"), holder).is_empty());
            assert!(users(&t, Path::new("/s/overlay/layers/e"), holder).is_empty());
            // A mount point inside the directory uses it too.
            assert_eq!(
                users(&t, Path::new("/run/m"), holder),
                ["/run/m/c1", "/run/m/old", "/run/m/v1"].map(PathBuf::from)
            );
        }
        assert!(parse("1 2 3\n").is_err());
    }

    /// A store on a loop btrfs mounted at /s (mount 44; `stat` there reports 0:41, and 0:42,
    /// 0:43... inside each subvolume, while mountinfo shows the filesystem's 0:40 everywhere),
    /// a view of key k1, a bind of a directory inside key k2, and another btrfs whose paths
    /// look the same.
    const BTRFS: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
44 22 0:40 / /s rw,relatime - btrfs /dev/loop0 rw,space_cache=v2,subvolid=5,subvol=/
45 22 0:40 /btrfs/subvolumes/k1 /run/v1 ro,relatime - btrfs /dev/loop0 rw,subvolid=257,subvol=/btrfs/subvolumes/k1
46 22 0:40 /btrfs/subvolumes/k2/etc /run/etc ro - btrfs /dev/loop0 rw,subvolid=258,subvol=/btrfs/subvolumes/k2
47 22 0:41 /btrfs/subvolumes/k3 /run/other rw,relatime - btrfs /dev/loop1 rw,subvolid=259,subvol=/btrfs/subvolumes/k3
48 22 0:40 /store /t rw,relatime - btrfs /dev/loop0 rw,subvolid=260,subvol=/store
49 22 0:40 /store/keys/k4 /run/v4 ro,relatime - btrfs /dev/loop0 rw,subvolid=261,subvol=/store/keys/k4
";

    #[test]
    fn finds_binds_of_btrfs_subvolumes_through_the_holding_mount() {
        let t = parse(BTRFS).unwrap();
        let s = Holder::Mount(44);
        assert_eq!(
            users(&t, Path::new("/s/btrfs/subvolumes/k1"), s),
            [PathBuf::from("/run/v1")]
        );
        assert_eq!(
            users(&t, Path::new("/s/btrfs/subvolumes/k2"), s),
            [PathBuf::from("/run/etc")],
            "a bind of a directory inside the subvolume uses it"
        );
        assert!(
            users(&t, Path::new("/s/btrfs/subvolumes/k3"), s).is_empty(),
            "the same path on another btrfs is not ours"
        );
        assert!(users(&t, Path::new("/s/btrfs/subvolumes/k10"), s).is_empty());
        // Mounted with subvol=/store at /t: paths inside the filesystem start at /store.
        assert_eq!(
            users(&t, Path::new("/t/keys/k4"), Holder::Mount(48)),
            [PathBuf::from("/run/v4")]
        );
        // The subvolume's own st_dev (0:42) matches no mount: the fallback sees no binds.
        assert!(users(
            &t,
            Path::new("/s/btrfs/subvolumes/k1"),
            Holder::Device((0, 42))
        )
        .is_empty());
        assert!(users(&t, Path::new("/s/btrfs/subvolumes/k1"), Holder::Mount(99)).is_empty());
    }
}
