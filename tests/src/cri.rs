//! The CRI tests' side: a `strata cri serve` process on a test store, a synchronous CRI v1
//! gRPC client over a unix socket (for it and for the reference containerd), a CNI bridge
//! configuration list, and the requests a kubelet would send.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Strata;

/// A running `strata cri serve` on `strata`'s store. Stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct CriServer {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    command: Vec<String>,
}

impl CriServer {
    /// Starts the server with the CNI configs of `cni_dir`, extra `serve` flags, and the
    /// environment `env`; waits until its socket answers.
    pub fn start(
        strata: &Strata,
        cni_dir: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> CriServer {
        let socket = strata.base().join("cri.sock");
        let log = strata.base().join("cri.log");
        let mut args: Vec<String> = vec![
            "cri".into(),
            "serve".into(),
            "--listen".into(),
            format!("unix://{}", socket.display()),
            "--cni-config-dir".into(),
            cni_dir.display().to_string(),
            "--log-level".into(),
            "debug".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let base = strata.command();
        let mut command = vec![base.get_program().to_string_lossy().into_owned()];
        command.extend(base.get_args().map(|a| a.to_string_lossy().into_owned()));
        for (k, v) in env {
            command.insert(0, format!("{k}={}", v.display()));
        }
        let mut s = CriServer {
            child: None,
            socket,
            log,
            args,
            command,
        };
        s.spawn(strata, env);
        s
    }

    fn spawn(&mut self, strata: &Strata, env: &[(&str, &Path)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log");
        let mut c = strata.command();
        c.args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("start strata cri serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("strata cri serve exited with {st}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the CRI server did not listen within 30 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (containers keep running under their monitors).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again after [`CriServer::kill9`].
    pub fn restart(&mut self, strata: &Strata, env: &[(&str, &Path)]) {
        self.kill9();
        self.spawn(strata, env);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// How it was started (for failure messages).
    pub fn command_line(&self) -> String {
        format!("{} {}", self.command.join(" "), self.args.join(" "))
    }
}

impl Drop for CriServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A synchronous CRI client over a unix socket.
#[derive(Debug)]
pub struct Client {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl Client {
    pub fn connect(socket: &Path) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(async move {
                Endpoint::try_from("http://[::]:50051")
                    .expect("endpoint")
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
            .expect("connect to the CRI socket");
        Client { rt, channel }
    }

    /// The runtime service (large messages allowed, as the kubelet's client does).
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20)
    }

    pub fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone()).max_decoding_message_size(16 << 20)
    }

    /// A raw gRPC client on the connection, ready for a call.
    async fn grpc(&self) -> Result<tonic::client::Grpc<Channel>, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(grpc)
    }

    /// A server-streaming list RPC newer than the `k8s-cri` proto (`method` under
    /// `runtime.v1.RuntimeService` or `runtime.v1.ImageService`): the items of every
    /// message's batch, or the call's status.
    pub fn stream_list<Req, Item>(
        &self,
        service: &str,
        method: &str,
        request: Req,
    ) -> Result<Vec<Item>, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Item: prost::Message + Default + std::fmt::Debug + Send + Sync + 'static,
    {
        let path = method_path(service, method);
        self.rt.block_on(async {
            let mut grpc = self.grpc().await?;
            let codec = tonic_prost::ProstCodec::<Req, Batch<Item>>::default();
            let mut s = grpc
                .server_streaming(tonic::Request::new(request), path, codec)
                .await?
                .into_inner();
            let mut out = Vec::new();
            while let Some(m) = s.message().await? {
                assert!(!m.items.is_empty(), "a streamed batch is never empty");
                out.extend(m.items);
            }
            Ok(out)
        })
    }

    /// CreateContainer with image sub paths on its mounts (`Mount.image_sub_path`, field 10,
    /// newer than the `k8s-cri` proto): the request is encoded by hand around the crate's
    /// messages, as a newer kubelet's bytes would be.
    pub fn create_with_sub_paths(
        &self,
        pod: &str,
        pc: &api::PodSandboxConfig,
        mut cc: api::ContainerConfig,
        sub_paths: &[&str],
    ) -> Result<String, tonic::Status> {
        use prost::Message;
        let mounts = std::mem::take(&mut cc.mounts);
        let mut config = cc.encode_to_vec();
        for (m, sub) in mounts
            .iter()
            .zip(sub_paths.iter().chain(std::iter::repeat(&"")))
        {
            let mut mount = m.encode_to_vec();
            if !sub.is_empty() {
                prost::encoding::string::encode(10, &sub.to_string(), &mut mount);
            }
            prost::encoding::bytes::encode(7, &mount, &mut config);
        }
        let mut req = api::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: None,
            sandbox_config: Some(pc.clone()),
        }
        .encode_to_vec();
        prost::encoding::bytes::encode(2, &config, &mut req);
        let path = method_path("RuntimeService", "CreateContainer");
        self.rt.block_on(async {
            let mut grpc = self.grpc().await?;
            let r: api::CreateContainerResponse = grpc
                .unary(tonic::Request::new(req), path, RawCodec)
                .await?
                .into_inner();
            Ok(r.container_id)
        })
    }

    /// A unary RPC newer than the `k8s-cri` proto.
    pub fn unary<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: Req,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let path = method_path(service, method);
        self.rt.block_on(async {
            let mut grpc = self.grpc().await?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            Ok(grpc
                .unary(tonic::Request::new(request), path, codec)
                .await?
                .into_inner())
        })
    }

    /// Runs one call to completion.
    pub fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Runs a call that must succeed; returns its reply.
    pub fn ok<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        match self.rt.block_on(f) {
            Ok(r) => r.into_inner(),
            Err(s) => panic!("{what} failed: {:?}: {}", s.code(), s.message()),
        }
    }

