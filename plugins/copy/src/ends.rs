//! Opening the two ends of a copy from their names, and the registry commands
//! (`inspect-remote`, `list-tags`, `delete`, `sync`, `login`, `logout`).

use strata_graph_image::{parse_transport, ImageError, ImageName, Result};
use strata_plugin_api::Host;

pub use strata_plugin_transfer::ends::{open_destination, open_source, RemoteOptions};

use crate::commands::{DeleteArgs, InspectArgs, ListTagsArgs, LoginArgs, LogoutArgs, SyncArgs};
use crate::remote;

/// A name without a transport is a registry reference, as in `skopeo inspect`.
fn with_docker_default(name: &str) -> String {
    if parse_transport(name).is_ok() {
        name.to_owned()
    } else {
        format!("docker://{name}")
    }
}

pub fn inspect(host: &Host, a: InspectArgs) -> Result<()> {
    let name = with_docker_default(&a.image);
    let o = RemoteOptions {
        side: a.side.clone(),
        authfile: a.authfile.clone(),
        registries_conf: a.registries_conf.clone(),
        mount_from: Vec::new(),
        credentials: None,
    };
    let src = open_source(host, &name, &o)?;
    let raw = src.manifest()?;
    if a.raw && !a.config {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&raw.bytes)
            .and_then(|()| out.flush())
            .map_err(ImageError::io("write", "stdout"))?;
        return Ok(());
    }
    if a.config {
        let config = remote::config_bytes(src.as_ref())?;
        if a.raw {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&config)
                .and_then(|()| out.flush())
                .map_err(ImageError::io("write", "stdout"))?;
            return Ok(());
        }
        let v: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| ImageError::Invalid(format!("the image config is not JSON: {e}")))?;
        return crate::commands::print_json(&v);
    }
    let mut info = strata_graph_image::inspect(src.as_ref(), None)?;
    if let ImageName::Docker { reference } = parse_transport(&name)? {
        let (canonical, tags) = remote::name_and_tags(&reference, &o, !a.no_tags)?;
        info.name = Some(canonical);
        info.repo_tags = tags;
    }
    // Printed from the struct (not a Value) to keep skopeo's key order.
    let text =
        serde_json::to_string_pretty(&info).map_err(|e| ImageError::Invalid(e.to_string()))?;
    println!("{text}");
    Ok(())
}

pub fn list_tags(a: ListTagsArgs) -> Result<()> {
    let o = RemoteOptions {
        side: a.side.clone(),
        authfile: a.authfile.clone(),
        registries_conf: a.registries_conf.clone(),
        mount_from: Vec::new(),
        credentials: None,
    };
    let reference = docker_reference(&a.repository)?;
    let (repo, tags) = remote::name_and_tags(&reference, &o, true)?;
    let repo = repo.split(['@']).next().unwrap_or(&repo);
    let repo = strip_tag(repo);
    crate::commands::print_json(&serde_json::json!({ "Repository": repo, "Tags": tags }))
}

pub fn delete(a: DeleteArgs) -> Result<()> {
    let o = RemoteOptions {
        side: a.side.clone(),
        authfile: a.authfile.clone(),
        registries_conf: a.registries_conf.clone(),
        mount_from: Vec::new(),
        credentials: None,
    };
    remote::delete(&docker_reference(&a.image)?, &o)
}

pub fn sync(host: &Host, a: SyncArgs) -> Result<()> {
    remote::sync(host, &a)
}

pub fn login(a: LoginArgs) -> Result<()> {
    remote::login(&a)
}

pub fn logout(a: LogoutArgs) -> Result<()> {
    remote::logout(&a)
}

/// `docker://REF` (or a bare `REF`) to `REF`.
fn docker_reference(name: &str) -> Result<String> {
    match parse_transport(&with_docker_default(name))? {
        ImageName::Docker { reference } => Ok(reference),
        other => Err(ImageError::Invalid(format!(
            "{other} is not a registry image; this command works on docker://REFERENCE"
        ))),
    }
}

/// `host/repo:tag` to `host/repo` (a port colon is kept).
fn strip_tag(r: &str) -> &str {
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => &r[..i],
        _ => r,
    }
}
