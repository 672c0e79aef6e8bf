//! Attaching a container's network namespace to a network and detaching it: a configuration
//! list ([`CniNetwork`], Strata's bridge or a standard `.conflist`) run plugin by plugin, each
//! ADD receiving the previous plugin's result as `prevResult`, DEL in reverse order with the
//! cached final result.
//!
//! Failure handling follows libcni's runtimes: a failed ADD is undone by a DEL of the whole
//! chain; a failed DEL keeps the cached record so that `detach` can be retried.
//!
//! Detach before removing the namespace: with the namespace gone, `bridge` cannot learn the
//! container's address from its interface and leaves its masquerade rule behind (IPAM,
//! `portmap` and `firewall` still clean up, from the cached result); `masquerade` then removes
//! that rule itself.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bridge;
use crate::checks::{check_container_id, check_netns, is_namespace};
use crate::cni::exec::{add, del, Invocation};
use crate::cni::{NetworkList, RuntimeConfig};
use crate::result::attachment_from;
use crate::state::{self, Cached, ContainerLock};
use crate::{masquerade, Attachment, NetworkConfig, NetworkError, PortMapping};

const IFNAME: &str = "eth0";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Brings `lo` up in `netns` (the CNI `loopback` plugin): all `--network none` needs, and the
/// first step of [`attach`].
pub fn setup_loopback(
    netns: &Path,
    container_id: &str,
    cfg: &NetworkConfig,
) -> Result<(), NetworkError> {
    check_container_id(container_id)?;
    check_netns(netns)?;
    loopback(netns, container_id, &cfg.cni_path)
}

fn loopback(netns: &Path, container_id: &str, cni_path: &[PathBuf]) -> Result<(), NetworkError> {
    let inv = Invocation {
        container_id,
        netns: Some(netns),
        ifname: "lo",
        cni_path,
        args: &[],
    };
    add(&inv, &bridge::loopback()).map(drop)
}

/// A network ready to attach containers to: a configuration list, where its plugins are, and
/// where attachments are recorded (`state`'s layout; the results of one network's
/// attachments live there).
#[derive(Debug, Clone)]
pub struct CniNetwork {
    pub list: NetworkList,
    /// Where plugins are looked for, in order.
    pub cni_path: Vec<PathBuf>,
    /// Cached results and per-container locks (see `state`).
    pub state_dir: PathBuf,
}

/// What one attach or detach passes besides the container and its namespace.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// The interface inside the namespace (`eth0` when empty).
    pub ifname: String,
    /// Capability arguments (published ports, ...).
    pub runtime: RuntimeConfig,
    /// `CNI_ARGS` pairs (the CRI passes `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...).
    pub args: Vec<(String, String)>,
}

impl CniNetwork {
    /// Brings up `lo`, then runs the list's ADD chain; records the result for
    /// [`CniNetwork::detach`] and returns the container's address. A failed ADD is undone.
    pub fn attach(
        &self,
        container_id: &str,
        netns: &Path,
        opts: &AttachOptions,
    ) -> Result<Attachment, NetworkError> {
        check_container_id(container_id)?;
        check_netns(netns)?;
        let plugins = self.list.plugin_configs(&opts.runtime);
        let _span =
            tracing::debug_span!("attach", network = %self.list.name, container = container_id)
                .entered();
        let lock = ContainerLock::acquire(&self.state_dir, container_id)?;
        if state::read(&self.state_dir, container_id)?.is_some() {
            return Err(NetworkError::AlreadyAttached {
                container: container_id.into(),
                network: self.list.name.clone(),
            });
        }
        loopback(netns, container_id, &self.cni_path)?;
        let inv = Invocation {
            container_id,
            netns: Some(netns),
            ifname: ifname(opts),
            cni_path: &self.cni_path,
            args: &opts.args,
        };
        let mut last = None;
        let outcome = add_chain(&plugins, &inv, &mut last).and_then(|result| {
            let attachment = attachment_from(&result)?;
            let cached = Cached::new(
                container_id,
                &self.list.name,
                netns,
                &opts.runtime.port_mappings,
                result,
            );
            state::write(&self.state_dir, &cached)?;
            Ok(attachment)
        });
        match outcome {
            Ok(attachment) => {
                drop(lock);
                tracing::debug!(ip = %attachment.ip, "attached");
                Ok(attachment)
            }
            Err(e) => {
                undo(&plugins, &inv, last.as_ref());
                Err(e)
            }
        }
    }

