//! What the engine needs of the image and container store, as a trait, so the engine never
//! names how it reaches the store. Front-end plugins use `HostStore` (`strata-plugin-bridge`),
//! which makes the host's store calls; a program that links the store itself can implement it
//! directly.
//!
//! The engine keeps its own record of a container (its [`crate::ContainerConfig`]) in the
//! container's store metadata under [`crate::METADATA_KEY`]; other front ends keep theirs
//! beside it under their own keys (the CRI under `cri`), so one store can hold containers of
//! every front end and each can tell them apart.

use std::io::Read;
use std::path::PathBuf;

use strata_types::IdMap;

use crate::error::StoreError;

/// Where the store lives and how it is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub driver: String,
    /// Whether the store belongs to a non-root user (rootless mode).
    pub rootless: bool,
}

/// An image, as far as the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image ID (`sha256:...`, the config's digest).
    pub id: String,
    pub names: Vec<String>,
    /// The image config, as stored (JSON text).
    pub config: String,
}

/// A container's store record.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The image ID.
    pub image: String,
    /// Unix seconds.
    pub created: i64,
    /// Every front end's metadata, by key (see the module docs).
    pub metadata: serde_json::Value,
    /// The container's persistent directory (removed with it).
    pub dir: PathBuf,
    /// Its volatile directory on the runroot.
    pub run_dir: PathBuf,
    /// Its user-namespace map, if it has its own.
    pub id_map: Option<IdMap>,
}

/// A container to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewContainer {
    /// A name, full ID or unique ID prefix.
    pub image: String,
    /// Defaults to the short ID.
    pub name: Option<String>,
    pub metadata: serde_json::Value,
    pub id_map: Option<IdMap>,
}

/// One layer of an image to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    pub diff_id: String,
    pub blob_digest: Option<String>,
}

/// Opens layer `i`'s stream for an import, only when the store lacks that layer.
pub type LayerOpener<'a> =
    dyn Fn(usize) -> Result<Box<dyn Read + Send + 'a>, StoreError> + Send + Sync + 'a;

/// An image to import (the store verifies every digest as it extracts).
pub struct NewImage<'a> {
    pub manifest: String,
    pub manifest_media_type: String,
    pub config: String,
    /// Bottom first, matching the config's `rootfs.diff_ids`.
    pub layers: Vec<NewLayer>,
    pub names: Vec<String>,
    pub open: &'a LayerOpener<'a>,
}

impl std::fmt::Debug for NewImage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewImage")
            .field("names", &self.names)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

/// The store calls the engine makes. Every method may be called from several threads.
pub trait Store: Send + Sync {
    fn info(&self) -> Result<StoreInfo, StoreError>;
    /// An image by name, full ID or unique ID prefix.
    fn image(&self, name: &str) -> Result<ImageRecord, StoreError>;
    /// Imports an image; returns its ID.
    fn import_image(&self, image: NewImage<'_>) -> Result<String, StoreError>;
    fn create_container(&self, container: NewContainer) -> Result<ContainerRecord, StoreError>;
    /// A container by name, full ID or unique ID prefix.
    fn container(&self, name: &str) -> Result<ContainerRecord, StoreError>;
    /// The containers whose metadata has at least one of `keys` at its top level (every
    /// container when `keys` is empty).
    fn containers(&self, keys: &[&str]) -> Result<Vec<ContainerRecord>, StoreError>;
    /// Mounts the container's root filesystem (idempotent); returns the mount point.
    fn mount(&self, id: &str) -> Result<PathBuf, StoreError>;
    /// Unmounts it (idempotent).
    fn unmount(&self, id: &str) -> Result<(), StoreError>;
    /// Unmounts and removes the container with its directories.
    fn remove_container(&self, id: &str) -> Result<(), StoreError>;
}
