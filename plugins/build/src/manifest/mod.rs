//! `strata manifest` (podman's and buildah's `manifest`): manifest lists assembled from images
//! in the store or anywhere the copy engine reads (`docker://`, `oci:`, ...), annotated with
//! platforms, and pushed with every image they name through the copy engine, which rewrites
//! the list when it recompresses an image on the way.
//!
//! What it deliberately does not do: build for other platforms (build per platform, or add
//! images built elsewhere), or keep lists in the image store (they are small files beside it,
//! `list.rs`, and name images rather than hold them).

mod list;
mod source;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use strata_graph_image::copy::{copy_image, CopyOptions};
use strata_graph_image::manifest::{classify, parse_config, parse_index, ManifestKind};
use strata_graph_image::platform::Platform;
use strata_graph_image::{Descriptor, ImageSource, RawManifest};
use strata_plugin_api::{ErrorKind, Host, Outcome};
use strata_plugin_transfer::ends::{open_destination, open_source, RemoteOptions, SideArgs};
use strata_plugin_transfer::errors::{call, kinded};
use strata_plugin_transfer::images::{qualify, RegistryArgs};
use strata_types::Digest;

use list::List;

#[derive(Debug, Parser)]
#[command(
    name = "strata manifest",
    about = "Create, annotate, inspect and push manifest lists"
)]
pub struct ManifestCmd {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Create a manifest list, optionally with images in it
    Create {
        list: String,
        images: Vec<String>,
        /// Add to the list if it exists instead of failing
        #[arg(long)]
        amend: bool,
        /// Add every image of an index given, not only this platform's
        #[arg(long)]
        all: bool,
    },
    /// Add an image (local name, or TRANSPORT:REF) to a manifest list
    Add {
        list: String,
        image: String,
        #[command(flatten)]
        platform: PlatformArgs,
        /// Add every image of an index, not only the one for the platform asked for
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Set an entry's platform and annotations
    Annotate {
        list: String,
        /// The entry: its digest (or a unique prefix), or the image it was added from
        entry: String,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Show a manifest list (the OCI image index)
    Inspect { list: String },
    /// Push a manifest list and the images it names
    Push {
        list: String,
        /// Where to (a registry reference, or TRANSPORT:REF); default the list's name
        destination: Option<String>,
        /// Push the list's images too (podman's default; false is not supported)
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        all: bool,
        /// Remove the list after a successful push
        #[arg(long)]
        rm: bool,
        /// Write the pushed list's digest to this file
        #[arg(long)]
        digestfile: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Remove manifest lists (not the images they name)
    Rm {
        #[arg(required = true)]
        lists: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlatformArgs {
    #[arg(long)]
    pub os: Option<String>,
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long)]
    pub variant: Option<String>,
    #[arg(long = "os-version")]
    pub os_version: Option<String>,
    /// KEY=VALUE (repeatable)
    #[arg(long)]
    pub annotation: Vec<String>,
}

fn remote(reg: &RegistryArgs) -> RemoteOptions {
    RemoteOptions {
        side: SideArgs {
            tls_verify: reg.tls_verify,
            creds: reg.creds.clone(),
            cert_dir: reg.cert_dir.clone(),
        },
        authfile: reg.authfile.clone(),
        registries_conf: None,
        mount_from: Vec::new(),
        credentials: None,
    }
}

fn image_err(e: strata_graph_image::ImageError) -> anyhow::Error {
    kinded(
        strata_plugin_bridge::api_kind(strata_types::HasKind::kind(&e)),
        e.to_string(),
    )
}

/// A name as an image source: a transport name as given, else a store image.
fn source_name(host: &Host, image: &str) -> Result<String> {
    if strata_graph_image::parse_transport(image).is_ok() && image.contains(':') {
        let known = [
            "docker://",
            "oci:",
            "oci-archive:",
            "docker-archive:",
            "dir:",
            "store:",
        ];
        if known.iter().any(|k| image.starts_with(k)) {
            return Ok(image.to_owned());
        }
    }
    let info = strata_plugin_transfer::images::find_local(host, image)
        .map_err(call)?
        .ok_or_else(|| {
            kinded(
                ErrorKind::NotFound,
                format!(
                    "{image}: no such image in the store (name a remote one as docker://{image})"
                ),
            )
        })?;
    Ok(format!("store:{}", info.id))
}

/// The descriptors (with sources) an image adds: itself, or from an index the entry for the
/// platform asked for (every entry with `all`).
fn entries(
    src: &dyn ImageSource,
    name: &str,
    want: &Platform,
    all: bool,
) -> Result<Vec<(Descriptor, String)>> {
    let top = src.manifest().map_err(image_err)?;
    let describe = |raw: &RawManifest, digest: Digest| -> Result<Descriptor> {
        let m: serde_json::Value = serde_json::from_slice(&raw.bytes)?;
        let cdesc: Descriptor = serde_json::from_value(m["config"].clone())?;
        let mut blob = src.blob(&cdesc).map_err(image_err)?;
        let mut cfg = Vec::new();
        std::io::Read::read_to_end(&mut blob, &mut cfg)?;
        let c = parse_config(&cfg).map_err(image_err)?;
        let mut p = json!({"architecture": c.architecture, "os": c.os});
        if let Some(v) = c.variant {
            p["variant"] = json!(v);
        }
        Ok(Descriptor {
            media_type: raw.media_type.clone(),
            digest,
            size: raw.bytes.len() as u64,
            annotations: None,
            platform: Some(p),
        })
    };
    match classify(&top).map_err(image_err)? {
        ManifestKind::Image => {
            let d = Digest::of(&top.bytes);
            Ok(vec![(describe(&top, d)?, name.to_owned())])
        }
        ManifestKind::Index => {
            let idx = parse_index(&top.bytes).map_err(image_err)?;
            let mut out = Vec::new();
            for e in idx.manifests {
                let p: Option<Platform> = e
                    .platform
                    .clone()
                    .and_then(|p| serde_json::from_value(p).ok());
                if !all && !p.as_ref().is_some_and(|p| want.matches(p)) {
                    continue;
                }
                let mut d = e.clone();
                d.annotations = None;
                out.push((d, format!("{name}@{}", e.digest.as_str())));
            }
            if out.is_empty() {
                bail!(kinded(
                    ErrorKind::NotFound,
                    format!(
                        "{name}: its index has no image for {}/{}",
                        want.os, want.architecture
                    )
                ));
            }
            Ok(out)
        }
    }
}

fn apply_platform(d: &mut Descriptor, p: &PlatformArgs) -> Result<()> {
    let mut plat = d.platform.clone().unwrap_or_else(|| json!({}));
    for (k, v) in [
        ("os", &p.os),
        ("architecture", &p.arch),
        ("variant", &p.variant),
        ("os.version", &p.os_version),
    ] {
        if let Some(v) = v {
            plat[k] = json!(v);
        }
    }
    d.platform = Some(plat);
    if !p.annotation.is_empty() {
        let mut a = d.annotations.clone().unwrap_or_default();
        for kv in &p.annotation {
            let Some((k, v)) = kv.split_once('=') else {
                bail!(kinded(
                    ErrorKind::InvalidArgument,
                    format!("--annotation {kv:?}: KEY=VALUE")
                ));
            };
            a.insert(k.to_owned(), v.to_owned());
        }
        d.annotations = Some(a);
    }
    Ok(())
}

fn add(
    host: &Host,
    l: &mut List,
    image: &str,
    p: &PlatformArgs,
    all: bool,
    reg: &RegistryArgs,
) -> Result<()> {
    let name = source_name(host, image)?;
    let src = open_source(host, &name, &remote(reg)).map_err(image_err)?;
    let host_p = Platform::host();
    let want = Platform {
        os: p.os.clone().unwrap_or(host_p.os),
        architecture: p.arch.clone().unwrap_or(host_p.architecture),
        variant: p.variant.clone().or(host_p.variant),
    };
    for (mut d, from) in entries(src.as_ref(), &name, &want, all)? {
        apply_platform(
            &mut d,
            &PlatformArgs {
                annotation: p.annotation.clone(),
                os_version: p.os_version.clone(),
                ..PlatformArgs::default()
            },
        )?;
        l.add(d, from);
    }
    Ok(())
}

pub fn run(host: &Host, cmd: ManifestCmd) -> Result<Outcome> {
    let root = PathBuf::from(host.store().info().map_err(call)?.root);
    match cmd.command {
        Sub::Create {
            list,
            images,
            amend,
            all,
        } => {
            let name = qualify(&list).map_err(call)?;
            let mut l = if List::exists(&root, &name) {
                if !amend {
                    bail!(kinded(
                        ErrorKind::AlreadyExists,
                        format!("{name}: a manifest list of that name exists (use --amend)")
                    ));
                }
                List::load(&root, &name)?
            } else {
                List::new(&name)
            };
            for i in &images {
                add(
                    host,
                    &mut l,
                    i,
                    &PlatformArgs::default(),
                    all,
                    &RegistryArgs::default(),
                )?;
            }
            l.save(&root)?;
            println!("{}", l.bytes()?.1.hex());
        }
        Sub::Add {
            list,
            image,
            platform,
            all,
            registry,
        } => {
            let name = qualify(&list).map_err(call)?;
            let mut l = List::load(&root, &name)?;
            let before: Vec<Digest> = l.index.manifests.iter().map(|d| d.digest.clone()).collect();
            add(host, &mut l, &image, &platform, all, &registry)?;
            // Platform flags given at add time apply to what was added.
            for d in l
                .index
                .manifests
                .iter_mut()
                .filter(|d| !before.contains(&d.digest))
            {
                apply_platform(
                    d,
                    &PlatformArgs {
                        annotation: Vec::new(),
                        ..platform.clone()
                    },
                )?;
            }
            l.save(&root)?;
            println!("{}", l.bytes()?.1.hex());
        }
        Sub::Annotate {
            list,
            entry,
            platform,
        } => {
            let name = qualify(&list).map_err(call)?;
            let mut l = List::load(&root, &name)?;
            // A digest (prefix) names an entry; anything else is the image it was added from.
            let hexlike = entry
                .trim_start_matches("sha256:")
                .chars()
                .all(|c| c.is_ascii_hexdigit());
            let target = if hexlike {
                entry
            } else {
                source_name(host, &entry).unwrap_or(entry)
            };
            apply_platform(l.find(&target)?, &platform)?;
            l.save(&root)?;
            println!("{}", l.bytes()?.1.hex());
        }
        Sub::Inspect { list } => {
            let name = qualify(&list).map_err(call)?;
            let l = List::load(&root, &name)?;
            println!("{}", serde_json::to_string_pretty(&l.index)?);
        }
        Sub::Rm { lists } => {
            for list in lists {
                let name = qualify(&list).map_err(call)?;
                List::remove(&root, &name)?;
                println!("{name}");
            }
        }
        Sub::Push {
            list,
            destination,
            all,
            rm,
            digestfile,
            quiet,
            registry,
        } => {
            if !all {
                bail!(kinded(
                    ErrorKind::Unsupported,
                    "--all=false: pushing a list without its images is not supported"
                ));
            }
            let name = qualify(&list).map_err(call)?;
            let l = List::load(&root, &name)?;
            if l.index.manifests.is_empty() {
                bail!(kinded(
                    ErrorKind::FailedPrecondition,
                    format!("{name}: the list is empty")
                ));
            }
            let dest = match destination {
                Some(d)
                    if ["docker://", "oci:", "oci-archive:", "dir:"]
                        .iter()
                        .any(|p| d.starts_with(p)) =>
                {
                    d
                }
                Some(d) => format!("docker://{d}"),
                None => format!("docker://{name}"),
            };
            let o = remote(&registry);
            let src = source::ListSource::open(host, &l, &o)?;
            let (dst, dst_name) = open_destination(host, &dest, &o).map_err(image_err)?;
            let opts = CopyOptions {
                platform: None,
                all: true,
                jobs: 4,
                // The store serves uncompressed layers: gzip them for a registry, as `push`.
                dest_compression: dest
                    .starts_with("docker://")
                    .then_some(strata_graph_image::Compression::Gzip),
                format: dst_name.required_format(),
                temp_dir: None,
                progress: strata_plugin_transfer::progress::reporter(quiet),
            };
            let report = copy_image(&src, dst.as_ref(), &opts).map_err(image_err)?;
            if let Some(f) = digestfile {
                std::fs::write(&f, report.manifest_digest.as_str())?;
            }
            if rm {
                List::remove(&root, &name)?;
            }
            if !quiet {
                println!("{}", report.manifest_digest.as_str());
            }
        }
    }
    Ok(Outcome::Ok)
}
