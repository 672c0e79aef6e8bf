//! `strata commit`: a container's changes as a new image whose config carries the
//! container's run settings, as podman's commit does.
//!
//! The new config is the base image's with the container's settings (its command,
//! environment, working directory, user, labels and stop signal), then `--change`, author,
//! message and one history entry; the store's `commit` (plugin ABI 1.4) adds the container's
//! diff as a layer and records the image with that config in one step, so a killed command
//! leaves no intermediate image.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use strata_engine_containers::Container;
use strata_plugin_api::store::CommitRequest;
use strata_plugin_api::ErrorKind;

use crate::context::Ctx;
use crate::errors::{call, kinded};

/// What to put into the new image besides the container's changes.
#[derive(Debug, Default)]
pub struct CommitOptions {
    pub name: Option<String>,
    pub changes: Vec<String>,
    pub author: Option<String>,
    pub message: Option<String>,
}

/// Commits container `name`; returns the new image's ID.
pub fn commit(ctx: &Ctx<'_>, name: &str, opts: &CommitOptions) -> Result<String> {
    let info = ctx.engine.store().container(name)?;
    let run = Container::from_record(&ctx.engine, info.clone())
        .ok()
        .map(|c| c.config);
    let base = ctx.store.image(&info.image).map_err(call)?;
    let mut config: Value = serde_json::from_str(&base.config).context("parse the image config")?;
    if !config.is_object() {
        return Err(kinded(
            ErrorKind::Corrupt,
            format!("the config of image {} is not a JSON object", base.id),
        ));
    }
    let created = strata_engine_monitor::timestamp::timestamp_now();
    config["created"] = json!(created);
    if let Some(run) = &run {
        let defaults = crate::images::defaults(&base)?;
        strata_engine_containers::image::apply_container_settings(&mut config, run, &defaults)?;
    }
    crate::commands::archive::changes::apply(&mut config, &opts.changes)
        .map_err(|e| kinded(ErrorKind::InvalidArgument, format!("{e:#}")))?;
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    let mut entry =
        json!({ "created": created, "created_by": format!("strata commit {}", info.name) });
    if let Some(a) = &opts.author {
        entry["author"] = json!(a);
    }
    if let Some(m) = &opts.message {
        entry["comment"] = json!(m);
    }
    match config["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => config["history"] = json!([entry]),
    }
    // One store call: the layer of the container's changes and the image with this config
    // (the store writes `rootfs`).
    let reply = ctx
        .store
        .commit_with(&CommitRequest {
            container: info.id.clone(),
            names: opts.name.iter().cloned().collect(),
            config: Some(config),
            ..CommitRequest::default()
        })
        .map_err(call)?;
    Ok(reply.image_id)
}
