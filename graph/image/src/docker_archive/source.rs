//! Reading a `docker save` archive as an [`ImageSource`], without extracting it.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::json;
use strata_types::Digest;

use super::{familiar, ArchiveEntry, ArchiveRef};
use crate::compression::{self, Compression};
use crate::error::{ImageError, Result};
use crate::manifest::{diff_ids, media_type};
use crate::tar_index::TarIndex;
use crate::transport::{Descriptor, ImageSource, RawManifest};

#[derive(Debug)]
struct LayerEntry {
    member: String,
    compressed: bool,
}

/// A `docker-archive:FILE[:REF]` source.
#[derive(Debug)]
pub struct DockerArchiveSource {
    file: PathBuf,
    reference: Option<ArchiveRef>,
    index: TarIndex,
    manifest: RawManifest,
    config_digest: Digest,
    config_member: String,
    layers: HashMap<Digest, LayerEntry>,
    repo_tags: Vec<String>,
}

impl DockerArchiveSource {
    /// Indexes `file` and selects the image `reference` names (the only one if `None`).
    pub fn open(file: &Path, reference: Option<&ArchiveRef>) -> Result<DockerArchiveSource> {
        let index = TarIndex::open(file)?;
        let entries: Vec<ArchiveEntry> =
            serde_json::from_slice(&index.read_small("manifest.json")?).map_err(|e| {
                ImageError::Invalid(format!("{}: invalid manifest.json: {e}", file.display()))
            })?;
        let tags = |e: &ArchiveEntry| e.repo_tags.clone().unwrap_or_default();
        let all_tags: Vec<String> = entries.iter().flat_map(tags).collect();
        let entry = match reference {
            None if entries.len() == 1 => &entries[0],
            None => {
                return Err(ImageError::Invalid(format!(
                    "docker-archive:{} holds {} images; name one as docker-archive:FILE:name:tag \
                     or docker-archive:FILE:@N (tags there: {})",
                    file.display(),
                    entries.len(),
                    all_tags.join(", ")
                )))
            }
            Some(ArchiveRef::Index(n)) => entries.get(*n).ok_or_else(|| ImageError::NotFound {
                what: "image",
                name: format!("@{n} in {} ({} images)", file.display(), entries.len()),
            })?,
            Some(ArchiveRef::Tag(t)) => entries
                .iter()
                .find(|e| tags(e).iter().any(|rt| familiar(rt) == *t))
                .ok_or_else(|| ImageError::NotFound {
                    what: "image",
                    name: format!(
                        "{t} in {} (tags there: {})",
                        file.display(),
                        all_tags.join(", ")
                    ),
                })?,
        };

        let config = index.read_small(&entry.config)?;
        let config_digest = Digest::of(&config);
        let diff_ids = diff_ids(&config)?;
        if diff_ids.len() != entry.layers.len() {
            return Err(ImageError::Invalid(format!(
                "{}: image config lists {} layers, manifest.json {}",
                file.display(),
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        let mut layers = HashMap::new();
        let mut descs = Vec::new();
        for (member, diff_id) in entry.layers.iter().zip(diff_ids) {
            let (size, compressed) = measure(&index, member)?;
            descs.push(json!({
                "mediaType": media_type::DOCKER_LAYER_TAR,
                "size": size,
                "digest": diff_id,
            }));
            layers.insert(
                diff_id,
                LayerEntry {
                    member: member.clone(),
                    compressed,
                },
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::DOCKER_MANIFEST,
            "config": {
                "mediaType": media_type::DOCKER_CONFIG,
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": descs,
        });
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
        Ok(DockerArchiveSource {
            file: file.to_owned(),
            reference: reference.cloned(),
            manifest: RawManifest {
                bytes,
                media_type: media_type::DOCKER_MANIFEST.to_owned(),
            },
            config_digest,
            config_member: entry.config.clone(),
            layers,
            repo_tags: tags(entry),
            index,
        })
    }

    /// The selected image's `RepoTags`.
    pub fn repo_tags(&self) -> &[String] {
        &self.repo_tags
    }
}

/// The size of a layer as served (uncompressed), and whether it is stored compressed (then
/// it is decompressed once here to learn the size, as containers/image does).
fn measure(index: &TarIndex, member: &str) -> Result<(u64, bool)> {
    let stored = index.size(member).ok_or_else(|| ImageError::NotFound {
        what: "layer",
        name: format!("{member} in {}", index.path().display()),
    })?;
    let mut head = [0u8; 4];
    let n = index
        .open_member(member)?
        .take(4)
        .read(&mut head)
        .map_err(ImageError::io("read", index.path()))?;
    if Compression::detect(&head[..n]) == Compression::None {
        return Ok((stored, false));
    }
    let (_, mut r) = compression::decompressed(index.open_member(member)?)
        .map_err(ImageError::io("read", index.path()))?;
    let size =
        io::copy(&mut r, &mut io::sink()).map_err(ImageError::io("decompress", index.path()))?;
    Ok((size, true))
}

impl ImageSource for DockerArchiveSource {
    fn manifest(&self) -> Result<RawManifest> {
        Ok(self.manifest.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest> {
        if *digest == Digest::of(&self.manifest.bytes) {
            return Ok(self.manifest.clone());
        }
        Err(ImageError::NotFound {
            what: "manifest",
            name: format!("{digest} in {}", self.describe()),
        })
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        if desc.digest == self.config_digest {
            return Ok(Box::new(self.index.open_member(&self.config_member)?));
        }
        let layer = self
            .layers
            .get(&desc.digest)
            .ok_or_else(|| ImageError::NotFound {
                what: "blob",
                name: format!("{} in {}", desc.digest, self.describe()),
            })?;
        let r = self.index.open_member(&layer.member)?;
        if layer.compressed {
            let (_, r) =
                compression::decompressed(r).map_err(ImageError::io("read", &self.file))?;
            Ok(r)
        } else {
            Ok(Box::new(r))
        }
    }

    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("docker-archive:{}:{r}", self.file.display()),
            None => format!("docker-archive:{}", self.file.display()),
        }
    }
}
