//! `strata system df|prune|info`: disk usage, clean-up, and a description of the host and
//! the store, as podman's `system` commands.
//!
//! Sizes are those of the uncompressed layer tars (images; layers shared by several images
//! count once) and of the files a container added or changed (containers).
//!
//! What is not here: volumes (Strata has none yet: always 0), pods and networks in `prune`,
//! `df -v`, `prune --filter`.

mod info;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;
use strata_engine_containers::{Container, ContainerRecord, Status};
use strata_plugin_api::store::ImageInfo;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use super::images::human_size;
use crate::context::Ctx;
use crate::errors::{call, kinded};

#[derive(Debug, Parser)]
#[command(
    name = "strata system",
    about = "Disk usage, clean-up and system information"
)]
pub struct SystemCmd {
    #[command(subcommand)]
    pub command: SystemSub,
}

#[derive(Debug, Subcommand)]
pub enum SystemSub {
    /// Show how much space images and containers use
    Df {
        /// Output format: table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove stopped containers, images without names that no container uses, and garbage
    Prune {
        /// Do not ask for confirmation
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove every image no container uses, named or not
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Describe the host and the store
    Info {
        /// Output format: text or json
        #[arg(short = 'f', long, default_value = "text")]
        format: String,
    },
}

pub fn system(host: &Host, cmd: SystemCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    match cmd.command {
        SystemSub::Df { format } => df(&ctx, &format),
        SystemSub::Prune { force, all } => prune(&ctx, force, all),
        SystemSub::Info { format } => {
            let v = info::info(&ctx)?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&v)?),
                "text" | "yaml" => {
                    let mut s = String::new();
                    info::print_text(&v, 0, &mut s);
                    print!("{s}");
                }
                other => return Err(unknown_format(other, "text or json")),
            }
            Ok(Outcome::Ok)
        }
    }
}

fn unknown_format(f: &str, known: &str) -> anyhow::Error {
    kinded(
        ErrorKind::InvalidArgument,
        format!("unknown format {f:?}: use {known}"),
    )
}

/// A container with what `df` and `prune` need to know about it.
struct ContainerUsage<'e> {
    info: ContainerRecord,
    /// Its engine record (`None` for containers the engine does not run: `storage create`,
    /// a build's working containers).
    ours: Option<Container<'e>>,
    running: bool,
    size: u64,
}

fn containers<'e>(ctx: &'e Ctx<'_>) -> Result<Vec<ContainerUsage<'e>>> {
    let mut out = Vec::new();
    for info in ctx.engine.store().containers(&[])? {
        let ours = Container::from_record(&ctx.engine, info.clone()).ok();
        let running = match &ours {
            Some(c) => c.state()?.status == Status::Running,
            None => false,
        };
        let size = ctx
            .store
            .changes(&info.id)
            .map_err(call)?
            .iter()
            .map(|c| c.size)
            .sum();
        out.push(ContainerUsage {
            info,
            ours,
            running,
            size,
        });
    }
    Ok(out)
}

fn images(ctx: &Ctx<'_>) -> Result<Vec<ImageInfo>> {
    let mut out = Vec::new();
    for s in ctx.store.images().map_err(call)? {
        out.push(ctx.store.image(&s.id).map_err(call)?);
    }
    Ok(out)
}

fn percent(part: u64, whole: u64) -> u64 {
    (part * 100).checked_div(whole).unwrap_or(0)
}

