//! Errors with a kind: what crosses back to the host as an exit code.

use strata_plugin_api::{CallError, ErrorKind};

/// An error that knows its kind (the exit code the host uses).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Kinded {
    pub kind: ErrorKind,
    pub message: String,
}

/// Turns a host call's error into an `anyhow` error that keeps its kind.
pub fn call(e: CallError) -> anyhow::Error {
    anyhow::Error::new(Kinded {
        kind: e.kind,
        message: e.message,
    })
}

pub fn kinded(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Kinded {
        kind,
        message: message.into(),
    })
}

/// The kind of an error chain: the first kinded cause, else `Internal`.
pub fn kind_of(e: &anyhow::Error) -> ErrorKind {
    e.chain()
        .find_map(|c| c.downcast_ref::<Kinded>().map(|k| k.kind))
        .unwrap_or(ErrorKind::Internal)
}
