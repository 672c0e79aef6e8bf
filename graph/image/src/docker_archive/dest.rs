//! Writing a `docker load`-able archive as an [`ImageDestination`].
//!
//! Blobs are staged in a temporary directory next to FILE; at commit the archive is written
//! to a temporary file (`<diffid-hex>.tar` layers, `<config-hex>.json`, `manifest.json`) and
//! renamed over FILE. Layers must arrive uncompressed ([`preferred_compression`] tells the
//! copy engine so). The legacy `repositories` file and per-layer `VERSION`/`json` files are
//! deliberately not written: `docker load` and skopeo do not need them.
//!
//! [`preferred_compression`]: ImageDestination::preferred_compression

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use strata_types::Digest;

use super::ArchiveEntry;
use crate::atomic;
use crate::compression::Compression;
use crate::error::{ImageError, Result};
use crate::manifest::{classify, layer_compression, parse_manifest, ManifestKind};
use crate::tar_write::{parent_dir, TarFileWriter};
use crate::transport::{CompressionPreference, Descriptor, ImageDestination, RawManifest};

/// A `docker-archive:FILE[:name:tag]` destination.
#[derive(Debug)]
pub struct DockerArchiveDestination {
    file: PathBuf,
    tag: Option<String>,
    staging: tempfile::TempDir,
    manifest: Mutex<Option<RawManifest>>,
}

impl DockerArchiveDestination {
    /// Prepares to write `file`, tagging the image `tag` (familiar `name:tag`) if given.
    pub fn open(file: &Path, tag: Option<&str>) -> Result<DockerArchiveDestination> {
        if file.is_dir() {
            return Err(ImageError::Invalid(format!(
                "{} is a directory, not an archive file",
                file.display()
            )));
        }
        let dir = parent_dir(file);
        let staging = tempfile::Builder::new()
            .prefix(".tmp-docker-archive-")
            .tempdir_in(dir)
            .map_err(ImageError::io("create staging directory in", dir))?;
        Ok(DockerArchiveDestination {
            file: file.to_owned(),
            tag: tag.map(str::to_owned),
            staging,
            manifest: Mutex::new(None),
        })
    }

    fn staged(&self, digest: &Digest) -> PathBuf {
        self.staging.path().join(digest.hex())
    }
}

impl ImageDestination for DockerArchiveDestination {
    fn preferred_compression(&self) -> CompressionPreference {
        CompressionPreference::Uncompressed
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(std::fs::metadata(self.staged(&desc.digest))
            .map(|m| m.len() == desc.size)
            .unwrap_or(false))
    }

    fn put_blob(&self, desc: &Descriptor, data: &mut dyn Read) -> Result<()> {
        atomic::write_stream(&self.staged(&desc.digest), data)?;
        Ok(())
    }

    fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()> {
        if instance.is_some() || classify(manifest)? == ManifestKind::Index {
            return Err(ImageError::Unsupported(
                "docker-archive holds single-platform images only; copy one platform instead of --all"
                    .into(),
            ));
        }
        *self.manifest.lock().unwrap_or_else(PoisonError::into_inner) = Some(manifest.clone());
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        let raw = self
            .manifest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                ImageError::Invalid(format!(
                    "nothing to commit to {}: no manifest was written",
                    self.describe()
                ))
            })?;
        let manifest = parse_manifest(&raw.bytes)?;
        let mut tar = TarFileWriter::create(&self.file)?;
        let config_name = format!("{}.json", manifest.config.digest.hex());
        tar.add_file(&config_name, &self.staged(&manifest.config.digest))?;
        let mut layer_names = Vec::new();
        let mut written = HashSet::new();
        for layer in &manifest.layers {
            if matches!(
                layer_compression(&layer.media_type),
                Some(Compression::Gzip | Compression::Zstd)
            ) {
                return Err(ImageError::Unsupported(format!(
                    "docker-archive needs uncompressed layers, got {} ({})",
                    layer.digest, layer.media_type
                )));
            }
            let name = format!("{}.tar", layer.digest.hex());
            if written.insert(name.clone()) {
                tar.add_file(&name, &self.staged(&layer.digest))?;
            }
            layer_names.push(name);
        }
        let entry = ArchiveEntry {
            config: config_name,
            repo_tags: Some(self.tag.iter().cloned().collect()),
            layers: layer_names,
        };
        let json = serde_json::to_vec(&[entry]).map_err(|e| ImageError::Invalid(e.to_string()))?;
        tar.add_bytes("manifest.json", &json)?;
        tar.finish()
    }

    fn describe(&self) -> String {
        match &self.tag {
            Some(t) => format!("docker-archive:{}:{t}", self.file.display()),
            None => format!("docker-archive:{}", self.file.display()),
        }
    }
}
