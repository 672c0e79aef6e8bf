//! The CRI's own records, beside the engine's: a pod sandbox in
//! `<root>/cri/sandboxes/<id>/sandbox.json` (with the files its containers bind-mount:
//! `hosts`, `hostname`, `resolv.conf`), a container in its store metadata under the key
//! `cri` (the sandbox it belongs to and the CRI config it was created from). The sandbox ID is
//! the engine pod's ID, so `strata pod ps` and `strata ps --pod` show Kubernetes pods.
//!
//! Records are replaced atomically (written beside, renamed over), so a killed server leaves
//! the old record or the new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_cri::v1 as cri;
use serde::{Deserialize, Serialize};

/// The key of the CRI's record in a container's store metadata.
pub const METADATA_KEY: &str = "cri";

/// A pod sandbox as the CRI sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    /// The engine pod's ID (also the sandbox ID the kubelet uses).
    pub id: String,
    /// The engine pod's name: `k8s_<name>_<namespace>_<uid>_<attempt>`.
    pub pod_name: String,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub ready: bool,
    /// The pinned network namespace (none for host-network pods).
    pub netns: Option<String>,
    /// The CNI network it is attached to, and its address there.
    pub network: Option<String>,
    pub ip: Option<String>,
    /// The runtime handler asked for, and the OCI runtime it maps to.
    pub runtime_handler: String,
    pub runtime: String,
    /// The request it was made from.
    pub config: cri::PodSandboxConfig,
}

impl Sandbox {
    pub fn metadata(&self) -> cri::PodSandboxMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }

    pub fn labels(&self) -> &std::collections::HashMap<String, String> {
        &self.config.labels
    }

    pub fn linux(&self) -> cri::LinuxPodSandboxConfig {
        self.config.linux.clone().unwrap_or_default()
    }

    pub fn namespace_options(&self) -> cri::NamespaceOption {
        self.linux()
            .security_context
            .and_then(|s| s.namespace_options)
            .unwrap_or_default()
    }
}

/// A container's CRI record (in its store metadata).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub sandbox: String,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    /// The image as the request named it, and the image's ID (`sha256:...`).
    pub image: String,
    pub image_ref: String,
    /// The log file (the sandbox's log directory joined with the config's log path).
    pub log_path: String,
    pub config: cri::ContainerConfig,
    /// The store containers of its image volumes (`image_volume.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_volumes: Vec<String>,
}

/// Now, in nanoseconds since the epoch (the CRI's timestamps).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn sandboxes_dir(root: &Path) -> PathBuf {
    root.join("cri").join("sandboxes")
}

pub fn sandbox_dir(root: &Path, id: &str) -> PathBuf {
    sandboxes_dir(root).join(id)
}

pub fn save(root: &Path, s: &Sandbox) -> Result<()> {
    let dir = sandbox_dir(root, &s.id);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    write_atomic(&dir.join("sandbox.json"), &serde_json::to_vec_pretty(s)?)
}

/// Writes `data` beside `path` and renames it over.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))
}

pub fn load(root: &Path, id: &str) -> Result<Option<Sandbox>> {
    let p = sandbox_dir(root, id).join("sandbox.json");
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", p.display())),
    }
}

/// Every sandbox record (unreadable ones are skipped with a warning).
pub fn all(root: &Path) -> Vec<Sandbox> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(sandboxes_dir(root)) else {
        return out;
    };
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        match load(root, &id) {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(err) => crate::log::warn(format_args!("skipping sandbox {id}: {err:#}")),
        }
    }
    out
}

/// The one sandbox an ID or unique ID prefix names.
pub fn find(root: &Path, id: &str) -> Result<Option<Sandbox>> {
    if id.is_empty() {
        return Ok(None);
    }
    if let Some(s) = load(root, id)? {
        return Ok(Some(s));
    }
    let matches: Vec<Sandbox> = all(root)
        .into_iter()
        .filter(|s| s.id.starts_with(id))
        .collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.into_iter().next()),
        _ => Err(crate::rpc::kinded(
            strata_plugin_api::ErrorKind::InvalidArgument,
            format!("sandbox ID prefix {id} is ambiguous"),
        )),
    }
}

pub fn remove(root: &Path, id: &str) -> Result<()> {
    let dir = sandbox_dir(root, id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
    }
}

/// Whether every `selector` pair is among `labels`.
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    selector: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Sorted copies of label maps, for stable output.
pub fn sorted(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
