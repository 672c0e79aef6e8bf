//! Writing an archive file (`oci-archive:`, `docker-archive:`) all at once at commit.
//!
//! The tar is written to a temporary file next to the target and renamed into place by
//! [`TarFileWriter::finish`]; dropping the writer without finishing deletes the temporary
//! file, so a failed copy never leaves a half-written archive. Headers are deterministic
//! (mtime 0, uid/gid 0, mode 0644/0755), so the same image gives the same archive bytes.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{ImageError, Result};

/// Builds a tar file and moves it into place on [`finish`](TarFileWriter::finish).
pub struct TarFileWriter {
    target: PathBuf,
    builder: tar::Builder<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for TarFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarFileWriter")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl TarFileWriter {
    /// Starts an archive that will become `target`.
    pub fn create(target: &Path) -> Result<TarFileWriter> {
        let dir = parent_dir(target);
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-archive-")
            .tempfile_in(dir)
            .map_err(ImageError::io("create temporary archive in", dir))?;
        Ok(TarFileWriter {
            target: target.to_owned(),
            builder: tar::Builder::new(tmp),
        })
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn err(&self) -> impl FnOnce(std::io::Error) -> ImageError {
        ImageError::io("write archive", self.target.clone())
    }

    /// Adds a directory entry (`name` without trailing slash).
    pub fn add_dir(&mut self, name: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0);
        let err = self.err();
        self.builder
            .append_data(&mut h, format!("{name}/"), std::io::empty())
            .map_err(err)
    }

    /// Adds a file with the given content.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, bytes.len() as u64);
        let err = self.err();
        self.builder.append_data(&mut h, name, bytes).map_err(err)
    }

    /// Adds a file streamed from `path` on disk.
    pub fn add_file(&mut self, name: &str, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(ImageError::io("open", path))?;
        let size = file.metadata().map_err(ImageError::io("stat", path))?.len();
        let mut h = Self::header(tar::EntryType::Regular, size);
        let err = self.err();
        self.builder
            .append_data(&mut h, name, file.take(size))
            .map_err(err)
    }

    /// Finishes the archive, syncs it and renames it over the target.
    pub fn finish(self) -> Result<()> {
        let target = self.target;
        let tmp = self
            .builder
            .into_inner()
            .map_err(ImageError::io("finish archive", target.clone()))?;
        tmp.as_file()
            .sync_data()
            .map_err(ImageError::io("sync", target.clone()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(ImageError::io("set permissions on", target.clone()))?;
        }
        tmp.persist(&target)
            .map_err(|e| ImageError::io("rename into place", target.clone())(e.error))?;
        Ok(())
    }
}
