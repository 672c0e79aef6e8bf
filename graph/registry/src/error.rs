//! The registry crate's error type, with the registry, repository, digest and HTTP status a
//! user needs to act on a failure, and its [`ErrorKind`].
//!
//! Kinds: a refused login or missing permission (401/403) is `FailedPrecondition` (the
//! request is fine, the caller's credentials are not: log in or fix them, as podman's exit
//! code for auth failures suggests); 404 is `NotFound`; a digest or size mismatch is
//! `Corrupt`; TLS, connection failures and 5xx are `Unavailable`; malformed input and 400 are
//! `InvalidArgument`; a registry that refuses an operation it does not offer (405, deletion
//! disabled) is `Unsupported`.

use std::path::PathBuf;

use strata_types::{ErrorKind, HasKind};

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid {what} {}: {reason}", path.display())]
    InvalidConfig {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    #[error("registry {registry} is blocked in registries.conf (reference {reference})")]
    Blocked { registry: String, reference: String },

    #[error("short name {name:?} cannot be resolved: {reason}")]
    ShortName { name: String, reason: String },

    #[error("not logged in to {key} (no entry in {})", path.display())]
    NotLoggedIn { key: String, path: PathBuf },

    #[error(
        "cannot connect to {registry}: TLS certificate not trusted ({detail}); to trust it, put \
         the registry's CA certificate in {certs_dir}/ca.crt, or skip verification with \
         --tls-verify=false"
    )]
    UntrustedCertificate {
        registry: String,
        detail: String,
        certs_dir: String,
    },

    #[error("cannot connect to {registry} ({url}): {detail}")]
    Connect {
        registry: String,
        url: String,
        detail: String,
    },

    #[error("unauthorized to access {registry}{}: {detail}{}",
        repository.as_deref().map(|r| format!("/{r}")).unwrap_or_default(),
        if *had_credentials { ": check the username and password" }
        else { ": log in first (strata login) or pass --creds" })]
    Unauthorized {
        registry: String,
        repository: Option<String>,
        detail: String,
        had_credentials: bool,
    },

    #[error("{what} {name} not found in {registry}{}", detail_suffix(detail))]
    NotFound {
        registry: String,
        what: &'static str,
        name: String,
        detail: String,
    },

    #[error(
        "{registry}: {method} {path} failed: HTTP {status}{}",
        detail_suffix(detail)
    )]
    Http {
        registry: String,
        method: String,
        path: String,
        status: u16,
        /// The registry's error `code` (e.g. `MANIFEST_INVALID`), if it sent one.
        code: Option<String>,
        detail: String,
    },

    #[error(
        "{what} from {registry} is corrupt: digest mismatch: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{what} from {registry} is corrupt: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        registry: String,
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("{registry}: invalid response to {what}: {reason}")]
    Protocol {
        registry: String,
        what: String,
        reason: String,
    },

    #[error("transfer of {what} with {registry} failed: {source}")]
    Transfer {
        registry: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl RegistryError {
    /// An I/O error constructor for `map_err`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RegistryError::Io { op, path, source }
    }

    /// The registry error carried inside an `io::Error` returned by a blob stream's `read`
    /// (digest or size mismatch, a failed resume), if there is one.
    pub fn from_io(e: &std::io::Error) -> Option<&RegistryError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<RegistryError>())
    }

    /// Wraps this error into an `io::Error` (for `Read` implementations), keeping it
    /// reachable through [`RegistryError::from_io`].
    pub fn into_io(self) -> std::io::Error {
        let kind = match self.kind() {
            ErrorKind::Corrupt => std::io::ErrorKind::InvalidData,
            ErrorKind::Unavailable => std::io::ErrorKind::ConnectionAborted,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}

impl HasKind for RegistryError {
    fn kind(&self) -> ErrorKind {
        use RegistryError as E;
        match self {
            E::InvalidReference { .. } | E::InvalidConfig { .. } | E::ShortName { .. } => {
                ErrorKind::InvalidArgument
            }
            E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            E::Io { .. } => ErrorKind::Internal,
            E::Blocked { .. } | E::Unauthorized { .. } => ErrorKind::FailedPrecondition,
            E::NotLoggedIn { .. } | E::NotFound { .. } => ErrorKind::NotFound,
            E::UntrustedCertificate { .. } | E::Connect { .. } => ErrorKind::Unavailable,
            E::Http { status, .. } => match status {
                401 | 403 => ErrorKind::FailedPrecondition,
                404 => ErrorKind::NotFound,
                405 => ErrorKind::Unsupported,
                409 => ErrorKind::AlreadyExists,
                400..=499 => ErrorKind::InvalidArgument,
                _ => ErrorKind::Unavailable,
            },
            E::DigestMismatch { .. } | E::SizeMismatch { .. } => ErrorKind::Corrupt,
            E::Protocol { .. } => ErrorKind::Unavailable,
            E::Transfer { source, .. } => match RegistryError::from_io(source) {
                Some(inner) => inner.kind(),
                None => ErrorKind::Unavailable,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_the_kind() {
        let e = RegistryError::DigestMismatch {
            registry: "r".into(),
            what: "blob".into(),
            expected: "a".into(),
            actual: "b".into(),
        }
        .into_io();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let inner = RegistryError::from_io(&e).expect("registry error inside");
        assert_eq!(inner.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn unauthorized_message_says_what_to_check() {
        let e = RegistryError::Unauthorized {
            registry: "localhost:5000".into(),
            repository: Some("a/b".into()),
            detail: "authentication required".into(),
            had_credentials: true,
        };
        let msg = e.to_string();
        assert!(msg.contains("localhost:5000/a/b"), "{msg}");
        assert!(msg.contains("check the username and password"), "{msg}");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }
}
