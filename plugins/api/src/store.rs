//! The store methods the host offers plugins, with their request and reply types (JSON).
//! `PROTOCOL.md` (next to this crate's manifest) is the reference; `cargo xtask test` fails when
//! this file and that document disagree.
//!
//! Method names are `store.<verb>`. Adding a method or an optional field is a minor change;
//! renaming or removing one is a major (ABI) change. Each method says the ABI minor version
//! that brought it ([`METHODS`]); a plugin may call a method only when the host serves at
//! least that minor version ([`crate::Host::served_minor`]; [`crate::StoreClient`] checks it
//! and fails with `Unsupported` otherwise). Digests are `sha256:<hex>` strings; manifests and
//! configs cross as their exact bytes (JSON text, so UTF-8).

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
/// `store.import_layer` (1.4): imports one layer from the call's input stream 0 (a tar, plain
/// or gzip- or zstd-compressed) on top of a parent layer; reuses the layer when the store
/// already has it. Garbage collection waits until the plugin records an image or its command
/// ends.
pub const IMPORT_LAYER: &str = "store.import_layer";
/// `store.set_metadata` (1.4): sets (or with `null` removes) one top-level key of a
/// container's metadata, leaving the other front ends' keys as they are.
pub const SET_METADATA: &str = "store.set_metadata";
/// `store.cache_lookup` (1.5): the image a build step with this key produced, if the store
/// still has it (the build cache index: one indexed read).
pub const CACHE_LOOKUP: &str = "store.cache_lookup";
/// `store.cache_record` (1.5): records the image a build step with this key produced; the
/// entry goes when the image goes.
pub const CACHE_RECORD: &str = "store.cache_record";

/// Every method with the ABI minor version that brought it (`1.<minor>`).
pub const METHODS: &[(&str, u32)] = &[
    (IMPORT_IMAGE, 0),
    (IMAGE, 0),
    (IMAGES, 0),
    (EXPORT_LAYER, 0),
    (INFO, 1),
    (TAG, 1),
    (UNTAG, 1),
    (REMOVE_IMAGE, 1),
    (CREATE_CONTAINER, 1),
    (CONTAINER, 1),
    (CONTAINERS, 1),
    (MOUNT, 1),
    (UNMOUNT, 1),
    (REMOVE_CONTAINER, 1),
    (COMMIT, 1),
    (DIFF, 1),
    (CHANGES, 2),
    (GC, 2),
    (IMPORT_LAYER, 4),
    (SET_METADATA, 4),
    (CACHE_LOOKUP, 5),
    (CACHE_RECORD, 5),
];

/// The ABI minor version that brought `method`, if it is one of ours.
pub fn method_minor(method: &str) -> Option<u32> {
    METHODS.iter().find(|(m, _)| *m == method).map(|(_, v)| *v)
}

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

/// One image of `store.images`. The fields after `created` came with 1.4 (older hosts leave
/// them at their defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageSummary {
    pub id: String,
    pub names: Vec<String>,
    pub created: i64,
    /// The image's uncompressed size: the sum of its layers' tar sizes (1.4).
    #[serde(default)]
    pub size: u64,
    /// The digest of the manifest recorded with the image, if any (1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `repository@digest` for each repository the image is named in (1.4), as podman
    /// shows `RepoDigests`.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// The chain ID of its top layer (1.4); none for an image without layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_layer: Option<String>,
    /// How many layers it has (1.4).
    #[serde(default)]
    pub layers: usize,
}

/// `store.images` request (1.4; before, the request was `{}` and every image came back).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagesRequest {
    pub filter: ImageFilter,
}

/// Which images `store.images` returns: all of them when every field is empty; otherwise those
/// that match every field given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageFilter {
    /// Full IDs or ID prefixes of at least 3 hex digits (any of them).
    pub ids: Vec<String>,
    /// Names (any of them); a name without a tag means `:latest`.
    pub names: Vec<String>,
    /// `Some(true)`: only images without names; `Some(false)`: only named ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dangling: Option<bool>,
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

/// `store.containers` request (1.4; before, the request was `{}` and every container came
/// back).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainersRequest {
    pub filter: ContainerFilter,
}

/// Which containers `store.containers` returns: all of them when every field is empty;
/// otherwise those that match every field given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerFilter {
    /// Full IDs or ID prefixes of at least 3 hex digits (any of them).
    pub ids: Vec<String>,
    /// Exact names (any of them).
    pub names: Vec<String>,
    /// Containers of this image (a name, full ID or unique ID prefix; none match when there is
    /// no such image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Containers whose metadata has one of these top-level keys: the containers of those
    /// front ends.
    pub metadata_keys: Vec<String>,
    /// Containers whose metadata holds these values (every one must match).
    pub metadata: Vec<MetadataMatch>,
}

/// A value in a container's metadata, found by JSON pointer (RFC 6901): `/cri/labels/app`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataMatch {
    pub pointer: String,
    pub value: serde_json::Value,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommitRequest {
    pub container: String,
    /// The new image's name (empty: none besides `names`).
    #[serde(default)]
    pub name: String,
    /// More names (1.4); with no name at all the image is dangling, as a build's intermediate
    /// images are.
    #[serde(default)]
    pub names: Vec<String>,
    /// The new image's config (1.4), a JSON object as the OCI image spec has it. The store
    /// replaces its `rootfs` with the container's layers (plus the new one) and keeps
    /// everything else, `created` and `history` included: the caller writes one history
    /// entry per layer (those of the base image, then one for this commit). Without it, the
    /// store takes the container's image config and adds `created` and one history entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Commit the config only, without a layer of the container's changes (1.4): a build step
    /// that changes only the config (`ENV`, `CMD`, ...).
    #[serde(default)]
    pub empty_layer: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitReply {
    pub image_id: String,
    /// The chain ID of the new layer (1.4); none with `empty_layer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Its diff ID (1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
}

/// `store.import_layer` (1.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportLayerRequest {
    /// The parent layer's chain ID; none for a base layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The digest of the uncompressed tar, if the caller knows it: verified while the layer
    /// is extracted, and the layer reused without reading the stream when the store has it.
    /// Without it the store reads the stream once to learn it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportLayerReply {
    /// The layer's chain ID (what `store.export_layer` and `parent` take).
    pub layer: String,
    pub diff_id: String,
    /// Uncompressed tar size in bytes.
    pub size: u64,
    /// Whether it was extracted now (false: the store had it).
    pub extracted: bool,
}

/// `store.set_metadata` (1.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetMetadataRequest {
    /// A name, full ID or unique ID prefix.
    pub container: String,
    /// The top-level key (a front end's name: `engine`, `cri`, ...).
    pub key: String,
    /// The new value; `null` removes the key.
    pub value: serde_json::Value,
}

/// `store.cache_lookup` (1.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheLookupRequest {
    /// The step's key (the build front end's digest of what determines its result).
    pub key: String,
}

/// `store.cache_lookup` (1.5).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CacheLookupReply {
    /// The image the step produced; none when there is no entry or its image is gone.
    #[serde(default)]
    pub image: Option<String>,
}

/// `store.cache_record` (1.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecordRequest {
    /// The step's key.
    pub key: String,
    /// The image it produced (name, ID or unique ID prefix).
    pub image: String,
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
