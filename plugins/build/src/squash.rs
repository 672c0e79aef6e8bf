//! `--squash` and `--squash-all`, podman's two meanings: the build's new layers squashed into
//! one on top of the base image's layers, or every layer (the base's too) into one.
//!
//! The squashed layer is made by the store, not by hand: a working container of the base
//! image (or of the empty scratch image) has the layers to squash applied to its root, in
//! order, as the OCI layers they are (whiteouts remove, opaque markers empty a directory),
//! and is committed; the store's diff of that container is the squashed layer. The result is
//! cached under the final image's ID, so a cached rebuild gives the same squashed image.

use anyhow::{Context, Result};
use strata_plugin_api::store::LayerInfo;
use strata_plugin_api::StoreClient;
use strata_plugin_transfer::errors::call;

use crate::cache::KeyBuilder;
use crate::commit::{Current, Working};
use crate::config::Format;
use crate::tree::Root;

/// Squashes `image`'s layers past the first `keep` (those of `base`) into one layer on top of
/// `base`; returns the new image's ID.
pub fn squash(
    store: StoreClient,
    image: &Current,
    base: &Current,
    format: Format,
    use_cache: bool,
    record: bool,
) -> Result<String> {
    let keep = base.layers.len();
    let new: Vec<LayerInfo> = image.layers[keep.min(image.layers.len())..].to_vec();
    if new.len() <= 1 && keep > 0 {
        return Ok(image.id.clone()); // nothing to squash
    }
    let mut key = KeyBuilder::new(&image.id, format.name());
    key.add("squash-onto", &base.id);
    let (key, _) = key.finish();
    if use_cache {
        if let Some(id) = store.cache_lookup(&key).map_err(call)? {
            return Ok(id);
        }
    }
    let mut work = Working::new(store, &base.id, "squash")?;
    let root_path = work.root()?;
    {
        let root = Root::open(&root_path)?;
        for l in &new {
            let tar = store
                .export_layer(&l.id)
                .map_err(call)
                .with_context(|| format!("read layer {}", l.id))?;
            crate::extract::unpack(tar, &root, "", None, true)
                .with_context(|| format!("apply layer {} to the squashed layer", l.id))?;
        }
    }
    let mut config = image.config.clone();
    // One history entry for the squashed layer after the base's own entries.
    let base_history = base.config.json["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let created = image.config.json["created"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    config.set_top("history", serde_json::Value::Array(base_history));
    config.add_history(&created, "/bin/sh -c #(nop) squashed build layers", false);
    let id = work.commit(&config)?;
    drop(work);
    if record {
        store.cache_record(&key, &id).map_err(call)?;
    }
    Ok(id)
}
