//! The OCI distribution (registry v2) client and the `docker://` transport: what
//! `strata copy docker://...`, `inspect-remote`, `list-tags`, `delete`, `sync`, `login` and
//! `logout` use.
//!
//! - [`Reference`]: docker references, normalized as podman does.
//! - [`RegistriesConf`]: registries.conf v2 (search registries, mirrors, insecure, blocked,
//!   aliases).
//! - [`AuthStore`] / [`Credentials`]: auth.json lookup, `login`, `logout`.
//! - [`Client`]: the blocking HTTP client (TLS with certs.d, Basic and Bearer auth, retries,
//!   resuming blob downloads, monolithic and chunked uploads, mounts, tags, deletion).
//! - [`DockerSource`] / [`DockerDestination`]: the image crate's transport traits.
//!
//! Not here: image signing and `policy.json`, sigstore attachments, schema 1 manifests,
//! credential helpers, registry v1.

pub mod auth;
pub mod blobs;
pub mod challenge;
pub mod client;
mod endpoint;
pub mod error;
pub mod listing;
pub mod manifests;
pub mod reference;
pub mod registries_conf;
mod status;
pub mod tls;
mod token;
pub mod transport;
pub mod upload;

pub use auth::{AuthEnv, AuthStore, Credentials};
pub use blobs::BlobReader;
pub use client::{Client, ClientOptions, USER_AGENT};
pub use error::{RegistryError, Result};
pub use manifests::{Manifest, ManifestHead};
pub use reference::Reference;
pub use registries_conf::{Endpoint, RegistriesConf};
pub use tls::TlsOptions;
pub use transport::{
    delete_image, image_error, list_tags, DockerDestination, DockerOptions, DockerSource,
};
pub use upload::MountOutcome;
