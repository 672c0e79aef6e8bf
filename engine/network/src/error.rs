//! Networking errors: which plugin failed, for which container, with the CNI error object
//! (`code`, `msg`, `details`) the plugin printed and its exit status.

use std::path::PathBuf;

use strata_types::{ErrorKind, HasKind};

use crate::Protocol;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A `-p`/`--publish` value that cannot be understood.
    #[error("invalid port publish spec `{spec}`: {reason}")]
    InvalidPublish { spec: String, reason: String },
    /// A network configuration or argument the plugins would refuse (bad subnet, container ID).
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    #[error(
        "CNI plugin `{plugin}` not found in {search_path}; install containernetworking-plugins"
    )]
    PluginNotFound { plugin: String, search_path: String },
    /// No configuration list (or none of that name) in a configuration directory.
    #[error("{0}")]
    NoNetwork(String),
    /// The network namespace to attach does not exist (or the path is not a namespace).
    #[error("network namespace {0} does not exist")]
    NetnsMissing(PathBuf),
    #[error("container {container} is already attached to network {network}; detach it first")]
    AlreadyAttached { container: String, network: String },
    /// A plugin ran and failed (boxed: it is the largest variant by far).
    #[error(transparent)]
    Plugin(Box<PluginFailure>),
    /// A plugin succeeded but printed something that is not a usable CNI result.
    #[error("CNI plugin `{plugin}` returned an unusable result: {reason}")]
    BadResult { plugin: String, reason: String },
    /// An iptables command of the masquerade cleanup failed.
    #[error("iptables {args}: {reason}")]
    Iptables { args: String, reason: String },
    /// A helper program rootless networking runs is not installed.
    #[error("{program} not found in {search_path}; install {package} for rootless networking")]
    HelperNotFound {
        program: &'static str,
        package: &'static str,
        search_path: String,
    },
    /// slirp4netns cannot create its TAP device: `/dev/net/tun` is missing or closed to the
    /// user. `reason` says what to do about it.
    #[error("slirp4netns cannot open /dev/net/tun: {reason}")]
    TunUnavailable { reason: String },
    /// slirp4netns failed to start, or its API socket failed.
    #[error("slirp4netns for container {container}: {reason}")]
    Slirp { container: String, reason: String },
    /// Another socket already holds a published port's host address.
    #[error(
        "cannot publish {protocol} port {host_port} on {host_ip}: the address is already in use"
    )]
    PortInUse {
        host_ip: String,
        host_port: u16,
        protocol: Protocol,
    },
    /// A published port's host address cannot be taken for another reason (a port below
    /// `net.ipv4.ip_unprivileged_port_start` without root, an address the host lacks).
    #[error("cannot publish {protocol} port {host_port} on {host_ip}: {reason}")]
    PortUnavailable {
        host_ip: String,
        host_port: u16,
        protocol: Protocol,
        reason: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A plugin that ran and failed. `msg`/`details` come from the CNI error object on its
/// stdout, or from its stderr when it printed none.
#[derive(Debug, thiserror::Error)]
#[error("CNI plugin `{plugin}` {command} for container {container}: {msg}{}{}",
    details.as_deref().filter(|d| !d.is_empty()).map(|d| format!(": {d}")).unwrap_or_default(),
    code.map(|c| format!(" (CNI error code {c}, {status})")).unwrap_or_else(|| format!(" ({status})")))]
pub struct PluginFailure {
    pub plugin: String,
    pub command: &'static str,
    pub container: String,
    /// The CNI error code (1-99 are the spec's, 100+ the plugin's own).
    pub code: Option<u32>,
    pub msg: String,
    pub details: Option<String>,
    /// How the process ended, e.g. `exit status: 1`.
    pub status: String,
}

impl NetworkError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.into();
        move |source| NetworkError::Io { op, path, source }
    }
}

impl HasKind for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::InvalidPublish { .. } | NetworkError::InvalidConfig(_) => {
                ErrorKind::InvalidArgument
            }
            NetworkError::PluginNotFound { .. }
            | NetworkError::NoNetwork(_)
            | NetworkError::NetnsMissing(_)
            | NetworkError::HelperNotFound { .. }
            | NetworkError::TunUnavailable { .. }
            | NetworkError::PortUnavailable { .. } => ErrorKind::FailedPrecondition,
            NetworkError::PortInUse { .. } => ErrorKind::Busy,
            NetworkError::AlreadyAttached { .. } => ErrorKind::AlreadyExists,
            // The spec's codes: 1 incompatible version, 2 unsupported field, 4 invalid
            // environment, 6 decoding failure, 7 invalid network config, 11 try again later.
            NetworkError::Plugin(failure) => match failure.code {
                Some(1 | 2 | 4 | 6 | 7) => ErrorKind::InvalidArgument,
                Some(11) => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            NetworkError::BadResult { .. }
            | NetworkError::Iptables { .. }
            | NetworkError::Slirp { .. } => ErrorKind::Internal,
            NetworkError::Io { source, .. } => ErrorKind::from_io(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_errors_say_which_plugin_container_and_code() {
        let e = NetworkError::Plugin(Box::new(PluginFailure {
            plugin: "bridge".into(),
            command: "ADD",
            container: "abc".into(),
            code: Some(7),
            msg: "invalid subnet".into(),
            details: Some("10.0.0.0/99".into()),
            status: "exit status: 1".into(),
        }));
        assert_eq!(
            e.to_string(),
            "CNI plugin `bridge` ADD for container abc: invalid subnet: 10.0.0.0/99 \
             (CNI error code 7, exit status: 1)"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_missing_plugin_says_what_to_install() {
        let e = NetworkError::PluginNotFound {
            plugin: "bridge".into(),
            search_path: "/usr/lib/cni:/opt/cni/bin".into(),
        };
        assert_eq!(
            e.to_string(),
            "CNI plugin `bridge` not found in /usr/lib/cni:/opt/cni/bin; \
             install containernetworking-plugins"
        );
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }
}
