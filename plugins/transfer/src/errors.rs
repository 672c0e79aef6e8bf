//! Errors with a kind for front-end plugins: what crosses back to the host as an exit code.
//! Front ends work in `anyhow`; these helpers keep an error's kind (ours, the engine's, a host
//! call's, a library's) through the chain so the exit code says what went wrong.

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
    anyhow::Error::new(e)
}

pub fn kinded(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Kinded {
        kind,
        message: message.into(),
    })
}

/// The kind of an error chain: the first kinded cause (ours, the engine's, a host call's, a
/// library's), else `Internal`.
pub fn kind_of(e: &anyhow::Error) -> ErrorKind {
    for c in e.chain() {
        if let Some(k) = c.downcast_ref::<Kinded>() {
            return k.kind;
        }
        if let Some(k) = c.downcast_ref::<strata_graph_image::ImageError>() {
            return strata_plugin_bridge::api_kind(strata_types::HasKind::kind(k));
        }
        let k = strata_plugin_bridge::kind_of(c);
        if k != strata_types::ErrorKind::Internal {
            return strata_plugin_bridge::api_kind(k);
        }
    }
    ErrorKind::Internal
}

/// Whether an error means "no such object" (for `rm --ignore`, cleanup races).
pub fn is_not_found(e: &anyhow::Error) -> bool {
    kind_of(e) == ErrorKind::NotFound
}
