//! The layer pipeline: stream OCI layer tars into a directory and back out again.
//!
//! - [`apply`] reads a layer (plain, gzip or zstd, detected from the bytes) in **one pass**:
//!   it hashes the raw bytes (blob digest) and the uncompressed bytes (diff ID), extracts the
//!   entries into a staging directory with full tar semantics (owners, modes, times, xattrs,
//!   devices, hardlinks, sparse files, OCI whiteouts in the driver's format) and writes a
//!   compact, versioned *tar-split* record (format documented in `src/tarsplit.rs`) that lets
//!   [`export_tarsplit`] re-create the exact uncompressed tar later without keeping a copy of
//!   the file data.
//! - [`write_changes`] writes a new layer tar from a driver's change list (`docker commit`,
//!   `buildah commit`).
//! - [`compressor`] wraps a writer for pushing layers compressed.
//!
//! Speed: data is copied with reused 128 KiB buffers and never buffered whole; decompression
//! and both sha256 computations run on helper threads (`pipeline`, `hashing`), overlapping
//! with extraction, which stays on the calling thread (the input reader need not be `Send`).
//!
//! Security: every filesystem operation during extraction is relative to a directory file
//! descriptor of the root; parent directories are resolved with `openat2(RESOLVE_IN_ROOT)` and
//! the final component with `*at` calls that never follow symlinks, so no entry (nor a symlink
//! planted by an earlier entry) can make the pipeline touch anything outside the root.
//!
//! What this crate deliberately does not do: fetch blobs, keep metadata, choose where layers
//! live, or compute changes between trees (drivers do that); it never buffers a whole layer in
//! memory.

mod apply;
mod changes;
mod compression;
mod error;
mod export;
mod extract;
mod hashing;
mod paths;
mod pax;
mod pipeline;
mod sparse;
mod tap;
mod tarheader;
mod tarsplit;
mod tree;
mod whiteout;

pub use apply::apply;
pub use changes::{write_changes, write_changes_with_owners, OwnerMap};
pub use compression::{compressor, decompressing, Compression, Compressor};
pub use error::ArchiveError;
pub use export::export_tarsplit;
use strata_types::Digest;
pub use strata_types::{Change, ChangeKind, WhiteoutFormat};

/// Size of the buffers used to copy file data (reused for the whole stream).
pub(crate) const COPY_BUFFER: usize = 128 << 10;

/// How to treat file ownership while extracting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// `lchown` every entry to the tar's numeric uid/gid (needs root or a user namespace).
    Preserve,
    /// Keep the extracting user's ownership.
    Ignore,
}

/// Settings for [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How whiteouts and opaque directories are represented in the extracted tree.
    pub whiteouts: WhiteoutFormat,
    /// Whether to `lchown` entries to the owners recorded in the tar.
    pub ownership: Ownership,
    /// If set, the uncompressed digest must equal this or apply fails (kind Corrupt).
    pub expected_diff_id: Option<Digest>,
    /// If set, the digest of the raw (possibly compressed) input bytes must equal this.
    pub expected_blob_digest: Option<Digest>,
    /// Refuse streams whose uncompressed size exceeds this many bytes (zip-bomb guard). The
    /// logical size of a sparse file is held to the same limit.
    pub max_uncompressed: u64,
}

impl ApplyOptions {
    /// Options for `whiteouts`: preserve ownership when running as root (else ignore it),
    /// no digest expectations, a 256 GiB uncompressed limit.
    pub fn new(whiteouts: WhiteoutFormat) -> Self {
        let ownership = if rustix::process::geteuid().is_root() {
            Ownership::Preserve
        } else {
            Ownership::Ignore
        };
        ApplyOptions {
            whiteouts,
            ownership,
            expected_diff_id: None,
            expected_blob_digest: None,
            max_uncompressed: 256 << 30,
        }
    }
}

/// What [`apply`] found and did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the input bytes as given.
    pub blob_digest: Digest,
    /// Number of input bytes.
    pub blob_size: u64,
    /// Number of uncompressed tar bytes.
    pub uncompressed_size: u64,
    /// The compression detected from the input's magic bytes.
    pub compression: Compression,
    /// Number of tar entries (extension headers not counted, whiteouts counted).
    pub entries: u64,
}
