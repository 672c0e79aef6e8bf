//! Driver errors.

use std::path::PathBuf;

use strata_types::{ErrorKind, HasKind};

pub type Result<T, E = DriverError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid driver key {0:?}: keys are 1-128 characters of [A-Za-z0-9_.-]")]
    InvalidKey(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {0} has no payload in the driver")]
    Missing(String),
    #[error("driver {driver} cannot be used here: {reason}")]
    Unsupported {
        driver: &'static str,
        reason: String,
    },
    #[error("invalid driver option {0:?}")]
    InvalidOption(String),
    /// The driver works here but not in its current state: a thin pool too full for another
    /// device, say. The message says what to do.
    #[error("driver {driver}: {reason}")]
    Precondition {
        driver: &'static str,
        reason: String,
    },
}

impl DriverError {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> DriverError {
        let path = path.into();
        move |source| DriverError::Io { op, path, source }
    }
}

impl HasKind for DriverError {
    fn kind(&self) -> ErrorKind {
        match self {
            DriverError::InvalidKey(_) | DriverError::InvalidOption(_) => {
                ErrorKind::InvalidArgument
            }
            DriverError::Io { source, .. } => ErrorKind::from_io(source),
            DriverError::Missing(_) => ErrorKind::Corrupt,
            DriverError::Unsupported { .. } => ErrorKind::Unsupported,
            DriverError::Precondition { .. } => ErrorKind::FailedPrecondition,
        }
    }
}
