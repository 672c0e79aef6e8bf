//! Random access to the members of a tar file without extracting it.
//!
//! [`TarIndex::open`] walks the archive's headers once (seeking over member data) and records
//! each regular file's data offset and size; symlinks and hard links are resolved to the file
//! they name (`docker save` links duplicate layers). Members are then served as bounded
//! readers over the one shared file handle (`pread`), so several threads can read blobs at
//! once. Compressed archives (`.tar.gz`) are deliberately not supported: they cannot be
//! read at random.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ImageError, Result};

/// Members larger than this are refused by [`TarIndex::read_small`] (manifests, configs).
pub const SMALL_LIMIT: u64 = 32 << 20;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link { target: String },
}

/// The index of a tar file: member name -> data location.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    members: HashMap<String, Member>,
}

/// Normalises a member path: no leading `/` or `./`, `.` and `..` resolved.
pub fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl TarIndex {
    /// Indexes the tar file at `path`.
    pub fn open(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(ImageError::io("open archive", path))?;
        let bad = |e: io::Error| ImageError::Invalid(format!("{}: {e}", path.display()));
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            for entry in archive.entries_with_seek().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
                let header = entry.header();
                let kind = header.entry_type();
                let member = if kind.is_file() {
                    Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    }
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let link = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let target = if kind.is_symlink() && !link.starts_with('/') {
                        let parent = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        normalize(&format!("{parent}/{link}"))
                    } else {
                        normalize(&link)
                    };
                    Member::Link { target }
                } else {
                    continue;
                };
                members.insert(name, member);
            }
        }
        tracing::debug!(archive = %path.display(), members = members.len(), "indexed tar");
        Ok(TarIndex {
            path: path.to_owned(),
            file: Arc::new(file),
            members,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn resolve(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize(name);
        for _ in 0..16 {
            match self.members.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link { target } => name = target.clone(),
            }
        }
        None
    }

    /// The size of member `name` (links followed), if it exists.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.resolve(name).map(|(_, size)| size)
    }

    /// A reader of member `name`'s content.
    pub fn open_member(&self, name: &str) -> Result<MemberReader> {
        let (offset, size) = self.resolve(name).ok_or_else(|| ImageError::NotFound {
            what: "archive member",
            name: format!("{name} in {}", self.path.display()),
        })?;
        Ok(MemberReader {
            file: Arc::clone(&self.file),
            pos: offset,
            end: offset + size,
        })
    }

    /// The whole content of a small member (at most [`SMALL_LIMIT`] bytes).
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let mut r = self.open_member(name)?;
        if r.end - r.pos > SMALL_LIMIT {
            return Err(ImageError::Invalid(format!(
                "{name} in {} is too large for a manifest or config",
                self.path.display()
            )));
        }
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(ImageError::io("read archive", &self.path))?;
        Ok(out)
    }
}

/// A bounded reader over one member of an indexed tar file.
#[derive(Debug)]
pub struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_member_names() {
        assert_eq!(normalize("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize("/a/../b/./c"), "b/c");
        assert_eq!(normalize("../../x"), "x");
    }

    #[test]
    fn serves_members_and_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        b.append_data(&mut h, "./d/one", &b"hello"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "e/two", "../d/one").unwrap();
        b.into_inner().unwrap();

        let idx = TarIndex::open(&path).unwrap();
        assert_eq!(idx.read_small("d/one").unwrap(), b"hello");
        assert_eq!(idx.read_small("e/two").unwrap(), b"hello");
        assert_eq!(idx.size("e/two"), Some(5));
        assert!(matches!(
            idx.open_member("nope"),
            Err(ImageError::NotFound { .. })
        ));
    }
}
