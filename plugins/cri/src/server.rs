//! The gRPC server: the socket (mode 0660, a stale one replaced, a live one refused), both
//! CRI services with a 16 MiB message limit, the start-up log, and a clean stop on SIGTERM or
//! SIGINT. Containers keep running under their monitors when the server stops or is killed;
//! a new server reports them as they are, from the store and the records.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use strata_engine_containers::Engine;
use strata_plugin_api::Host;
use strata_plugin_bridge::HostStore;

use crate::config::CriConfig;

/// What every RPC shares.
pub struct Cri {
    pub host: Host,
    /// The engine, for the life of the process (containers in the index borrow it).
    pub engine: &'static Engine,
    /// The CRI containers in memory (`index.rs`).
    pub index: crate::index::Index,
    pub config: CriConfig,
    pub root: PathBuf,
    pub runroot: PathBuf,
    /// Container events for `GetContainerEvents` subscribers.
    pub events: crate::events::Events,
    /// Pulls in flight by image name; concurrent requests for one image share one download
    /// (the slot holds the image ID once it is done).
    pub pulls: Mutex<HashMap<String, Arc<Mutex<Option<String>>>>>,
    /// The pod CIDR the kubelet last gave (`UpdateRuntimeConfig`).
    pub pod_cidr: Mutex<String>,
    /// The streaming server for Exec, Attach and PortForward.
    pub streaming: Option<Arc<crate::stream::Streaming>>,
    /// The user each image runs as, by image ID (an image's config never changes), so that
    /// listing images reads no configs.
    pub image_users: Mutex<HashMap<String, (Option<i64>, String)>>,
    /// Held while a container's image volumes are made and until its record names them,
    /// and by the sweep of unnamed volumes, which must not take a volume being made.
    pub volumes: Mutex<()>,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri")
            .field("config", &self.config)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Cri {
    /// Where CNI attachments of pods are recorded (cached results, per-pod locks).
    pub fn cni_state_dir(&self) -> PathBuf {
        self.runroot.join("cri").join("networks")
    }
}

pub fn serve(host: &Host, config: CriConfig) -> Result<()> {
    crate::log::set_level(&config.log_level);
    let engine: &'static Engine = Box::leak(Box::new(Engine::new(Box::new(HostStore::new(host)))?));
    if engine.rootless() {
        bail!("the CRI server runs as root (a kubelet's runtime manages the node's cgroups and networks)");
    }
    let root = engine.root().to_path_buf();
    let runroot = engine.runroot().to_path_buf();
    let socket = config.socket_path()?;
    let mode = config.mode()?;
    refuse_live(&socket)?;
    let (streaming, stream_listener) =
        crate::stream::Streaming::bind(&config.stream_address, config.stream_port)?;
    let cri = Arc::new(Cri {
        host: *host,
        engine,
        index: crate::index::Index::default(),
        root,
        runroot,
        events: crate::events::Events::new(),
        pulls: Mutex::new(HashMap::new()),
        volumes: Mutex::new(()),
        pod_cidr: Mutex::new(String::new()),
        streaming: Some(streaming),
        image_users: Mutex::new(HashMap::new()),
        config,
    });
    // Leftovers of a killed server go before the socket listens: a client that can connect
    // sees the recovered state.
    if let Err(e) = crate::image_volume::sweep(&cri) {
        crate::log::warn(format_args!("image volumes left behind: {e:#}"));
    }
    let listener = bind(&socket, mode)?;
    crate::stream::serve(cri.clone(), stream_listener);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .thread_name("strata-cri")
        .build()
        .context("start the server's runtime")?;
    let result = rt.block_on(run(cri, listener, socket.clone()));
    let _ = std::fs::remove_file(&socket);
    result
}

/// Fails when a live server listens on `socket` (checked before any recovery work).
fn refuse_live(socket: &std::path::Path) -> Result<()> {
    if socket.exists() && std::os::unix::net::UnixStream::connect(socket).is_ok() {
        bail!(
            "{} is in use: another CRI server listens there (stop it, or pick another --listen)",
            socket.display()
        );
    }
    Ok(())
}

/// Binds the socket: a leftover file nobody listens on is replaced, a live server refused.
fn bind(socket: &std::path::Path, mode: u32) -> Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if socket.exists() {
        refuse_live(socket)?;
        std::fs::remove_file(socket)
            .with_context(|| format!("remove the stale socket {}", socket.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("set the mode of {}", socket.display()))?;
    l.set_nonblocking(true)
        .context("make the socket non-blocking")?;
    Ok(l)
}

async fn run(
    cri: Arc<Cri>,
    listener: std::os::unix::net::UnixListener,
    socket: PathBuf,
) -> Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener).context("serve the socket")?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    // The generated services with the RPCs newer than their proto (`newer.rs`).
    let runtime = crate::newer::RuntimeV1::new(cri.clone());
    let images = crate::newer::ImageV1::new(cri.clone());
    banner(&cri, &socket);
    crate::events::watch(cri.clone());
    // On SIGTERM or SIGINT: stop taking connections, let calls in flight finish, and leave
    // after at most two seconds even if clients keep their connections open.
    let stopping = Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            crate::log::warn(format_args!("cannot watch for SIGTERM; stop with SIGKILL"));
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        crate::log::info(format_args!(
            "stopping (containers keep running under their monitors)"
        ));
        notify.notify_waiters();
    });
    let graceful = {
        let stopping = stopping.clone();
        async move { stopping.notified().await }
    };
    let server = tonic::transport::Server::builder()
        .add_service(runtime)
        .add_service(images)
        .serve_with_incoming_shutdown(incoming, graceful);
    tokio::select! {
        r = server => r.context("serve gRPC")?,
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        } => {}
    }
    Ok(())
}

fn banner(cri: &Cri, socket: &std::path::Path) {
    let c = &cri.config;
    let info = cri.engine.info();
    crate::log::info(format_args!(
        "strata CRI server {} (CRI v1) listening on unix://{} (mode {})",
        env!("CARGO_PKG_VERSION"),
        socket.display(),
        c.socket_mode
    ));
    crate::log::info(format_args!(
        "store {} (run state {}), driver {}; runtime handlers {} (default {}); cgroup driver {}",
        info.root.display(),
        info.runroot.display(),
        info.driver,
        c.runtimes.keys().cloned().collect::<Vec<_>>().join(", "),
        c.default_runtime,
        c.cgroup_driver
    ));
    let net = match crate::sandbox::pod_network(cri) {
        Ok(n) => format!("pod network {:?}", n.list.name),
        Err(e) => format!("no pod network yet ({e:#})"),
    };
    crate::log::info(format_args!(
        "CNI configs in {}, plugins in {}: {net}",
        c.cni_config_dir.display(),
        c.cni_plugin_dirs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    ));
    if let Some(s) = &cri.streaming {
        crate::log::info(format_args!(
            "streaming server (exec, attach, port-forward; SPDY/3.1 and websocket) on http://{}",
            s.addr()
        ));
    }
    let sandboxes = crate::records::all(&cri.root);
    if !sandboxes.is_empty() {
        crate::log::info(format_args!(
            "found {} pod sandboxes from before ({} ready)",
            sandboxes.len(),
            sandboxes.iter().filter(|s| s.ready).count()
        ));
    }
}