    /// Runs a call that must fail; returns its status.
    pub fn fails<T: std::fmt::Debug>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> tonic::Status {
        match self.rt.block_on(f) {
            Ok(r) => panic!("{what} succeeded but should fail: {:?}", r.into_inner()),
            Err(s) => s,
        }
    }

    /// `ExecSync` in a container: (exit code, stdout, stderr).
    pub fn exec(&self, id: &str, cmd: &[&str]) -> (i32, String, String) {
        let r = self.ok(
            "ExecSync",
            self.runtime().exec_sync(api::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 30,
            }),
        );
        (
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    }

    pub fn container_state(&self, id: &str) -> api::ContainerStatus {
        self.ok(
            "ContainerStatus",
            self.runtime()
                .container_status(api::ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: false,
                }),
        )
        .status
        .expect("a status")
    }

    /// Waits until the container has exited; returns its status.
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> api::ContainerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.container_state(id);
            if s.state == api::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not exit: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn run_pod(&self, config: &api::PodSandboxConfig, handler: &str) -> String {
        self.ok(
            "RunPodSandbox",
            self.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }),
        )
        .pod_sandbox_id
    }

    pub fn create(
        &self,
        pod: &str,
        pod_config: &api::PodSandboxConfig,
        config: api::ContainerConfig,
    ) -> String {
        self.ok(
            "CreateContainer",
            self.runtime()
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: pod.into(),
                    config: Some(config),
                    sandbox_config: Some(pod_config.clone()),
                }),
        )
        .container_id
    }

    pub fn start(&self, id: &str) {
        self.ok(
            "StartContainer",
            self.runtime().start_container(api::StartContainerRequest {
                container_id: id.into(),
            }),
        );
    }

    /// Stops and removes a pod (what the kubelet does when a pod goes away).
    pub fn remove_pod(&self, id: &str) {
        self.ok(
            "StopPodSandbox",
            self.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        );
        self.ok(
            "RemovePodSandbox",
            self.runtime()
                .remove_pod_sandbox(api::RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                }),
        );
    }
}

/// Writes a CNI configuration list (bridge with host-local IPAM and portmap for hostPorts)
/// named `name` into `dir`, leases under `dir/ipam`; returns the file (the same list the
/// containerd harness writes, `crate::containerd::bridge_conflist`).
pub fn write_bridge_conflist(dir: &Path, name: &str, bridge: &str, subnet: &str) -> PathBuf {
    crate::containerd::write_bridge_conflist(dir, name, bridge, subnet, &dir.join("ipam"))
}

/// A pod as the kubelet would describe it (its logs in `log_dir`).
pub fn pod_config(name: &str, uid: &str, log_dir: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([("app".to_owned(), name.to_owned())]),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container of `image` running `command`, logging to `<name>.log`.
pub fn container_config(name: &str, image: &str, command: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        labels: HashMap::from([("container".to_owned(), name.to_owned())]),
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

/// A streamed list's message: a batch of items in field 1 (cri-api's `Stream*Response`s).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Batch<T: prost::Message + Default + std::fmt::Debug> {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<T>,
}

/// cri-api's `UpdatePodSandboxResourcesRequest` (newer than the `k8s-cri` proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdatePodSandboxResourcesRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    pub overhead: Option<api::LinuxContainerResources>,
    #[prost(message, optional, tag = "3")]
    pub resources: Option<api::LinuxContainerResources>,
    #[prost(map = "string, string", tag = "4")]
    pub annotations: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// Sends bytes encoded by hand; decodes a CreateContainerResponse.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = api::CreateContainerResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<api::CreateContainerResponse>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        Default::default()
    }
}

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

/// `/runtime.v1.SERVICE/METHOD`.
fn method_path(service: &str, method: &str) -> tonic::codegen::http::uri::PathAndQuery {
    format!("/runtime.v1.{service}/{method}")
        .parse()
        .expect("a method path")
}

/// `ContainerStatusResponse` as far as the mounts' `ImageSpec.image_ref` (field 20, newer
/// than the `k8s-cri` proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusImageRefs {
    #[prost(message, optional, tag = "1")]
    pub status: Option<StatusMounts>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusMounts {
    #[prost(message, repeated, tag = "14")]
    pub mounts: Vec<MountImage>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MountImage {
    #[prost(string, tag = "1")]
    pub container_path: String,
    #[prost(message, optional, tag = "9")]
    pub image: Option<ImageRef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageRef {
    #[prost(string, tag = "1")]
    pub image: String,
    #[prost(string, tag = "20")]
    pub image_ref: String,
}
