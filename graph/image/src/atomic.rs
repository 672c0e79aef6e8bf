//! Atomic file creation: content goes to a temporary file in the target's directory, is
//! synced, then renamed over the target, so readers see the old file or the new one, never
//! a partial one. Directory fsync after the rename is deliberately not done (a crash may lose
//! the new name, never expose a torn file).

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{ImageError, Result};

fn temp_in(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(ImageError::io("create directory", dir))?;
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(ImageError::io("create temporary file in", dir))
}

fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file()
        .sync_data()
        .map_err(ImageError::io("sync", path))?;
    tmp.persist(path)
        .map_err(|e| ImageError::io("rename into place", path)(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (mode 0644).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_in(path)?;
    tmp.write_all(bytes)
        .map_err(ImageError::io("write", path))?;
    set_readable(&tmp, path)?;
    persist(tmp, path)
}

/// Streams `data` into `path` atomically; returns the number of bytes written. A read error
/// (such as a digest mismatch) leaves `path` untouched.
pub fn write_stream(path: &Path, data: &mut dyn Read) -> Result<u64> {
    let mut tmp = temp_in(path)?;
    let n = io::copy(data, &mut tmp).map_err(ImageError::io("write", path))?;
    set_readable(&tmp, path)?;
    persist(tmp, path)?;
    Ok(n)
}

fn set_readable(tmp: &tempfile::NamedTempFile, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(ImageError::io("set permissions on", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_stream_leaves_nothing() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("boom"))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        assert!(write_stream(&target, &mut Failing).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        write_bytes(&target, b"ok").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"ok");
    }
}
