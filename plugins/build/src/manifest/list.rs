//! Manifest lists as `podman manifest` keeps them: an OCI image index under construction, with
//! where each entry's image comes from, so `push` can copy them.
//!
//! ```text
//! <store root>/manifests/            format 1
//!   <sha256(name)[..32]>.json        {"version": 1, "name": "localhost/list:latest",
//!                                     "index": { OCI image index },
//!                                     "sources": {"sha256:<entry digest>": "store:<image ID>" |
//!                                                 "docker://registry/repo@sha256:..." | "oci:..."}}
//! ```
//! Files are replaced atomically (written aside, renamed). A list is not an image: it names
//! images and copies them when pushed; removing it removes none of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use strata_graph_image::Descriptor;
use strata_plugin_api::ErrorKind;
use strata_plugin_transfer::errors::kinded;
use strata_types::{Digest, Hasher};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// One manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List {
    pub version: u32,
    pub name: String,
    pub index: Index,
    /// Entry digest → where its image is read from (a transport name).
    pub sources: BTreeMap<String, String>,
}

/// The OCI image index being built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn file(root: &Path, name: &str) -> PathBuf {
    let mut h = Hasher::new();
    h.update(name.as_bytes());
    root.join("manifests")
        .join(format!("{}.json", &h.finish().hex()[..32]))
}

impl List {
    pub fn new(name: &str) -> List {
        List {
            version: 1,
            name: name.to_owned(),
            index: Index {
                schema_version: 2,
                media_type: OCI_INDEX.to_owned(),
                manifests: Vec::new(),
                annotations: BTreeMap::new(),
            },
            sources: BTreeMap::new(),
        }
    }

    pub fn exists(root: &Path, name: &str) -> bool {
        file(root, name).is_file()
    }

    pub fn load(root: &Path, name: &str) -> Result<List> {
        let p = file(root, name);
        let text = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                kinded(
                    ErrorKind::NotFound,
                    format!("{name}: no such manifest list"),
                )
            } else {
                anyhow::Error::new(e).context(format!("read {}", p.display()))
            }
        })?;
        let l: List = serde_json::from_slice(&text)
            .map_err(|e| kinded(ErrorKind::Corrupt, format!("{}: {e}", p.display())))?;
        if l.version != 1 {
            bail!(kinded(
                ErrorKind::Unsupported,
                format!(
                    "{}: manifest list format {} is newer than this strata",
                    p.display(),
                    l.version
                )
            ));
        }
        Ok(l)
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        let p = file(root, &self.name);
        let dir = p.parent().expect("a file in manifests/");
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("replace {}", p.display()))?;
        Ok(())
    }

    pub fn remove(root: &Path, name: &str) -> Result<()> {
        match std::fs::remove_file(file(root, name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(kinded(
                ErrorKind::NotFound,
                format!("{name}: no such manifest list"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The index's exact bytes (what is pushed) and digest.
    pub fn bytes(&self) -> Result<(Vec<u8>, Digest)> {
        let b = serde_json::to_vec(&self.index)?;
        let d = Digest::of(&b);
        Ok((b, d))
    }

    /// Adds (or replaces, by digest) an entry.
    pub fn add(&mut self, desc: Descriptor, source: String) {
        self.index.manifests.retain(|d| d.digest != desc.digest);
        self.sources.insert(desc.digest.as_str().to_owned(), source);
        self.index.manifests.push(desc);
    }

    /// The entry a user names: its digest, a unique digest prefix, or the image it came from.
    pub fn find(&mut self, what: &str) -> Result<&mut Descriptor> {
        let hex = what.trim_start_matches("sha256:");
        let by_source: Option<String> = self
            .sources
            .iter()
            .find(|(_, s)| s.as_str() == what || s.ends_with(&format!(":{what}")))
            .map(|(d, _)| d.clone());
        let hits: Vec<usize> = self
            .index
            .manifests
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                Some(d.digest.as_str()) == by_source.as_deref()
                    || (hex.len() >= 3 && d.digest.hex().starts_with(hex))
            })
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [i] => Ok(&mut self.index.manifests[*i]),
            [] => Err(kinded(
                ErrorKind::NotFound,
                format!("{what}: not in manifest list {}", self.name),
            )),
            _ => Err(kinded(
                ErrorKind::InvalidArgument,
                format!("{what}: more than one entry of {} matches", self.name),
            )),
        }
    }
}
