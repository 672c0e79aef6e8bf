//! The `store:` transport for the copy plugin: Strata's store reached through the host (the
//! plugin never opens the store itself, so every front end in a process shares one handle).
//!
//! As a destination it takes whole images ([`StoreDestination`]): layers stream from the
//! source straight into the host's layer pipeline, with no temporary copy. As a source it
//! presents an OCI manifest whose layers are the uncompressed tars the store regenerates bit
//! for bit (digest = diff ID), since the store does not keep compressed blobs; the copy then
//! compresses them for destinations that want it.

use std::io::Read;
use std::sync::Mutex;

use serde_json::json;
use strata_graph_image::manifest::media_type as mt;
use strata_graph_image::{
    Descriptor, ImageDestination, ImageError, ImageSource, RawManifest, Result, StoreDestination,
    StoreLayer,
};
use strata_plugin_api::store::{ImageInfo, ImportImageRequest, ImportLayer};
use strata_plugin_api::{CallError, ErrorKind, Host};
use strata_types::Digest;

fn from_call(e: CallError) -> ImageError {
    ImageError::Transport {
        kind: strata_plugin_bridge::kind(e.kind),
        message: e.message,
    }
}

fn to_call(e: ImageError) -> CallError {
    use strata_types::HasKind;
    CallError {
        kind: strata_plugin_bridge::api_kind(e.kind()),
        message: e.to_string(),
    }
}

/// An image in the store, as a source.
pub struct StoreSource {
    host: Host,
    name: String,
    info: ImageInfo,
    manifest: RawManifest,
    config_digest: Digest,
}

impl std::fmt::Debug for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSource")
            .field("name", &self.name)
            .finish()
    }
}

impl StoreSource {
    pub fn open(host: &Host, name: &str) -> Result<StoreSource> {
        let info = host.store().image(name).map_err(from_call)?;
        let config_digest = Digest::of(info.config.as_bytes());
        let layers: Vec<serde_json::Value> = info
            .layers
            .iter()
            .map(|l| json!({"mediaType": mt::OCI_LAYER_TAR, "digest": l.diff_id, "size": l.size}))
            .collect();
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_MANIFEST,
            "config": {
                "mediaType": mt::OCI_CONFIG,
                "digest": config_digest.as_str(),
                "size": info.config.len(),
            },
            "layers": layers,
        }))
        .map_err(|e| ImageError::Invalid(e.to_string()))?;
        Ok(StoreSource {
            host: *host,
            name: name.to_owned(),
            info,
            manifest: RawManifest {
                bytes,
                media_type: mt::OCI_MANIFEST.to_owned(),
            },
            config_digest,
        })
    }
}

impl ImageSource for StoreSource {
    fn manifest(&self) -> Result<RawManifest> {
        Ok(self.manifest.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest> {
        Err(ImageError::NotFound {
            what: "manifest",
            name: format!("{digest} in {}", self.describe()),
        })
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        if desc.digest == self.config_digest {
            return Ok(Box::new(std::io::Cursor::new(
                self.info.config.clone().into_bytes(),
            )));
        }
        let layer = self
            .info
            .layers
            .iter()
            .find(|l| l.diff_id == desc.digest.as_str())
            .ok_or_else(|| ImageError::NotFound {
                what: "blob",
                name: format!("{} in {}", desc.digest, self.describe()),
            })?;
        let r = self
            .host
            .store()
            .export_layer(&layer.id)
            .map_err(from_call)?;
        Ok(Box::new(r))
    }

    fn describe(&self) -> String {
        format!("store:{}", self.name)
    }
}

/// The store as a destination: the image gets `names`.
pub struct StoreDest {
    host: Host,
    names: Vec<String>,
}

impl std::fmt::Debug for StoreDest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDest")
            .field("names", &self.names)
            .finish()
    }
}

impl StoreDest {
    pub fn new(host: &Host, names: Vec<String>) -> StoreDest {
        StoreDest { host: *host, names }
    }
}

impl ImageDestination for StoreDest {
    fn has_blob(&self, _: &Descriptor) -> Result<bool> {
        Ok(false)
    }

    fn put_blob(&self, desc: &Descriptor, _: &mut dyn Read) -> Result<()> {
        Err(ImageError::Unsupported(format!(
            "the store takes whole images, not blob {}",
            desc.digest
        )))
    }

    fn put_manifest(&self, _: &RawManifest, _: Option<&Digest>) -> Result<()> {
        Err(ImageError::Unsupported(
            "the store takes whole images, not manifests".into(),
        ))
    }

    fn commit(&self) -> Result<()> {
        Ok(())
    }

    fn as_store(&self) -> Option<&dyn StoreDestination> {
        Some(self)
    }

    fn describe(&self) -> String {
        format!("store:{}", self.names.join(","))
    }
}

type OpenFn<'a> = Box<dyn FnOnce() -> Result<Box<dyn Read + Send + 'a>> + Send + 'a>;

impl StoreDestination for StoreDest {
    fn import(
        &self,
        manifest: &RawManifest,
        config: &[u8],
        layers: Vec<StoreLayer<'_>>,
    ) -> Result<Digest> {
        let text = |b: &[u8], what: &str| {
            String::from_utf8(b.to_vec())
                .map_err(|_| ImageError::Invalid(format!("the image's {what} is not UTF-8 JSON")))
        };
        let request = ImportImageRequest {
            manifest: text(&manifest.bytes, "manifest")?,
            manifest_media_type: manifest.media_type.clone(),
            config: text(config, "config")?,
            layers: layers
                .iter()
                .map(|l| ImportLayer {
                    diff_id: l.diff_id.to_string(),
                    blob_digest: Some(l.blob.digest.to_string()),
                })
                .collect(),
            names: self.names.clone(),
        };
        let slots: Vec<Mutex<Option<OpenFn<'_>>>> = layers
            .into_iter()
            .map(|l| Mutex::new(Some(l.open)))
            .collect();
        let open = |i: usize| -> std::result::Result<Box<dyn Read + Send + '_>, CallError> {
            let f = slots
                .get(i)
                .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take())
                .ok_or_else(|| CallError {
                    kind: ErrorKind::InvalidArgument,
                    message: format!("layer {i} was asked for twice or does not exist"),
                })?;
            f().map_err(to_call)
        };
        let reply = self
            .host
            .store()
            .import_image(&request, &open)
            .map_err(from_call)?;
        Digest::parse(&reply.image_id).map_err(|e| ImageError::Invalid(e.to_string()))
    }
}
