//! Which mounts of this mount namespace show a given block device: read from
//! `/proc/self/mountinfo` by device number. The driver uses it to refuse removing a key whose
//! filesystem is still mounted somewhere other than its own internal mount point.
//!
//! It sees only the calling process's mount namespace (as `strata_mount::mounts_using` does).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Mount points of every mount of device `dev` (major, minor).
pub fn mounts_of(dev: (u32, u32)) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(Error::io("read", MOUNTINFO))?;
    Ok(parse(&text, dev))
}

/// Mount points of `dev` other than `own`.
pub fn other_mounts_of(dev: (u32, u32), own: &Path) -> Result<Vec<PathBuf>> {
    Ok(mounts_of(dev)?.into_iter().filter(|p| p != own).collect())
}

fn parse(text: &str, dev: (u32, u32)) -> Vec<PathBuf> {
    let want = format!("{}:{}", dev.0, dev.1);
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let (_id, _parent, devno, _root, point) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            (devno == want).then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 253:3 / /home/s/mnt/k rw,relatime shared:1 - ext4 /dev/dm-3 rw
23 1 253:3 /rootfs /tmp/view\\040one ro,relatime shared:1 - ext4 /dev/dm-3 rw
24 1 253:31 / /home/s/mnt/other rw - ext4 /dev/dm-31 rw
25 1 8:1 / / rw - ext4 /dev/sda1 rw
";

    #[test]
    fn finds_every_mount_of_a_device_and_unescapes_paths() {
        assert_eq!(
            parse(SAMPLE, (253, 3)),
            [
                PathBuf::from("/home/s/mnt/k"),
                PathBuf::from("/tmp/view one")
            ]
        );
        assert_eq!(
            parse(SAMPLE, (253, 31)),
            [PathBuf::from("/home/s/mnt/other")]
        );
        assert!(parse(SAMPLE, (253, 4)).is_empty());
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn reads_this_process_mount_table() {
        // procfs is mounted at /proc, and its st_dev is the one mountinfo shows.
        let st = rustix::fs::stat("/proc").unwrap();
        let dev = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
        assert!(mounts_of(dev).unwrap().contains(&PathBuf::from("/proc")));
    }
}
