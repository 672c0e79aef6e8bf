//! `diff`, `commit` and `cp`: a container's filesystem, as podman shows and moves it.
//!
//! - `diff` lists the paths a container added (`A`), changed (`C`) or deleted (`D`)
//!   relative to its image, from the store's `changes`.
//! - `commit` makes an image of a container's changes with its run settings (`commit`).
//! - `cp` copies between a container and the host without ever leaving the container's root
//!   (`cp`, `copy`, `entry`), on running and stopped containers (`rootfs`).
//!
//! What is not here: `diff` between images, `cp` to or from stdin/stdout as a tar stream
//! (`-`), `cp` between two containers, `commit --pause` (containers are not paused).

mod commit;
mod copy;
mod cp;
mod entry;
pub mod rootfs;
pub mod tarball;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use crate::context::Ctx;
use crate::errors::{call, kinded};

#[derive(Debug, Parser)]
#[command(
    name = "strata diff",
    about = "List the files a container added (A), changed (C) or deleted (D)"
)]
pub struct DiffCmd {
    /// Output format: table (lines of `KIND PATH`) or json
    #[arg(long, default_value = "table")]
    pub format: String,
    pub container: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata commit",
    about = "Make an image of a container's changes and settings"
)]
pub struct CommitCmd {
    /// Dockerfile instructions to apply (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, ...)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// The image's author
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// A comment for the image's history
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Print only the image ID (the default output here too)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub container: String,
    /// The image's name (short names get localhost/); none makes an unnamed image
    pub image: Option<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata cp",
    about = "Copy files between a container and the host (CONTAINER:PATH on one side)"
)]
pub struct CpCmd {
    /// Give copied files the destination's owner: the container's user when copying in, the
    /// caller when copying out (false keeps the source's owners)
    #[arg(short = 'a', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub archive: bool,
    pub source: String,
    pub destination: String,
}

/// Paths podman leaves out of `diff`: mount points and files the runtime makes for every
/// container, not the user's changes.
const RUNTIME_PATHS: &[&str] = &[
    "/dev",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/run",
    "/run/.containerenv",
    "/run/notify",
    "/run/secrets",
    "/sys",
];

pub fn diff(host: &Host, cmd: DiffCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let changes: Vec<_> = ctx
        .store
        .changes(&cmd.container)
        .map_err(call)?
        .into_iter()
        .filter(|c| !RUNTIME_PATHS.contains(&c.path.as_str()))
        .collect();
    match cmd.format.as_str() {
        "json" => {
            let of = |k: &str| -> Vec<&str> {
                changes
                    .iter()
                    .filter(|c| c.kind == k)
                    .map(|c| c.path.as_str())
                    .collect()
            };
            let v = json!({"changed": of("C"), "added": of("A"), "deleted": of("D")});
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            for c in &changes {
                println!("{} {}", c.kind, c.path);
            }
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

pub fn commit(host: &Host, cmd: CommitCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let name = cmd
        .image
        .as_deref()
        .map(super::archive::qualify)
        .transpose()?;
    let id = commit::commit(
        &ctx,
        &cmd.container,
        &commit::CommitOptions {
            name,
            changes: cmd.changes,
            author: cmd.author,
            message: cmd.message,
        },
    )?;
    println!("{}", id.trim_start_matches("sha256:"));
    Ok(Outcome::Ok)
}

/// `CONTAINER:PATH` → (container, path); host paths (with a `/` before any `:`) → `None`.
fn container_part(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

pub fn cp(host: &Host, cmd: CpCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let (src, dst) = (&cmd.source, &cmd.destination);
    let (name, inward) = match (container_part(src), container_part(dst)) {
        (Some(_), Some(_)) => {
            return Err(kinded(
                ErrorKind::Unsupported,
                "copying between two containers is not supported: copy through the host",
            ))
        }
        (None, None) => {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                "name a container on one side: CONTAINER:PATH",
            ))
        }
        (Some((c, _)), None) => (c, false),
        (None, Some((c, _))) => (c, true),
    };
    let rootfs = rootfs::Rootfs::open(&ctx, name)?;
    let root = rootfs.open_dir()?;
    let inside = cp::Side {
        root: Some(std::os::fd::AsFd::as_fd(&root)),
    };
    let outside = cp::Side { root: None };
    let in_path = |arg: &str| -> String {
        let p = container_part(arg).map_or("/", |(_, p)| p);
        if p.is_empty() {
            "/".to_owned()
        } else {
            p.to_owned()
        }
    };
    if inward {
        let owner = if cmd.archive {
            let user = container_user(&ctx, &rootfs)?;
            copy::Ownership::Set(user.0, user.1)
        } else {
            copy::Ownership::Keep
        };
        cp::copy(outside, src, inside, &in_path(dst), owner)?;
    } else {
        let owner = if cmd.archive {
            copy::Ownership::Caller
        } else {
            copy::Ownership::Keep
        };
        cp::copy(inside, &in_path(src), outside, dst, owner)?;
    }
    Ok(Outcome::Ok)
}

/// The uid and gid the container runs as (its `-u`, else its image's `User`, else root).
fn container_user(ctx: &Ctx<'_>, rootfs: &rootfs::Rootfs<'_>) -> Result<(u32, u32)> {
    let Some(c) = &rootfs.container else {
        return Ok((0, 0));
    };
    let mut spec = c.config.user.clone();
    if spec.is_empty() {
        let img = ctx.store.image(&c.config.image_id).map_err(call)?;
        spec = crate::images::defaults(&img)?.user;
    }
    let u = strata_engine_containers::user::resolve(rootfs.path(), &spec)?;
    Ok((u.uid, u.gid))
}
