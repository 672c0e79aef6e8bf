//! Image names as podman resolves them, and pulls through the copy front end's code path
//! (`docker://REF` → the store, streamed straight into the layer pipeline).
//!
//! A fully qualified name is itself. A short name (`busybox`) is looked up locally as
//! `localhost/busybox:latest` and as each registries.conf candidate
//! (`docker.io/library/busybox:latest`, ...) and pulled from the candidates in order.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use strata_graph_image::copy::{copy_image, CopyOptions};
use strata_graph_registry::{Reference, RegistriesConf};
use strata_plugin_api::store::ImageInfo;
use strata_plugin_api::ErrorKind;
use strata_plugin_transfer::ends::{open_destination, open_source, RemoteOptions, SideArgs};

use strata_engine_containers::ImageDefaults;

use crate::context::Ctx;
use crate::errors::{call, kinded};

/// Registry options of `pull`, `push`, `run` and `create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Verify TLS of the registry (default true; false also allows plain HTTP)
    #[arg(long, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Credentials as USER[:PASSWORD]
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Credentials file (default: the containers auth.json locations)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Directory with CA certificates (*.crt) and client certificates
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

/// The names a user-typed image name may have in the store, most specific first.
pub fn local_candidates(name: &str) -> Vec<String> {
    let mut out = vec![name.to_owned()];
    if name.contains(['/', ':', '@']) && !Reference::is_short_name(name) {
        if let Ok(r) = Reference::parse(name) {
            out.push(r.to_string());
        }
        return out;
    }
    if Reference::is_short_name(name) && !looks_like_id(name) {
        if let Ok(r) = Reference::parse(&format!("localhost/{name}")) {
            out.push(r.to_string());
        }
        if let Ok(conf) = RegistriesConf::load_default() {
            if let Ok(c) = conf.candidates(name) {
                out.extend(c.iter().map(|r| r.to_string()));
            }
        }
        if let Ok(r) = Reference::parse(name) {
            out.push(r.to_string());
        }
    }
    out.dedup();
    out
}

fn looks_like_id(name: &str) -> bool {
    name.len() >= 12 && name.chars().all(|c| c.is_ascii_hexdigit())
}

/// The image in the store a user-typed name refers to, if any.
pub fn find_local(ctx: &Ctx<'_>, name: &str) -> Result<Option<ImageInfo>> {
    for cand in local_candidates(name) {
        match ctx.store.image(&cand) {
            Ok(i) => return Ok(Some(i)),
            Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::InvalidArgument => {}
            Err(e) => return Err(call(e)),
        }
    }
    Ok(None)
}

/// Copies `source` to `destination` (transport names) with the copy engine, as `strata copy`
/// does; `reg` applies to whichever end is a registry.
pub fn copy(
    ctx: &Ctx<'_>,
    source: &str,
    destination: &str,
    reg: &RegistryArgs,
    quiet: bool,
    flavor: Option<strata_graph_image::Flavor>,
    compression: Option<strata_graph_image::Compression>,
) -> Result<strata_graph_image::CopyReport> {
    let o = RemoteOptions {
        side: SideArgs {
            tls_verify: reg.tls_verify,
            creds: reg.creds.clone(),
            cert_dir: reg.cert_dir.clone(),
        },
        authfile: reg.authfile.clone(),
        registries_conf: None,
        mount_from: Vec::new(),
    };
    let kinded_err = |e: strata_graph_image::ImageError| {
        kinded(
            strata_plugin_bridge::api_kind(strata_types::HasKind::kind(&e)),
            e.to_string(),
        )
    };
    let src = open_source(ctx.host, source, &o).map_err(kinded_err)?;
    let (dst, dst_name) = open_destination(ctx.host, destination, &o).map_err(kinded_err)?;
    let opts = CopyOptions {
        platform: None,
        all: false,
        jobs: 4,
        // The store serves uncompressed tars: the caller says how to compress them.
        dest_compression: compression,
        format: flavor.or(dst_name.required_format()),
        temp_dir: None,
        progress: strata_plugin_transfer::progress::reporter(quiet),
    };
    copy_image(src.as_ref(), dst.as_ref(), &opts).map_err(kinded_err)
}

/// Pulls `name` into the store, trying each candidate registry in order; returns the image.
pub fn pull(ctx: &Ctx<'_>, name: &str, reg: &RegistryArgs, quiet: bool) -> Result<ImageInfo> {
    let name = name.strip_prefix("docker://").unwrap_or(name);
    let candidates = match &reg_conf()? {
        Some(conf) => conf.candidates(name),
        None => Reference::parse(name).map(|r| vec![r]),
    }
    .map_err(|e| kinded(ErrorKind::InvalidArgument, e.to_string()))?;
    let mut errors = Vec::new();
    for r in candidates {
        let full = r.to_string();
        if !quiet {
            eprintln!("Trying to pull {full}...");
        }
        match copy(
            ctx,
            &format!("docker://{full}"),
            &format!("store:{full}"),
            reg,
            quiet,
            None,
            None,
        ) {
            Ok(_) => return ctx.store.image(&full).map_err(call),
            Err(e) => errors.push(format!("{full}: {e}")),
        }
    }
    let kind = if errors
        .iter()
        .any(|e| e.contains("not found") || e.contains("unknown"))
    {
        ErrorKind::NotFound
    } else {
        ErrorKind::Unavailable
    };
    Err(kinded(
        kind,
        format!("unable to pull {name}: {}", errors.join("; ")),
    ))
}

fn reg_conf() -> Result<Option<RegistriesConf>> {
    match RegistriesConf::load_default() {
        Ok(c) => Ok(Some(c)),
        Err(e) => Err(anyhow::anyhow!("{e}")).context("load registries.conf"),
    }
}

/// `--pull` policies of `run` and `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
    Newer,
}

/// The image for `run`/`create`: local, or pulled per the policy.
pub fn for_run(
    ctx: &Ctx<'_>,
    name: &str,
    policy: PullPolicy,
    reg: &RegistryArgs,
    quiet: bool,
) -> Result<ImageInfo> {
    let local = if policy == PullPolicy::Always {
        None
    } else {
        find_local(ctx, name)?
    };
    match (local, policy) {
        (Some(i), _) => Ok(i),
        (None, PullPolicy::Never) => bail!(kinded(
            ErrorKind::NotFound,
            format!("{name}: image not known (and --pull=never)")
        )),
        (None, _) => pull(ctx, name, reg, quiet),
    }
}

/// The parts of an image config that `run` uses.
pub fn defaults(info: &ImageInfo) -> Result<ImageDefaults> {
    Ok(ImageDefaults::from_config(&info.config)?)
}