fn df(ctx: &Ctx<'_>, format: &str) -> Result<Outcome> {
    let images = images(ctx)?;
    let containers = containers(ctx)?;
    let used: HashSet<&str> = containers.iter().map(|c| c.info.image.as_str()).collect();
    let mut layers: HashMap<&str, (u64, bool)> = HashMap::new();
    for i in &images {
        let active = used.contains(i.id.as_str());
        for l in &i.layers {
            let e = layers.entry(l.id.as_str()).or_insert((l.size, false));
            e.1 |= active;
        }
    }
    let image_size: u64 = layers.values().map(|(s, _)| s).sum();
    let image_free: u64 = layers.values().filter(|(_, a)| !a).map(|(s, _)| s).sum();
    let active_images = images
        .iter()
        .filter(|i| used.contains(i.id.as_str()))
        .count();
    let ctr_size: u64 = containers.iter().map(|c| c.size).sum();
    let ctr_free: u64 = containers
        .iter()
        .filter(|c| !c.running)
        .map(|c| c.size)
        .sum();
    let running = containers.iter().filter(|c| c.running).count();
    let rows = [
        (
            "Images",
            images.len(),
            active_images,
            image_size,
            image_free,
        ),
        ("Containers", containers.len(), running, ctr_size, ctr_free),
        ("Local Volumes", 0, 0, 0, 0),
    ];
    match format {
        "json" => {
            let v: Vec<_> = rows
                .iter()
                .map(|(t, n, a, size, free)| {
                    json!({
                        "Type": t, "Total": n, "Active": a,
                        "RawSize": size, "RawReclaimable": free,
                        "Size": human_size(*size),
                        "Reclaimable": format!("{} ({}%)", human_size(*free), percent(*free, *size)),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let mut table = vec![[
                "TYPE".to_owned(),
                "TOTAL".into(),
                "ACTIVE".into(),
                "SIZE".into(),
                "RECLAIMABLE".into(),
            ]];
            for (t, n, a, size, free) in rows {
                table.push([
                    t.to_owned(),
                    n.to_string(),
                    a.to_string(),
                    human_size(size),
                    format!("{} ({}%)", human_size(free), percent(free, size)),
                ]);
            }
            super::ps::print_table(&table);
        }
        other => return Err(unknown_format(other, "table or json")),
    }
    Ok(Outcome::Ok)
}

/// Asks on the terminal; without one, `-f` is required.
fn confirm(all: bool) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            "system prune removes containers and images: confirm with -f (stdin is not a terminal to ask on)",
        ));
    }
    let images = if all {
        "all images without at least one container associated with them"
    } else {
        "all dangling images"
    };
    print!(
        "WARNING! This command removes:\n\t- all stopped containers\n\t- {images}\n\t- unreferenced layers and blobs\n\nAre you sure you want to continue? [y/N] "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn prune(ctx: &Ctx<'_>, force: bool, all: bool) -> Result<Outcome> {
    if !force && !confirm(all)? {
        return Ok(Outcome::Ok);
    }
    let mut freed = 0u64;
    let mut removed_containers = Vec::new();
    for c in containers(ctx)? {
        // Only the run front end's containers: others (`storage create`) have no state here.
        let Some(ours) = c.ours.as_ref().filter(|_| !c.running) else {
            continue;
        };
        ours.remove(false)?;
        freed += c.size;
        removed_containers.push(c.info.id);
    }
    let used: HashSet<String> = ctx
        .store
        .containers()
        .map_err(call)?
        .into_iter()
        .map(|c| c.image)
        .collect();
    let mut removed_images = Vec::new();
    for img in images(ctx)? {
        if used.contains(&img.id) || !(all || img.names.is_empty()) {
            continue;
        }
        let r = ctx.store.remove_image(&img.id).map_err(call)?;
        let gone: HashSet<&str> = r.layers.iter().map(String::as_str).collect();
        freed += img
            .layers
            .iter()
            .filter(|l| gone.contains(l.id.as_str()))
            .map(|l| l.size)
            .sum::<u64>();
        removed_images.push(img.id);
    }
    let gc = ctx.store.gc().map_err(call)?;
    if !removed_containers.is_empty() {
        println!("Deleted Containers");
        for id in &removed_containers {
            println!("{id}");
        }
    }
    if !removed_images.is_empty() {
        println!("Deleted Images");
        for id in &removed_images {
            println!("{}", id.trim_start_matches("sha256:"));
        }
    }
    let garbage = gc.layers
        + gc.orphan_payloads
        + gc.orphan_tarsplits
        + gc.blobs
        + gc.staging
        + gc.temp_files
        + gc.mountpoints
        + gc.container_dirs;
    if garbage > 0 {
        println!(
            "Garbage collected: {} layers, {} blobs, {} other leftovers",
            gc.layers,
            gc.blobs,
            garbage - gc.layers - gc.blobs
        );
    }
    println!("Total reclaimed space: {}", human_size(freed));
    Ok(Outcome::Ok)
}
