//! Pod sandboxes: an engine pod whose infra container (catatonit from the locally made pause
//! image) holds the pod's network, IPC and UTS namespaces, which its containers join.
//!
//! RunPodSandbox, in order: the sandbox's files (`hostname`, `hosts`, `resolv.conf` from the
//! DNS config), a pinned network namespace attached to the pod network (the first CNI
//! configuration list in the config directory, kubelet-style `CNI_ARGS`, hostPorts through
//! the `portMappings` capability), the engine pod with that namespace, and its infra
//! container started. A failure undoes what was done. Host-network pods skip the namespace
//! and CNI and share the host's UTS namespace. Stop stops every container of the pod, the
//! infra container, and releases the network (CNI DEL with the cached result); remove
//! deletes containers, pod and records. Both are idempotent: a missing ID is fine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_cri::v1 as cri;
use strata_engine_containers::{LinuxExtras, MountSpec, NetworkMode, Status};
use strata_engine_network::{AttachOptions, CniNetwork, NetworkList, PortMapping, Protocol};
use strata_engine_pods::{self as pods, PodOptions};
use strata_plugin_api::ErrorKind;

use crate::records::{self, Sandbox};
use crate::rpc::kinded;
use crate::server::Cri;

/// The pod network: the first configuration list of the CNI config directory.
pub fn pod_network(cri: &Cri) -> Result<CniNetwork> {
    let list = NetworkList::find_in(&cri.config.cni_config_dir, None).with_context(|| {
        format!(
            "no usable CNI network in {}",
            cri.config.cni_config_dir.display()
        )
    })?;
    Ok(CniNetwork {
        list,
        cni_path: cri.config.cni_plugin_dirs.clone(),
        state_dir: cri.cni_state_dir(),
    })
}

use crate::records::now_nanos;

/// The engine pod's name for a Kubernetes pod (unique per name, namespace, UID and attempt,
/// as the kubelet expects).
fn pod_name(m: &cri::PodSandboxMetadata) -> String {
    format!("k8s_{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

fn check_metadata(m: &cri::PodSandboxMetadata) -> Result<()> {
    if m.name.is_empty() || m.namespace.is_empty() || m.uid.is_empty() {
        return Err(kinded(
            ErrorKind::InvalidArgument,
            "the sandbox metadata needs a name, a namespace and a UID",
        ));
    }
    for (what, v) in [
        ("name", &m.name),
        ("namespace", &m.namespace),
        ("uid", &m.uid),
    ] {
        if v.contains(['/', '_', '\0']) || v.len() > 253 {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!("the sandbox {what} {v:?} is not a valid Kubernetes name"),
            ));
        }
    }
    Ok(())
}

/// The pod's user namespace mapping (`userns_options` mode POD): one uid and one gid range,
/// each mapping container ID 0, as the kubelet allocates them; `None` for the host's (NODE,
/// or none given). CONTAINER and TARGET modes are refused, as the CRI says.
pub fn pod_id_map(config: &cri::PodSandboxConfig) -> Result<Option<strata_types::IdMap>> {
    let Some(u) = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .and_then(|n| n.userns_options.as_ref())
    else {
        return Ok(None);
    };
    let bad = |m: &str| kinded(ErrorKind::InvalidArgument, format!("user namespace: {m}"));
    match cri::NamespaceMode::try_from(u.mode) {
        Ok(cri::NamespaceMode::Node) => return Ok(None),
        Ok(cri::NamespaceMode::Pod) => {}
        _ => return Err(bad("the mode must be POD or NODE")),
    }
    let one = |ms: &[cri::IdMapping], what: &str| -> Result<strata_types::IdRange> {
        match ms {
            [m] if m.container_id == 0 && m.length > 0 => Ok(strata_types::IdRange {
                inside: 0,
                outside: m.host_id,
                count: m.length,
            }),
            [_] => Err(bad(&format!("the {what} mapping must map container ID 0"))),
            _ => Err(bad(&format!("exactly one {what} mapping is supported"))),
        }
    };
    Ok(Some(strata_types::IdMap {
        uids: vec![one(&u.uids, "uid")?],
        gids: vec![one(&u.gids, "gid")?],
    }))
}

