//! Disk usage of a tree (`du`): allocated blocks of every entry, counting an inode with several
//! hardlinks in the tree once. Best effort by nature: entries vanishing during the walk are
//! skipped.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_driver_api::{DriverError, Result};

/// Bytes allocated to `root` and everything below it. A missing root is an error.
pub fn disk_usage(root: &Path) -> Result<u64> {
    let m = std::fs::symlink_metadata(root).map_err(DriverError::io("stat", root))?;
    let mut seen = HashSet::new();
    let mut total = 0;
    add(root, &m, &mut seen, &mut total)?;
    Ok(total)
}

fn add(
    path: &Path,
    m: &std::fs::Metadata,
    seen: &mut HashSet<(u64, u64)>,
    total: &mut u64,
) -> Result<()> {
    if m.is_dir() || m.nlink() < 2 || seen.insert((m.dev(), m.ino())) {
        *total += m.blocks() * 512;
    }
    if m.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DriverError::io("read", path)(e)),
        };
        for e in entries {
            let e = e.map_err(DriverError::io("read", path))?;
            let p = e.path();
            match std::fs::symlink_metadata(&p) {
                Ok(m) => add(&p, &m, seen, total)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DriverError::io("stat", &p)(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn hardlinked_files_count_once() {
        let t = tempfile::tempdir().unwrap();
        let data = vec![7u8; 1 << 20];
        std::fs::write(t.path().join("a"), &data).unwrap();
        let one = disk_usage(t.path()).unwrap();
        assert!(one >= 1 << 20, "{one}");
        std::fs::hard_link(t.path().join("a"), t.path().join("b")).unwrap();
        assert_eq!(disk_usage(t.path()).unwrap(), one);
        std::fs::write(t.path().join("c"), &data).unwrap();
        assert!(disk_usage(t.path()).unwrap() >= one + (1 << 20));
        assert!(disk_usage(&t.path().join("missing")).is_err());
    }
}
