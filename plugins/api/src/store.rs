//! The store methods the host offers plugins, with their request and reply types (JSON).
//!
//! Method names are `store.<verb>`. Adding a method or an optional field is a minor change;
//! renaming or removing one is a major (ABI) change. Digests are `sha256:<hex>` strings;
//! manifests and configs cross as their exact bytes (JSON text, so UTF-8).

use serde::{Deserialize, Serialize};

/// `store.import_image`: imports one image. The call's input opener supplies layer `i`'s blob
/// stream (compressed as the descriptor says, or not) when the store lacks that layer; the
/// store verifies blob digests and diff IDs as it extracts, and commits nothing on a mismatch.
pub const IMPORT_IMAGE: &str = "store.import_image";
/// `store.image`: an image's ID, names, manifest, config and layers.
pub const IMAGE: &str = "store.image";
/// `store.images`: every image.
pub const IMAGES: &str = "store.images";
/// `store.export_layer`: the call's output reader receives the layer's uncompressed tar, bit
/// for bit the one its diff ID names.
pub const EXPORT_LAYER: &str = "store.export_layer";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportImageRequest {
    /// The image manifest (not an index).
    pub manifest: String,
    pub manifest_media_type: String,
    /// The image config; its digest becomes the image ID.
    pub config: String,
    /// The layers, bottom first, matching the config's `rootfs.diff_ids`.
    pub layers: Vec<ImportLayer>,
    /// Names to give the image (e.g. `docker.io/library/busybox:latest`).
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportLayer {
    pub diff_id: String,
    /// The blob's digest as served (verified while streaming), if known.
    pub blob_digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportImageReply {
    pub image_id: String,
    pub layers: usize,
    /// How many layers were extracted (the others were already in the store).
    pub extracted: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRequest {
    /// A name, full ID or unique ID prefix.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: String,
    pub names: Vec<String>,
    /// The manifest recorded with the image, if any.
    pub manifest: Option<String>,
    pub config: String,
    /// Bottom first.
    pub layers: Vec<LayerInfo>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The layer's chain ID (what `store.export_layer` takes).
    pub id: String,
    pub diff_id: String,
    /// Uncompressed tar size in bytes.
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSummary {
    pub id: String,
    pub names: Vec<String>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportLayerRequest {
    /// The layer's chain ID.
    pub layer: String,
}

/// The reply of methods that return nothing but success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Empty {}
