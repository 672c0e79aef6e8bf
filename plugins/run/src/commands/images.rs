//! `pull`, `push`, `images`, `rmi` and `tag`.

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use strata_plugin_api::store::{ImageFilter, ImageInfo};
use strata_plugin_api::{ErrorKind, Host, Outcome};

use crate::context::Ctx;
use crate::errors::{call, kinded};
use crate::images::{self, RegistryArgs};

#[derive(Debug, Parser)]
#[command(
    name = "strata pull",
    about = "Pull an image from a registry into the store"
)]
pub struct PullCmd {
    /// Print no progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    pub image: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata push",
    about = "Push an image from the store to a registry or another destination"
)]
pub struct PushCmd {
    /// Print no progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Manifest format: oci or v2s2
    #[arg(short = 'f', long, value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    pub format: Option<String>,
    /// Layer compression: gzip or zstd
    #[arg(long, value_name = "FORMAT", value_parser = ["gzip", "zstd"])]
    pub compression_format: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    pub image: String,
    /// Where to (default: the image's own name on its registry); a transport name such as
    /// oci-archive:FILE also works
    pub destination: Option<String>,
}

#[derive(Debug, Parser)]
#[command(name = "strata images", about = "List images in the store")]
pub struct ImagesCmd {
    /// Print only IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata rmi",
    about = "Remove images (a name of several only untags)"
)]
pub struct RmiCmd {
    /// Also remove containers that use the images
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove every image
    #[arg(short = 'a', long)]
    pub all: bool,
    pub images: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(name = "strata tag", about = "Add names to an image")]
pub struct TagCmd {
    pub image: String,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn pull(host: &Host, cmd: PullCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let img = images::pull(&ctx, &cmd.image, &cmd.registry, cmd.quiet)?;
    println!("{}", img.id.trim_start_matches("sha256:"));
    Ok(Outcome::Ok)
}

pub fn push(host: &Host, cmd: PushCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let img = images::find_local(&ctx, &cmd.image)?.ok_or_else(|| {
        kinded(
            ErrorKind::NotFound,
            format!("{}: image not known", cmd.image),
        )
    })?;
    let source_name = img
        .names
        .iter()
        .find(|n| images::local_candidates(&cmd.image).contains(n))
        .cloned()
        .unwrap_or_else(|| img.id.clone());
    let dest = match &cmd.destination {
        Some(d) if strata_graph_image::parse_transport(d).is_ok() => d.clone(),
        Some(d) => format!("docker://{d}"),
        None => format!("docker://{source_name}"),
    };
    let flavor = match cmd.format.as_deref() {
        Some("oci") => Some(strata_graph_image::Flavor::Oci),
        Some(_) => Some(strata_graph_image::Flavor::Docker),
        None => None,
    };
    let compression = match cmd.compression_format.as_deref() {
        Some("zstd") => strata_graph_image::Compression::Zstd,
        _ => strata_graph_image::Compression::Gzip,
    };
    images::copy(
        &ctx,
        &format!("store:{source_name}"),
        &dest,
        &cmd.registry,
        cmd.quiet,
        flavor,
        Some(compression),
    )?;
    Ok(Outcome::Ok)
}

fn size_of(img: &ImageInfo) -> u64 {
    img.layers.iter().map(|l| l.size).sum()
}

pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.3} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.3} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.3} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

