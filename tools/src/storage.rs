//! `strata storage ...`: the plumbing commands. Names and outputs are stable for scripts:
//! commands that create something print its ID on stdout, listings take `--format json`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use strata_graph_store::{
    Compression, CreateOptions, FsckOptions, LoadOptions, Platform, SaveOptions, Store,
    StoreOptions,
};

use crate::config::Settings;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Show where the store is, its driver and what it holds
    Info {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Load an image from an OCI layout: oci:DIR[:REF]
    Load {
        /// Source, as oci:DIR[:REF]
        source: String,
        /// Name (tag) to give the image (repeatable)
        #[arg(long = "name")]
        names: Vec<String>,
        /// Platform to pick from a multi-platform image, as os/arch[/variant] (default: this host's)
        #[arg(long)]
        platform: Option<String>,
    },
    /// Save an image to an OCI layout: oci:DIR[:REF]
    Save {
        /// Image name or ID
        image: String,
        /// Destination, as oci:DIR[:REF]
        dest: String,
        /// Layer compression
        #[arg(long, value_enum, default_value = "gzip")]
        compress: CompressArg,
    },
    /// List images
    Images {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List layers
    Layers {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List containers
    Containers {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Create a container (a read-write layer on top of IMAGE); prints its ID
    Create {
        image: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Mount a container's root filesystem; prints the mount point
    Mount { container: String },
    /// Unmount a container's root filesystem
    #[command(alias = "unmount")]
    Umount { container: String },
    /// Write a container's changes as an OCI layer tar
    Diff {
        container: String,
        /// Output file ("-" for stdout)
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Commit a container's changes as a new image; prints the image ID
    Commit {
        container: String,
        image_name: String,
    },
    /// Remove containers
    Rm {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove images (and the layers only they use)
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Add names to an image
    Tag { image: String, names: Vec<String> },
    /// Remove unreferenced layers and blobs and debris left by crashes
    Gc {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Check the store's integrity
    Fsck {
        /// Also verify content: re-hash blobs and regenerate every layer's tar
        #[arg(long)]
        content: bool,
        /// Remove what is broken (and everything built on it), then collect garbage
        #[arg(long)]
        repair: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressArg {
    None,
    Gzip,
    Zstd,
}

/// Splits `oci:DIR[:REF]`.
fn parse_oci(s: &str) -> Result<(PathBuf, Option<String>)> {
    let Some(rest) = s.strip_prefix("oci:") else {
        bail!("unsupported location {s:?}: the storage commands take oci:DIR[:REF] (other transports come with `strata copy`)");
    };
    if rest.is_empty() {
        bail!("{s:?} names no directory: use oci:DIR[:REF]");
    }
    Ok(match rest.rsplit_once(':') {
        Some((dir, r)) if !r.is_empty() && !r.contains('/') => {
            (PathBuf::from(dir), Some(r.to_owned()))
        }
        _ => (PathBuf::from(rest), None),
    })
}

pub fn open(s: &Settings) -> Result<Store> {
    Store::open(
        StoreOptions {
            root: s.root.clone(),
            runroot: s.runroot.clone(),
            driver: s.driver.clone(),
            driver_options: s.driver_options.clone(),
            max_layer_size: s.max_layer_size,
        },
        &crate::drivers::make,
    )
    .with_context(|| format!("cannot open the store at {}", s.root.display()))
}

pub fn run(s: &Settings, cmd: StorageCommand) -> Result<()> {
    let store = open(s)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        StorageCommand::Info { format } => {
            let info = store.info()?;
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?,
                Format::Table => {
                    writeln!(out, "root: {}", info.root.display())?;
                    writeln!(out, "runroot: {}", info.runroot.display())?;
                    writeln!(out, "driver: {}", info.driver.name)?;
                    for (k, v) in &info.driver.details {
                        writeln!(out, "  {k}: {v}")?;
                    }
                    writeln!(out, "format version: {}", info.format_version)?;
                    writeln!(out, "max layer size: {} bytes", info.max_layer_size)?;
                    writeln!(out, "images: {}", info.images)?;
                    writeln!(out, "layers: {}", info.layers)?;
                    writeln!(out, "containers: {}", info.containers)?;
                }
            }
        }
        StorageCommand::Load {
            source,
            names,
            platform,
        } => {
            let (dir, reference) = parse_oci(&source)?;
            let platform = platform.as_deref().map(Platform::parse).transpose()?;
            let loaded = store
                .load_oci(
                    &dir,
                    &LoadOptions {
                        reference,
                        platform,
                        names,
                    },
                )
                .with_context(|| format!("cannot load {source}"))?;
            writeln!(out, "{}", loaded.image)?;
        }
        StorageCommand::Save {
            image,
            dest,
            compress,
        } => {
            let (dir, reference) = parse_oci(&dest)?;
            let compression = match compress {
                CompressArg::None => Compression::None,
                CompressArg::Gzip => Compression::Gzip,
                CompressArg::Zstd => Compression::Zstd,
            };
            let digest = store
                .save_oci(
                    &image,
                    &dir,
                    &SaveOptions {
                        reference,
                        compression,
                    },
                )
                .with_context(|| format!("cannot save {image} to {dest}"))?;
            writeln!(out, "{digest}")?;
        }
        StorageCommand::Images { format } => {
            let images = store.images()?;
            let mut rows = Vec::new();
            for i in &images {
                let layers = store.image_layers(i)?;
                let size: u64 = layers.iter().map(|l| l.size).sum();
                rows.push(vec![
                    i.id.0.short().to_owned(),
                    if i.names.is_empty() {
                        "<none>".into()
                    } else {
                        i.names.join(",")
                    },
                    layers.len().to_string(),
                    output::size(size),
                    output::ago(i.created),
                ]);
            }
            drop(out);
            output::print(
                format,
                &["IMAGE ID", "NAMES", "LAYERS", "SIZE", "CREATED"],
                rows,
                &images,
            )?;
        }
        StorageCommand::Layers { format } => {
            let layers = store.layers()?;
            let rows = layers
                .iter()
                .map(|l| {
                    vec![
                        l.id.0.short().to_owned(),
                        l.parent
                            .as_ref()
                            .map(|p| p.0.short().to_owned())
                            .unwrap_or_default(),
                        l.diff_id.short().to_owned(),
                        output::size(l.size),
                        l.compression.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            drop(out);
            output::print(
                format,
                &["LAYER ID", "PARENT", "DIFF ID", "SIZE", "COMPRESSION"],
                rows,
                &layers,
            )?;
        }
        StorageCommand::Containers { format } => {
            let cs = store.containers()?;
            let mut rows = Vec::new();
            for c in &cs {
                rows.push(vec![
                    c.id.short().to_owned(),
                    c.name.clone(),
                    c.image.0.short().to_owned(),
                    output::ago(c.created),
                    if store.is_mounted(c)? {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                ]);
            }
            drop(out);
            output::print(
                format,
                &["CONTAINER ID", "NAME", "IMAGE", "CREATED", "MOUNTED"],
                rows,
                &cs,
            )?;
        }
        StorageCommand::Create { image, name } => {
            let c = store.create_container(
                &image,
                CreateOptions {
                    name,
                    metadata: None,
                    ..Default::default()
                },
            )?;
            writeln!(out, "{}", c.id)?;
        }
        StorageCommand::Mount { container } => {
            let p = store.mount(&container)?;
            writeln!(out, "{}", p.display())?;
        }
        StorageCommand::Umount { container } => store.unmount(&container)?,
        StorageCommand::Diff { container, output } => {
            if output.as_os_str() == "-" {
                store.diff(&container, std::io::BufWriter::new(out))?;
            } else {
                let f = std::fs::File::create(&output)
                    .with_context(|| format!("cannot create {}", output.display()))?;
                let mut w = std::io::BufWriter::new(f);
                store.diff(&container, &mut w)?;
                w.flush()
                    .with_context(|| format!("cannot write {}", output.display()))?;
            }
        }
        StorageCommand::Commit {
            container,
            image_name,
        } => {
            let id = store.commit(&container, &image_name)?;
            writeln!(out, "{id}")?;
        }
        StorageCommand::Rm { containers } => {
            for c in containers {
                let removed = store.remove_container(&c)?;
                writeln!(out, "{}", removed.id)?;
            }
        }
        StorageCommand::Rmi { images } => {
            for i in images {
                let removed = store.remove_image(&i)?;
                writeln!(out, "{}", removed.image)?;
            }
        }
        StorageCommand::Tag { image, names } => store.tag(&image, &names)?,
        StorageCommand::Gc { format } => {
            let r = store.gc()?;
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?,
                Format::Table => writeln!(
                    out,
                    "removed {} layer(s), {} orphaned payload(s), {} tar-split record(s), {} blob(s), {} staging area(s), {} temporary file(s), {} mount point(s)",
                    r.layers, r.orphan_payloads, r.orphan_tarsplits, r.blobs, r.staging, r.temp_files, r.mountpoints
                )?,
            }
        }
        StorageCommand::Fsck {
            content,
            repair,
            format,
        } => {
            let r = store.fsck(FsckOptions { content, repair })?;
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?,
                Format::Table => {
                    for p in &r.problems {
                        writeln!(out, "problem: {}: {}", p.object, p.message)?;
                    }
                    for g in &r.garbage {
                        writeln!(out, "garbage: {g}")?;
                    }
                    for f in &r.repaired {
                        writeln!(out, "repaired: {f}")?;
                    }
                    writeln!(
                        out,
                        "checked {} layer(s), {} image(s), {} container(s): {}",
                        r.checked_layers,
                        r.checked_images,
                        r.checked_containers,
                        if r.consistent() {
                            "consistent".to_owned()
                        } else {
                            format!("{} problem(s)", r.problems.len())
                        }
                    )?;
                }
            }
            if !r.consistent() && !repair {
                return Err(strata_graph_store::StoreError::Precondition(format!(
                    "the store has {} problem(s); run `strata storage fsck --repair` to remove what is broken",
                    r.problems.len()
                ))
                .into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_oci;
    use std::path::PathBuf;

    #[test]
    fn oci_locations() {
        assert_eq!(
            parse_oci("oci:/a/b").unwrap(),
            (PathBuf::from("/a/b"), None)
        );
        assert_eq!(
            parse_oci("oci:/a/b:v1").unwrap(),
            (PathBuf::from("/a/b"), Some("v1".into()))
        );
        assert_eq!(
            parse_oci("oci:rel:latest").unwrap(),
            (PathBuf::from("rel"), Some("latest".into()))
        );
        assert!(parse_oci("docker://x").is_err());
        assert!(parse_oci("oci:").is_err());
    }
}
