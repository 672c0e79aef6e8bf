//! The `cri` workload: `strata cri serve` on each driver beside containerd's CRI plugin
//! (Debian's containerd: runc, the overlayfs snapshotter), through the same gRPC client
//! over their unix sockets, as a kubelet calls them. Every server has a store of its own on
//! the scratch, the run's image, the same locally made pause image (Strata's, exported and
//! imported into containerd) and a CNI list of its own (bridge, host-local, portmap) with a
//! bridge and subnet of its own.
//!
//! - The pod lifecycle, one call per side (param `call`): RunPodSandbox, CreateContainer,
//!   StartContainer, StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox. A
//!   server's seven sides share one pod: each side first brings the pod to its call's stage
//!   (untimed), so the sides stay correct whichever of them the adaptive policy has already
//!   finished.
//! - ListImages and ImageStatus with the profile's `cri_images` images in each store, and
//!   ListContainers with `cri_containers` containers.
//!
//! Root only: both servers run pods as root (a rootless run says so and skips it).
//! Everything a server made goes with it: its pods through the CRI, then the server (and
//! containerd's shims, by PID), its mounts, its bridge and its directories.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use serde_json::json;
use strata_types::Digest;
use tonic::transport::{Channel, Endpoint, Uri};

use super::env::{is_root, output, unmount_below, Env, Store};
use super::measure::{measure, Ctx, Side};
use super::{Outcome, RunError};

/// The run's image, as both servers name it.
const IMAGE: &str = "localhost/bench:latest";
/// The lifecycle's calls, in order.
const CALLS: [&str; 7] = [
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
];
/// The drivers `strata cri serve` runs pods on here.
const CRI_DRIVERS: [&str; 4] = ["overlay", "fuse-overlay", "vfs", "btrfs"];

fn failed(command: impl Into<String>, why: impl ToString) -> RunError {
    RunError::Command {
        command: command.into(),
        why: why.to_string(),
    }
}

/// A synchronous CRI v1 client over a unix socket.
struct Client {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl Client {
    fn connect(socket: &Path) -> Result<Client, RunError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RunError::io("start the gRPC client's runtime"))?;
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(async move {
                // A hung server fails its call instead of hanging the run.
                Endpoint::from_static("http://[::]:50051")
                    .connect_timeout(Duration::from_secs(30))
                    .timeout(Duration::from_secs(300))
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await
            })
            .map_err(|e| failed(format!("connect to {}", socket.display()), e))?;
        Ok(Client { rt, channel })
    }

    /// The runtime service (16 MiB messages, as the kubelet allows).
    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone()).max_decoding_message_size(16 << 20)
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone()).max_decoding_message_size(16 << 20)
    }

    fn call<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, RunError> {
        self.rt
            .block_on(f)
            .map(tonic::Response::into_inner)
            .map_err(|s| {
                failed(
                    format!("CRI {what}"),
                    format!("{:?}: {}", s.code(), s.message()),
                )
            })
    }

    fn image_status(&self, image: &str) -> Result<api::ImageStatusResponse, RunError> {
        self.call(
            "ImageStatus",
            self.images().image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            }),
        )
    }

    fn image_known(&self, image: &str) -> bool {
        self.image_status(image).is_ok_and(|r| r.image.is_some())
    }

    /// Stops and removes every pod (and so every container) the server has.
    fn remove_all_pods(&self) -> Result<(), RunError> {
        let pods = self.call(
            "ListPodSandbox",
            self.runtime()
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
        )?;
        // Every pod is tried; the first error is returned.
        let mut first = Ok(());
        for p in pods.items {
            let r = self
                .call(
                    "StopPodSandbox",
                    self.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    }),
                )
                .and_then(|_| {
                    self.call(
                        "RemovePodSandbox",
                        self.runtime()
                            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                                pod_sandbox_id: p.id,
                            }),
                    )
                });
            if let (Err(e), true) = (r, first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }
}

/// A running CRI server with its client; everything it made is removed on drop.
struct Server {
    tool: &'static str,
    driver: String,
    client: Option<Client>,
    child: Child,
    /// Its store (strata) or its directories (containerd's root, state and socket).
    store: Store,
    bridge: String,
    logs: PathBuf,
    log_file: PathBuf,
    socket: PathBuf,
}

impl Server {
    fn client(&self) -> &Client {
        // Set from start to drop.
        self.client
            .as_ref()
            .expect("a server has its client until dropped")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    }

