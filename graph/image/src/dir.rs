//! `dir:DIR`, skopeo's directory format (version 1.1).
//!
//! ```text
//! DIR/
//! ├── version                   "Directory Transport Version: 1.1\n"
//! ├── manifest.json             the top-level manifest (image or index)
//! ├── <64 hex>.manifest.json    index entries, when an index is copied whole
//! └── <64 hex>                  blobs (configs and layers), named by sha256 without prefix
//! ```
//!
//! The destination writes into a staging directory next to DIR and swaps it in at commit
//! (DIR must be absent, empty, or already a `dir:` image, which is replaced, as skopeo
//! does). Signatures (`signature-N`) are deliberately not read or written.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use strata_types::Digest;

use crate::atomic;
use crate::error::{ImageError, Result};
use crate::manifest::{classify, effective_media_type};
use crate::tar_index::SMALL_LIMIT;
use crate::tar_write::parent_dir;
use crate::transport::{Descriptor, ImageDestination, ImageSource, RawManifest};

/// The content of the `version` file.
pub const VERSION_CONTENT: &str = "Directory Transport Version: 1.1\n";

fn read_manifest(path: &Path) -> Result<RawManifest> {
    let f = fs::File::open(path).map_err(ImageError::io("open", path))?;
    let mut bytes = Vec::new();
    f.take(SMALL_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(ImageError::io("read", path))?;
    let probe = RawManifest {
        bytes,
        media_type: String::new(),
    };
    let kind = classify(&probe)?;
    Ok(RawManifest {
        media_type: effective_media_type(&probe.bytes, kind),
        bytes: probe.bytes,
    })
}

/// A `dir:DIR` source.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    top: RawManifest,
}

impl DirSource {
    /// Opens the image in `dir`.
    pub fn open(dir: &Path) -> Result<DirSource> {
        let version = dir.join("version");
        match fs::read_to_string(&version) {
            Ok(v) if v.starts_with("Directory Transport Version:") => {}
            Ok(v) => {
                return Err(ImageError::Invalid(format!(
                    "{}: unsupported dir transport version {:?}",
                    dir.display(),
                    v.trim()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => {
                tracing::debug!(dir = %dir.display(), "dir: image without a version file");
            }
            Err(e) => return Err(ImageError::io("read", version)(e)),
        }
        let top = read_manifest(&dir.join("manifest.json"))?;
        Ok(DirSource {
            dir: dir.to_owned(),
            top,
        })
    }
}

impl ImageSource for DirSource {
    fn manifest(&self) -> Result<RawManifest> {
        Ok(self.top.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest> {
        let m = read_manifest(&self.dir.join(format!("{}.manifest.json", digest.hex())))?;
        let actual = Digest::of(&m.bytes);
        if &actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest in {}", self.describe()),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(m)
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let p = self.dir.join(desc.digest.hex());
        Ok(Box::new(
            fs::File::open(&p).map_err(ImageError::io("open", &p))?,
        ))
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.dir.display())
    }
}

/// A `dir:DIR` destination.
#[derive(Debug)]
pub struct DirDestination {
    dir: PathBuf,
    staging: tempfile::TempDir,
}

impl DirDestination {
    /// Prepares to write `dir`. Refuses a non-empty directory that is not a `dir:` image.
    pub fn open(dir: &Path) -> Result<DirDestination> {
        if dir.exists() {
            let entries = fs::read_dir(dir)
                .map_err(ImageError::io("list", dir))?
                .count();
            if entries > 0 && !dir.join("version").is_file() {
                return Err(ImageError::Invalid(format!(
                    "{} is not empty and is not a dir: image; refusing to overwrite it",
                    dir.display()
                )));
            }
        }
        let parent = parent_dir(dir);
        fs::create_dir_all(parent).map_err(ImageError::io("create directory", parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".tmp-dir-")
            .tempdir_in(parent)
            .map_err(ImageError::io("create staging directory in", parent))?;
        Ok(DirDestination {
            dir: dir.to_owned(),
            staging,
        })
    }
}

impl ImageDestination for DirDestination {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(fs::metadata(self.staging.path().join(desc.digest.hex()))
            .map(|m| m.len() == desc.size)
            .unwrap_or(false))
    }

    fn put_blob(&self, desc: &Descriptor, data: &mut dyn Read) -> Result<()> {
        atomic::write_stream(&self.staging.path().join(desc.digest.hex()), data)?;
        Ok(())
    }

    fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()> {
        let name = match instance {
            None => "manifest.json".to_owned(),
            Some(d) => format!("{}.manifest.json", d.hex()),
        };
        atomic::write_bytes(&self.staging.path().join(name), &manifest.bytes)
    }

    fn commit(&self) -> Result<()> {
        let staging = self.staging.path();
        if !staging.join("manifest.json").is_file() {
            return Err(ImageError::Invalid(format!(
                "nothing to commit to {}: no manifest was written",
                self.describe()
            )));
        }
        atomic::write_bytes(&staging.join("version"), VERSION_CONTENT.as_bytes())?;
        // The staging directory is renamed away below; TempDir's drop then finds nothing.
        if self.dir.exists() {
            let old = tempfile::Builder::new()
                .prefix(".tmp-dir-old-")
                .tempdir_in(parent_dir(&self.dir))
                .map_err(ImageError::io("create directory next to", &self.dir))?;
            let aside = old.path().join("old");
            fs::rename(&self.dir, &aside).map_err(ImageError::io("move aside", &self.dir))?;
            fs::rename(staging, &self.dir)
                .map_err(ImageError::io("rename into place", &self.dir))?;
            drop(old);
        } else {
            fs::rename(staging, &self.dir)
                .map_err(ImageError::io("rename into place", &self.dir))?;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755))
            .map_err(ImageError::io("set permissions on", &self.dir))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.dir.display())
    }
}
