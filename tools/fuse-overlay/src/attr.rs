//! File attributes as the filesystem shows them (owners translated, inode numbers stable).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, Stat};

use crate::ids::Ids;
use crate::tree::Ino;

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub ino: Ino,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub kind: FileType,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec).unwrap_or(0);
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec.unsigned_abs(), nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(u64::from(nsec))
    }
}

impl Attr {
    /// `merged_dir`: a directory made of several layers, whose link count on disk means
    /// nothing for the merged view; it shows 1, which tools such as `find` read as "unknown"
    /// rather than trusting it to count subdirectories.
    pub fn from_stat(ino: Ino, st: &Stat, ids: &Ids, merged_dir: bool) -> Attr {
        #[allow(clippy::unnecessary_cast)] // field widths differ between targets
        Attr {
            ino,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: time(st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: time(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: time(st.st_ctime as i64, st.st_ctime_nsec as i64),
            kind: FileType::from_raw_mode(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: if merged_dir { 1 } else { st.st_nlink as u32 },
            uid: ids.shown_uid(st.st_uid),
            gid: ids.shown_gid(st.st_gid),
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
        }
    }
}
