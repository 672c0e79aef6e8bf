//! The two traits every transport implements, and the descriptor they speak in.
//!
//! A transport is a place images live: an OCI layout, an archive, a `dir:`, a registry, or
//! Strata's own store. The copy engine ([`crate::copy`]) moves one image from an
//! [`ImageSource`] to an [`ImageDestination`]; it never knows which transports it joins.
//!
//! Blobs always cross as streams (`Read`), never as whole buffers, except manifests and configs
//! (small JSON documents). Sources do not verify digests; the copy engine hashes every byte it
//! moves and fails on a mismatch before the destination commits anything.
//!
//! Strata's store is a destination unlike the others: it does not keep compressed blobs, it
//! extracts layers as they stream in. It implements [`ImageDestination::as_store`] and the
//! engine then hands it the whole image at once ([`StoreDestination::import`]).

use std::io::Read;

use serde::{Deserialize, Serialize};
use strata_types::Digest;

use crate::error::Result;

/// An OCI content descriptor (the fields the engine needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// A manifest (or index / manifest list) as stored: its exact bytes and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
}

/// Where an image is read from.
pub trait ImageSource: Send + Sync {
    /// The image's top-level manifest: an image manifest, or an index / manifest list.
    fn manifest(&self) -> Result<RawManifest>;
    /// A manifest named by digest (an entry of the top-level index).
    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest>;
    /// A stream of the blob `desc` names (config or layer). May be called from several threads
    /// at once. The caller verifies the digest.
    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>>;
    /// A short description for messages, e.g. `oci:/tmp/layout:latest`.
    fn describe(&self) -> String;
}

/// Where an image is written. Nothing is visible at the destination until [`commit`] returns
/// (as far as the transport allows: a registry shows blobs before the manifest, never a
/// manifest before its blobs).
///
/// [`commit`]: ImageDestination::commit
pub trait ImageDestination: Send + Sync {
    /// How this destination wants layers compressed when the source's differ (e.g. a
    /// `docker-archive:` wants them uncompressed, a registry keeps them as they are).
    fn preferred_compression(&self) -> CompressionPreference {
        CompressionPreference::Keep
    }
    /// Whether the blob is already there (the engine then skips it).
    fn has_blob(&self, desc: &Descriptor) -> Result<bool>;
    /// Stores a blob whose digest and size are known (`desc`). The stream is not verified by
    /// the destination; the engine wraps it in a verifying reader and the destination must
    /// propagate its read errors (so a mismatch aborts the put).
    fn put_blob(&self, desc: &Descriptor, data: &mut dyn Read) -> Result<()>;
    /// Stores a manifest. `instance` is `None` for the top-level manifest (tagged with the
    /// destination's reference) and `Some(digest)` for an entry of an index being copied whole.
    fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()>;
    /// Makes the image visible (writes `index.json`, finishes the archive, ...).
    fn commit(&self) -> Result<()>;
    /// `Some` for Strata's store, which takes whole images (see the module docs).
    fn as_store(&self) -> Option<&dyn StoreDestination> {
        None
    }
    /// A short description for messages.
    fn describe(&self) -> String;
}

/// What a destination wants done to layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionPreference {
    /// Copy blobs as they are.
    Keep,
    /// Store layers uncompressed (docker-archive).
    Uncompressed,
}

/// A layer of an image being imported into the store: its blob and how to open it.
pub struct StoreLayer<'a> {
    /// The blob as the manifest describes it.
    pub blob: Descriptor,
    /// The uncompressed digest, from the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Opens the blob stream (called at most once, only if the store lacks the layer).
    pub open: Box<dyn FnOnce() -> Result<Box<dyn Read + Send + 'a>> + Send + 'a>,
}

impl std::fmt::Debug for StoreLayer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLayer")
            .field("blob", &self.blob)
            .field("diff_id", &self.diff_id)
            .finish_non_exhaustive()
    }
}

/// Strata's store as a destination: takes one whole (single-platform) image.
pub trait StoreDestination: Send + Sync {
    /// Imports the image: streams and extracts the layers (verifying blob digests and diff
    /// IDs as they stream), stores config and manifest, and names the image. Returns the image
    /// ID (the config digest).
    fn import(
        &self,
        manifest: &RawManifest,
        config: &[u8],
        layers: Vec<StoreLayer<'_>>,
    ) -> Result<Digest>;
}
