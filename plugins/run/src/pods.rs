//! Pods: containers that share network, IPC and UTS namespaces through an infra container,
//! as in podman. The infra container runs `catatonit -P` (the pause process podman uses, a
//! static binary from Debian's `catatonit` package) from a one-layer image built locally
//! (`localhost/strata-pause:<version>`), so pods work offline.
//!
//! ```text
//! <store root>/pods/<pod-id>/pod.json   Pod, format 1, replaced atomically
//! <store root>/pods/pods.lock           held while pods are created or removed (names)
//! ```
//! Members join the infra process's namespaces by `/proc/<pid>/ns/*` at start; starting a
//! member starts the infra container first if needed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use strata_graph_types::{Digest, Hasher};
use strata_plugin_api::store::{ImportImageRequest, ImportLayer};
use strata_plugin_api::{CallError, ErrorKind};

use crate::config::{ContainerConfig, NetworkMode};
use crate::context::{Container, Ctx};
use crate::errors::{call, kinded};
use crate::state::Status;

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

fn pods_dir(ctx: &Ctx<'_>) -> PathBuf {
    PathBuf::from(&ctx.info.root).join("pods")
}

fn lock(ctx: &Ctx<'_>) -> Result<std::fs::File> {
    let dir = pods_dir(ctx);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let p = dir.join("pods.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(f)
}

impl Pod {
    fn path(&self, ctx: &Ctx<'_>) -> PathBuf {
        pods_dir(ctx).join(&self.id).join("pod.json")
    }

    fn save(&self, ctx: &Ctx<'_>) -> Result<()> {
        let p = self.path(ctx);
        let dir = p.parent().expect("pod.json has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".pod.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// Every pod.
pub fn pods(ctx: &Ctx<'_>) -> Result<Vec<Pod>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(pods_dir(ctx)) else {
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
pub fn find(ctx: &Ctx<'_>, name: &str) -> Result<Pod> {
    let all = pods(ctx)?;
    if let Some(p) = all.iter().find(|p| p.name == name || p.id == name) {
        return Ok(p.clone());
    }
    let by_prefix: Vec<&Pod> = all
        .iter()
        .filter(|p| !name.is_empty() && p.id.starts_with(name))
        .collect();
    match by_prefix.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(kinded(ErrorKind::NotFound, format!("no such pod {name}"))),
        _ => Err(kinded(
            ErrorKind::InvalidArgument,
            format!("pod ID prefix {name} is ambiguous"),
        )),
    }
}

/// The pod's containers, infra first.
pub fn members(ctx: &Ctx<'_>, pod: &Pod) -> Result<Vec<Container>> {
    let mut out: Vec<Container> = ctx
        .containers()?
        .into_iter()
        .filter(|c| c.config.pod.as_deref() == Some(pod.id.as_str()))
        .collect();
    out.sort_by_key(|c| (c.id() != pod.infra, c.info.created));
    Ok(out)
}

/// Builds the pause image from the host's catatonit if the store lacks it.
fn ensure_pause_image(ctx: &Ctx<'_>) -> Result<String> {
    let name = pause_image();
    match ctx.store.image(&name) {
        Ok(i) => return Ok(i.id),
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(call(e)),
    }
    let catatonit = CATATONIT
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .with_context(|| {
            "pods need catatonit for their infra process: install it (apt-get install catatonit)"
                .to_owned()
        })?;
    // The layer: /catatonit, built in a temporary file and hashed as it is read back.
    let mut tmp = tempfile::tempfile().context("create the pause layer")?;
    {
        let mut b = tar::Builder::new(&mut tmp);
        b.append_path_with_name(catatonit, "catatonit")
            .with_context(|| format!("add {} to the pause layer", catatonit.display()))?;
        b.finish()?;
    }
    use std::io::{Read, Seek};
    tmp.rewind()?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = tmp.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    let diff_id = h.finish();
    let config = serde_json::json!({
        "architecture": strata_graph_image::Platform::host().architecture,
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
    let request = ImportImageRequest {
        manifest,
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config,
        layers: vec![ImportLayer {
            diff_id: diff_id.to_string(),
            blob_digest: Some(diff_id.to_string()),
        }],
        names: vec![name.clone()],
    };
    let file = std::sync::Mutex::new(Some(tmp));
    let open = |_i: usize| -> std::result::Result<Box<dyn std::io::Read + Send + '_>, CallError> {
        let mut f = file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| CallError {
                kind: ErrorKind::Internal,
                message: "pause layer opened twice".into(),
            })?;
        f.rewind().map_err(|e| CallError {
            kind: ErrorKind::Internal,
            message: e.to_string(),
        })?;
        Ok(Box::new(f))
    };
    let reply = ctx.store.import_image(&request, &open).map_err(call)?;
    Ok(reply.image_id)
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
}

pub fn create(ctx: &Ctx<'_>, o: PodOptions) -> Result<Pod> {
    let _lock = lock(ctx)?;
    let mut rnd = [0u8; 32];
    rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty())?;
    let id: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let name = o
        .name
        .clone()
        .unwrap_or_else(|| format!("pod-{}", &id[..12]));
    if pods(ctx)?.iter().any(|p| p.name == name) {
        bail!(kinded(
            ErrorKind::AlreadyExists,
            format!("a pod named {name} already exists")
        ));
    }
    let image_id = ensure_pause_image(ctx)?;
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
        stop_signal: "SIGTERM".into(),
        stop_timeout: 10,
        ..ContainerConfig::default()
    };
    let infra = crate::start::create(ctx, Some(format!("{}-infra", &id[..12])), config)?;
    let now = crate::state::unix_now();
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
    pod.save(ctx)?;
    Ok(pod)
}

/// Makes `config` a member of `pod`: its namespaces come from the infra container.
pub fn join(ctx: &Ctx<'_>, pod_name: &str, config: &mut ContainerConfig) -> Result<()> {
    let pod = find(ctx, pod_name)?;
    if !config.publish.is_empty() {
        bail!(kinded(
            ErrorKind::InvalidArgument,
            "publish ports on the pod (`pod create -p`), not on its containers"
        ));
    }
    config.pod = Some(pod.id.clone());
    config.hostname = pod.hostname.clone();
    Ok(())
}

/// The infra container of a member's pod, started if it is not running; returns its pid.
pub fn running_infra(ctx: &Ctx<'_>, pod_id: &str) -> Result<i32> {
    let pod = find(ctx, pod_id)?;
    let infra = ctx.container(&pod.infra)?;
    let mut st = crate::stop::current_state(ctx, &infra)?;
    if st.status != Status::Running {
        crate::start::start(ctx, &infra, crate::start::Follow::Detach)?;
        st = infra.state()?;
    }
    st.pid
        .with_context(|| format!("pod {} has no infra process", pod.name))
}

pub fn remove(ctx: &Ctx<'_>, pod: &Pod, force: bool) -> Result<()> {
    let members = members(ctx, pod)?;
    let running: Vec<&Container> = members
        .iter()
        .filter(|c| {
            crate::stop::current_state(ctx, c)
                .map(|s| s.status == Status::Running)
                .unwrap_or(false)
        })
        .collect();
    if !force && running.iter().any(|c| c.id() != pod.infra) {
        bail!(kinded(
            ErrorKind::FailedPrecondition,
            format!(
                "pod {} has running containers: stop them first or use pod rm -f",
                pod.name
            )
        ));
    }
    // Members first, the infra container last.
    for c in members.iter().rev() {
        crate::stop::remove(ctx, c, true)?;
    }
    let _lock = lock(ctx)?;
    let dir = pods_dir(ctx).join(&pod.id);
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    let _ = std::io::stdout().flush();
    Ok(())
}
