//! Creating and starting containers: the store record, the root filesystem, the network
//! namespace, the spec, the monitor, and `runtime start`.
//!
//! Order matters for crash safety: every step is recorded or undoable, and a failed start
//! undoes what it did (runtime record, network, mount) so the container stays `created`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use strata_monitor::attach::AttachClient;
use strata_monitor::{launch, MonitorArgs};
use strata_plugin_api::store::CreateContainerRequest;
use strata_plugin_api::ErrorKind;

use crate::config::{ContainerConfig, NetworkMode, METADATA_KEY};
use crate::context::{Container, Ctx};
use crate::errors::{call, kinded};
use crate::runtime::{self, Runtime};
use crate::spec::{self, Ns, SpecInputs};
use crate::state::{self, State, Status};

/// Creates the container in the store with its config; nothing runs yet. Rootless, the config
/// is first checked and adapted (see `crate::rootless::adapt`).
pub fn create(
    ctx: &Ctx<'_>,
    name: Option<String>,
    mut config: ContainerConfig,
) -> Result<Container> {
    if ctx.info.rootless {
        crate::rootless::adapt(&mut config)?;
    }
    let mode = crate::userns::parse(&config.userns, ctx.info.rootless)?;
    // An `auto` block is chosen and recorded (in the store, with the container) under one
    // lock, so two creates never pick the same block.
    let _alloc = match mode {
        crate::userns::Mode::Auto { .. } => {
            Some(crate::userns::allocation_lock(Path::new(&ctx.info.root))?)
        }
        _ => None,
    };
    let used: Vec<(u32, u32)> = match mode {
        crate::userns::Mode::Auto { .. } => ctx
            .store
            .containers()
            .map_err(call)?
            .iter()
            .filter_map(|c| c.id_map.as_ref().and_then(crate::userns::held_block))
            .collect(),
        _ => Vec::new(),
    };
    let id_map = if ctx.info.rootless {
        let ns = crate::userns::OwnNs::current()?;
        if mode == crate::userns::Mode::KeepId && config.user.is_empty() {
            // podman's keep-id: the container runs as the user, as the user's ids.
            config.user = format!("{}:{}", ns.host_uid, ns.host_gid);
        }
        crate::userns::rootless_map(mode, ns, &used)?
    } else {
        crate::userns::id_map(mode, &used)?
    };
    let info = ctx
        .store
        .create_container(&CreateContainerRequest {
            image: config.image_id.clone(),
            name,
            metadata: serde_json::json!({ METADATA_KEY: config }),
            id_map,
        })
        .map_err(call)?;
    let c = Container::from_info(info)?;
    State::default().save(&c.paths)?;
    Ok(c)
}

/// Writes `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for the container.
fn etc_files(c: &Container, ip: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let cfg = &c.config;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost localhost.localdomain\n",
    );
    if cfg.network == NetworkMode::Host {
        hosts = std::fs::read_to_string("/etc/hosts").unwrap_or(hosts);
    } else {
        let addr = ip.unwrap_or("127.0.1.1");
        hosts.push_str(&format!("{addr}\t{} {}\n", cfg.hostname, c.info.name));
    }
    let mut resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if cfg.network == NetworkMode::Slirp4netns {
        resolv = crate::network::slirp::resolv_conf(&resolv);
    }
    let files = [
        ("/etc/hosts", "hosts", hosts),
        ("/etc/hostname", "hostname", format!("{}\n", cfg.hostname)),
        ("/etc/resolv.conf", "resolv.conf", resolv),
    ];
    let mut out = Vec::new();
    for (dest, file, text) in files {
        let p = c.paths.dir.join(file);
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
        out.push((dest.to_owned(), p));
    }
    Ok(out)
}

/// Sets up the network namespace the config asks for; returns the spec's choice, the pinned
/// namespace and the bridge attachment.
fn network(ctx: &Ctx<'_>, c: &Container, state: &mut State) -> Result<Ns> {
    let ncfg = net_config();
    match &c.config.network {
        NetworkMode::Host => Ok(Ns::Host),
        NetworkMode::Container(other) => {
            let o = ctx.container(other)?;
            let s = o.state()?;
            match (s.status, s.netns, s.pid, &o.config.network) {
                (Status::Running, Some(p), _, _) => Ok(Ns::Path(p.into())),
                (Status::Running, None, Some(pid), NetworkMode::None) => {
                    Ok(Ns::Path(format!("/proc/{pid}/ns/net").into()))
                }
                _ => bail!("container {other} is not running with a network namespace of its own"),
            }
        }
        // No network: the runtime makes the namespace and brings loopback up itself (crun
        // and runc both do for a new namespace), which is cheaper than pinning one.
        NetworkMode::None => Ok(Ns::New),
        NetworkMode::Slirp4netns => {
            // Pinned like a bridge's; slirp4netns (a process of its own, outliving this CLI)
            // connects it and forwards the published ports.
            let path = crate::network::netns_path(&ctx.runroot(), c.id());
            strata_mount::netns::create_netns(&path)
                .with_context(|| format!("create network namespace {}", path.display()))?;
            state.netns = Some(path.display().to_string());
            let ports = publish(&c.config)?;
            let s = crate::network::slirp::start(&path, &ports, &slirp_dir(ctx), c.id())?;
            state.network = Some(serde_json::to_value(&s)?);
            Ok(Ns::Path(path))
        }
        NetworkMode::Bridge if ctx.info.rootless => Err(kinded(
            ErrorKind::Unsupported,
            "bridge networking needs root; rootless containers use --network none (the default) or host",
        )),
        NetworkMode::Bridge => {
            // Pinned by a bind mount: CNI configures it before the container exists.
            let path = crate::network::netns_path(&ctx.runroot(), c.id());
            strata_mount::netns::create_netns(&path)
                .with_context(|| format!("create network namespace {}", path.display()))?;
            state.netns = Some(path.display().to_string());
            let ports = publish(&c.config)?;
            let a = crate::network::attach(&ncfg, c.id(), &path, &ports)?;
            state.network = Some(serde_json::to_value(&a)?);
            Ok(Ns::Path(path))
        }
    }
}