fn resolv_conf(dns: Option<&cri::DnsConfig>) -> String {
    match dns {
        Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
            let mut out = String::new();
            if !d.searches.is_empty() {
                out.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            for s in &d.servers {
                out.push_str(&format!("nameserver {s}\n"));
            }
            if !d.options.is_empty() {
                out.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            out
        }
        _ => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// The sandbox's files its containers bind-mount, written into its directory.
fn write_files(
    dir: &Path,
    hostname: &str,
    host_net: bool,
    dns: Option<&cri::DnsConfig>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_owned()
    };
    records::write_atomic(&dir.join("hosts"), hosts.as_bytes())?;
    records::write_atomic(&dir.join("hostname"), format!("{hostname}\n").as_bytes())?;
    records::write_atomic(&dir.join("resolv.conf"), resolv_conf(dns).as_bytes())?;
    Ok(())
}

/// The bind mounts of the sandbox's files, for the infra container and every container.
pub fn file_mounts(root: &Path, id: &str) -> Vec<MountSpec> {
    let dir = records::sandbox_dir(root, id);
    ["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|f| MountSpec {
            kind: "bind".into(),
            source: dir.join(f).display().to_string(),
            destination: format!("/etc/{f}"),
            read_only: false,
            options: Vec::new(),
        })
        .collect()
}

fn ports(config: &cri::PodSandboxConfig) -> Vec<PortMapping> {
    config
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0 && p.container_port > 0)
        .map(|p| PortMapping {
            host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
            host_port: p.host_port as u16,
            container_port: p.container_port as u16,
            protocol: if p.protocol == cri::Protocol::Udp as i32 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
        })
        .collect()
}

fn cni_args(m: &cri::PodSandboxMetadata, id: &str) -> Vec<(String, String)> {
    vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("K8S_POD_NAMESPACE".into(), m.namespace.clone()),
        ("K8S_POD_NAME".into(), m.name.clone()),
        ("K8S_POD_INFRA_CONTAINER_ID".into(), id.to_owned()),
        ("K8S_POD_UID".into(), m.uid.clone()),
    ]
}

/// Sysctls the pod asks for, checked: a host-network pod may not set network ones (they
/// would change the node), as CRI-O refuses.
fn sysctls(
    config: &cri::PodSandboxConfig,
    host_net: bool,
    host_ipc: bool,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let linux = config.linux.clone().unwrap_or_default();
    for (k, v) in &linux.sysctls {
        let net = k.starts_with("net.");
        let ipc = k.starts_with("kernel.shm")
            || k.starts_with("kernel.msg")
            || k == "kernel.sem"
            || k.starts_with("fs.mqueue.");
        if (net && host_net) || (ipc && host_ipc) {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!("sysctl {k} is not allowed: the pod shares the host's namespace for it"),
            ));
        }
        if !net && !ipc && k != "kernel.domainname" && k != "kernel.hostname" {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!("sysctl {k} is not namespaced: it would change the whole node"),
            ));
        }
        out.push((k.clone(), v.clone()));
    }
    out.sort();
    Ok(out)
}

