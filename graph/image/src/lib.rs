//! Image transports and the copy engine: the containers/image part of Strata.
//!
//! Transports read and write images where they live (`oci:`, `oci-archive:`,
//! `docker-archive:`, `dir:`; `docker://` lives in `strata-graph-registry`, `store:` in the
//! front ends, over the host's store API). The copy engine moves an image between any two.
//!
//! Entry points: [`parse_transport`] turns `TRANSPORT:DETAILS` into an [`ImageName`], whose
//! `open_source` / `open_destination` give trait objects; [`copy_image`] moves an image;
//! [`inspect()`] summarises one. Signing, signature verification and policy
//! (`policy.json`) are deliberately not part of this crate.

mod atomic;
pub mod compression;
pub mod copy;
pub mod digesting;
pub mod dir;
pub mod docker_archive;
pub mod error;
pub mod inspect;
pub mod manifest;
pub mod name;
pub mod oci;
pub mod platform;
pub mod tar_index;
mod tar_write;
pub mod transport;

pub use compression::Compression;
pub use copy::{copy_image, CopyOptions, CopyReport, ProgressEvent, ProgressFn};
pub use error::{ImageError, Result};
pub use inspect::{inspect, InspectInfo};
pub use manifest::Flavor;
pub use name::{parse_transport, ImageName};
pub use platform::Platform;
pub use transport::{
    CompressionPreference, Descriptor, ImageDestination, ImageSource, RawManifest,
    StoreDestination, StoreLayer,
};