/// Where slirp4netns API sockets and logs live: short, as a socket path must be.
fn slirp_dir(ctx: &Ctx<'_>) -> PathBuf {
    ctx.runroot().join("slirp")
}

/// The bridge network. Its address allocations live in one place per machine
/// (`/run/strata/networks`), not per store: every store on the machine shares the bridge.
fn net_config() -> crate::network::NetworkConfig {
    crate::network::NetworkConfig::default()
}

pub fn publish(cfg: &ContainerConfig) -> Result<Vec<crate::network::PortMapping>> {
    let mut all = Vec::new();
    for p in &cfg.publish {
        all.extend(crate::network::parse_publish(p)?);
    }
    Ok(all)
}

/// Releases the network: CNI DEL and the pinned namespace. Idempotent.
pub fn teardown_network(c: &Container, state: &mut State) -> Result<()> {
    if let Some(ns) = state.netns.clone() {
        let path = PathBuf::from(&ns);
        if let Some(n) = &state.network {
            if c.config.network == NetworkMode::Slirp4netns {
                let s: crate::network::slirp::Slirp = serde_json::from_value(n.clone())
                    .context("the container's slirp4netns record is unreadable")?;
                crate::network::slirp::stop(&s)?;
            } else {
                crate::network::detach(&net_config(), c.id(), &path, &publish(&c.config)?)?;
            }
            state.network = None;
        }
        strata_mount::netns::remove_netns(&path)
            .with_context(|| format!("remove network namespace {ns}"))?;
        state.netns = None;
    }
    Ok(())
}

/// How the caller wants to follow the container once it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Return at once (`-d`, `start` without `-a`).
    Detach,
    /// Attach before starting; `cleanup` says whether the caller will clean up after the
    /// exit itself (the monitor then leaves it to the caller unless it disappears).
    Attach { cleanup: bool },
}

/// Starts a created or exited container. Returns the attach connection if asked for.
pub fn start(ctx: &Ctx<'_>, c: &Container, follow: Follow) -> Result<Option<AttachClient>> {
    let _lock = state::lock(&c.paths)?;
    let rt = Runtime::find(&c.config.runtime, &ctx.runroot())?;
    let mut st = c.state()?;
    st.refresh(&c.paths, || runtime_alive(&rt, c.id()));
    if st.status == Status::Running {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("container {} is already running", c.info.name),
        ));
    }
    if st.status == Status::Exited && !st.cleaned {
        cleanup_locked(ctx, c, &mut st, &rt)?;
    }
    let result = start_locked(ctx, c, &rt, &mut st, follow);
    if result.is_err() {
        // Undo: whatever got set up goes, the container stays startable.
        let _ = rt.delete(c.id());
        let _ = teardown_network(c, &mut st);
        if crate::userns_root::needed(ctx.info.rootless, c.info.id_map.as_ref()) {
            let _ = crate::userns_root::hide(c.id());
        }
        let _ = ctx.store.unmount(c.id());
        st.status = if st.started_at.is_some() {
            Status::Exited
        } else {
            Status::Created
        };
        st.cleaned = true;
        let _ = st.save(&c.paths);
    }
    result
}

