//! Image transports and the copy engine: the containers/image part of Strata.
//!
//! Transports read and write images where they live (`oci:`, `oci-archive:`,
//! `docker-archive:`, `dir:`; `docker://` lives in `strata-graph-registry`, `store:` in the
//! front ends, over the host's store API). The copy engine moves an image between any two.

pub mod error;
pub mod transport;

pub use error::{ImageError, Result};
pub use transport::{
    CompressionPreference, Descriptor, ImageDestination, ImageSource, RawManifest, StoreDestination,
    StoreLayer,
};
