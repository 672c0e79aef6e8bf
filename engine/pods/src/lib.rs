//! Pods, a layer on top of the container engine: containers that share network, IPC and UTS
//! namespaces through an infra container, as in podman. The infra container runs
//! `catatonit -P` (the pause process podman uses, a static binary from Debian's `catatonit`
//! package) from a one-layer image built locally (`localhost/strata-pause:<version>`), so
//! pods work offline.
//!
//! ```text
//! <store root>/pods/<pod-id>/pod.json   Pod, format 1, replaced atomically
//! <store root>/pods/pods.lock           held while pods are created or removed (names)
//! ```
//! Members join the infra process's namespaces by `/proc/<pid>/ns/*` at start: [`start`]
//! starts the infra container first if needed (without holding the member's lock), then
//! hands its namespaces to the engine's `Container::start`. The engine itself knows nothing
//! of pods beyond refusing to start a member on its own.
//!
//! What it deliberately does not do: pods with a user namespace of their own, or networks
//! other than the engine's modes (the CRI's pod networks will come through here).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_engine_containers::{
    Container, ContainerConfig, Context, Engine, Error, NetworkMode, NewImage, NewLayer, Result,
    SharedNamespaces, StartOptions, Status, StoreError,
};
use strata_engine_monitor::attach::AttachClient;
use strata_types::{Digest, ErrorKind, Hasher};

/// The pause image's name.
pub fn pause_image() -> String {
    format!("localhost/strata-pause:{}", env!("CARGO_PKG_VERSION"))
}

const CATATONIT: &[&str] = &[
    "/usr/libexec/podman/catatonit",
    "/usr/bin/catatonit",
    "/usr/local/bin/catatonit",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pod {
    pub id: String,
    pub name: String,
    pub created: i64,
    pub hostname: String,
    /// The infra container's ID.
    pub infra: String,
    pub network: NetworkMode,
    pub publish: Vec<String>,
    pub labels: Vec<(String, String)>,
}

fn pods_dir(engine: &Engine) -> PathBuf {
    engine.root().join("pods")
}

fn lock(engine: &Engine) -> Result<std::fs::File> {
    let dir = pods_dir(engine);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    strata_engine_containers::state::lock_file(&dir.join("pods.lock"))
}

impl Pod {
    fn path(&self, engine: &Engine) -> PathBuf {
        pods_dir(engine).join(&self.id).join("pod.json")
    }

    fn save(&self, engine: &Engine) -> Result<()> {
        let p = self.path(engine);
        let dir = p.parent().expect("pod.json has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = dir.join(format!(".pod.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("replace {}", p.display()))?;
        Ok(())
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// Every pod.
pub fn pods(engine: &Engine) -> Result<Vec<Pod>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(pods_dir(engine)) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let p = e.path().join("pod.json");
        if let Ok(b) = std::fs::read(&p) {
            out.push(serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display()))?);
        }
    }
    out.sort_by_key(|p: &Pod| std::cmp::Reverse(p.created));
    Ok(out)
}

/// A pod by name, ID or unique ID prefix.
pub fn find(engine: &Engine, name: &str) -> Result<Pod> {
    let all = pods(engine)?;
    if let Some(p) = all.iter().find(|p| p.name == name || p.id == name) {
        return Ok(p.clone());
    }
    let by_prefix: Vec<&Pod> = all
        .iter()
        .filter(|p| !name.is_empty() && p.id.starts_with(name))
        .collect();
    match by_prefix.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::not_found(format!("no such pod {name}"))),
        _ => Err(Error::invalid(format!("pod ID prefix {name} is ambiguous"))),
    }
}

/// The pod's containers, infra first.
pub fn members<'e>(engine: &'e Engine, pod: &Pod) -> Result<Vec<Container<'e>>> {
    let mut out: Vec<Container<'e>> = engine
        .containers()?
        .into_iter()
        .filter(|c| c.config.pod.as_deref() == Some(pod.id.as_str()))
        .collect();
    out.sort_by_key(|c| (c.id() != pod.infra, c.record.created));
    Ok(out)
}

/// Builds the pause image from the host's catatonit if the store lacks it.
fn ensure_pause_image(engine: &Engine) -> Result<String> {
    let name = pause_image();
    match engine.store().image(&name) {
        Ok(i) => return Ok(i.id),
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let catatonit = CATATONIT
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::precondition(
                "pods need catatonit for their infra process: install it (apt-get install catatonit)",
            )
        })?;
    // The layer: /catatonit, built in a temporary file and hashed as it is read back.
    let mut tmp = tempfile::tempfile().context("create the pause layer")?;
    {
        let mut b = tar::Builder::new(&mut tmp);
        b.append_path_with_name(catatonit, "catatonit")
            .with_context(|| format!("add {} to the pause layer", catatonit.display()))?;
        b.finish().context("write the pause layer")?;
    }
    use std::io::{Read, Seek};
    tmp.rewind().context("read the pause layer")?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = tmp.read(&mut buf).context("read the pause layer")?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    let diff_id = h.finish();
    let config = serde_json::json!({
        "architecture": strata_types::arch::go_arch(),
        "os": "linux",
        "config": { "Entrypoint": ["/catatonit", "-P"], "Env": ["PATH=/"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id.as_str()] },
        "history": [{ "created_by": "strata pod: the infra (pause) image" }],
    })
    .to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(config.as_bytes()).as_str(), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id.as_str(), "size": size }],
    })
    .to_string();
    let file = std::sync::Mutex::new(Some(tmp));
    let open = |_i: usize| -> std::result::Result<Box<dyn std::io::Read + Send + '_>, StoreError> {
        let mut f = file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| StoreError {
                kind: ErrorKind::Internal,
                message: "pause layer opened twice".into(),
            })?;
        f.rewind().map_err(|e| StoreError {
            kind: ErrorKind::Internal,
            message: e.to_string(),
        })?;
        Ok(Box::new(f))
    };
    let image_id = engine.store().import_image(NewImage {
        manifest,
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config,
        layers: vec![NewLayer {
            diff_id: diff_id.to_string(),
            blob_digest: Some(diff_id.to_string()),
        }],
        names: vec![name.clone()],
        open: &open,
    })?;
    Ok(image_id)
}

