//! The content-addressed blob store for manifests and configs: `blobs/sha256/<hex>`.
//!
//! A blob is written to `tmp/`, hashed while it streams, fsynced, verified against the expected
//! digest, and only then renamed into place (and the directory fsynced). A reader therefore
//! never sees a partial or wrong blob under a digest's name. Layer blobs are not kept: a layer's
//! payload plus its tar-split record reproduces the uncompressed layer exactly.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use strata_types::{Digest, Hasher};

use crate::error::{Result, StoreError};
use crate::paths::Paths;

/// A temporary file in the store's `tmp/` directory, removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    pub file: File,
    pub path: PathBuf,
    persisted: bool,
}

impl TempFile {
    pub fn new(paths: &Paths, suffix: &str) -> Result<TempFile> {
        let name = format!("{}{}", random_hex(16), suffix);
        let path = paths.tmp().join(name);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("create", &path))?;
        Ok(TempFile {
            file,
            path,
            persisted: false,
        })
    }

    /// fsyncs the file and renames it to `dest` (then fsyncs `dest`'s directory).
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        self.file
            .sync_all()
            .map_err(StoreError::io("fsync", &self.path))?;
        std::fs::rename(&self.path, dest).map_err(StoreError::io("rename into place", dest))?;
        self.persisted = true;
        sync_parent(dest)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// fsyncs the directory containing `path`, making a rename durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::io("fsync directory", dir))?;
    }
    Ok(())
}

/// Random lowercase hex of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blob store.
#[derive(Debug, Clone)]
pub struct Blobs {
    paths: Paths,
}

impl Blobs {
    pub fn new(paths: Paths) -> Blobs {
        Blobs { paths }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.paths.blob(d)
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Streams `r` into the store, verifying it hashes to `expected` when given.
    pub fn put(&self, mut r: impl Read, expected: Option<&Digest>) -> Result<Digest> {
        let mut tmp = TempFile::new(&self.paths, ".blob")?;
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("read blob", &tmp.path)(e)),
            };
            h.update(&buf[..n]);
            tmp.file
                .write_all(&buf[..n])
                .map_err(StoreError::io("write", &tmp.path))?;
        }
        let got = h.finish();
        if let Some(want) = expected {
            if *want != got {
                return Err(StoreError::Invalid(format!(
                    "blob digest mismatch: expected {want}, content hashes to {got}"
                )));
            }
        }
        if !self.exists(&got) {
            tmp.persist(&self.path(&got))?;
        }
        Ok(got)
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        self.put(bytes, None)
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.path(d);
        std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::Corrupt(format!("blob {d} is missing from {}", p.display()))
            } else {
                StoreError::io("read", &p)(e)
            }
        })
    }

    /// Re-hashes a stored blob; `Ok(false)` when its content no longer matches its name.
    pub fn verify(&self, d: &Digest) -> Result<bool> {
        Ok(Digest::of(&self.read(d)?) == *d)
    }

    pub fn remove(&self, d: &Digest) -> Result<()> {
        match std::fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("remove", self.path(d))(e))
            }
            _ => Ok(()),
        }
    }

    /// Every blob file on disk (names that are not valid digests are reported as `Err(name)`).
    pub fn list(&self) -> Result<Vec<std::result::Result<Digest, PathBuf>>> {
        let dir = self.paths.blobs();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(StoreError::io("list", &dir))? {
            let e = e.map_err(StoreError::io("list", &dir))?;
            let name = e.file_name();
            match name.to_str().and_then(|n| Digest::from_hex(n).ok()) {
                Some(d) => out.push(Ok(d)),
                None => out.push(Err(e.path())),
            }
        }
        Ok(out)
    }
}
