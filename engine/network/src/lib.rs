//! Container networking for every front end (the engine's network layer): podman's
//! `--network none|host|bridge|slirp4netns` and `-p` publishing, and standard CNI
//! configuration lists for callers that read them from a directory (the CRI's
//! `/etc/cni/net.d`).
//!
//! - `cni`: the CNI exec protocol (`cni::exec`: run a plugin with `CNI_*` variables and JSON
//!   on stdin, read its result or error) and configuration lists (`cni::list`: `.conflist`,
//!   `.conf` and `.json` files, libcni's rules for names, order and capabilities).
//! - [`CniNetwork`]: a list made runnable, attached and detached plugin by plugin
//!   ([`CniNetwork::attach`], [`CniNetwork::detach`]), results cached for DEL (`state`).
//! - Strata's own bridge network ([`NetworkConfig`], `bridge`): a list built in code, podman's
//!   default chain: a veth pair onto `strata0`, an address from `10.89.0.0/24`, outbound NAT
//!   and published ports ([`attach`], [`detach`]).
//! - `--network none`: a new namespace (`strata_mount::create_netns` at [`netns_path`]) with
//!   `lo` up ([`setup_loopback`]); `--network host`: nothing here.
//! - [`slirp`]: rootless user-mode networking with slirp4netns.
//!
//! Why CNI and not netavark: CNI is a stable, documented exec protocol (spec 1.0.0) that the
//! CRI front end needs anyway, and Debian ships the plugins. There is no well-kept Rust CNI
//! client crate, so the protocol is written by hand in `cni`.
//!
//! What it deliberately does not do: create or remove namespaces (the `mount` crate does),
//! user-defined networks of the CLI (podman's `network create`), IPv6, DNS between
//! containers (podman's `dnsname`), pasta, or random host ports.
//!
//! Several Strata processes may attach containers at once: host-local IPAM and iptables lock
//! for themselves, and each container's state is locked (see `state` for the on-disk layout).

mod attach;
mod bridge;
mod checks;
pub mod cni;
mod error;
mod masquerade;
mod publish;
mod result;
pub mod slirp;
mod state;

use std::path::{Path, PathBuf};

pub use attach::{attach, detach, setup_loopback, AttachOptions, CniNetwork};
pub use cni::{NetworkList, RuntimeConfig};
pub use error::{NetworkError, PluginFailure};
pub use publish::{parse_publish, PortMapping, Protocol};
pub use result::Attachment;

/// The bridge network containers are attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The CNI network name (`strata`); it appears in the iptables rules' comments.
    pub name: String,
    /// The Linux bridge (`strata0`), created on first attach.
    pub bridge: String,
    /// The IPv4 subnet addresses are leased from (`10.89.0.0/24`); its first address is the
    /// bridge's, the gateway.
    pub subnet: String,
    /// Where plugins are looked for, in order.
    pub cni_path: Vec<PathBuf>,
    /// IPAM leases and cached results (`<runroot>/networks`). Stores sharing a bridge and
    /// subnet must share it, or they would lease the same addresses.
    pub state_dir: PathBuf,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            name: "strata".into(),
            bridge: "strata0".into(),
            subnet: "10.89.0.0/24".into(),
            cni_path: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            state_dir: "/run/strata/networks".into(),
        }
    }
}

/// Where a container's network namespace is pinned: `<runroot>/netns/strata-<short id>`
/// (the first 12 characters of the ID, as podman shows it).
pub fn netns_path(runroot: &Path, container_id: &str) -> PathBuf {
    let short: String = container_id.chars().take(12).collect();
    runroot.join("netns").join(format!("strata-{short}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_paths_use_the_short_id() {
        assert_eq!(
            netns_path(Path::new("/run/strata"), "0123456789abcdef0123"),
            Path::new("/run/strata/netns/strata-0123456789ab")
        );
    }
}
