//! How a build step becomes an image in the store.
//!
//! - A step that changes only the config (ENV, LABEL, CMD, ...) is recorded with
//!   `store.import_image`: the parent's layers (which the store has, so no stream is opened)
//!   and the new config. No container, no mount.
//! - A step that changes files (COPY, ADD, WORKDIR that creates its directory) works in a
//!   [`Working`] container: a store container of the parent image, mounted, changed through
//!   `tree`, committed with `store.commit` and the step's config, then removed. RUN steps get
//!   an engine container instead (`run_step.rs`) and are committed the same way.
//!
//! A working container is removed when it is dropped, whatever happened, so a failed step
//! leaves no container or mount behind; a killed build leaves one that `strata storage gc`
//! or `rm` can see (its metadata says it is a build's).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use strata_plugin_api::store::{
    CommitRequest, CreateContainerRequest, ImageInfo, ImportImageRequest, ImportLayer, LayerInfo,
};
use strata_plugin_api::{CallError, ErrorKind, StoreClient};
use strata_plugin_transfer::errors::call;
use strata_types::Digest;

use crate::config::{Format, ImageConfig};

/// The metadata key of a build's working containers.
pub const METADATA_KEY: &str = "build";

/// A store container the build changes files in.
#[derive(Debug)]
pub struct Working {
    store: StoreClient,
    pub id: String,
    mount: Option<PathBuf>,
}

impl Working {
    pub fn new(store: StoreClient, image: &str, step: &str) -> Result<Working> {
        let metadata = json!({ METADATA_KEY: crate::run_step::owner_metadata(step) });
        let info = store
            .create_container(&CreateContainerRequest {
                image: image.to_owned(),
                name: None,
                metadata,
                id_map: None,
            })
            .map_err(call)
            .context("create a working container")?;
        Ok(Working {
            store,
            id: info.id,
            mount: None,
        })
    }

    /// The container's root filesystem, mounted on first use.
    pub fn root(&mut self) -> Result<PathBuf> {
        if let Some(m) = &self.mount {
            return Ok(m.clone());
        }
        let p = PathBuf::from(
            self.store
                .mount(&self.id)
                .map_err(call)
                .context("mount the working container")?,
        );
        self.mount = Some(p.clone());
        Ok(p)
    }

    /// Commits the container's changes with `config` (no layer when nothing changed and
    /// `empty_if_unchanged`); returns the new image's ID.
    pub fn commit(&mut self, config: &ImageConfig) -> Result<String> {
        commit_container(self.store, &self.id, config, false)
    }

    /// Whether the container has any changes.
    pub fn changed(&self) -> Result<bool> {
        Ok(!self.store.changes(&self.id).map_err(call)?.is_empty())
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        if self.mount.is_some() {
            let _ = self.store.unmount(&self.id);
        }
        if let Err(e) = self.store.remove_container(&self.id) {
            tracing::warn!("cannot remove working container {}: {e}", self.id);
        }
    }
}

/// Commits container `id` with `config` (the store writes `rootfs`); returns the image ID.
pub fn commit_container(
    store: StoreClient,
    id: &str,
    config: &ImageConfig,
    empty_layer: bool,
) -> Result<String> {
    let r = store
        .commit_with(&CommitRequest {
            container: id.to_owned(),
            name: String::new(),
            names: Vec::new(),
            config: Some(config.json.clone()),
            empty_layer,
        })
        .map_err(call)
        .context("commit the step")?;
    Ok(r.image_id)
}

/// Records an image of `layers` (which the store has) with `config`: a config-only step, or
/// the empty image `FROM scratch` starts from.
pub fn record_config(
    store: StoreClient,
    layers: &[LayerInfo],
    config: &mut ImageConfig,
    format: Format,
) -> Result<String> {
    record_image(store, layers, config, format, &BTreeMap::new())
}

/// [`record_config`] with annotations in the manifest (`--annotation`).
pub fn record_image(
    store: StoreClient,
    layers: &[LayerInfo],
    config: &mut ImageConfig,
    format: Format,
    annotations: &BTreeMap<String, String>,
) -> Result<String> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    config.set_top("rootfs", json!({"type": "layers", "diff_ids": diff_ids}));
    let text = config.to_text()?;
    let (manifest_type, config_type, layer_type) = match format {
        Format::Oci => (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        ),
        Format::Docker => (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar",
        ),
    };
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": config_type,
            "digest": Digest::of(text.as_bytes()).as_str(),
            "size": text.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": layer_type,
            "digest": l.diff_id,
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    if !annotations.is_empty() {
        manifest["annotations"] = json!(annotations);
    }
    let req = ImportImageRequest {
        manifest: serde_json::to_string(&manifest)?,
        manifest_media_type: manifest_type.to_owned(),
        config: text,
        layers: layers
            .iter()
            .map(|l| ImportLayer {
                diff_id: l.diff_id.clone(),
                blob_digest: Some(l.diff_id.clone()),
            })
            .collect(),
        names: Vec::new(),
    };
    let open = |i: usize| -> Result<Box<dyn std::io::Read + Send>, CallError> {
        Err(CallError {
            kind: ErrorKind::NotFound,
            message: format!("layer {i} of the parent image is gone from the store"),
        })
    };
    let r = store
        .import_image(&req, &open)
        .map_err(call)
        .context("record the step's image")?;
    Ok(r.image_id)
}

/// An image as the build follows it: ID, config and layers.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    pub config: ImageConfig,
    pub layers: Vec<LayerInfo>,
}

impl Current {
    pub fn from_info(info: &ImageInfo) -> Result<Current> {
        Ok(Current {
            id: info.id.clone(),
            config: ImageConfig::parse(&info.config)?,
            layers: info.layers.clone(),
        })
    }

    pub fn load(store: StoreClient, id: &str) -> Result<Current> {
        let info = store.image(id).map_err(call)?;
        Current::from_info(&info)
    }
}
