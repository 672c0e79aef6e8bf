//! Rewriting manifests and indexes after blobs changed, without losing anything.
//!
//! Edits are made on the `serde_json::Value` of the original document, touching only layer
//! descriptors (digest, size, mediaType), media types when the flavour changes (OCI <->
//! Docker v2s2), and index entries whose manifest changed. Everything else (annotations,
//! `urls`, `subject`, unknown fields) is kept. The config blob is never changed, so its diff
//! IDs stay valid. When nothing changes the original bytes are kept (same digest).

use std::collections::HashMap;

use serde_json::Value;
use strata_types::Digest;

use crate::compression::Compression;
use crate::error::{ImageError, Result};
use crate::manifest::{
    flavor_of, is_foreign_layer, layer_compression, layer_media_type, media_type as mt, Flavor,
};
use crate::transport::{Descriptor, RawManifest};

/// The layer media type `media_type` becomes in `flavor` (unknown types are kept).
pub fn convert_layer_media_type(media_type: &str, flavor: Flavor) -> Result<String> {
    let Some(c) = layer_compression(media_type) else {
        return Ok(media_type.to_owned());
    };
    if is_foreign_layer(media_type) {
        return Ok(match (flavor, c) {
            (Flavor::Oci, Compression::None) => mt::OCI_FOREIGN_LAYER_TAR,
            (Flavor::Oci, Compression::Gzip) => mt::OCI_FOREIGN_LAYER_TAR_GZIP,
            (Flavor::Oci, Compression::Zstd) => mt::OCI_FOREIGN_LAYER_TAR_ZSTD,
            (Flavor::Docker, Compression::Gzip) => mt::DOCKER_FOREIGN_LAYER_TAR_GZIP,
            (Flavor::Docker, _) => return Err(no_docker(media_type)),
        }
        .to_owned());
    }
    if flavor == Flavor::Docker && c == Compression::Zstd {
        return Err(no_docker(media_type));
    }
    Ok(layer_media_type(flavor, c).to_owned())
}

fn no_docker(media_type: &str) -> ImageError {
    ImageError::Unsupported(format!(
        "Docker v2s2 manifests cannot describe {media_type} layers; use the OCI format"
    ))
}

fn parse(raw: &RawManifest) -> Result<Value> {
    serde_json::from_slice(&raw.bytes)
        .map_err(|e| ImageError::Invalid(format!("manifest is not valid JSON: {e}")))
}

fn serialize(doc: &Value, media_type: String) -> Result<RawManifest> {
    Ok(RawManifest {
        bytes: serde_json::to_vec(doc).map_err(|e| ImageError::Invalid(e.to_string()))?,
        media_type,
    })
}

/// Applies layer replacements (`old digest -> (new descriptor, its compression)`) and a
/// flavour change to an image manifest. `None` if nothing changed.
pub fn rewrite_manifest(
    raw: &RawManifest,
    updates: &HashMap<Digest, (Descriptor, Compression)>,
    flavor: Flavor,
) -> Result<Option<RawManifest>> {
    let convert = flavor_of(&raw.media_type) != flavor;
    if updates.is_empty() && !convert {
        return Ok(None);
    }
    let mut doc = parse(raw)?;
    let media_type = if convert {
        let (manifest_type, config_type) = match flavor {
            Flavor::Oci => (mt::OCI_MANIFEST, mt::OCI_CONFIG),
            Flavor::Docker => (mt::DOCKER_MANIFEST, mt::DOCKER_CONFIG),
        };
        doc["mediaType"] = Value::from(manifest_type);
        if let Some(config) = doc.get_mut("config") {
            config["mediaType"] = Value::from(config_type);
        }
        manifest_type.to_owned()
    } else {
        raw.media_type.clone()
    };
    if let Some(layers) = doc.get_mut("layers").and_then(Value::as_array_mut) {
        for layer in layers {
            let old = layer
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let old_type = layer
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let new_type = match Digest::parse(old).ok().and_then(|d| updates.get(&d)) {
                Some((desc, c)) => {
                    layer["digest"] = Value::from(desc.digest.as_str());
                    layer["size"] = Value::from(desc.size);
                    layer_media_type(flavor, *c).to_owned()
                }
                None => convert_layer_media_type(old_type, flavor)?,
            };
            layer["mediaType"] = Value::from(new_type);
        }
    }
    Ok(Some(serialize(&doc, media_type)?))
}

