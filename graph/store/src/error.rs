//! Store errors. Every variant names the object it concerns and maps to a stable [`ErrorKind`].

use std::path::PathBuf;

use strata_driver_api::DriverError;
use strata_graph_archive::ArchiveError;
use strata_types::{ErrorKind, HasKind};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} already exists")]
    AlreadyExists { what: &'static str, name: String },
    #[error("{what} {name:?} is ambiguous: it matches {count} {what}s; give more of the ID")]
    Ambiguous {
        what: &'static str,
        name: String,
        count: usize,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("{0}")]
    Precondition(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("metadata database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: {source}")]
    Archive {
        layer: String,
        #[source]
        source: ArchiveError,
    },
    /// A failure reported by whoever supplies the data (an image source, a plugin).
    #[error("{message}")]
    Source { kind: ErrorKind, message: String },
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Mount(#[from] strata_mount::MountError),
}

impl StoreError {
    /// Whether this is a full disk (SQLite's `SQLITE_FULL`, or `ENOSPC`/`EDQUOT` from a file
    /// operation).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            other => std::error::Error::source(other)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                    )
                }),
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn not_found(what: &'static str, name: impl Into<String>) -> StoreError {
        StoreError::NotFound {
            what,
            name: name.into(),
        }
    }
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            StoreError::Ambiguous { .. } | StoreError::Invalid(_) => ErrorKind::InvalidArgument,
            StoreError::Precondition(_) => ErrorKind::FailedPrecondition,
            StoreError::Unsupported(_) => ErrorKind::Unsupported,
            StoreError::Corrupt(_) => ErrorKind::Corrupt,
            StoreError::Db { source, .. } => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    ErrorKind::Busy
                }
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                    ErrorKind::Corrupt
                }
                _ => ErrorKind::Internal,
            },
            StoreError::Io { source, .. } => ErrorKind::from_io(source),
            StoreError::Archive { source, .. } => source.kind(),
            StoreError::Source { kind, .. } => *kind,
            StoreError::Driver(e) => e.kind(),
            StoreError::Mount(e) => e.kind(),
        }
    }
}