pub fn run(cri: &Cri, req: cri::RunPodSandboxRequest) -> Result<String> {
    let config = req
        .config
        .ok_or_else(|| crate::rpc::missing("sandbox config"))?;
    let meta = config.metadata.clone().unwrap_or_default();
    check_metadata(&meta)?;
    let runtime = cri
        .config
        .runtime_for(&req.runtime_handler)
        .map_err(|m| kinded(ErrorKind::InvalidArgument, m))?;
    let linux = config.linux.clone().unwrap_or_default();
    let sec = linux.security_context.clone().unwrap_or_default();
    let ns = sec.namespace_options.clone().unwrap_or_default();
    let host_net = ns.network == cri::NamespaceMode::Node as i32;
    let host_pid = ns.pid == cri::NamespaceMode::Node as i32;
    let host_ipc = ns.ipc == cri::NamespaceMode::Node as i32;
    let id_map = pod_id_map(&config)?;
    if id_map.is_some() && !crate::config::supports_userns(&runtime) {
        return Err(kinded(
            ErrorKind::Unsupported,
            format!("the runtime {runtime} does not run pods in user namespaces here (crun does)"),
        ));
    }
    let sysctls = sysctls(&config, host_net, host_ipc)?;
    let name = pod_name(&meta);
    if records::all(&cri.root).iter().any(|s| s.pod_name == name) {
        return Err(kinded(
            ErrorKind::AlreadyExists,
            format!("a pod sandbox named {name} already exists"),
        ));
    }
    // No hostname given: the node's, as containerd and CRI-O do (a pod's name can be longer
    // than the 64 bytes a hostname may have).
    let hostname = if host_net || config.hostname.is_empty() {
        host_hostname()
    } else {
        config.hostname.clone()
    };
    let engine = cri.engine;

    // The engine pod first (its ID is the sandbox ID), without starting anything.
    let netns_path = (!host_net).then(|| {
        let n = now_nanos();
        cri.runroot.join("netns").join(format!("cri-{n:x}"))
    });
    let mut extras = LinuxExtras {
        pid: if host_pid {
            "host".into()
        } else {
            String::new()
        },
        ipc: if host_ipc {
            "host".into()
        } else {
            String::new()
        },
        uts: if host_net {
            "host".into()
        } else {
            String::new()
        },
        sysctls,
        cgroup_parent: linux.cgroup_parent.clone(),
        id_map,
        ..LinuxExtras::default()
    };
    if let Some(adj) = config
        .annotations
        .get("io.kubernetes.cri.oom-score-adj")
        .and_then(|v| v.parse().ok())
    {
        extras.oom_score_adj = Some(adj);
    }
    let network = match &netns_path {
        Some(p) => NetworkMode::Path(p.display().to_string()),
        None => NetworkMode::Host,
    };
    // The pod's files live under its ID, which the engine picks; write them after, before
    // the infra container starts (it bind-mounts them).
    let pod = pods::create(
        engine,
        PodOptions {
            name: Some(name.clone()),
            hostname: Some(hostname.clone()),
            network,
            publish: Vec::new(),
            labels: records::sorted(&config.labels).into_iter().collect(),
            runtime: runtime.clone(),
            linux: extras,
            mounts: Vec::new(),
        },
    )?;
    let mut sandbox = Sandbox {
        id: pod.id.clone(),
        pod_name: name,
        created_at: now_nanos(),
        ready: false,
        netns: netns_path.as_ref().map(|p| p.display().to_string()),
        network: None,
        ip: None,
        runtime_handler: req.runtime_handler.clone(),
        runtime,
        config: config.clone(),
    };
    let done = setup(cri, &mut sandbox, &hostname, host_net, &config);
    if let Err(e) = done {
        crate::log::warn(format_args!(
            "RunPodSandbox {}: undoing: {e:#}",
            sandbox.pod_name
        ));
        if let Err(u) = teardown(cri, &sandbox) {
            crate::log::warn(format_args!("undo: {u:#}"));
        }
        let _ = pods::remove(engine, &pod, true);
        let _ = records::remove(&cri.root, &sandbox.id);
        return Err(e);
    }
    Ok(sandbox.id)
}

fn setup(
    cri: &Cri,
    s: &mut Sandbox,
    hostname: &str,
    host_net: bool,
    config: &cri::PodSandboxConfig,
) -> Result<()> {
    let dir = records::sandbox_dir(&cri.root, &s.id);
    write_files(&dir, hostname, host_net, config.dns_config.as_ref())?;
    records::save(&cri.root, s)?;
    let net = match &s.netns {
        Some(ns) => {
            let path = PathBuf::from(ns);
            strata_mount::netns::create_netns(&path)
                .with_context(|| format!("create the pod's network namespace {ns}"))?;
            let net = pod_network(cri)
                .map_err(|e| kinded(ErrorKind::FailedPrecondition, format!("{e:#}")))?;
            let opts = AttachOptions {
                ifname: "eth0".into(),
                runtime: strata_engine_network::RuntimeConfig::ports(&ports(config)),
                args: cni_args(&s.metadata(), &s.id),
            };
            Some((net, path, opts))
        }
        None => None,
    };
    // The CNI chain and the infra container's start are independent (the namespace exists
    // already, and catatonit needs no network): run them side by side.
    let id = s.id.clone();
    let (attached, infra) = std::thread::scope(|sc| {
        let job = net.as_ref().map(|(net, path, opts)| {
            sc.spawn(move || {
                net.attach(&id, path, opts)
                    .map(|a| (net.list.name.clone(), a))
                    .with_context(|| format!("attach the pod to CNI network {}", net.list.name))
            })
        });
        let infra = pods::running_infra(cri.engine, &s.id);
        let attached = job.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the CNI attach thread failed")))
        });
        (attached, infra)
    });
    let attached = attached.transpose();
    if let Ok(Some((name, a))) = &attached {
        // Recorded first, so that an undo after a failed infra start detaches it.
        s.network = Some(name.clone());
        s.ip = Some(a.ip.clone());
        records::save(&cri.root, s)?;
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{hostname}\n",
            a.ip
        );
        records::write_atomic(&dir.join("hosts"), hosts.as_bytes())?;
    }
    attached?;
    infra?;
    s.ready = true;
    records::save(&cri.root, s)?;
    Ok(())
}

