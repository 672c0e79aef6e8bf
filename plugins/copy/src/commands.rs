//! Argument parsing (clap, skopeo's option names) and the commands themselves.

use std::path::PathBuf;

use clap::{Args, Parser};
use strata_graph_image::compression::Compression;
use strata_graph_image::copy::{copy_image, CopyOptions};
use strata_graph_image::manifest::Flavor;
use strata_graph_image::platform::Platform;
use strata_graph_image::ImageError;
use strata_plugin_api::{ErrorKind, Host, Outcome};
use strata_types::HasKind;

use crate::ends::{self, RemoteOptions};

/// Runs one of the plugin's commands.
pub fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
    let argv = std::iter::once(format!("strata {command}")).chain(args.iter().cloned());
    let result = match command {
        "copy" => parse::<CopyArgs>(argv).map(|a| copy(host, a)),
        "inspect-remote" => parse::<InspectArgs>(argv).map(|a| ends::inspect(host, a)),
        "list-tags" => parse::<ListTagsArgs>(argv).map(ends::list_tags),
        "delete" => parse::<DeleteArgs>(argv).map(ends::delete),
        "sync" => parse::<SyncArgs>(argv).map(|a| ends::sync(host, a)),
        "login" => parse::<LoginArgs>(argv).map(ends::login),
        "logout" => parse::<LogoutArgs>(argv).map(ends::logout),
        other => {
            return Outcome::Error {
                kind: ErrorKind::InvalidArgument,
                message: format!("the copy plugin has no command {other}"),
            }
        }
    };
    match result {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => Outcome::Error {
            kind: strata_plugin_bridge::api_kind(e.kind()),
            message: e.to_string(),
        },
        Err(outcome) => outcome,
    }
}

/// Parses with clap; help and usage errors are printed here (help exits 0, errors 2).
fn parse<T: Parser>(argv: impl Iterator<Item = String>) -> Result<T, Outcome> {
    T::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        Outcome::Exit(if e.use_stderr() { 2 } else { 0 })
    })
}

pub use strata_plugin_transfer::ends::SideArgs;

#[derive(Debug, Parser)]
#[command(
    about = "Copy an image between registries, layouts, archives and the store",
    long_about = "Copy an image between registries, layouts, archives and the store.\n\n\
    Transports: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG], \
    dir:DIR, store:NAME (Strata's store; images stream straight into the layer pipeline)."
)]
pub struct CopyArgs {
    /// Source image, as TRANSPORT:DETAILS
    pub source: String,
    /// Destination image, as TRANSPORT:DETAILS
    pub destination: String,
    /// Copy every image of a multi-platform index (and the index itself)
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Recompress layers: gzip or zstd
    #[arg(long, value_name = "FORMAT", value_parser = ["gzip", "zstd"])]
    pub dest_compress_format: Option<String>,
    /// Manifest format to write: oci or v2s2
    #[arg(long, short = 'f', value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    pub format: Option<String>,
    /// Use OS instead of this machine's when choosing from an index
    #[arg(long, value_name = "OS")]
    pub override_os: Option<String>,
    /// Use ARCH instead of this machine's when choosing from an index
    #[arg(long, value_name = "ARCH")]
    pub override_arch: Option<String>,
    /// Use VARIANT when choosing from an index
    #[arg(long, value_name = "VARIANT")]
    pub override_variant: Option<String>,
    /// Blobs copied at once
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Print nothing but errors
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Credentials file (default: the containers auth.json locations)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// registries.conf to use instead of /etc/containers/registries.conf
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Source registry")]
    pub src: SrcArgs,
    #[command(flatten, next_help_heading = "Destination registry")]
    pub dest: DestArgs,
}

