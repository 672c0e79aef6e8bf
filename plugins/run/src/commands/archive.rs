//! `save`, `load`, `export` and `import`: images to and from archive files, and container
//! root filesystems to and from plain tars, as podman does them.
//!
//! - `save` copies an image from the store to a `docker-archive` (default, as podman) or an
//!   `oci-archive`, keeping its name (`RepoTags` / `org.opencontainers.image.ref.name`), so
//!   that loading it elsewhere (here or in podman) gives the same name and image ID.
//! - `load` recognises the format by content (`oci-layout` or `manifest.json` at the root)
//!   and loads every image in it, with its names.
//! - `export` writes a container's whole root filesystem as a tar.
//! - `import` makes a one-layer image of a tarball (plain, gzip or zstd), with `--change`.
//!
//! What is not here: compressed archives for `load` (podman accepts gzip'd ones), loading
//! from or saving to stdin/stdout for `save`/`load`, `save` of several images into one
//! archive (`--multi-image-archive`), `import` from a URL.

pub mod changes;
pub mod layer;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use strata_graph_image::copy::{copy_image, CopyOptions};
use strata_graph_image::tar_index::TarIndex;
use strata_graph_image::{docker_archive::ArchiveEntry, parse_transport, CopyReport};
use strata_graph_registry::Reference;
use strata_plugin_api::store::{ImportImageRequest, ImportLayer};
use strata_plugin_api::{CallError, ErrorKind, Host, Outcome};
use strata_plugin_transfer::store::StoreDest;

use crate::context::Ctx;
use crate::errors::{call, kinded};
use crate::images::{self, RegistryArgs};

#[derive(Debug, Parser)]
#[command(name = "strata save", about = "Save an image to an archive file")]
pub struct SaveCmd {
    /// The archive to write (replaced if it exists)
    #[arg(short = 'o', long, value_name = "FILE", required = true)]
    pub output: PathBuf,
    /// docker-archive (podman's default) or oci-archive
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
    /// Print no progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata load",
    about = "Load the images of a docker-archive or oci-archive file"
)]
pub struct LoadCmd {
    /// The archive to read
    #[arg(short = 'i', long, value_name = "FILE", required = true)]
    pub input: PathBuf,
    /// Print no progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata export",
    about = "Write a container's root filesystem as a tar archive"
)]
pub struct ExportCmd {
    /// Where to write (default: stdout, if it is not a terminal)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    pub container: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata import",
    about = "Make an image of a tarball (a root filesystem, plain, gzip or zstd)"
)]
pub struct ImportCmd {
    /// Dockerfile instructions to apply (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, ...)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// A comment for the image's history
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Print only the image ID
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub tarball: PathBuf,
    /// The image's name (short names get localhost/)
    pub reference: Option<String>,
}

/// An image name as podman stores it: short names get `localhost/`, and `:latest`.
pub fn qualify(name: &str) -> Result<String> {
    strata_plugin_transfer::images::qualify(name).map_err(call)
}

fn no_colon(p: &Path) -> Result<String> {
    let s = p.display().to_string();
    if s.contains(':') {
        bail!(kinded(
            ErrorKind::InvalidArgument,
            format!("{s}: archive paths with ':' in them are not supported")
        ));
    }
    Ok(s)
}

pub fn save(host: &Host, cmd: SaveCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let img = images::find_local(&ctx, &cmd.image)?.ok_or_else(|| {
        kinded(
            ErrorKind::NotFound,
            format!("{}: image not known", cmd.image),
        )
    })?;
    // The name the user typed if it is one of the image's, else its first name.
    let candidates = images::local_candidates(&cmd.image);
    let name = img
        .names
        .iter()
        .find(|n| candidates.contains(n))
        .or(img.names.first())
        .cloned();
    let file = no_colon(&cmd.output)?;
    let dest = match &name {
        Some(n) => format!("{}:{file}:{n}", cmd.format),
        None => format!("{}:{file}", cmd.format),
    };
    let source = format!("store:{}", name.as_deref().unwrap_or(&img.id));
    images::copy(
        &ctx,
        &source,
        &dest,
        &RegistryArgs::default(),
        cmd.quiet,
        None,
        None,
    )?;
    Ok(Outcome::Ok)
}

/// Copies a local archive image into the store with `names` (none: an unnamed image).
fn copy_in(ctx: &Ctx<'_>, source: &str, names: Vec<String>, quiet: bool) -> Result<CopyReport> {
    let parsed = parse_transport(source).map_err(image_err)?;
    let src = parsed.open_source().map_err(image_err)?;
    let dst = StoreDest::new(ctx.host, names);
    let opts = CopyOptions {
        platform: None,
        all: false,
        jobs: 4,
        dest_compression: None,
        format: None,
        temp_dir: None,
        progress: strata_plugin_transfer::progress::reporter(quiet),
    };
    copy_image(src.as_ref(), &dst, &opts).map_err(image_err)
}

fn image_err(e: strata_graph_image::ImageError) -> anyhow::Error {
    kinded(
        strata_plugin_bridge::api_kind(strata_types::HasKind::kind(&e)),
        e.to_string(),
    )
}

