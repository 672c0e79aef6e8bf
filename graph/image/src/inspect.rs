//! `skopeo inspect`-like summaries of an image, from its manifest and config.
//!
//! The output mirrors skopeo's JSON field names so scripts written for skopeo keep working.
//! `Name` and `RepoTags` are left for the caller (only a registry knows them); this module
//! never lists tags or reads signatures.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_types::Digest;

use crate::copy::{resolve_platform, CopyOptions};
use crate::error::Result;
use crate::manifest::{parse_config, parse_manifest};
use crate::platform::Platform;
use crate::tar_index::SMALL_LIMIT;
use crate::transport::ImageSource;
use crate::ImageError;

/// What `skopeo inspect` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The digest of the top-level manifest (the index's, for a multi-platform image).
    pub digest: Digest,
    pub repo_tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub docker_version: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    pub layers: Vec<Digest>,
    pub layers_data: Vec<LayerData>,
    pub env: Option<Vec<String>>,
}

/// One layer in [`InspectInfo::layers_data`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerData {
    #[serde(rename = "MIMEType")]
    pub mime_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Summarises the image `src` holds (the `platform` entry of an index; default: the host).
pub fn inspect(src: &dyn ImageSource, platform: Option<&Platform>) -> Result<InspectInfo> {
    let top = src.manifest()?;
    let digest = Digest::of(&top.bytes);
    let opts = CopyOptions {
        platform: platform.cloned(),
        ..CopyOptions::default()
    };
    let image = resolve_platform(src, top, &opts)?;
    let manifest = parse_manifest(&image.bytes)?;
    if manifest.config.size > SMALL_LIMIT {
        return Err(ImageError::Invalid(format!(
            "config {} is too large",
            manifest.config.digest
        )));
    }
    let mut config_bytes = Vec::new();
    let mut r = crate::digesting::VerifyingReader::new(
        src.blob(&manifest.config)?,
        manifest.config.digest.clone(),
        manifest.config.size,
        format!("config {}", manifest.config.digest),
    );
    let verdict = r.verdict();
    std::io::Read::read_to_end(&mut r, &mut config_bytes).map_err(|e| {
        verdict
            .mismatch()
            .unwrap_or_else(|| ImageError::io("read config from", src.describe())(e))
    })?;
    verdict.check()?;
    let config = parse_config(&config_bytes)?;
    let runtime = config.config.unwrap_or_default();
    Ok(InspectInfo {
        name: None,
        digest,
        repo_tags: Vec::new(),
        created: config.created,
        docker_version: config.docker_version.unwrap_or_default(),
        labels: runtime.labels,
        architecture: config.architecture,
        os: config.os,
        variant: config.variant.unwrap_or_default(),
        layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        layers_data: manifest
            .layers
            .iter()
            .map(|l| LayerData {
                mime_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                annotations: l.annotations.clone(),
            })
            .collect(),
        env: runtime.env,
    })
}
