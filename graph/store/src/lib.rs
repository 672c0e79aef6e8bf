//! The layer-graph store: content-addressed blobs, layers (chain IDs, diff IDs, parents),
//! images, containers and names, in a crash-safe transactional metastore that many processes
//! share at once; garbage collection; fsck and repair; OCI layout import and export.
//!
//! The store owns metadata; drivers own payload. The store never mounts by itself except
//! through the `strata-mount` crate, and never parses tars except through
//! `strata-graph-archive`. It has no CLI and prints nothing: see `tools/` for that.
//!
//! Crash safety rests on one invariant, kept by the order of every operation: **a metadata row
//! exists only while its payload exists.** Payload is built in staging areas and renamed into
//! place before its row is committed, and removed only after its row is deleted. A `kill -9` at
//! any point therefore leaves at worst payload without metadata, which `gc` removes.

mod blobs;
mod build_cache;
mod commit;
mod container_ops;
mod containers;
mod error;
mod fsck;
mod gc;
mod image_ops;
mod images;
mod import;
mod layer_import;
mod layers;
mod locks;
mod meta;
mod oci;
mod paths;
mod store;
mod trash;

pub use blobs::Blobs;
pub use commit::{CommitOptions, Committed};
pub use container_ops::{ContainerChange, CreateOptions};
pub use containers::Container;
pub use error::{Result, StoreError};
pub use fsck::{FsckOptions, FsckReport, Problem};
pub use gc::GcReport;
pub use image_ops::Removed;
pub use images::{normalize_name, Image};
pub use import::{LayerInput, LayerLease, Opener};
pub use layer_import::ImportedLayer;
pub use layers::Layer;
pub use locks::Lock;
pub use meta::{ReadTxn, WriteTxn, FORMAT_VERSION};
pub use oci::{LoadOptions, Loaded, Platform, SaveOptions};
pub use store::{DriverFactory, Store, StoreInfo, StoreOptions, DEFAULT_MAX_LAYER_SIZE};
pub use strata_graph_archive::Compression;