#[derive(Debug, Clone, Args, Default)]
pub struct SrcArgs {
    /// Verify TLS for the source registry (default true; false also allows plain HTTP)
    #[arg(id = "src_tls_verify", long = "src-tls-verify", value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Credentials as USER[:PASSWORD] for the source registry
    #[arg(id = "src_creds", long = "src-creds", value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Certificates directory for the source registry
    #[arg(id = "src_cert_dir", long = "src-cert-dir", value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args, Default)]
pub struct DestArgs {
    /// Verify TLS for the destination registry (default true; false also allows plain HTTP)
    #[arg(id = "dest_tls_verify", long = "dest-tls-verify", value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Credentials as USER[:PASSWORD] for the destination registry
    #[arg(id = "dest_creds", long = "dest-creds", value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Certificates directory for the destination registry
    #[arg(id = "dest_cert_dir", long = "dest-cert-dir", value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

fn copy(host: &Host, a: CopyArgs) -> Result<(), ImageError> {
    let src_opts = RemoteOptions {
        side: SideArgs {
            tls_verify: a.src.tls_verify,
            creds: a.src.creds.clone(),
            cert_dir: a.src.cert_dir.clone(),
        },
        authfile: a.authfile.clone(),
        registries_conf: a.registries_conf.clone(),
        mount_from: Vec::new(),
        credentials: None,
    };
    let dst_opts = RemoteOptions {
        side: SideArgs {
            tls_verify: a.dest.tls_verify,
            creds: a.dest.creds.clone(),
            cert_dir: a.dest.cert_dir.clone(),
        },
        authfile: a.authfile.clone(),
        registries_conf: a.registries_conf.clone(),
        mount_from: crate::remote::mount_sources(&a.source, &a.destination),
        credentials: None,
    };
    let src = ends::open_source(host, &a.source, &src_opts)?;
    let (dst, dst_name) = ends::open_destination(host, &a.destination, &dst_opts)?;
    let platform = match (&a.override_os, &a.override_arch) {
        (None, None) if a.override_variant.is_none() => None,
        _ => {
            let host_p = Platform::host();
            Some(Platform {
                os: a.override_os.clone().unwrap_or(host_p.os),
                architecture: a.override_arch.clone().unwrap_or(host_p.architecture),
                variant: a.override_variant.clone(),
            })
        }
    };
    let mut dest_compression = match a.dest_compress_format.as_deref() {
        Some("zstd") => Some(Compression::Zstd),
        Some(_) => Some(Compression::Gzip),
        None => None,
    };
    // The store serves uncompressed tars; compress them for destinations that keep blobs as
    // they are (registries, layouts), as skopeo does from containers-storage.
    if dest_compression.is_none()
        && a.source.starts_with("store:")
        && !a.destination.starts_with("docker-archive:")
    {
        dest_compression = Some(Compression::Gzip);
    }
    let opts = CopyOptions {
        platform,
        all: a.all,
        jobs: a.jobs.max(1),
        dest_compression,
        // OCI layouts hold OCI manifests only (skopeo skips others), so they force the format.
        format: a
            .format
            .as_deref()
            .map(|f| {
                if f == "oci" {
                    Flavor::Oci
                } else {
                    Flavor::Docker
                }
            })
            .or(dst_name.required_format()),
        temp_dir: None,
        progress: crate::progress::reporter(a.quiet),
    };
    let report = copy_image(src.as_ref(), dst.as_ref(), &opts)?;
    if !a.quiet {
        eprintln!("Writing manifest to image destination");
    }
    tracing::info!(
        manifest = %report.manifest_digest,
        copied = report.blobs_copied,
        skipped = report.blobs_skipped,
        bytes = report.bytes,
        "copy done"
    );
    if let Some(id) = report.image_id {
        println!("{}", id.as_str());
    }
    Ok(())
}

#[derive(Debug, Parser)]
#[command(about = "Show an image's manifest, config and tags without pulling it")]
pub struct InspectArgs {
    /// The image, as TRANSPORT:DETAILS (docker://REF if no transport is given)
    pub image: String,
    /// Print the manifest exactly as stored
    #[arg(long)]
    pub raw: bool,
    /// Print the image config (with --raw: exactly as stored)
    #[arg(long)]
    pub config: bool,
    /// Output format
    #[arg(long, value_parser = ["json"], default_value = "json")]
    pub format: String,
    /// Do not list the repository's tags
    #[arg(long)]
    pub no_tags: bool,
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    #[command(flatten)]
    pub side: SideArgs,
}

#[derive(Debug, Parser)]
#[command(about = "List a repository's tags")]
pub struct ListTagsArgs {
    /// The repository, as docker://NAME
    pub repository: String,
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    #[command(flatten)]
    pub side: SideArgs,
}

#[derive(Debug, Parser)]
#[command(about = "Delete an image (its manifest) from a registry")]
pub struct DeleteArgs {
    /// The image, as docker://REF
    pub image: String,
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    #[command(flatten)]
    pub side: SideArgs,
}

#[derive(Debug, Parser)]
#[command(
    about = "Copy every tag of a repository",
    long_about = "Copy every tag of a repository.\n\n\
    SOURCE is docker://REGISTRY/REPO (every tag) or docker://REGISTRY/REPO:TAG (one). \
    DESTINATION is docker://REGISTRY/NAMESPACE (each image keeps its repository name and tag), \
    oci:DIR (one layout, tags as references) or dir:DIR (DIR/REPO:TAG per image)."
)]
pub struct SyncArgs {
    pub source: String,
    pub destination: String,
    /// Copy every platform of multi-platform images
    #[arg(long, short = 'a')]
    pub all: bool,
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Source registry")]
    pub src: SrcArgs,
    #[command(flatten, next_help_heading = "Destination registry")]
    pub dest: DestArgs,
}

#[derive(Debug, Parser)]
#[command(about = "Log in to a registry; credentials are stored in auth.json (mode 0600)")]
pub struct LoginArgs {
    /// The registry, as HOST[:PORT]
    pub registry: String,
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    #[arg(long, short = 'p')]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

#[derive(Debug, Parser)]
#[command(about = "Remove stored registry credentials")]
pub struct LogoutArgs {
    /// The registry, as HOST[:PORT]
    pub registry: Option<String>,
    /// Remove the credentials of every registry
    #[arg(long, short = 'a')]
    pub all: bool,
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

/// `--format json` outputs.
pub fn print_json(v: &serde_json::Value) -> Result<(), ImageError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| ImageError::Invalid(e.to_string()))?;
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_command_line_definition_is_consistent() {
        CopyArgs::command().debug_assert();
        InspectArgs::command().debug_assert();
        ListTagsArgs::command().debug_assert();
        DeleteArgs::command().debug_assert();
        SyncArgs::command().debug_assert();
        LoginArgs::command().debug_assert();
        LogoutArgs::command().debug_assert();
    }

    #[test]
    fn copy_takes_skopeo_option_names() {
        let a = CopyArgs::try_parse_from([
            "strata copy",
            "--src-tls-verify=false",
            "--dest-creds",
            "u:p",
            "--dest-compress-format",
            "zstd",
            "-a",
            "docker://a/b",
            "oci:/x:y",
        ])
        .expect("parses");
        assert_eq!(a.src.tls_verify, Some(false));
        assert_eq!(a.dest.creds.as_deref(), Some("u:p"));
        assert_eq!(a.dest_compress_format.as_deref(), Some("zstd"));
        assert!(a.all);
        assert_eq!(a.destination, "oci:/x:y");
    }
}
