//! Committing a container: the layer of its changes (the store's own diff, built in a
//! temporary file and imported like any layer) and an image of it, with the container's image
//! config (`strata storage commit`) or a config the caller gives (the plugin ABI's
//! `store.commit`, for `strata commit` and builds).
//!
//! A crash between the layer and the image leaves the layer unreferenced, which `gc` removes;
//! never an image without its layer.

use std::io::{Seek, SeekFrom};

use strata_types::{Digest, ImageId, LayerId};

use crate::blobs::TempFile;
use crate::error::{Result, StoreError};
use crate::import::LayerInput;
use crate::store::Store;

/// What [`Store::commit_with`] does besides committing the container's changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitOptions {
    /// The new image's names (none: a dangling image).
    pub names: Vec<String>,
    /// The new image's config; the store writes its `rootfs`.
    pub config: Option<serde_json::Value>,
    /// Commit the config only, without a layer of the container's changes.
    pub empty_layer: bool,
}

/// What [`Store::commit_with`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub image: ImageId,
    /// The new layer's chain ID (none with `empty_layer`).
    pub layer: Option<LayerId>,
    pub diff_id: Option<Digest>,
}

impl Store {
    /// A container's changes as a new image named `image_name`, with its image's config plus
    /// the new layer, a `created` time and a history entry.
    pub fn commit(&self, name: &str, image_name: &str) -> Result<ImageId> {
        self.commit_with(
            name,
            &CommitOptions {
                names: vec![image_name.to_owned()],
                ..CommitOptions::default()
            },
        )
        .map(|c| c.image)
    }

    /// Commits a container as `opts` says: the layer of its changes (unless `empty_layer`)
    /// and an image with `opts.config` (its `rootfs` written by the store) or, without one,
    /// the container's image config with the new layer, a `created` time and a history
    /// entry.
    pub fn commit_with(&self, name: &str, opts: &CommitOptions) -> Result<Committed> {
        let c = self.container(name)?;
        let base = self.meta.read(|tx| {
            tx.image(&c.image)?
                .ok_or_else(|| StoreError::Corrupt(format!("container {} has no image", c.name)))
        })?;
        let _gc = self.gc_shared()?;
        let mut lease = None;
        let mut new_diff = None;
        if !opts.empty_layer {
            let mut tmp = TempFile::new(&self.paths, ".tar")?;
            let (diff_id, _size) = self.diff(name, std::io::BufWriter::new(&tmp.file))?;
            tmp.file
                .seek(SeekFrom::Start(0))
                .map_err(StoreError::io("seek", &tmp.path))?;
            let file = tmp
                .file
                .try_clone()
                .map_err(StoreError::io("reopen", &tmp.path))?;
            lease = Some(self.put_layers(
                c.parent_layer.as_ref(),
                vec![LayerInput {
                    diff_id: diff_id.clone(),
                    blob_digest: Some(diff_id.clone()),
                    open: Box::new(move || Ok(Box::new(file))),
                }],
            )?);
            new_diff = Some(diff_id);
        }
        let top = match &lease {
            Some(l) => l.top().cloned(),
            None => c.parent_layer.clone(),
        };
        let config = match &opts.config {
            Some(given) => {
                let mut config = given.clone();
                let Some(obj) = config.as_object_mut() else {
                    return Err(StoreError::Invalid(
                        "the commit's image config is not a JSON object".into(),
                    ));
                };
                let mut diff_ids: Vec<serde_json::Value> = match &c.parent_layer {
                    Some(p) => {
                        let mut chain = self.meta.read(|tx| tx.chain(p))?;
                        chain.reverse();
                        chain
                            .iter()
                            .map(|l| serde_json::json!(l.diff_id.as_str()))
                            .collect()
                    }
                    None => Vec::new(),
                };
                diff_ids.extend(new_diff.iter().map(|d| serde_json::json!(d.as_str())));
                obj.insert(
                    "rootfs".into(),
                    serde_json::json!({ "type": "layers", "diff_ids": diff_ids }),
                );
                config
            }
            None => {
                // The base config with the new diff ID and a history entry.
                let mut config: serde_json::Value =
                    serde_json::from_slice(&self.blobs.read(base.id.digest())?).map_err(|e| {
                        StoreError::Corrupt(format!("config of image {}: {e}", base.id))
                    })?;
                let created = crate::oci::rfc3339_now();
                config["created"] = serde_json::json!(created);
                let rootfs = config
                    .get_mut("rootfs")
                    .and_then(|r| r.get_mut("diff_ids"))
                    .and_then(|d| d.as_array_mut())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "config of image {} has no rootfs.diff_ids",
                            base.id
                        ))
                    })?;
                rootfs.extend(new_diff.iter().map(|d| serde_json::json!(d.as_str())));
                let hist = config
                    .as_object_mut()
                    .expect("config is an object")
                    .entry("history")
                    .or_insert(serde_json::json!([]));
                if let Some(h) = hist.as_array_mut() {
                    let mut entry = serde_json::json!({"created": created, "created_by": format!("strata storage commit {}", c.name)});
                    if opts.empty_layer {
                        entry["empty_layer"] = serde_json::json!(true);
                    }
                    h.push(entry);
                }
                config
            }
        };
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let img = self.record_image(&config_bytes, None, top.clone(), &opts.names)?;
        drop(lease);
        Ok(Committed {
            image: img,
            layer: new_diff.as_ref().and(top),
            diff_id: new_diff,
        })
    }
}