/// Each image of the archive: its transport name and the names to give it.
fn archive_images(file: &str) -> Result<Vec<(String, Vec<String>)>> {
    let index = TarIndex::open(Path::new(file)).map_err(image_err)?;
    if index.size("oci-layout").is_some() {
        let index_json: serde_json::Value =
            serde_json::from_slice(&index.read_small("index.json").map_err(image_err)?)
                .with_context(|| format!("{file}: invalid index.json"))?;
        let refs: Vec<Option<String>> = index_json["manifests"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|d| {
                        d["annotations"]["org.opencontainers.image.ref.name"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if refs.len() > 1 && refs.iter().any(Option::is_none) {
            bail!(kinded(
                ErrorKind::Unsupported,
                format!(
                    "{file} holds several images, some without a name: they cannot be told apart"
                )
            ));
        }
        return refs
            .into_iter()
            .map(|r| match r {
                Some(r) => Ok((format!("oci-archive:{file}:{r}"), vec![qualify(&r)?])),
                None => Ok((format!("oci-archive:{file}"), Vec::new())),
            })
            .collect();
    }
    if index.size("manifest.json").is_some() {
        let entries: Vec<ArchiveEntry> =
            serde_json::from_slice(&index.read_small("manifest.json").map_err(image_err)?)
                .with_context(|| format!("{file}: invalid manifest.json"))?;
        return entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let names = e
                    .repo_tags
                    .iter()
                    .flatten()
                    .map(|t| {
                        Reference::parse(t)
                            .map(|r| r.to_string())
                            .map_err(|e| kinded(ErrorKind::InvalidArgument, e.to_string()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((format!("docker-archive:{file}:@{i}"), names))
            })
            .collect();
    }
    bail!(kinded(
        ErrorKind::InvalidArgument,
        format!("{file} is neither a docker-archive (no manifest.json) nor an oci-archive (no oci-layout)")
    ))
}

pub fn load(host: &Host, cmd: LoadCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let file = no_colon(&cmd.input)?;
    if !cmd.input.is_file() {
        bail!(kinded(ErrorKind::NotFound, format!("{file}: no such file")));
    }
    for (source, names) in archive_images(&file)? {
        let report = copy_in(&ctx, &source, names.clone(), cmd.quiet)?;
        if names.is_empty() {
            let id = report
                .image_id
                .map(|d| d.to_string())
                .unwrap_or_else(|| "<unknown>".into());
            println!("Loaded image: {id}");
        }
        for n in names {
            println!("Loaded image: {n}");
        }
    }
    Ok(Outcome::Ok)
}

pub fn export(host: &Host, cmd: ExportCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    if cmd.output.is_none() && std::io::stdout().is_terminal() {
        bail!(kinded(
            ErrorKind::InvalidArgument,
            "refusing to write a tar to a terminal: use -o FILE or redirect stdout"
        ));
    }
    let rootfs = super::fs::rootfs::Rootfs::open(&ctx, &cmd.container)?;
    let root = rootfs.open_dir()?;
    match &cmd.output {
        Some(path) => {
            let tmp = tempfile::Builder::new()
                .prefix(".strata-export-")
                .tempfile_in(
                    path.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
                .with_context(|| format!("create a temporary file next to {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
            super::fs::tarball::write_tree(std::os::fd::AsFd::as_fd(&root), &mut w)?;
            w.flush().context("write the archive")?;
            drop(w);
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            let out = std::io::stdout().lock();
            super::fs::tarball::write_tree(
                std::os::fd::AsFd::as_fd(&root),
                std::io::BufWriter::with_capacity(1 << 20, out),
            )?;
        }
    }
    Ok(Outcome::Ok)
}

pub fn import(host: &Host, cmd: ImportCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let names = cmd.reference.as_deref().map(qualify).transpose()?;
    let blob = layer::digest(&cmd.tarball).map_err(|e| {
        if cmd.tarball.exists() {
            kinded(ErrorKind::InvalidArgument, format!("{e:#}"))
        } else {
            kinded(ErrorKind::NotFound, format!("{e:#}"))
        }
    })?;
    let created = strata_engine_containers::state::now().0;
    let mut config = layer::config(
        &blob,
        &created,
        &format!("strata import {}", cmd.tarball.display()),
        cmd.message.as_deref(),
    );
    changes::apply(&mut config, &cmd.changes)
        .map_err(|e| kinded(ErrorKind::InvalidArgument, format!("{e:#}")))?;
    let config = serde_json::to_string(&config)?;
    let manifest = layer::manifest(
        config.as_bytes(),
        &[(blob.media_type, blob.digest.as_str(), blob.size)],
    );
    let request = ImportImageRequest {
        manifest: serde_json::to_string(&manifest)?,
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config,
        layers: vec![ImportLayer {
            diff_id: blob.diff_id.to_string(),
            blob_digest: Some(blob.digest.to_string()),
        }],
        names: names.into_iter().collect(),
    };
    let path = cmd.tarball.clone();
    let open = move |_: usize| -> Result<Box<dyn std::io::Read + Send>, CallError> {
        std::fs::File::open(&path)
            .map(|f| Box::new(std::io::BufReader::with_capacity(1 << 20, f)) as _)
            .map_err(|e| CallError {
                kind: ErrorKind::NotFound,
                message: format!("open {}: {e}", path.display()),
            })
    };
    let reply = ctx.store.import_image(&request, &open).map_err(call)?;
    println!("{}", reply.image_id.trim_start_matches("sha256:"));
    Ok(Outcome::Ok)
}
