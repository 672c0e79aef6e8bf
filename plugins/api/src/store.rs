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
/// `store.info` (1.1): where the store lives and how it is set up.
pub const INFO: &str = "store.info";
/// `store.tag` (1.1): adds names to an image.
pub const TAG: &str = "store.tag";
/// `store.untag` (1.1): removes one name from an image (the image stays).
pub const UNTAG: &str = "store.untag";
/// `store.remove_image` (1.1): removes an image and the layers only it used.
pub const REMOVE_IMAGE: &str = "store.remove_image";
/// `store.create_container` (1.1): a new container (read-write layer and directories).
pub const CREATE_CONTAINER: &str = "store.create_container";
/// `store.container` (1.1): one container, by name, ID or unique ID prefix.
pub const CONTAINER: &str = "store.container";
/// `store.containers` (1.1): every container.
pub const CONTAINERS: &str = "store.containers";
/// `store.mount` (1.1): mounts a container's root filesystem (idempotent).
pub const MOUNT: &str = "store.mount";
/// `store.unmount` (1.1): unmounts it (idempotent).
pub const UNMOUNT: &str = "store.unmount";
/// `store.remove_container` (1.1): unmounts and removes a container and its directories.
pub const REMOVE_CONTAINER: &str = "store.remove_container";
/// `store.commit` (1.1): a container's changes as a new image.
pub const COMMIT: &str = "store.commit";
/// `store.diff` (1.1): the call's output reader receives the container's changes as an
/// uncompressed layer tar (whiteouts for deletions).
pub const DIFF: &str = "store.diff";
/// `store.changes` (1.2): the paths a container added, changed or deleted relative to its
/// image, sorted by path, as `podman diff` lists them.
pub const CHANGES: &str = "store.changes";
/// `store.gc` (1.2): garbage collection: removes what nothing references (layers no image or
/// container uses, orphaned payload and blobs, debris of dead processes).
pub const GC: &str = "store.gc";

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreInfo {
    pub root: String,
    pub runroot: String,
    pub driver: String,
    /// Whether the store belongs to a non-root user (rootless mode).
    pub rootless: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagRequest {
    pub image: String,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveImageReply {
    pub image_id: String,
    /// Chain IDs of the layers removed with it.
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateContainerRequest {
    /// The image: a name, full ID or unique ID prefix.
    pub image: String,
    /// Defaults to the container's short ID.
    pub name: Option<String>,
    /// Front-end metadata, stored verbatim with the container.
    pub metadata: serde_json::Value,
    /// A user-namespace map for a container with its own user namespace (since 1.3): the
    /// store idmaps the image's layers with it on every mount and maps owners back on diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_map: Option<IdMap>,
}

/// One range of a user-namespace map: container ids `inside..inside+count` are host ids
/// `outside..outside+count` (a `uid_map` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A user namespace's uid and gid maps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRequest {
    /// A name, full ID or unique ID prefix.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// The image ID.
    pub image: String,
    pub created: i64,
    pub metadata: serde_json::Value,
    /// The front end's persistent directory (created with the container, removed with it).
    pub dir: String,
    /// The front end's volatile directory on the runroot.
    pub run_dir: String,
    /// The container's user-namespace map, if it has its own (since 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_map: Option<IdMap>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountReply {
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitRequest {
    pub container: String,
    /// The new image's name.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitReply {
    pub image_id: String,
}

/// One changed path (`store.changes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Absolute inside the container (`/etc/hosts`).
    pub path: String,
    /// `A` (the image has nothing there), `C` (changed: content, metadata, or a directory's
    /// entries) or `D` (deleted).
    pub kind: String,
    /// Bytes of the new content for regular files and symbolic links (0 otherwise).
    #[serde(default)]
    pub size: u64,
}

/// What `store.gc` removed (counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GcReply {
    /// Layers no image or container referenced.
    pub layers: usize,
    /// Driver payloads with no metadata row.
    pub orphan_payloads: usize,
    /// Tar-split records with no layer.
    pub orphan_tarsplits: usize,
    /// Blobs no image referenced.
    pub blobs: usize,
    /// Staging areas and temporary files of dead processes.
    pub staging: usize,
    pub temp_files: usize,
    /// Mount points and front-end directories of containers that no longer exist.
    pub mountpoints: usize,
    pub container_dirs: usize,
}

/// The reply of methods that return nothing but success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Empty {}
