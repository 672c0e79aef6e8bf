//! The engine's errors. Every error has a kind ([`ErrorKind`]), which front ends turn into an
//! exit code (CLI) or a gRPC status (CRI), and a message that says what failed on which
//! container and, where we know, what to do about it.
//!
//! Errors of the crates below (network, mount, monitor, store calls) keep their own types and
//! kinds inside [`Error`]; [`Context`] adds what the engine was doing when they happened,
//! without losing the kind.

use std::fmt;

use strata_engine_monitor::LaunchError;
use strata_engine_network::NetworkError;
use strata_mount::MountError;
use strata_types::{ErrorKind, HasKind};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed call to the store (see [`crate::Store`]), with the kind the store gave it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal or failure the engine itself decided, with its kind (a container that is not
    /// running, a flag rootless mode cannot honour, an invalid option).
    #[error("{message}")]
    Engine { kind: ErrorKind, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The monitor could not create the container; the message has the runtime's reason (and
    /// what to do about the ones we know).
    #[error("{}", crate::runtime::explain(&.0.to_string()))]
    Launch(LaunchError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The runtime spec could not be built (oci-spec's builders).
    #[error("cannot build the runtime spec")]
    Spec(#[from] oci_spec::OciSpecError),
    /// What the engine was doing when `source` happened (shown after it in an error chain:
    /// `{:#}`, or [`Error::chain`]).
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

impl From<LaunchError> for Error {
    fn from(e: LaunchError) -> Error {
        Error::Launch(e)
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::Io(e.into())
    }
}

impl Error {
    /// Whether this is, at bottom, a full disk (`ENOSPC`, `EDQUOT`).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            Error::Context { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }

    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::Engine {
            kind,
            message: message.into(),
        }
    }

    /// An internal failure (kind `Internal`, exit code 125).
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Internal, message.to_string())
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn precondition(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::FailedPrecondition, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unsupported, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// The whole message: this error and every cause, joined by `: `.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }

    /// Whether the error, or the one it wraps, says "no such object".
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine { kind, .. } => *kind,
            Error::Store(e) => e.kind,
            Error::Network(e) => e.kind(),
            Error::Mount(e) => e.kind(),
            // The engine's own failures: podman's "the tool failed" (125), never a kind a
            // caller could take for "no such container" (an ENOENT deep inside a verb).
            Error::Launch(_) | Error::Io(_) | Error::Json(_) | Error::Spec(_) => {
                ErrorKind::Internal
            }
            Error::Context { source, .. } => source.kind(),
        }
    }
}

/// Adds what the engine was doing to an error (`anyhow`'s `context`, typed): the kind stays
/// the underlying error's.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context(),
            source: Box::new(e.into()),
        })
    }
}

/// A missing value is an internal failure described by the context.
impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| Error::msg(context.into()))
    }

    fn with_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| Error::msg(context()))
    }
}

/// An error of the given kind (shorthand for [`Error::new`]).
pub(crate) fn kinded(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}

/// `return Err(Error::msg(format!(...)))`: an internal failure with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::msg(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_says_what_was_done() {
        let e: Result<()> = Err(Error::not_found("no such container web"));
        let e = e.context("stop web").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.chain(), "stop web: no such container web");
        let io: std::result::Result<(), std::io::Error> =
            Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        let e = io.with_context(|| "read /x".into()).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Internal,
            "an ENOENT inside a verb is not \"no such container\""
        );
        assert!(e.chain().starts_with("read /x: "), "{}", e.chain());
    }
}
