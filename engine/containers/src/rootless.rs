//! Rootless mode in the engine. The host has already moved the process into the
//! user's user and mount namespaces (see the host's `rootless` module), and the monitor and
//! the OCI runtime inherit them, so containers run as root of that namespace: their uid 0 is
//! the user, uid N the user's subordinate id N-1. What changes is what needs real root:
//!
//! - **cgroups**: a cgroup v1 hierarchy cannot be delegated to a user, so there the spec has
//!   no `cgroupsPath` and no `linux.resources`, `--memory`, `--cpus` and `--pids-limit` are
//!   refused, crun runs with `--cgroup-manager disabled` and runc with `--rootless true`, and
//!   `/sys/fs/cgroup` is the host's, bind-mounted read-only; on a cgroup v2 host with a subtree
//!   delegated to the user, containers get cgroups there (`crate::cgroups`).
//! - **networking**: a bridge needs root on the host (veth pairs, iptables), so the default
//!   network is slirp4netns where the user can open `/dev/net/tun`, else `none`; `-p` needs
//!   slirp4netns; `host` works (the host's network namespace, as the user).
//!
//! What it does not do: pasta, or cgroup v2 delegation through systemd's D-Bus API.

use crate::error::Result;
use strata_types::ErrorKind;

use crate::config::{ContainerConfig, NetworkMode};
use crate::error::kinded;

/// Whether this process is in a user namespace other than the initial one (its uid map is not
/// the identity map): the engine is rootless there even though its euid is 0.
pub fn in_user_namespace() -> bool {
    strata_mount::in_user_namespace()
}

/// The network a rootless container gets when it names none: slirp4netns, as podman, when
/// this user can open `/dev/net/tun` (slirp4netns needs it); otherwise `none`, with a warning
/// saying why.
pub fn default_network() -> NetworkMode {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => NetworkMode::Slirp4netns,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "/dev/net/tun cannot be opened, so rootless containers get --network none; \
                 as root, `chmod 0666 /dev/net/tun` (Debian's default) enables slirp4netns"
            );
            NetworkMode::None
        }
    }
}

/// Checks a new container's config against what rootless mode can do, and replaces the root
/// default network (bridge) with the rootless one. Called before the container is created, so
/// a refused config leaves nothing behind.
pub fn adapt(config: &mut ContainerConfig) -> Result<()> {
    let r = &config.resources;
    let limits = r.memory.is_some() || r.cpus.is_some() || r.pids_limit.is_some();
    if limits && crate::cgroups::delegated().is_none() {
        return Err(kinded(
            ErrorKind::Unsupported,
            "resource limits (--memory, --cpus, --pids-limit) need cgroup v2 delegation or root: \
             a rootless container gets a cgroup only on a pure cgroup v2 host where a subtree \
             above this process's cgroup is delegated to (owned by) the user, as systemd's \
             user@UID.service is",
        ));
    }
    if config.network == NetworkMode::Bridge {
        config.network = default_network();
    }
    if !config.publish.is_empty() && config.network != NetworkMode::Slirp4netns {
        return Err(kinded(
            ErrorKind::Unsupported,
            "-p/--publish for a rootless container needs --network slirp4netns (which needs \
             /dev/net/tun open to users: as root, `chmod 0666 /dev/net/tun`)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Resources;

    #[test]
    fn limits_and_ports_are_checked_and_bridge_becomes_the_rootless_default() {
        let mut c = ContainerConfig::default();
        assert_eq!(c.network, NetworkMode::Bridge);
        adapt(&mut c).expect("a plain config is fine");
        assert_eq!(c.network, default_network());

        let mut c = ContainerConfig {
            network: NetworkMode::Host,
            ..ContainerConfig::default()
        };
        adapt(&mut c).expect("host network is fine");
        assert_eq!(c.network, NetworkMode::Host);

        let mut c = ContainerConfig {
            resources: Resources {
                pids_limit: Some(10),
                ..Resources::default()
            },
            ..ContainerConfig::default()
        };
        let e = adapt(&mut c).expect_err("limits");
        assert!(
            e.to_string().contains("cgroup v2 delegation or root"),
            "{e}"
        );

        let mut c = ContainerConfig {
            publish: vec!["8080:80".into()],
            network: NetworkMode::None,
            ..ContainerConfig::default()
        };
        let e = adapt(&mut c).expect_err("ports without slirp4netns");
        assert!(e.to_string().contains("--network slirp4netns"), "{e}");
        let mut c = ContainerConfig {
            publish: vec!["8080:80".into()],
            network: NetworkMode::Slirp4netns,
            ..ContainerConfig::default()
        };
        adapt(&mut c).expect("ports with slirp4netns");
    }
}