fn start_locked(
    ctx: &Ctx<'_>,
    c: &Container,
    rt: &Runtime,
    st: &mut State,
    follow: Follow,
) -> Result<Option<AttachClient>> {
    let mut rootfs = PathBuf::from(ctx.store.mount(c.id()).map_err(call)?);
    let user = crate::user::resolve(&rootfs, &c.config.user)?;
    if crate::userns_root::needed(ctx.info.rootless, c.info.id_map.as_ref()) {
        rootfs = crate::userns_root::expose(&rootfs, c.id())?;
    }
    for m in &c.config.mounts {
        if m.kind == "bind" && !std::path::Path::new(&m.source).exists() {
            bail!("bind mount source {} does not exist", m.source);
        }
    }
    st.error = None;
    // Pod members join the infra process's namespaces; everything else gets its own.
    let (net, ipc, uts) = match (&c.config.pod, c.config.infra) {
        (Some(pod), false) => {
            let pid = crate::pods::running_infra(ctx, pod)?;
            let ns = |n: &str| Ns::Path(PathBuf::from(format!("/proc/{pid}/ns/{n}")));
            (ns("net"), ns("ipc"), ns("uts"))
        }
        _ => (network(ctx, c, st)?, Ns::New, Ns::New),
    };
    let ip = st
        .network
        .as_ref()
        .and_then(|n| n.get("ip"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let etc = etc_files(c, ip.as_deref())?;
    let mut spec = spec::generate(&SpecInputs {
        config: &c.config,
        rootfs: &rootfs,
        user: &user,
        cgroups_path: if ctx.info.rootless {
            crate::cgroups::delegated()
                .map(|d| crate::cgroups::prepare_rootless(&d, c.id()))
                .transpose()?
        } else {
            Some(format!("/strata/{}", c.id()))
        },
        net,
        ipc,
        uts,
        cgroupns: runtime::cgroup_v2_only(),
        etc_files: etc,
        rootless: ctx.info.rootless,
        id_map: c.info.id_map.as_ref(),
    })?;
    // The terminal starts with the user's size: the process may ask for it at once.
    if c.config.tty && matches!(follow, Follow::Attach { .. }) {
        if let (Some((rows, cols)), Some(p)) = (crate::attach::window_size(), spec.process_mut()) {
            let size = oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(rows))
                .width(u64::from(cols))
                .build()?;
            p.set_console_size(Some(size));
        }
    }
    let spec_path = c.paths.spec();
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)
        .with_context(|| format!("write {}", spec_path.display()))?;
    // Leftovers of an earlier run.
    for f in ["exit", "attach", "pid", "monitor.pid"] {
        let _ = std::fs::remove_file(c.paths.run_dir.join(f));
    }
    std::fs::create_dir_all(&c.paths.run_dir)?;
    std::fs::create_dir_all(&rt.root)?;
    // A runtime record left by a crash would make `create` fail.
    if rt.root.join(c.id()).exists() {
        let _ = rt.delete(c.id());
    }
    let (exit_cmd, exit_args) = ctx.exit_command(c.id())?;
    let mut args = MonitorArgs::new(
        c.id(),
        &c.paths.dir,
        &rt.path,
        &c.paths.run_dir,
        c.paths.log(),
    );
    args.runtime_args = rt.global_args().into_iter().map(Into::into).collect();
    args.terminal = c.config.tty;
    args.stdin = c.config.stdin;
    args.exit_command = Some(exit_cmd);
    args.exit_command_args = exit_args.into_iter().map(Into::into).collect();
    // One runtime call creates and starts (`run --detach`); an attaching caller is connected
    // from before the container exists, so no output is missed.
    args.start = true;
    let monitor = ctx.monitor_path()?;
    let explain =
        |e: strata_monitor::LaunchError| anyhow::anyhow!("{}", runtime::explain(&e.to_string()));
    let (launched, attach) = match follow {
        Follow::Detach => (launch(&monitor, &args).map_err(explain)?, None),
        Follow::Attach { cleanup } => {
            let (launched, client) =
                strata_monitor::launch::launch_attached(&monitor, &args, cleanup)
                    .map_err(explain)?;
            (launched, Some(client))
        }
    };
    st.status = Status::Running;
    st.pid = Some(launched.container_pid);
    st.monitor_pid = Some(launched.monitor_pid);
    st.monitor_start = state::process_start(launched.monitor_pid);
    st.runtime = Some(rt.name.clone());
    st.exit_code = None;
    st.finished_at = None;
    st.finished_unix = None;
    st.cleaned = false;
    let now = state::now();
    st.started_at = Some(now.0);
    st.started_unix = Some(now.1);
    st.save(&c.paths)?;
    Ok(attach)
}

pub fn runtime_alive(rt: &Runtime, id: &str) -> Option<bool> {
    match rt.state(id) {
        Ok(Some(s)) => Some(s.status == "running" || s.status == "created" || s.status == "paused"),
        Ok(None) => Some(false),
        Err(_) => None,
    }
}

/// After an exit: the runtime's record, the network and the mount go; `--rm` removes the
/// container. Idempotent; the caller holds the lock.
pub fn cleanup_locked(ctx: &Ctx<'_>, c: &Container, st: &mut State, rt: &Runtime) -> Result<()> {
    rt.delete(c.id())?;
    teardown_network(c, st)?;
    if crate::userns_root::needed(ctx.info.rootless, c.info.id_map.as_ref()) {
        crate::userns_root::hide(c.id())?;
    }
    ctx.store.unmount(c.id()).map_err(call)?;
    st.cleaned = true;
    st.save(&c.paths)?;
    Ok(())
}