    /// Removes the container from the network: releases its address and whatever the plugins
    /// set up for it. Idempotent: a container that is not attached, or whose namespace is
    /// gone, is fine. Uses the port mappings recorded at attach time, else `opts`'.
    pub fn detach(
        &self,
        container_id: &str,
        netns: &Path,
        opts: &AttachOptions,
    ) -> Result<(), NetworkError> {
        check_container_id(container_id)?;
        let _span =
            tracing::debug_span!("detach", network = %self.list.name, container = container_id)
                .entered();
        let lock = ContainerLock::acquire(&self.state_dir, container_id)?;
        let cached = state::read(&self.state_dir, container_id)?;
        let mut runtime = opts.runtime.clone();
        if let Some(c) = &cached {
            runtime.port_mappings = c.port_mappings.clone();
        }
        let plugins = self.list.plugin_configs(&runtime);
        let netns = is_namespace(netns).then_some(netns);
        let inv = Invocation {
            container_id,
            netns,
            ifname: ifname(opts),
            cni_path: &self.cni_path,
            args: &opts.args,
        };
        let prev = cached.as_ref().map(|c| &c.result);
        // Every plugin gets its DEL even if an earlier one failed; the first error is reported.
        let mut first_error = None;
        for conf in plugins.iter().rev() {
            if let Err(e) = del(&inv, &with_prev(conf, prev)) {
                tracing::warn!(error = %e, "CNI DEL failed");
                first_error.get_or_insert(e);
            }
        }
        if let (None, Some(cached), true) = (netns, &cached, self.list.masquerades()) {
            let leftover = attachment_from(&cached.result)
                .and_then(|a| masquerade::remove_leftover(&self.list.name, container_id, &a.ip));
            if let Err(e) = leftover {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        state::remove(&self.state_dir, container_id)?;
        lock.remove()?;
        tracing::debug!(container = container_id, "detached");
        Ok(())
    }
}

fn ifname(opts: &AttachOptions) -> &str {
    if opts.ifname.is_empty() {
        IFNAME
    } else {
        &opts.ifname
    }
}

impl NetworkConfig {
    /// The bridge network as a runnable configuration list.
    pub fn network(&self) -> Result<CniNetwork, NetworkError> {
        Ok(CniNetwork {
            list: bridge::list(self)?,
            cni_path: self.cni_path.clone(),
            state_dir: self.state_dir.clone(),
        })
    }
}

/// Connects the container's namespace to the bridge network `cfg` describes (creating the
/// bridge if needed), publishes `ports`, and returns the container's address.
pub fn attach(
    cfg: &NetworkConfig,
    container_id: &str,
    netns: &Path,
    ports: &[PortMapping],
) -> Result<Attachment, NetworkError> {
    check_container_id(container_id)?;
    check_netns(netns)?;
    let network = cfg.network()?;
    enable_ip_forward()?;
    network.attach(container_id, netns, &bridge_options(ports))
}

fn bridge_options(ports: &[PortMapping]) -> AttachOptions {
    AttachOptions {
        runtime: RuntimeConfig::ports(ports),
        ..AttachOptions::default()
    }
}

/// ADDs the plugins in order, each with the previous result; `last` keeps the latest result
/// for the undo of a failure.
fn add_chain(
    plugins: &[Value],
    inv: &Invocation<'_>,
    last: &mut Option<Value>,
) -> Result<Value, NetworkError> {
    for conf in plugins {
        *last = Some(add(inv, &with_prev(conf, last.as_ref()))?);
    }
    last.clone().ok_or_else(|| NetworkError::BadResult {
        plugin: "(none)".into(),
        reason: "the chain is empty".into(),
    })
}

/// Removes the container from the bridge network: releases its address and removes its
/// NAT, port and firewall rules. Idempotent: a container that is not attached, or whose
/// namespace is gone, is fine. Uses the port mappings recorded at attach time, else `ports`.
pub fn detach(
    cfg: &NetworkConfig,
    container_id: &str,
    netns: &Path,
    ports: &[PortMapping],
) -> Result<(), NetworkError> {
    check_container_id(container_id)?;
    cfg.network()?
        .detach(container_id, netns, &bridge_options(ports))
}

/// DEL of the whole chain after a failed ADD, errors logged only (the ADD error is the one
/// the caller needs).
fn undo(plugins: &[Value], inv: &Invocation<'_>, prev: Option<&Value>) {
    for conf in plugins.iter().rev() {
        if let Err(e) = del(inv, &with_prev(conf, prev)) {
            tracing::warn!(error = %e, "cannot undo a failed attach");
        }
    }
}

fn with_prev(conf: &Value, prev: Option<&Value>) -> Value {
    let mut conf = conf.clone();
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf
}

/// Containers reach the outside through the host's routing (`ipMasq` NATs them): turn on
/// IPv4 forwarding, which is off on a fresh host. The bridge plugin would too (with
/// `isGateway`), but saying so here makes the host change explicit.
fn enable_ip_forward() -> Result<(), NetworkError> {
    let current =
        std::fs::read_to_string(IP_FORWARD).map_err(NetworkError::io("read", IP_FORWARD))?;
    if current.trim() != "1" {
        std::fs::write(IP_FORWARD, "1")
            .map_err(NetworkError::io("enable IP forwarding in", IP_FORWARD))?;
        tracing::info!("enabled IPv4 forwarding ({IP_FORWARD})");
    }
    Ok(())
}