/// A manifest of an index that was written under a new digest.
#[derive(Debug, Clone)]
pub struct IndexUpdate {
    pub old: Digest,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// Points index entries at rewritten manifests, and converts the index's flavour if asked.
/// `None` if nothing changed.
pub fn rewrite_index(
    raw: &RawManifest,
    updates: &[IndexUpdate],
    flavor: Option<Flavor>,
) -> Result<Option<RawManifest>> {
    let convert = flavor.filter(|f| *f != flavor_of(&raw.media_type));
    let changed = updates.iter().any(|u| u.old != u.digest);
    if !changed && convert.is_none() {
        return Ok(None);
    }
    let mut doc = parse(raw)?;
    let media_type = match convert {
        Some(Flavor::Oci) => mt::OCI_INDEX.to_owned(),
        Some(Flavor::Docker) => mt::DOCKER_MANIFEST_LIST.to_owned(),
        None => raw.media_type.clone(),
    };
    if convert.is_some() {
        doc["mediaType"] = Value::from(media_type.as_str());
    }
    if let Some(entries) = doc.get_mut("manifests").and_then(Value::as_array_mut) {
        for entry in entries {
            let old = entry
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(u) = updates.iter().find(|u| u.old.as_str() == old) {
                entry["digest"] = Value::from(u.digest.as_str());
                entry["size"] = Value::from(u.size);
                entry["mediaType"] = Value::from(u.media_type.as_str());
            }
        }
    }
    Ok(Some(serialize(&doc, media_type)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    #[test]
    fn replaces_layers_and_keeps_unknown_fields() {
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt::DOCKER_MANIFEST,
            "config": {"mediaType": mt::DOCKER_CONFIG, "digest": d("c"), "size": 1},
            "layers": [
                {"mediaType": mt::DOCKER_LAYER_TAR_GZIP, "digest": d("a"), "size": 5, "urls": ["x"]},
                {"mediaType": mt::DOCKER_LAYER_TAR_GZIP, "digest": d("b"), "size": 6},
            ],
            "x-extra": true,
        });
        let raw = RawManifest {
            bytes: serde_json::to_vec(&doc).unwrap(),
            media_type: mt::DOCKER_MANIFEST.into(),
        };
        assert!(rewrite_manifest(&raw, &HashMap::new(), Flavor::Docker)
            .unwrap()
            .is_none());
        let new = Descriptor {
            media_type: String::new(),
            digest: d("z"),
            size: 9,
            annotations: None,
            platform: None,
        };
        let updates = HashMap::from([(d("a"), (new, Compression::Zstd))]);
        let out = rewrite_manifest(&raw, &updates, Flavor::Oci)
            .unwrap()
            .unwrap();
        assert_eq!(out.media_type, mt::OCI_MANIFEST);
        let v: Value = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(v["x-extra"], true);
        assert_eq!(v["config"]["mediaType"], mt::OCI_CONFIG);
        assert_eq!(v["config"]["digest"], d("c").as_str());
        assert_eq!(v["layers"][0]["digest"], d("z").as_str());
        assert_eq!(v["layers"][0]["size"], 9);
        assert_eq!(v["layers"][0]["mediaType"], mt::OCI_LAYER_TAR_ZSTD);
        assert_eq!(v["layers"][0]["urls"][0], "x");
        assert_eq!(v["layers"][1]["mediaType"], mt::OCI_LAYER_TAR_GZIP);
    }

    #[test]
    fn zstd_cannot_be_docker() {
        assert!(convert_layer_media_type(mt::OCI_LAYER_TAR_ZSTD, Flavor::Docker).is_err());
        assert_eq!(
            convert_layer_media_type(mt::OCI_LAYER_TAR, Flavor::Docker).unwrap(),
            mt::DOCKER_LAYER_TAR
        );
    }
}
