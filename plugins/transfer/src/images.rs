//! Image names as podman resolves them, and pulls through the copy engine (`docker://REF` →
//! the store, streamed straight into the layer pipeline): what `run`, `pull` and `build`'s
//! `FROM` share.
//!
//! A fully qualified name is itself. A short name (`busybox`) is looked up locally as
//! `localhost/busybox:latest` and as each registries.conf candidate
//! (`docker.io/library/busybox:latest`, ...) and pulled from the candidates in order.
//!
//! Errors are the API's `CallError` (a kind and a message), so each front end maps them to
//! its exit codes as it maps the host's own.

use std::path::PathBuf;

use strata_graph_image::copy::{copy_image, CopyOptions};
use strata_graph_registry::{Reference, RegistriesConf};
use strata_plugin_api::store::ImageInfo;
use strata_plugin_api::{CallError, ErrorKind, Host};

use crate::ends::{open_destination, open_source, RemoteOptions, SideArgs};

/// Registry options of `pull`, `push`, `run`, `create` and `build`.
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
    /// Credentials a front end was handed (not a flag): beat `creds` and the auth files.
    #[arg(skip)]
    pub credentials: Option<strata_graph_registry::Credentials>,
}

/// `--pull` policies of `run`, `create` and `build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
    Newer,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> CallError {
    CallError {
        kind,
        message: message.into(),
    }
}

/// An image name as podman stores a new one: short names get `localhost/`, and `:latest`.
pub fn qualify(name: &str) -> Result<String, CallError> {
    let full = if Reference::is_short_name(name) {
        format!("localhost/{name}")
    } else {
        name.to_owned()
    };
    Reference::parse(&full)
        .map(|r| r.to_string())
        .map_err(|e| error(ErrorKind::InvalidArgument, e.to_string()))
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
pub fn find_local(host: &Host, name: &str) -> Result<Option<ImageInfo>, CallError> {
    let store = host.store();
    for cand in local_candidates(name) {
        match store.image(&cand) {
            Ok(i) => return Ok(Some(i)),
            Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::InvalidArgument => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Copies `source` to `destination` (transport names) with the copy engine, as `strata copy`
/// does; `reg` applies to whichever end is a registry.
pub fn copy(
    host: &Host,
    source: &str,
    destination: &str,
    reg: &RegistryArgs,
    quiet: bool,
    flavor: Option<strata_graph_image::Flavor>,
    compression: Option<strata_graph_image::Compression>,
) -> Result<strata_graph_image::CopyReport, CallError> {
    let o = RemoteOptions {
        side: SideArgs {
            tls_verify: reg.tls_verify,
            creds: reg.creds.clone(),
            cert_dir: reg.cert_dir.clone(),
        },
        authfile: reg.authfile.clone(),
        registries_conf: None,
        mount_from: Vec::new(),
        credentials: reg.credentials.clone(),
    };
    let kinded = |e: strata_graph_image::ImageError| {
        error(
            strata_plugin_bridge::api_kind(strata_types::HasKind::kind(&e)),
            e.to_string(),
        )
    };
    let src = open_source(host, source, &o).map_err(kinded)?;
    let (dst, dst_name) = open_destination(host, destination, &o).map_err(kinded)?;
    let opts = CopyOptions {
        platform: None,
        all: false,
        jobs: 4,
        // The store serves uncompressed tars: the caller says how to compress them.
        dest_compression: compression,
        format: flavor.or(dst_name.required_format()),
        temp_dir: None,
        progress: crate::progress::reporter(quiet),
    };
    copy_image(src.as_ref(), dst.as_ref(), &opts).map_err(kinded)
}

/// Pulls `name` into the store, trying each candidate registry in order; returns the image.
pub fn pull(
    host: &Host,
    name: &str,
    reg: &RegistryArgs,
    quiet: bool,
) -> Result<ImageInfo, CallError> {
    let name = name.strip_prefix("docker://").unwrap_or(name);
    let candidates = match RegistriesConf::load_default() {
        Ok(conf) => conf.candidates(name),
        Err(e) => {
            return Err(error(
                ErrorKind::Internal,
                format!("load registries.conf: {e}"),
            ))
        }
    }
    .map_err(|e| error(ErrorKind::InvalidArgument, e.to_string()))?;
    let mut errors = Vec::new();
    for r in candidates {
        let full = r.to_string();
        if !quiet {
            eprintln!("Trying to pull {full}...");
        }
        let copied = copy(
            host,
            &format!("docker://{full}"),
            &format!("store:{full}"),
            reg,
            quiet,
            None,
            None,
        );
        match copied {
            Ok(_) => return host.store().image(&full),
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
    Err(error(
        kind,
        format!("unable to pull {name}: {}", errors.join("; ")),
    ))
}

/// The image a command names: local, or pulled per the policy (`newer` pulls only when it
/// is missing: a registry check per use would make every offline run fail).
pub fn resolve(
    host: &Host,
    name: &str,
    policy: PullPolicy,
    reg: &RegistryArgs,
    quiet: bool,
) -> Result<ImageInfo, CallError> {
    let local = if policy == PullPolicy::Always {
        None
    } else {
        find_local(host, name)?
    };
    match (local, policy) {
        (Some(i), _) => Ok(i),
        (None, PullPolicy::Never) => Err(error(
            ErrorKind::NotFound,
            format!("{name}: image not known (and --pull=never)"),
        )),
        (None, _) => pull(host, name, reg, quiet),
    }
}
