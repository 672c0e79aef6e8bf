//! The crate's error type. Every variant carries the object it is about (entry name, path,
//! digest, position in the stream) and maps to a stable [`ErrorKind`].

use std::io;
use std::path::PathBuf;

use strata_types::{Digest, ErrorKind, HasKind};

use crate::Compression;

/// Why a layer could not be applied, exported or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the input stream failed (the reader returned an error).
    #[error("cannot read the layer stream {at}: {source}")]
    Read {
        at: String,
        #[source]
        source: io::Error,
    },
    /// The compressed stream is damaged or truncated.
    #[error("layer stream is not valid {compression} data {at}: {source}")]
    Decompress {
        compression: Compression,
        at: String,
        #[source]
        source: io::Error,
    },
    /// The tar structure is damaged: bad header checksum, truncation, bad extension records.
    #[error("malformed tar stream {at}: {reason}")]
    Malformed { at: String, reason: String },
    /// A hostile or nonsensical entry (escaping name, bad link target, NUL in name...).
    #[error("refusing tar entry {entry:?}: {reason}")]
    Refused { entry: String, reason: String },
    /// An entry type this pipeline does not extract.
    #[error("tar entry {entry:?} has unsupported type {kind}")]
    UnsupportedEntry { entry: String, kind: String },
    /// A filesystem operation for an entry failed.
    #[error("cannot extract tar entry {entry:?}: {op}: {source}")]
    Extract {
        entry: String,
        op: String,
        #[source]
        source: io::Error,
    },
    /// The uncompressed stream (or a sparse file's logical size) is over the limit.
    #[error("layer exceeds the limit of {limit} uncompressed bytes {at}")]
    TooLarge { limit: u64, at: String },
    /// A computed digest differs from the expected one.
    #[error("{what} mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// A root or source directory could not be opened.
    #[error("cannot open directory {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the tar-split record failed.
    #[error("cannot write the tar-split record: {source}")]
    TarSplitWrite {
        #[source]
        source: io::Error,
    },
    /// The tar-split record cannot be decoded.
    #[error("tar-split record is corrupt: {reason}")]
    TarSplitCorrupt { reason: String },
    /// A file in the layer directory differs from what the tar-split record says.
    #[error("layer file {path:?} does not match its tar-split record: {reason}")]
    SourceMismatch { path: String, reason: String },
    /// Reading a file of the source tree failed.
    #[error("cannot read {path:?} from the layer tree: {source}")]
    Source {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A file cannot be written as a tar entry (e.g. a device number too large for the format).
    #[error("cannot write {path:?} into a layer tar: {reason}")]
    Unrepresentable { path: String, reason: String },
    /// Writing the output stream failed.
    #[error("cannot write the output stream: {source}")]
    Write {
        #[source]
        source: io::Error,
    },
}

impl HasKind for ArchiveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Read { source, .. }
            | ArchiveError::Extract { source, .. }
            | ArchiveError::Open { source, .. }
            | ArchiveError::Source { source, .. }
            | ArchiveError::Write { source } => ErrorKind::from_io(source),
            ArchiveError::Decompress { .. }
            | ArchiveError::Malformed { .. }
            | ArchiveError::DigestMismatch { .. }
            | ArchiveError::TarSplitCorrupt { .. }
            | ArchiveError::SourceMismatch { .. } => ErrorKind::Corrupt,
            ArchiveError::Refused { .. } | ArchiveError::TooLarge { .. } => {
                ErrorKind::InvalidArgument
            }
            ArchiveError::UnsupportedEntry { .. } | ArchiveError::Unrepresentable { .. } => {
                ErrorKind::Unsupported
            }
            ArchiveError::TarSplitWrite { .. } => ErrorKind::Internal,
        }
    }
}

/// Lossy display form of a raw path.
pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}