/// Options of `pod create`.
#[derive(Debug, Clone, Default)]
pub struct PodOptions {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub network: NetworkMode,
    pub publish: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub runtime: String,
    /// Namespaces, sysctls and cgroup settings of the infra container (host PID/IPC/UTS,
    /// a pod cgroup parent: the CRI's pod options).
    pub linux: strata_engine_containers::LinuxExtras,
    /// Files bind-mounted into the infra container (the CRI's `hosts`, `resolv.conf`).
    pub mounts: Vec<strata_engine_containers::MountSpec>,
}

pub fn create(engine: &Engine, o: PodOptions) -> Result<Pod> {
    let _lock = lock(engine)?;
    let mut rnd = [0u8; 32];
    rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty())
        .map_err(std::io::Error::from)
        .context("make a pod ID")?;
    let id: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let name = o
        .name
        .clone()
        .unwrap_or_else(|| format!("pod-{}", &id[..12]));
    if pods(engine)?.iter().any(|p| p.name == name) {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("a pod named {name} already exists"),
        ));
    }
    let image_id = ensure_pause_image(engine)?;
    let hostname = o.hostname.clone().unwrap_or_else(|| name.clone());
    let config = ContainerConfig {
        image_name: pause_image(),
        image_id,
        args: vec!["/catatonit".into(), "-P".into()],
        command_line: "/catatonit -P".into(),
        env: vec!["PATH=/".into()],
        hostname: hostname.clone(),
        network: o.network.clone(),
        publish: o.publish.clone(),
        runtime: o.runtime.clone(),
        pod: Some(id.clone()),
        infra: true,
        linux: o.linux.clone(),
        mounts: o.mounts.clone(),
        stop_signal: "SIGTERM".into(),
        stop_timeout: 10,
        ..ContainerConfig::default()
    };
    let infra = engine.create(Some(format!("{}-infra", &id[..12])), config, None)?;
    let now = strata_engine_containers::state::unix_now();
    let pod = Pod {
        id,
        name,
        created: now,
        hostname,
        infra: infra.id().to_owned(),
        network: o.network,
        publish: o.publish,
        labels: o.labels,
    };
    pod.save(engine)?;
    Ok(pod)
}

/// Makes `config` a member of `pod`: its namespaces come from the infra container.
pub fn join(engine: &Engine, pod_name: &str, config: &mut ContainerConfig) -> Result<()> {
    let pod = find(engine, pod_name)?;
    if !config.publish.is_empty() {
        return Err(Error::invalid(
            "publish ports on the pod (`pod create -p`), not on its containers",
        ));
    }
    config.pod = Some(pod.id.clone());
    config.hostname = pod.hostname.clone();
    Ok(())
}

/// The infra container of a member's pod, started if it is not running; returns its pid.
pub fn running_infra(engine: &Engine, pod_id: &str) -> Result<i32> {
    let pod = find(engine, pod_id)?;
    let infra = engine.container(&pod.infra)?;
    let mut st = infra.state()?;
    if st.status != Status::Running {
        match infra.start(&StartOptions::detached()) {
            Ok(_) => {}
            // Another member's start got there first.
            Err(e)
                if strata_types::HasKind::kind(&e) == ErrorKind::FailedPrecondition
                    && e.to_string().contains("already running") => {}
            Err(e) => return Err(e),
        }
        st = infra.saved_state()?;
    }
    st.pid
        .ok_or_else(|| Error::msg(format!("pod {} has no infra process", pod.name)))
}

/// Starts a container: a pod's member joins its infra container's namespaces (the infra
/// container is started first, if need be); any other container starts on its own.
pub fn start(c: &Container<'_>, mut opts: StartOptions) -> Result<Option<AttachClient>> {
    if let (Some(pod), false) = (&c.config.pod, c.config.infra) {
        let pid = running_infra(c.engine(), pod)?;
        let mut shared = SharedNamespaces::of_process(pid);
        // Members with the pod's explicit id mapping join its user namespace.
        if c.config.linux.id_map.is_some() && c.id_map().is_some() {
            shared.user = Some(PathBuf::from(format!("/proc/{pid}/ns/user")));
        }
        opts.shared = Some(shared);
    }
    c.start(&opts)
}

pub fn remove(engine: &Engine, pod: &Pod, force: bool) -> Result<()> {
    let members = members(engine, pod)?;
    let running: Vec<&Container> = members
        .iter()
        .filter(|c| {
            c.state()
                .map(|s| s.status == Status::Running)
                .unwrap_or(false)
        })
        .collect();
    if !force && running.iter().any(|c| c.id() != pod.infra) {
        return Err(Error::precondition(format!(
            "pod {} has running containers: stop them first or use pod rm -f",
            pod.name
        )));
    }
    // Members first, the infra container last.
    for c in members.iter().rev() {
        c.remove(true)?;
    }
    let _lock = lock(engine)?;
    let dir = pods_dir(engine).join(&pod.id);
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(())
}