/// Releases the pod's network: CNI DEL (with the cached result) and the namespace.
fn teardown(cri: &Cri, s: &Sandbox) -> Result<()> {
    if let Some(ns) = &s.netns {
        let path = PathBuf::from(ns);
        if s.network.is_some() {
            let net = pod_network(cri)?;
            let opts = AttachOptions {
                ifname: "eth0".into(),
                runtime: strata_engine_network::RuntimeConfig::ports(&ports(&s.config)),
                args: cni_args(&s.metadata(), &s.id),
            };
            net.detach(&s.id, &path, &opts)
                .with_context(|| format!("detach the pod from CNI network {}", net.list.name))?;
        }
        strata_mount::netns::remove_netns(&path)
            .with_context(|| format!("remove the pod's network namespace {ns}"))?;
    }
    Ok(())
}

pub fn stop(cri: &Cri, id: &str) -> Result<()> {
    let Some(mut s) = records::find(&cri.root, id)? else {
        return Ok(());
    };
    let engine = cri.engine;
    if let Ok(pod) = pods::find(engine, &s.id) {
        let members = pods::members(engine, &pod)?;
        // Containers first, side by side (no grace period: the kubelet stopped them with
        // theirs before), then the infra container, while the network is released.
        let running: Vec<_> = members
            .iter()
            .filter(|c| c.id() != pod.infra)
            .filter(|c| {
                c.state()
                    .map(|st| st.status == Status::Running)
                    .unwrap_or(false)
            })
            .collect();
        std::thread::scope(|sc| -> Result<()> {
            let jobs: Vec<_> = running
                .iter()
                .map(|c| sc.spawn(move || c.stop(std::time::Duration::from_secs(0))))
                .collect();
            for (c, j) in running.iter().zip(jobs) {
                j.join().unwrap_or_else(|_| {
                    Err(strata_engine_containers::Error::msg("stop thread failed"))
                })?;
                crate::events::emit_container(
                    cri,
                    c.id(),
                    cri::ContainerEventType::ContainerStoppedEvent,
                );
            }
            Ok(())
        })?;
        let (stopped, released) = std::thread::scope(|sc| {
            let net = sc.spawn(|| {
                let t = std::time::Instant::now();
                let r = teardown(cri, &s);
                crate::log::debug(format_args!(
                    "pod {}: network released in {:.1?}",
                    s.id,
                    t.elapsed()
                ));
                r
            });
            let t = std::time::Instant::now();
            let stopped = match engine.container(&pod.infra) {
                Ok(infra)
                    if infra
                        .state()
                        .map(|st| st.status == Status::Running)
                        .unwrap_or(false) =>
                {
                    infra
                        .stop(std::time::Duration::from_secs(0))
                        .map_err(anyhow::Error::from)
                }
                _ => Ok(()),
            };
            crate::log::debug(format_args!(
                "pod {}: infra container stopped in {:.1?}",
                s.id,
                t.elapsed()
            ));
            let released = net
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the CNI detach thread failed")));
            (stopped, released)
        });
        stopped?;
        released?;
    } else {
        teardown(cri, &s)?;
    }
    if s.ready || s.network.is_some() {
        s.ready = false;
        s.network = None;
        records::save(&cri.root, &s)?;
    }
    Ok(())
}

pub fn remove(cri: &Cri, id: &str) -> Result<()> {
    let Some(s) = records::find(&cri.root, id)? else {
        return Ok(());
    };
    stop(cri, &s.id)?;
    let engine = cri.engine;
    if let Ok(pod) = pods::find(engine, &s.id) {
        let mut had_volumes = false;
        for c in pods::members(engine, &pod)? {
            had_volumes |=
                crate::container::record(&c).is_some_and(|rec| !rec.image_volumes.is_empty());
            if c.id() != pod.infra {
                cri.index.remove(c.id());
                crate::events::emit_container(
                    cri,
                    c.id(),
                    cri::ContainerEventType::ContainerDeletedEvent,
                );
            }
        }
        let removed = pods::remove(engine, &pod, true);
        // The members' image volumes (and any other no container names any more), swept
        // whether or not every member went; pods without any skip the store query.
        if had_volumes {
            if let Err(e) = crate::image_volume::sweep(cri) {
                crate::log::warn(format_args!(
                    "pod {}: image volumes left behind: {e:#}",
                    s.id
                ));
            }
        }
        removed?;
    }
    records::remove(&cri.root, &s.id)
}

