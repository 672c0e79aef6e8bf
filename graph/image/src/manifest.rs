//! Manifest, index and config documents: media types, typed views, and classification.
//!
//! The typed structs here are for *reading*. Whenever the copy engine changes a manifest it
//! edits the `serde_json::Value` of the original document (see [`crate::copy`]), so fields this
//! crate does not model (annotations, `urls`, `artifactType`, `subject`, ...) survive a rewrite.
//! Every struct also keeps unknown top-level fields in a flattened `extra` map.
//!
//! Docker schema 1 manifests are deliberately not supported (skopeo converts them away; no
//! registry serves them any more).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strata_types::Digest;

use crate::compression::Compression;
use crate::error::{ImageError, Result};
use crate::transport::{Descriptor, RawManifest};

/// The media types this crate reads and writes.
pub mod media_type {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_FOREIGN_LAYER_TAR: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_FOREIGN_LAYER_TAR_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_FOREIGN_LAYER_TAR_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Not in Docker's spec, but what containers/image uses for uncompressed Docker layers.
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER_TAR_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
}
use media_type as mt;

/// Whether a manifest document is a single image or a list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest (OCI or Docker v2 schema 2).
    Image,
    /// An OCI index or Docker manifest list.
    Index,
}

/// The two manifest vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Oci,
    Docker,
}

/// An image manifest (OCI or Docker v2s2), for reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An OCI index or Docker manifest list, for reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The parts of an image config the engine and `inspect` read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The runtime defaults in an image config (only what `inspect` shows).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `rootfs` of an image config: the layers' diff IDs, bottom first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// Classifies a manifest: by its declared media type, then the document's `mediaType`
/// field, then its shape (`manifests` means index; `config`/`layers` means image).
pub fn classify(raw: &RawManifest) -> Result<ManifestKind> {
    if let Some(kind) = kind_of_media_type(&raw.media_type)? {
        return Ok(kind);
    }
    let doc: Value = serde_json::from_slice(&raw.bytes)
        .map_err(|e| ImageError::Invalid(format!("manifest is not valid JSON: {e}")))?;
    if let Some(kind) = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .map(kind_of_media_type)
        .transpose()?
        .flatten()
    {
        return Ok(kind);
    }
    if doc.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(schema1());
    }
    if doc.get("manifests").is_some() {
        Ok(ManifestKind::Index)
    } else if doc.get("config").is_some() || doc.get("layers").is_some() {
        Ok(ManifestKind::Image)
    } else {
        Err(ImageError::Invalid(
            "document is neither an image manifest nor an index".into(),
        ))
    }
}

fn kind_of_media_type(media_type: &str) -> Result<Option<ManifestKind>> {
    Ok(match media_type {
        mt::OCI_MANIFEST | mt::DOCKER_MANIFEST => Some(ManifestKind::Image),
        mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        mt::DOCKER_SCHEMA1 | mt::DOCKER_SCHEMA1_SIGNED => return Err(schema1()),
        _ => None,
    })
}

fn schema1() -> ImageError {
    ImageError::Unsupported(
        "docker schema 1 manifests are not supported; convert the image with a newer tool".into(),
    )
}

/// The media type a document declares, or the one its kind implies (OCI by default).
pub fn effective_media_type(bytes: &[u8], kind: ManifestKind) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| match kind {
            ManifestKind::Image => mt::OCI_MANIFEST.to_owned(),
            ManifestKind::Index => mt::OCI_INDEX.to_owned(),
        })
}

/// The flavour a manifest media type belongs to.
pub fn flavor_of(manifest_media_type: &str) -> Flavor {
    match manifest_media_type {
        mt::DOCKER_MANIFEST | mt::DOCKER_MANIFEST_LIST => Flavor::Docker,
        _ => Flavor::Oci,
    }
}

/// Parses an image manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("invalid image manifest: {e}")))
}

/// Parses an index / manifest list.
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("invalid image index: {e}")))
}

/// Parses an image config.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("invalid image config: {e}")))
}

/// The config's `rootfs.diff_ids`.
pub fn diff_ids(config: &[u8]) -> Result<Vec<Digest>> {
    Ok(parse_config(config)?.rootfs.diff_ids)
}

/// How a layer media type says its blob is compressed; `None` for media types that are not
/// known layer types (the engine then copies such blobs untouched).
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        mt::OCI_LAYER_TAR | mt::OCI_FOREIGN_LAYER_TAR | mt::DOCKER_LAYER_TAR => {
            Some(Compression::None)
        }
        mt::OCI_LAYER_TAR_GZIP
        | mt::OCI_FOREIGN_LAYER_TAR_GZIP
        | mt::DOCKER_LAYER_TAR_GZIP
        | mt::DOCKER_FOREIGN_LAYER_TAR_GZIP => Some(Compression::Gzip),
        mt::OCI_LAYER_TAR_ZSTD | mt::OCI_FOREIGN_LAYER_TAR_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// Whether a layer must not be copied (foreign / non-distributable layers live elsewhere).
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type.contains("nondistributable") || media_type.contains("foreign")
}

/// The layer media type for a flavour and compression. Docker has no zstd layer type:
/// callers convert such manifests to OCI first.
pub fn layer_media_type(flavor: Flavor, compression: Compression) -> &'static str {
    match (flavor, compression) {
        (Flavor::Oci, Compression::None) => mt::OCI_LAYER_TAR,
        (Flavor::Oci, Compression::Gzip) => mt::OCI_LAYER_TAR_GZIP,
        (Flavor::Oci, Compression::Zstd) | (Flavor::Docker, Compression::Zstd) => {
            mt::OCI_LAYER_TAR_ZSTD
        }
        (Flavor::Docker, Compression::None) => mt::DOCKER_LAYER_TAR,
        (Flavor::Docker, Compression::Gzip) => mt::DOCKER_LAYER_TAR_GZIP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: &str, media_type: &str) -> RawManifest {
        RawManifest {
            bytes: bytes.as_bytes().to_vec(),
            media_type: media_type.into(),
        }
    }

    #[test]
    fn classifies_by_media_type_then_field_then_shape() {
        assert_eq!(
            classify(&raw("{}", mt::DOCKER_MANIFEST_LIST)).unwrap(),
            ManifestKind::Index
        );
        let by_field = format!(r#"{{"mediaType":"{}"}}"#, mt::OCI_MANIFEST);
        assert_eq!(classify(&raw(&by_field, "")).unwrap(), ManifestKind::Image);
        assert_eq!(
            classify(&raw(r#"{"schemaVersion":2,"manifests":[]}"#, "")).unwrap(),
            ManifestKind::Index
        );
        assert_eq!(
            classify(&raw(r#"{"schemaVersion":2,"config":{},"layers":[]}"#, "")).unwrap(),
            ManifestKind::Image
        );
        assert!(classify(&raw(r#"{"schemaVersion":1,"fsLayers":[]}"#, "")).is_err());
        assert!(classify(&raw(r#"{"hello":1}"#, "")).is_err());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let doc = r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[],"subject":{"x":1}}"#;
        let m = parse_manifest(doc.as_bytes()).unwrap();
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["subject"]["x"], 1);
    }

    #[test]
    fn layer_types_map_both_ways() {
        for flavor in [Flavor::Oci, Flavor::Docker] {
            for c in [Compression::None, Compression::Gzip] {
                assert_eq!(layer_compression(layer_media_type(flavor, c)), Some(c));
            }
        }
        assert_eq!(
            layer_compression(layer_media_type(Flavor::Oci, Compression::Zstd)),
            Some(Compression::Zstd)
        );
        assert_eq!(layer_compression("application/json"), None);
    }
}
