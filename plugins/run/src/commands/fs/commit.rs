//! `strata commit`: a container's changes as a new image whose config carries the
//! container's run settings, as podman's commit does.
//!
//! The store's `commit` adds the container's diff as a layer on top of the image and copies
//! the base image's config. The config is then rewritten here (the container's command,
//! environment, working directory, user, labels and stop signal, then `--change`, author and
//! message) and the image recorded again through `import_image` with the same layers, which
//! the store already has, so nothing is extracted twice; the intermediate image is removed.
//! If the command dies in between, the intermediate image stays (named when a name was
//! given, with the base config; unnamed otherwise, for `system prune` to remove).

use anyhow::{Context, Result};
use serde_json::{json, Value};
use strata_plugin_api::store::{ImageInfo, ImportImageRequest, ImportLayer};
use strata_plugin_api::{CallError, ErrorKind};

use crate::config::ContainerConfig;
use crate::context::{Container, Ctx};
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
    let info = ctx.store.container(name).map_err(call)?;
    let run = Container::from_info(info.clone()).ok().map(|c| c.config);
    let temporary = format!("localhost/strata-commit-{}:{}", info.id, std::process::id());
    let first_name = opts.name.clone().unwrap_or_else(|| temporary.clone());
    let first = ctx.store.commit(&info.id, &first_name).map_err(call)?;
    let img = ctx.store.image(&first.image_id).map_err(call)?;
    let base = ctx.store.image(&info.image).map_err(call)?;

    let mut config: Value = serde_json::from_str(&img.config).context("parse the image config")?;
    if let Some(run) = &run {
        merge_run_config(&mut config, run, &base)?;
    }
    crate::commands::archive::changes::apply(&mut config, &opts.changes)
        .map_err(|e| kinded(ErrorKind::InvalidArgument, format!("{e:#}")))?;
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    if let Some(last) = config["history"].as_array_mut().and_then(|h| h.last_mut()) {
        last["created_by"] = json!(format!("strata commit {}", info.name));
        if let Some(a) = &opts.author {
            last["author"] = json!(a);
        }
        if let Some(m) = &opts.message {
            last["comment"] = json!(m);
        }
    }
    let config = serde_json::to_string(&config)?;
    let id = record(ctx, &img, config, opts.name.iter().cloned().collect())?;
    if id != img.id {
        ctx.store.remove_image(&img.id).map_err(call)?;
    }
    Ok(id)
}

/// Records `img`'s layers with a new `config` (the layers are already in the store).
fn record(ctx: &Ctx<'_>, img: &ImageInfo, config: String, names: Vec<String>) -> Result<String> {
    let layers: Vec<(&str, &str, u64)> = img
        .layers
        .iter()
        .map(|l| {
            (
                "application/vnd.oci.image.layer.v1.tar",
                l.diff_id.as_str(),
                l.size,
            )
        })
        .collect();
    let manifest = crate::commands::archive::layer::manifest(config.as_bytes(), &layers);
    let request = ImportImageRequest {
        manifest: serde_json::to_string(&manifest)?,
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config,
        layers: img
            .layers
            .iter()
            .map(|l| ImportLayer {
                diff_id: l.diff_id.clone(),
                blob_digest: Some(l.diff_id.clone()),
            })
            .collect(),
        names,
    };
    // Only asked for if the store lost a layer meanwhile: then it is regenerated from itself.
    let store = ctx.store;
    let chain: Vec<String> = img.layers.iter().map(|l| l.id.clone()).collect();
    let open = move |i: usize| -> Result<Box<dyn std::io::Read + Send>, CallError> {
        let id = chain.get(i).ok_or_else(|| CallError {
            kind: ErrorKind::Internal,
            message: format!("no layer {i}"),
        })?;
        Ok(Box::new(store.export_layer(id)?))
    };
    let reply = ctx.store.import_image(&request, &open).map_err(call)?;
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