pub fn images(host: &Host, cmd: ImagesCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    // One call: the listing carries sizes and digests (plugin ABI 1.4).
    let mut full = ctx
        .store
        .images_where(&ImageFilter::default())
        .map_err(call)?;
    full.sort_by_key(|i| std::cmp::Reverse(i.created));
    let short = |id: &str| -> String {
        let hex = id.trim_start_matches("sha256:");
        if cmd.no_trunc {
            id.to_owned()
        } else {
            hex[..12.min(hex.len())].to_owned()
        }
    };
    if cmd.quiet {
        for i in &full {
            println!("{}", short(&i.id));
        }
        return Ok(Outcome::Ok);
    }
    match cmd.format.as_str() {
        "json" => {
            let v: Vec<_> = full
                .iter()
                .map(|i| {
                    json!({
                        "Id": i.id.trim_start_matches("sha256:"),
                        "Names": i.names,
                        "RepoTags": i.names,
                        "RepoDigests": i.repo_digests,
                        "Digest": i.digest,
                        "Created": i.created,
                        "Size": i.size,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let now = strata_engine_containers::state::unix_now();
            let mut rows = vec![[
                "REPOSITORY".to_owned(),
                "TAG".into(),
                "IMAGE ID".into(),
                "CREATED".into(),
                "SIZE".into(),
            ]];
            for i in &full {
                let names: Vec<(String, String)> = if i.names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.names
                        .iter()
                        .map(
                            |n| match n.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                                Some((r, t)) => (r.to_owned(), t.to_owned()),
                                None => (n.clone(), "<none>".into()),
                            },
                        )
                        .collect()
                };
                for (repo, tag) in names {
                    rows.push([
                        repo,
                        tag,
                        short(&i.id),
                        format!("{} ago", super::ps::human(now - i.created)),
                        human_size(i.size),
                    ]);
                }
            }
            super::ps::print_table(&rows);
        }
        other => {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!("unknown format {other:?}: use table or json"),
            ))
        }
    }
    Ok(Outcome::Ok)
}

pub fn rmi(host: &Host, cmd: RmiCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let names: Vec<String> = if cmd.all {
        ctx.store
            .images()
            .map_err(call)?
            .into_iter()
            .map(|i| i.id)
            .collect()
    } else {
        cmd.images.clone()
    };
    if names.is_empty() {
        return Err(kinded(
            ErrorKind::InvalidArgument,
            "name at least one image, or use --all",
        ));
    }
    for name in &names {
        let img = images::find_local(&ctx, name)?
            .ok_or_else(|| kinded(ErrorKind::NotFound, format!("{name}: image not known")))?;
        // A name of an image with several names: only that name goes (podman's untag).
        let by_name = img
            .names
            .iter()
            .find(|n| images::local_candidates(name).contains(n))
            .cloned();
        if let Some(n) = &by_name {
            if img.names.len() > 1 && !cmd.all {
                ctx.store.untag(n).map_err(call)?;
                println!("Untagged: {n}");
                continue;
            }
        }
        if cmd.force {
            for c in ctx.containers()? {
                if c.config.image_id == img.id {
                    c.remove(true)?;
                }
            }
        }
        for n in &img.names {
            println!("Untagged: {n}");
        }
        ctx.store.remove_image(&img.id).map_err(call)?;
        println!("Deleted: {}", img.id.trim_start_matches("sha256:"));
    }
    Ok(Outcome::Ok)
}

pub fn tag(host: &Host, cmd: TagCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let img = images::find_local(&ctx, &cmd.image)?.ok_or_else(|| {
        kinded(
            ErrorKind::NotFound,
            format!("{}: image not known", cmd.image),
        )
    })?;
    // podman qualifies short names with localhost/.
    let names: Vec<String> = cmd
        .names
        .iter()
        .map(|n| strata_plugin_transfer::images::qualify(n).map_err(call))
        .collect::<Result<_>>()?;
    ctx.store.tag(&img.id, &names).map_err(call)?;
    Ok(Outcome::Ok)
}

pub fn inspect_json(img: &ImageInfo) -> Result<serde_json::Value> {
    let config: serde_json::Value = serde_json::from_str(&img.config)?;
    Ok(json!({
        "Id": img.id.trim_start_matches("sha256:"),
        "Digest": img.manifest.as_ref().map(|m| strata_types::Digest::of(m.as_bytes()).to_string()),
        "RepoTags": img.names,
        "Created": config.get("created"),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Config": config.get("config"),
        "RootFS": {
            "Type": "layers",
            "Layers": img.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "Size": size_of(img),
    }))
}
