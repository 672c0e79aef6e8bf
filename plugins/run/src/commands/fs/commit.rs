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
use strata_engine_containers::{Container, ContainerConfig};
use strata_plugin_api::store::{CommitRequest, ImageInfo};
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
        merge_run_config(&mut config, run, &base)?;
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

/// The container's settings as the image's defaults: what `run` with no arguments would do
/// in the new image is what the container did.
fn merge_run_config(config: &mut Value, run: &ContainerConfig, base: &ImageInfo) -> Result<()> {
    let defaults = crate::images::defaults(base)?;
    let c = config
        .as_object_mut()
        .context("the image config is not an object")?
        .entry("config")
        .or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    let ep = &defaults.entrypoint;
    if !ep.is_empty() && run.args.starts_with(ep) {
        c["Entrypoint"] = json!(ep);
        c["Cmd"] = json!(run.args[ep.len()..]);
    } else {
        if let Some(o) = c.as_object_mut() {
            o.remove("Entrypoint");
        }
        c["Cmd"] = json!(run.args);
    }
    c["Env"] = json!(run.env);
    if !run.workdir.is_empty() {
        c["WorkingDir"] = json!(run.workdir);
    }
    if !run.user.is_empty() {
        c["User"] = json!(run.user);
    }
    if !run.stop_signal.is_empty() {
        c["StopSignal"] = json!(run.stop_signal);
    }
    if !run.labels.is_empty() {
        if !c["Labels"].is_object() {
            c["Labels"] = json!({});
        }
        for (k, v) in &run.labels {
            c["Labels"][k] = json!(v);
        }
    }
    Ok(())
}