    /// Until the socket accepts a connection (the child alive), at most 30 s.
    fn wait_listening(&mut self, what: &str) -> Result<(), RunError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(failed(
                    what,
                    format!("exited with {st}: {}", self.log_tail()),
                ));
            }
            if Instant::now() > deadline {
                return Err(failed(
                    what,
                    format!("did not listen within 30 s: {}", self.log_tail()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.client = Some(Client::connect(&self.socket)?);
        Ok(())
    }

    /// containerd's shims for this instance (by the `-address SOCKET` of their command line).
    fn shims(&self) -> Vec<i32> {
        let sock = self.socket.to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let raw = String::from_utf8_lossy(&raw);
            let args: Vec<&str> = raw.split('\0').collect();
            let shim = args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"));
            if shim && args.windows(2).any(|w| w[0] == "-address" && w[1] == sock) {
                pids.push(pid);
            }
        }
        pids
    }
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.remove_all_pods();
        }
        let shims = if self.tool == "containerd" {
            self.shims()
        } else {
            Vec::new()
        };
        if let Ok(pid) = i32::try_from(self.child.id()) {
            signal(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in shims {
            signal(pid, rustix::process::Signal::KILL);
        }
        unmount_below(self.store.run_dir());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.store.remove();
    }
}

/// A bridge conflist of its own for server `i` (bridge `sbench<PID>-<i>` at most 15 bytes,
/// subnet `10.217.i.0/24`), its leases below `ipam`.
fn write_conflist(dir: &Path, bridge: &str, i: usize, ipam: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(RunError::io(dir.display().to_string()))?;
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "strata-bench",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": format!("10.217.{i}.0/24")}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam.to_string_lossy(),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let p = dir.join("10-strata-bench.conflist");
    std::fs::write(&p, conf.to_string()).map_err(RunError::io(p.display().to_string()))
}

fn bridge_name(i: usize) -> String {
    // "sb" + up to 7 digits of the PID + "-" + the index: at most 15 bytes (IFNAMSIZ - 1).
    format!("sb{}-{i}", std::process::id() % 10_000_000)
}

/// `strata cri serve` on a store of `driver` holding the run's image.
fn start_strata(env: &Env, driver: &str, i: usize) -> Result<Server, RunError> {
    let store = env.store("strata-cri", driver)?;
    output(
        store
            .strata()
            .args(["storage", "load", "--name", IMAGE, &env.image.source]),
    )?;
    let cni = store.dir.join("cni");
    let bridge = bridge_name(i);
    write_conflist(&cni, &bridge, i, &store.dir.join("ipam"))?;
    let config = store.dir.join("cri.toml");
    std::fs::write(&config, "").map_err(RunError::io(config.display().to_string()))?;
    let socket = store.run_dir().join("cri.sock");
    let log_file = store.dir.join("cri.log");
    let log = std::fs::File::create(&log_file).map_err(RunError::io("create the server's log"))?;
    let child = store
        .strata()
        .args([
            "cri",
            "serve",
            "--log-level",
            "warn",
            "--cgroup-driver",
            "cgroupfs",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--cni-config-dir")
        .arg(&cni)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: a terminal's Ctrl-C reaches the bench (which then takes the
        // pods down through it), not the server.
        .process_group(0)
        .spawn()
        .map_err(RunError::io("start strata cri serve"))?;
    let logs = store.dir.join("logs");
    let mut s = Server {
        tool: "strata",
        driver: driver.to_owned(),
        client: None,
        child,
        store,
        bridge,
        logs,
        log_file,
        socket,
    };
    s.wait_listening("strata cri serve")?;
    Ok(s)
}

/// A TOML basic string (JSON's escapes are valid TOML).
fn toml_str(p: &Path) -> String {
    serde_json::Value::String(p.to_string_lossy().into_owned()).to_string()
}

/// containerd with its own root (on the scratch), state and socket (in the short run
/// directory), runc, the overlayfs snapshotter, the pause image `pause`, a CNI list of its
/// own; the archives in `imports` imported before it is used.
fn start_containerd(
    env: &Env,
    i: usize,
    pause: &str,
    imports: &[PathBuf],
) -> Result<Server, RunError> {
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| {
            RunError::Usage("containerd's CRI needs runc: it is not installed".into())
        })?;
    let store = env.store("containerd", "overlay")?;
    let (dir, run) = (store.dir.clone(), store.run_dir().to_path_buf());
    let cni = dir.join("cni");
    let bridge = bridge_name(i);
    write_conflist(&cni, &bridge, i, &dir.join("ipam"))?;
    let socket = run.join("containerd.sock");
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    let config = format!(
        r#"version = 2
root = {root}
state = {state}
temp = {temp}
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.opt", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = {socket}

[plugins]
  [{cri}]
    sandbox_image = {pause}
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_tcp_service = true
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    systemd_cgroup = false
    [{cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [{cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [{cri}.containerd.runtimes.runc.options]
          BinaryName = {runc}
          Root = {runc_root}
          SystemdCgroup = false
    [{cri}.cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = {cni}
      max_conf_num = 1
"#,
        root = toml_str(&dir.join("root")),
        state = toml_str(&run.join("state")),
        temp = toml_str(&dir.join("tmp")),
        socket = toml_str(&socket),
        pause = toml_str(Path::new(pause)),
        runc = toml_str(Path::new(runc)),
        runc_root = toml_str(&run.join("state/runc")),
        cni = toml_str(&cni),
    );
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).map_err(RunError::io("write containerd's config"))?;
    let log_file = dir.join("containerd.log");
    let log = std::fs::File::create(&log_file).map_err(RunError::io("create containerd's log"))?;
    let child = Command::new("containerd")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(RunError::io("start containerd"))?;
    let logs = dir.join("logs");
    let mut s = Server {
        tool: "containerd",
        driver: "overlay".into(),
        client: None,
        child,
        store,
        bridge,
        logs,
        log_file,
        socket,
    };
    s.wait_listening("containerd")?;
    for archive in imports {
        ctr_import(&s, archive)?;
    }
    // The CRI plugin learns of imported images from events, a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(s.client().image_known(pause) && s.client().image_known(IMAGE)) {
        if Instant::now() > deadline {
            return Err(failed(
                "containerd's CRI plugin",
                "did not list the imported images within 30 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(s)
}

fn ctr_import(s: &Server, archive: &Path) -> Result<(), RunError> {
    output(
        Command::new("ctr")
            .arg("--address")
            .arg(&s.socket)
            .args([
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "overlayfs",
            ])
            .arg(archive),
    )
    .map(drop)
}

/// One pod of a server going through the lifecycle, a call at a time.
struct Lifecycle<'s> {
    server: &'s Server,
    /// The next call (an index of [`CALLS`]).
    stage: usize,
    pod: String,
    container: String,
    config: api::PodSandboxConfig,
    seq: u32,
}

impl<'s> Lifecycle<'s> {
    fn new(server: &'s Server) -> Lifecycle<'s> {
        Lifecycle {
            server,
            stage: 0,
            pod: String::new(),
            container: String::new(),
            config: api::PodSandboxConfig::default(),
            seq: 0,
        }
    }

    /// Makes the next call.
    fn step(&mut self) -> Result<(), RunError> {
        let c = self.server.client();
        let rt = c.runtime();
        match self.stage {
            0 => {
                self.seq += 1;
                self.config = pod_config(&format!("bench-{}", self.seq), &self.server.logs);
                self.pod = c
                    .call(
                        CALLS[0],
                        rt.clone().run_pod_sandbox(api::RunPodSandboxRequest {
                            config: Some(self.config.clone()),
                            runtime_handler: String::new(),
                        }),
                    )?
                    .pod_sandbox_id;
            }
            1 => {
                self.container = c
                    .call(
                        CALLS[1],
                        rt.clone().create_container(api::CreateContainerRequest {
                            pod_sandbox_id: self.pod.clone(),
                            config: Some(container_config("main", &["/bin/sleep", "3600"])),
                            sandbox_config: Some(self.config.clone()),
                        }),
                    )?
                    .container_id;
            }
            2 => {
                c.call(
                    CALLS[2],
                    rt.clone().start_container(api::StartContainerRequest {
                        container_id: self.container.clone(),
                    }),
                )?;
            }
            3 => {
                c.call(
                    CALLS[3],
                    rt.clone().stop_container(api::StopContainerRequest {
                        container_id: self.container.clone(),
                        timeout: 0,
                    }),
                )?;
            }
            4 => {
                c.call(
                    CALLS[4],
                    rt.clone().remove_container(api::RemoveContainerRequest {
                        container_id: self.container.clone(),
                    }),
                )?;
            }
            5 => {
                c.call(
                    CALLS[5],
                    rt.clone().stop_pod_sandbox(api::StopPodSandboxRequest {
                        pod_sandbox_id: self.pod.clone(),
                    }),
                )?;
            }
            _ => {
                c.call(
                    CALLS[6],
                    rt.clone().remove_pod_sandbox(api::RemovePodSandboxRequest {
                        pod_sandbox_id: self.pod.clone(),
                    }),
                )?;
            }
        }
        self.stage = (self.stage + 1) % CALLS.len();
        Ok(())
    }

    /// Times call `k`, after bringing the pod to it untimed. After a failure the server's
    /// pods are removed and the next sample starts a new pod, so one failed call does not
    /// leave the others retrying what cannot be retried (a second start, a taken name).
    fn sample(&mut self, k: usize) -> Result<f64, RunError> {
        let r = self.timed(k);
        if r.is_err() {
            self.reset();
        }
        r
    }

    fn timed(&mut self, k: usize) -> Result<f64, RunError> {
        while self.stage != k {
            self.step()?;
        }
        let t = Instant::now();
        self.step()?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// Every pod of the server removed (as far as it goes), the next call a RunPodSandbox.
    fn reset(&mut self) {
        let _ = self.server.client().remove_all_pods();
        self.stage = 0;
    }

    /// Takes the pod through to its removal (untimed).
    fn finish(&mut self) -> Result<(), RunError> {
        while self.stage != 0 {
            self.step()?;
        }
        Ok(())
    }

    /// One whole pod, untimed.
    fn finish_one(&mut self) -> Result<(), RunError> {
        self.step()?;
        self.finish()
    }
}

fn pod_config(name: &str, logs: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.display().to_string(),
        labels: HashMap::from([("app".to_owned(), name.to_owned())]),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, command: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(api::NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Appends a regular file to an archive being written.
fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = crate::synth::header(tar::EntryType::Regular, 0o644, data.len() as u64);
    tar.append_data(&mut h, name, data)
}

/// Appends a blob of an OCI layout; returns its digest.
fn blob<W: Write>(tar: &mut tar::Builder<W>, data: &[u8]) -> std::io::Result<String> {
    let d = Digest::of(data);
    append(tar, &format!("blobs/sha256/{}", d.hex()), data)?;
    Ok(d.as_str().to_owned())
}

/// An OCI archive of `n` one-layer images of a file each, named
/// `localhost/bench-list-I:latest` (uncompressed layers: a few hundred bytes each).
fn list_images(path: &Path, n: usize) -> Result<Vec<String>, RunError> {
    let f =
        std::fs::File::create(path).map_err(RunError::io(format!("create {}", path.display())))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(f));
    let mut names = Vec::new();
    let mut manifests = Vec::new();
    let mut write = || -> std::io::Result<()> {
        append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for i in 0..n {
            let mut layer = tar::Builder::new(Vec::new());
            append(
                &mut layer,
                &format!("etc/bench-list-{i}"),
                format!("{i}\n").as_bytes(),
            )?;
            let layer = layer.into_inner()?;
            let layer_digest = blob(&mut tar, &layer)?;
            let config = json!({
                "architecture": strata_types::arch::go_arch(),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            })
            .to_string();
            let config_digest = blob(&mut tar, config.as_bytes())?;
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config.len(),
                },
                "layers": [{
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer.len(),
                }],
            })
            .to_string();
            let manifest_digest = blob(&mut tar, manifest.as_bytes())?;
            let name = format!("localhost/bench-list-{i}:latest");
            manifests.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }));
            names.push(name);
        }
        let index = json!({"schemaVersion": 2, "manifests": manifests}).to_string();
        append(&mut tar, "index.json", index.as_bytes())?;
        tar.finish()?;
        Ok(())
    };
    write().map_err(RunError::io(format!("write {}", path.display())))?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(RunError::io(format!("write {}", path.display())))?;
    Ok(names)
}

pub(super) fn cri(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    if !is_root() {
        out.skip(
            "workload cri",
            "the CRI servers run pods as root: run strata bench as root to measure them",
        );
        return Ok(());
    }
    if !env.image.runnable {
        return Ok(());
    }
    // Servers (strata's first, so its pause image exists for containerd).
    let mut servers: Vec<Server> = Vec::new();
    let drivers: Vec<&String> = env
        .drivers
        .iter()
        .filter(|d| CRI_DRIVERS.contains(&d.as_str()))
        .collect();
    for (i, d) in drivers.iter().enumerate() {
        let what = format!("cri [strata on {d}]");
        match start_strata(env, d, i).and_then(|s| {
            // First-use costs (the pause image, the bridge) before anything is timed.
            Lifecycle::new(&s).finish_one()?;
            Ok(s)
        }) {
            Ok(s) => servers.push(s),
            Err(e) => out.skip(what, format!("setup failed: {e}")),
        }
    }
    if servers.is_empty() {
        return Ok(());
    }
    let dir = env.work().join("cri");
    std::fs::create_dir_all(&dir).map_err(RunError::io(dir.display().to_string()))?;
    if env.tool("containerd").is_some() {
        let r = (|| -> Result<Server, RunError> {
            let first = &servers[0];
            let pause = first
                .client()
                .call(
                    "ListImages",
                    first
                        .client()
                        .images()
                        .list_images(api::ListImagesRequest { filter: None }),
                )?
                .images
                .into_iter()
                .flat_map(|i| i.repo_tags)
                .find(|t| t.starts_with("localhost/strata-pause:"))
                .ok_or_else(|| failed("find strata's pause image", "not listed after a pod ran"))?;
            let mut archives = Vec::new();
            for (name, file) in [(pause.as_str(), "pause.tar"), (IMAGE, "image.tar")] {
                let a = dir.join(file);
                output(
                    first
                        .store
                        .strata()
                        .args(["save", "-q", "--format", "oci-archive", "-o"])
                        .arg(&a)
                        .arg(name),
                )?;
                archives.push(a);
            }
            // The index after every strata server's, started or not: bridges never repeat.
            let s = start_containerd(env, drivers.len(), &pause, &archives)?;
            Lifecycle::new(&s).finish_one()?;
            Ok(s)
        })();
        match r {
            Ok(s) => servers.push(s),
            Err(e) => out.skip("cri [containerd on overlay]", format!("setup failed: {e}")),
        }
    }
    let r = measure_servers(env, ctx, out, &servers, &dir);
    // Servers go in reverse: containerd first.
    while let Some(s) = servers.pop() {
        drop(s);
    }
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn measure_servers(
    env: &Env,
    ctx: &Ctx<'_>,
    out: &mut Outcome,
    servers: &[Server],
    dir: &Path,
) -> Result<(), RunError> {
    let cold = || env.drop_caches();
    // The lifecycle: seven sides per server sharing its pod.
    let lifecycles: Vec<Rc<RefCell<Lifecycle<'_>>>> = servers
        .iter()
        .map(|s| Rc::new(RefCell::new(Lifecycle::new(s))))
        .collect();
    let mut sides = Vec::new();
    for (s, l) in servers.iter().zip(&lifecycles) {
        for (k, call) in CALLS.iter().enumerate() {
            let l = Rc::clone(l);
            sides.push(
                Side::new("cri", s.tool, Some(s.driver.as_str()), move || {
                    l.borrow_mut().sample(k)
                })
                .param("call", call),
            );
        }
    }
    measure(ctx, &cold, "cri: the pod lifecycle", sides, out)?;
    for l in &lifecycles {
        let mut l = l.borrow_mut();
        if l.finish().is_err() {
            l.reset();
        }
    }
    drop(lifecycles);

    // Lists: images.
    let n = env.profile.cri_images;
    let names = match load_list_images(servers, dir, n) {
        Ok(names) => names,
        Err(e) => {
            out.skip(
                "cri call=ListImages, ImageStatus",
                format!("setup failed: {e}"),
            );
            Vec::new()
        }
    };
    let mut sides = Vec::new();
    for s in servers {
        let c = s.client();
        sides.push(
            Side::new("cri", s.tool, Some(s.driver.as_str()), move || {
                timed_call(
                    "ListImages",
                    || {
                        c.call(
                            "ListImages",
                            c.images()
                                .list_images(api::ListImagesRequest { filter: None }),
                        )
                    },
                    |r| (r.images.len() < n).then(|| format!("{} images, not {n}", r.images.len())),
                )
            })
            .param("call", "ListImages")
            .param("images", n),
        );
        let mut i = 0;
        let names = &names;
        sides.push(
            Side::new("cri", s.tool, Some(s.driver.as_str()), move || {
                let name = &names[i % names.len()];
                i += 1;
                timed_call(
                    "ImageStatus",
                    || c.image_status(name),
                    |r| r.image.is_none().then(|| format!("{name} not found")),
                )
            })
            .param("call", "ImageStatus")
            .param("images", n),
        );
    }
    if !names.is_empty() {
        measure(ctx, &cold, "cri: image lists", sides, out)?;
    }

    // Lists: containers, in one pod of each server.
    let m = env.profile.cri_containers;
    if let Err(e) = create_list_containers(servers, m) {
        out.skip("cri call=ListContainers", format!("setup failed: {e}"));
        for s in servers {
            // Dropping the server tries again and says nothing: failing here would lose the
            // whole run's results.
            let _ = s.client().remove_all_pods();
        }
        return Ok(());
    }
    let sides = servers
        .iter()
        .map(|s| {
            let c = s.client();
            Side::new("cri", s.tool, Some(s.driver.as_str()), move || {
                timed_call(
                    "ListContainers",
                    || {
                        c.call(
                            "ListContainers",
                            c.runtime()
                                .list_containers(api::ListContainersRequest { filter: None }),
                        )
                    },
                    |r| {
                        (r.containers.len() < m)
                            .then(|| format!("{} containers, not {m}", r.containers.len()))
                    },
                )
            })
            .param("call", "ListContainers")
            .param("containers", m)
        })
        .collect();
    let r = measure(ctx, &cold, "cri: container lists", sides, out);
    for s in servers {
        let _ = s.client().remove_all_pods();
    }
    r
}

/// Times one call; `check` then says (untimed) what is wrong with its answer, if anything.
fn timed_call<T>(
    what: &str,
    call: impl FnOnce() -> Result<T, RunError>,
    check: impl FnOnce(&T) -> Option<String>,
) -> Result<f64, RunError> {
    let t = Instant::now();
    let r = call()?;
    let secs = t.elapsed().as_secs_f64();
    match check(&r) {
        Some(why) => Err(failed(format!("CRI {what}"), why)),
        None => Ok(secs),
    }
}

/// Loads `n` small images into every server's store; returns their names.
fn load_list_images(servers: &[Server], dir: &Path, n: usize) -> Result<Vec<String>, RunError> {
    let archive = dir.join("list-images.tar");
    let names = list_images(&archive, n)?;
    for s in servers {
        if s.tool == "containerd" {
            ctr_import(s, &archive)?;
        } else {
            output(s.store.strata().args(["load", "-q", "-i"]).arg(&archive))?;
        }
    }
    let last = names.last().cloned().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !servers.iter().all(|s| s.client().image_known(&last)) {
        if Instant::now() > deadline {
            return Err(failed(
                "CRI ImageStatus",
                format!("{last} not known 60 s after its import"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(names)
}

/// `m` created containers in one pod of every server.
fn create_list_containers(servers: &[Server], m: usize) -> Result<(), RunError> {
    for s in servers {
        let c = s.client();
        let config = pod_config("bench-list", &s.logs);
        let pod = c
            .call(
                "RunPodSandbox",
                c.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                }),
            )?
            .pod_sandbox_id;
        for j in 0..m {
            c.call(
                "CreateContainer",
                c.runtime().create_container(api::CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(container_config(&format!("c{j}"), &["/bin/true"])),
                    sandbox_config: Some(config.clone()),
                }),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_images_archive_names_every_image() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = t.path().join("a.tar");
        let names = list_images(&a, 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names[2], "localhost/bench-list-2:latest");
        let f = std::fs::File::open(&a).unwrap_or_else(|e| panic!("{e}"));
        let mut entries = std::collections::BTreeMap::new();
        let mut ar = tar::Archive::new(f);
        for e in ar.entries().unwrap_or_else(|e| panic!("{e}")) {
            let mut e = e.unwrap_or_else(|e| panic!("{e}"));
            let name = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap_or_else(|e| panic!("{e}"));
            entries.insert(name, data);
        }
        let index: serde_json::Value =
            serde_json::from_slice(&entries["index.json"]).unwrap_or_default();
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        assert_eq!(manifests.len(), 3);
        for (m, name) in manifests.iter().zip(&names) {
            assert_eq!(
                m["annotations"]["org.opencontainers.image.ref.name"],
                **name
            );
            // Every blob is there under its digest.
            let digest = m["digest"].as_str().unwrap_or_default();
            let blob = &entries[&format!("blobs/sha256/{}", &digest[7..])];
            assert_eq!(Digest::of(blob).as_str(), digest);
        }
        // Three layers, configs and manifests of distinct images.
        assert_eq!(entries.len(), 2 + 3 * 3);
        assert!(bridge_name(63).len() <= 15);
    }
}