/// Whether the sandbox can take containers: ready and its infra process alive.
pub fn ready(cri: &Cri, s: &Sandbox) -> bool {
    if !s.ready {
        return false;
    }
    pods::find(cri.engine, &s.id)
        .and_then(|p| cri.engine.container(&p.infra))
        .and_then(|c| c.state())
        .map(|st| st.status == Status::Running)
        .unwrap_or(false)
}

pub fn infra_pid(cri: &Cri, s: &Sandbox) -> Option<i32> {
    let pod = pods::find(cri.engine, &s.id).ok()?;
    let st = cri.engine.container(&pod.infra).ok()?.state().ok()?;
    (st.status == Status::Running).then_some(st.pid).flatten()
}

pub fn to_cri(cri: &Cri, s: &Sandbox) -> cri::PodSandbox {
    cri::PodSandbox {
        id: s.id.clone(),
        metadata: Some(s.metadata()),
        state: if ready(cri, s) {
            cri::PodSandboxState::SandboxReady as i32
        } else {
            cri::PodSandboxState::SandboxNotready as i32
        },
        created_at: s.created_at,
        labels: s.config.labels.clone(),
        annotations: s.config.annotations.clone(),
        runtime_handler: s.runtime_handler.clone(),
    }
}

pub fn status(cri: &Cri, id: &str, verbose: bool) -> Result<cri::PodSandboxStatusResponse> {
    let s = records::find(&cri.root, id)?
        .ok_or_else(|| kinded(ErrorKind::NotFound, format!("pod sandbox {id} not found")))?;
    let p = to_cri(cri, &s);
    let ns = s.namespace_options();
    let ip = if p.state == cri::PodSandboxState::SandboxReady as i32 {
        s.ip.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let mut info = std::collections::HashMap::new();
    if verbose {
        let pod = pods::find(cri.engine, &s.id).ok();
        info.insert(
            "info".to_owned(),
            serde_json::json!({
                "pid": infra_pid(cri, &s),
                "infraContainer": pod.as_ref().map(|p| p.infra.clone()),
                "podName": s.pod_name,
                "netns": s.netns,
                "network": s.network,
                "runtime": s.runtime,
                "config": s.config,
            })
            .to_string(),
        );
    }
    let status = cri::PodSandboxStatus {
        id: s.id.clone(),
        metadata: p.metadata.clone(),
        state: p.state,
        created_at: s.created_at,
        network: Some(cri::PodSandboxNetworkStatus {
            ip,
            additional_ips: Vec::new(),
        }),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace { options: Some(ns) }),
        }),
        labels: s.config.labels.clone(),
        annotations: s.config.annotations.clone(),
        runtime_handler: s.runtime_handler.clone(),
    };
    let containers = if verbose {
        crate::container::list(
            cri,
            Some(&cri::ContainerFilter {
                pod_sandbox_id: s.id.clone(),
                ..cri::ContainerFilter::default()
            }),
        )?
        .into_iter()
        .filter_map(|c| {
            crate::container::status(cri, &c.id, false)
                .ok()
                .and_then(|r| r.status)
        })
        .collect()
    } else {
        Vec::new()
    };
    Ok(cri::PodSandboxStatusResponse {
        status: Some(status),
        info,
        containers_statuses: containers,
        timestamp: now_nanos(),
    })
}

pub fn list(cri: &Cri, filter: Option<&cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
    let mut out: Vec<cri::PodSandbox> = records::all(&cri.root)
        .iter()
        .map(|s| to_cri(cri, s))
        .filter(|p| match filter {
            None => true,
            Some(f) => {
                (f.id.is_empty() || p.id.starts_with(&f.id))
                    && f.state.as_ref().is_none_or(|st| st.state == p.state)
                    && records::labels_match(&p.labels, &f.label_selector)
            }
        })
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    out
}
