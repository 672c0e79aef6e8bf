//! Which mounts show a subvolume: the check that keeps `remove` from deleting a mounted key.
//!
//! btrfs deletes a subvolume even while a bind mount shows it (the view goes empty), so the
//! driver must look first. The generic check (`strata_mount::mounts_using`) compares the
//! `st_dev` of the directory with the device numbers in `/proc/self/mountinfo`, but on btrfs
//! every subvolume has its own anonymous `st_dev`, different from the filesystem's. Instead this
//! module matches what btrfs itself reports for every mount: `subvolid=<id>` in the superblock
//! options names the subvolume the mount's root directory is in.
//!
//! A subvolume is in use when a mount of the same filesystem (same device number as the mount
//! holding the subvolume, found with `statx(STATX_MNT_ID)`) has `subvolid=` equal to its ID, or
//! when a mount point lies inside it.
//!
//! What it deliberately does not do: see other mount namespaces, or lock against a mount made
//! right after the check (the store serialises removal with its own users).

use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxFlags};
use strata_driver_api::{DriverError, Result};

use crate::subvol;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The fields of one mountinfo line that this module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: u64,
    dev: String,
    mount_point: PathBuf,
    fs_type: String,
    subvol_id: Option<u64>,
}

/// Fails with kind `Busy` if a mount in this namespace shows the subvolume at `path`. A missing
/// path is used by nothing.
pub fn refuse_if_mounted(path: &Path) -> Result<()> {
    let fd = match subvol::open_dir(path) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(subvol::errno("open", path)(e)),
    };
    let id = crate::sys::subvol_id(fd.as_fd())
        .map_err(subvol::errno("look up the subvolume ID of", path))?;
    let stx = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(subvol::errno("statx", path))?;
    let canonical = std::fs::canonicalize(path).map_err(DriverError::io("resolve", path))?;
    let text = std::fs::read_to_string(MOUNTINFO).map_err(DriverError::io("read", MOUNTINFO))?;
    let users = users(&parse(&text), stx.stx_mnt_id, id, &canonical);
    if users.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = users.iter().map(|p| p.display().to_string()).collect();
    Err(DriverError::io("remove", path)(std::io::Error::new(
        std::io::ErrorKind::ResourceBusy,
        format!("still mounted at {}; unmount it first", list.join(", ")),
    )))
}

/// Mount points showing subvolume `subvol_id`, which lies at `path` inside mount `holder`.
fn users(table: &[Entry], holder: u64, subvol_id: u64, path: &Path) -> Vec<PathBuf> {
    let Some(dev) = table.iter().find(|e| e.id == holder).map(|e| &e.dev) else {
        return Vec::new();
    };
    table
        .iter()
        .filter(|e| e.id != holder)
        .filter(|e| {
            let shows_it = &e.dev == dev && e.fs_type == "btrfs" && e.subvol_id == Some(subvol_id);
            shows_it || e.mount_point.starts_with(path)
        })
        .map(|e| e.mount_point.clone())
        .collect()
}

/// Parses mountinfo text; lines it cannot read are skipped (they cannot be btrfs binds of ours).
fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    // id parent major:minor root mount_point options [optional...] - fstype source super
    let (head, tail) = line.split_once(" - ")?;
    let head: Vec<&str> = head.split(' ').collect();
    let tail: Vec<&str> = tail.splitn(3, ' ').collect();
    if head.len() < 6 || tail.len() < 3 {
        return None;
    }
    let subvol_id = tail[2]
        .split(',')
        .find_map(|o| o.strip_prefix("subvolid="))
        .and_then(|v| v.parse().ok());
    Some(Entry {
        id: head[0].parse().ok()?,
        dev: head[2].to_owned(),
        mount_point: unescape(head[4]),
        fs_type: tail[0].to_owned(),
        subvol_id,
    })
}

/// Undoes the kernel's `\ooo` octal escapes in mountinfo paths.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// A store on a loop btrfs at /s (mount 44), a read-only view of key k1 (subvolume 257)
    /// and, on another btrfs with the same subvolume numbering, an unrelated mount.
    const TABLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
44 22 0:40 / /s rw,relatime - btrfs /dev/loop0 rw,space_cache=v2,subvolid=5,subvol=/
45 22 0:40 /btrfs/subvolumes/k1 /run/v\\0401 ro,relatime - btrfs /dev/loop0 rw,space_cache=v2,subvolid=257,subvol=/btrfs/subvolumes/k1
46 22 0:41 /x /run/other rw,relatime - btrfs /dev/loop1 rw,subvolid=258,subvol=/x
47 22 0:40 /btrfs/subvolumes/k1/etc /run/etc ro - btrfs /dev/loop0 rw,subvolid=257,subvol=/btrfs/subvolumes/k1/etc
garbage line
";

    #[test]
    fn parses_ids_devices_and_subvolume_ids() {
        let t = parse(TABLE);
        assert_eq!(t.len(), 5, "the garbage line is skipped");
        assert_eq!(t[2].id, 45);
        assert_eq!(t[2].dev, "0:40");
        assert_eq!(t[2].mount_point, Path::new("/run/v 1"));
        assert_eq!(t[2].subvol_id, Some(257));
        assert_eq!(t[0].subvol_id, None);
    }

    #[test]
    fn finds_binds_of_the_subvolume_and_of_directories_inside_it() {
        let t = parse(TABLE);
        let k1 = Path::new("/s/btrfs/subvolumes/k1");
        assert_eq!(
            users(&t, 44, 257, k1),
            [PathBuf::from("/run/v 1"), PathBuf::from("/run/etc")]
        );
        assert!(
            users(&t, 44, 258, Path::new("/s/btrfs/subvolumes/k2")).is_empty(),
            "subvolume 258 of another filesystem is not ours"
        );
        assert!(users(&t, 99, 257, k1).is_empty(), "unknown holder");
        assert_eq!(
            users(&t, 44, 300, Path::new("/run")),
            [
                PathBuf::from("/run/v 1"),
                PathBuf::from("/run/other"),
                PathBuf::from("/run/etc")
            ],
            "mount points inside the path use it"
        );
    }
}
