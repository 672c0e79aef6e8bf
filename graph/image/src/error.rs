//! The image crate's error type. Every error carries a [`ErrorKind`] (exit codes, gRPC codes).
//!
//! Other crates that implement the transport traits (the registry client, the store front
//! end) report their failures as [`ImageError::Transport`], keeping their own kind and message.

use std::path::PathBuf;

use strata_types::{ErrorKind, HasKind};

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} {name} not found")]
    NotFound { what: &'static str, name: String },
    #[error("{what} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A failure reported by another crate's transport (registry, store).
    #[error("{message}")]
    Transport { kind: ErrorKind, message: String },
}

impl ImageError {
    /// An I/O error constructor for `map_err`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }

    /// Wraps another crate's error, keeping its kind and its whole message chain.
    pub fn transport<E: std::error::Error + HasKind>(e: &E) -> Self {
        let mut message = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            let m = s.to_string();
            if !message.contains(&m) {
                message.push_str(": ");
                message.push_str(&m);
            }
            src = s.source();
        }
        ImageError::Transport {
            kind: e.kind(),
            message,
        }
    }
}

impl HasKind for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound { .. } => ErrorKind::NotFound,
            ImageError::DigestMismatch { .. } => ErrorKind::Corrupt,
            ImageError::Invalid(_) => ErrorKind::InvalidArgument,
            ImageError::Unsupported(_) => ErrorKind::Unsupported,
            ImageError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            ImageError::Io { .. } => ErrorKind::Internal,
            ImageError::Transport { kind, .. } => *kind,
        }
    }
}
