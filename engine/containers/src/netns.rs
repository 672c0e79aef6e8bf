//! A container's network namespace: made (and pinned) for `bridge` and `slirp4netns`, left to
//! the runtime for `none`, the host's for `host`, another container's for `container:NAME`;
//! attached to its network, and released again at cleanup.

use std::path::PathBuf;

use strata_engine_network::{self as network, slirp, PortMapping};
use strata_types::ErrorKind;

use crate::config::{ContainerConfig, NetworkMode};
use crate::container::Container;
use crate::error::{kinded, Context, Error, Result};
use crate::spec::Ns;
use crate::state::{State, Status};

/// Sets up the network namespace the config asks for; returns the spec's choice and records
/// the pinned namespace and the attachment in `state`.
pub(crate) fn setup(c: &Container<'_>, state: &mut State) -> Result<Ns> {
    let engine = c.engine();
    match &c.config.network {
        NetworkMode::Host => Ok(Ns::Host),
        NetworkMode::Container(other) => {
            let o = engine.container(other)?;
            let s = o.saved_state()?;
            match (s.status, s.netns, s.pid, &o.config.network) {
                (Status::Running, Some(p), _, _) => Ok(Ns::Path(p.into())),
                (Status::Running, None, Some(pid), NetworkMode::None) => {
                    Ok(Ns::Path(format!("/proc/{pid}/ns/net").into()))
                }
                _ => Err(Error::precondition(format!(
                    "container {other} is not running with a network namespace of its own"
                ))),
            }
        }
        // No network: the runtime makes the namespace and brings loopback up itself (crun
        // and runc both do for a new namespace), which is cheaper than pinning one.
        NetworkMode::None => Ok(Ns::New),
        NetworkMode::Path(p) => {
            if !std::path::Path::new(p).exists() {
                return Err(Error::precondition(format!(
                    "network namespace {p} does not exist"
                )));
            }
            Ok(Ns::Path(p.into()))
        }
        NetworkMode::Slirp4netns => {
            // Pinned like a bridge's; slirp4netns (a process of its own, outliving this CLI)
            // connects it and forwards the published ports.
            let path = network::netns_path(engine.runroot(), c.id());
            strata_mount::netns::create_netns(&path)
                .with_context(|| format!("create network namespace {}", path.display()))?;
            state.netns = Some(path.display().to_string());
            let ports = publish(&c.config)?;
            let s = slirp::start(&path, &ports, &slirp_dir(c), c.id())?;
            state.network = Some(serde_json::to_value(&s)?);
            Ok(Ns::Path(path))
        }
        NetworkMode::Bridge if engine.rootless() => Err(kinded(
            ErrorKind::Unsupported,
            "bridge networking needs root; rootless containers use --network none (the default) or host",
        )),
        NetworkMode::Bridge => {
            // Pinned by a bind mount: CNI configures it before the container exists.
            let path = network::netns_path(engine.runroot(), c.id());
            strata_mount::netns::create_netns(&path)
                .with_context(|| format!("create network namespace {}", path.display()))?;
            state.netns = Some(path.display().to_string());
            let ports = publish(&c.config)?;
            let a = network::attach(engine.bridge(), c.id(), &path, &ports)?;
            state.network = Some(serde_json::to_value(&a)?);
            Ok(Ns::Path(path))
        }
    }
}

/// Where slirp4netns API sockets and logs live: short, as a socket path must be.
fn slirp_dir(c: &Container<'_>) -> PathBuf {
    c.engine().runroot().join("slirp")
}

/// The config's `-p` values, parsed.
pub fn publish(cfg: &ContainerConfig) -> Result<Vec<PortMapping>> {
    let mut all = Vec::new();
    for p in &cfg.publish {
        all.extend(network::parse_publish(p)?);
    }
    Ok(all)
}

/// Releases the network: CNI DEL (or slirp4netns) and the pinned namespace. Idempotent.
pub(crate) fn teardown(c: &Container<'_>, state: &mut State) -> Result<()> {
    if let Some(ns) = state.netns.clone() {
        let path = PathBuf::from(&ns);
        if let Some(n) = &state.network {
            if c.config.network == NetworkMode::Slirp4netns {
                let s: slirp::Slirp = serde_json::from_value(n.clone())
                    .context("the container's slirp4netns record is unreadable")?;
                slirp::stop(&s)?;
            } else {
                network::detach(c.engine().bridge(), c.id(), &path, &publish(&c.config)?)?;
            }
            state.network = None;
        }
        strata_mount::netns::remove_netns(&path)
            .with_context(|| format!("remove network namespace {ns}"))?;
        state.netns = None;
    }
    Ok(())
}
