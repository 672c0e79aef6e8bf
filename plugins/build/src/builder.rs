//! `strata builder`: buildah's working-container verbs for scripted builds (`buildah from`,
//! `run`, `copy`, `add`, `config`, `commit`, `mount`, `umount`, `rm`, `containers`), over the
//! same engine and store as `strata build`.
//!
//! A working container is an engine container made from the image (never started until
//! `run`), with the image config it will be committed with kept in its store metadata under
//! `builder`. `run` sets the engine record's command, environment, user and working
//! directory from that config (and the flags) and starts the container attached: each run is
//! a fresh start of the same container, so its files persist from one `run` to the next, as
//! buildah's do. `copy`/`add` write into its mounted root with `COPY`'s rules; `commit` makes
//! an image of its changes with the config.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use strata_engine_containers::{ContainerConfig, Engine, NetworkMode, METADATA_KEY};
use strata_plugin_api::{ErrorKind, Host, Outcome};
use strata_plugin_bridge::HostStore;
use strata_plugin_transfer::errors::{call, kinded};
use strata_plugin_transfer::images::{qualify, PullPolicy, RegistryArgs};

use crate::config::ImageConfig;
use crate::ignore::Ignore;
use crate::sources::BuildContext;
use crate::tree::{self, CopyOptions, Root};

/// The metadata key of a working container's image config.
const KEY: &str = "builder";

#[derive(Debug, Parser)]
#[command(
    name = "strata builder",
    about = "Working containers for scripted builds (buildah's verbs)"
)]
pub struct BuilderCmd {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Make a working container from an image (`scratch` for none); prints its name
    From {
        image: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value = "missing")]
        pull: PullPolicy,
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Run a command in a working container (its files persist)
    Run {
        container: String,
        /// The command (after `--`)
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
        /// KEY=VALUE for this run only (repeatable)
        #[arg(short, long)]
        env: Vec<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        workingdir: Option<String>,
        /// none, host or default
        #[arg(long)]
        network: Option<String>,
    },
    /// Copy files from the host into a working container
    Copy {
        container: String,
        /// Sources, then the destination
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        #[arg(long)]
        chown: Option<String>,
        #[arg(long)]
        chmod: Option<String>,
    },
    /// Like copy, and local archives are extracted
    Add {
        container: String,
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        #[arg(long)]
        chown: Option<String>,
        #[arg(long)]
        chmod: Option<String>,
    },
    /// Change the image config the container will be committed with
    Config {
        container: String,
        #[arg(long)]
        env: Vec<String>,
        #[arg(long)]
        label: Vec<String>,
        #[arg(long)]
        cmd: Option<String>,
        #[arg(long)]
        entrypoint: Option<String>,
        #[arg(long)]
        workingdir: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        port: Vec<String>,
        #[arg(long)]
        volume: Vec<String>,
        #[arg(long)]
        author: Option<String>,
        #[arg(long = "stop-signal")]
        stop_signal: Option<String>,
    },
    /// Make an image of the container's changes and config; prints its ID
    Commit {
        container: String,
        image: Option<String>,
        /// Remove the working container afterwards
        #[arg(long)]
        rm: bool,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Mount the container's root filesystem; prints where
    Mount { container: String },
    /// Unmount it
    Umount { container: String },
    /// Remove working containers
    Rm {
        containers: Vec<String>,
        #[arg(short, long)]
        all: bool,
    },
    /// List working containers
    #[command(alias = "ls", alias = "containers")]
    List {
        #[arg(long, default_value = "table")]
        format: String,
    },
}

/// A JSON array (exec form) or a shell command (shell form).
fn command_of(config: &ImageConfig, v: &str) -> Result<Value> {
    if v.trim_start().starts_with('[') {
        let a: Vec<String> = serde_json::from_str(v)
            .map_err(|e| kinded(ErrorKind::InvalidArgument, format!("{v:?}: {e}")))?;
        Ok(json!(a))
    } else {
        let mut a = config.shell();
        a.push(v.to_owned());
        Ok(json!(a))
    }
}

fn load_config(engine: &Engine, name: &str) -> Result<(String, ImageConfig)> {
    let rec = engine.store().container(name).map_err(|e| {
        kinded(
            ErrorKind::NotFound,
            format!("{name}: no such working container ({e})"),
        )
    })?;
    let v = rec.metadata.get(KEY).cloned().ok_or_else(|| {
        kinded(
            ErrorKind::InvalidArgument,
            format!("{name} is not a working container (made by `strata builder from`)"),
        )
    })?;
    let config = ImageConfig {
        json: v["config"].clone(),
    };
    Ok((rec.id, config))
}

fn save_config(host: &Host, id: &str, image: &str, config: &ImageConfig) -> Result<()> {
    host.store()
        .set_metadata(id, KEY, json!({"image": image, "config": config.json}))
        .map_err(call)?;
    Ok(())
}

/// Copies host paths into the container with COPY's destination rules; `add` extracts
/// local archives.
fn copy_in(
    root: &Path,
    config: &ImageConfig,
    paths: &[String],
    chown: Option<&str>,
    chmod: Option<&str>,
    add: bool,
) -> Result<()> {
    let (dest_word, sources) = paths.split_last().expect("clap requires two paths");
    let dest = crate::instructions::absolute(&config.workdir(), dest_word);
    let owner = chown.map(|c| crate::copy::chown(root, c)).transpose()?;
    let mode = chmod
        .map(|m| u32::from_str_radix(m, 8))
        .transpose()
        .map_err(|_| kinded(ErrorKind::InvalidArgument, "--chmod takes an octal mode"))?;
    let dst = Root::open(root)?;
    let existing_dir = dst.stat(&dest)?.is_some_and(|s| {
        rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory
    });
    let into_dir = dest_word.ends_with('/') || sources.len() > 1 || existing_dir;
    for src in sources {
        let p = PathBuf::from(src);
        let p = std::path::absolute(&p)?;
        let (dir, base) = match (p.parent(), p.file_name()) {
            (Some(d), Some(b)) => (d.to_owned(), b.to_string_lossy().into_owned()),
            _ => bail!(kinded(
                ErrorKind::InvalidArgument,
                format!("{src}: not a file or directory to copy")
            )),
        };
        let ctx = BuildContext::open(&dir, Ignore::empty(), None)?;
        for s in ctx.resolve(&base)? {
            if add && !s.is_dir() {
                let fd = ctx.root.open_in(&s.rel, rustix::fs::OFlags::RDONLY)?;
                let mut file = std::fs::File::from(fd);
                if let Some(kind) = crate::extract::sniff(&mut file)? {
                    dst.mkdir_all(&dest, owner.unwrap_or((0, 0)))?;
                    crate::extract::extract(file, kind, &dst, &dest, owner)?;
                    continue;
                }
            }
            let target = if s.is_dir() || !into_dir {
                dest.clone()
            } else {
                tree::join(&dest, &base)
            };
            let opts = CopyOptions {
                owner,
                keep_owners: false,
                mode,
            };
            tree::copy_entries(
                &ctx.root,
                &s.rel,
                &s.entries,
                &dst,
                &target,
                &opts,
                owner.unwrap_or((0, 0)),
            )
            .with_context(|| format!("copy {src}"))?;
        }
    }
    Ok(())
}

pub fn run(host: &Host, cmd: BuilderCmd) -> Result<Outcome> {
    let engine = Engine::new(Box::new(HostStore::new(host)))?;
    let store = host.store();
    // ADD is COPY that extracts local archives.
    let add = matches!(cmd.command, Sub::Add { .. });
    match cmd.command {
        Sub::From {
            image,
            name,
            pull,
            quiet,
            registry,
        } => {
            let (image_id, config) = if image == "scratch" {
                let mut c = ImageConfig::scratch();
                let id =
                    crate::commit::record_config(store, &[], &mut c, crate::config::Format::Oci)?;
                (id, c)
            } else {
                let info =
                    strata_plugin_transfer::images::resolve(host, &image, pull, &registry, quiet)
                        .map_err(call)?;
                (info.id.clone(), ImageConfig::parse(&info.config)?)
            };
            let base = image
                .rsplit('/')
                .next()
                .unwrap_or(&image)
                .split([':', '@'])
                .next()
                .unwrap_or("scratch");
            let name = match name {
                Some(n) => n,
                None => {
                    let taken: Vec<String> = engine
                        .store()
                        .containers(&[])
                        .map(|l| l.into_iter().map(|c| c.name).collect())
                        .unwrap_or_default();
                    let mut n = format!("{base}-working-container");
                    let mut i = 1;
                    while taken.contains(&n) {
                        n = format!("{base}-working-container-{i}");
                        i += 1;
                    }
                    n
                }
            };
            let engine_config = ContainerConfig {
                image_name: image.clone(),
                image_id: image_id.clone(),
                args: vec!["/bin/sh".into()],
                command_line: "/bin/sh".into(),
                runtime: strata_engine_containers::settings::default_runtime(),
                stop_signal: "SIGKILL".into(),
                network: NetworkMode::None,
                ..ContainerConfig::default()
            };
            let mut extra = serde_json::Map::new();
            extra.insert(
                KEY.into(),
                json!({"image": image_id, "config": config.json}),
            );
            let c = engine.create(Some(name), engine_config, Some(extra))?;
            println!("{}", c.name());
        }
        Sub::Run {
            container,
            command,
            env,
            user,
            workingdir,
            network,
        } => {
            let (id, config) = load_config(&engine, &container)?;
            let c = engine.container(&id)?;
            let mut ec: ContainerConfig = c.config.clone();
            let mut e = config.env();
            if !e.iter().any(|v| v.starts_with("PATH=")) {
                e.insert(0, format!("PATH={}", crate::config::DEFAULT_PATH));
            }
            e.extend(env);
            ec.env = e;
            ec.args = command.clone();
            ec.command_line = command.join(" ");
            ec.user = user.unwrap_or_else(|| config.user());
            ec.workdir = workingdir.unwrap_or_else(|| config.workdir());
            ec.network = match network.as_deref() {
                None | Some("none") => NetworkMode::None,
                Some("host") => NetworkMode::Host,
                Some("default") if engine.rootless() => {
                    strata_engine_containers::rootless::default_network()
                }
                Some("default") => NetworkMode::Bridge,
                Some(o) => bail!(kinded(
                    ErrorKind::InvalidArgument,
                    format!("--network {o}: use none, host or default")
                )),
            };
            store
                .set_metadata(&id, METADATA_KEY, serde_json::to_value(&ec)?)
                .map_err(call)?;
            let c = engine.container(&id)?;
            let code = crate::run_step::start_attached(&c)?.unwrap_or(125);
            return Ok(if code == 0 {
                Outcome::Ok
            } else {
                Outcome::Exit(code.clamp(0, 255) as u8)
            });
        }
        Sub::Copy {
            container,
            paths,
            chown,
            chmod,
        }
        | Sub::Add {
            container,
            paths,
            chown,
            chmod,
        } => {
            let (id, config) = load_config(&engine, &container)?;
            let root = PathBuf::from(store.mount(&id).map_err(call)?);
            copy_in(
                &root,
                &config,
                &paths,
                chown.as_deref(),
                chmod.as_deref(),
                add,
            )?;
        }
        Sub::Config {
            container,
            env,
            label,
            cmd,
            entrypoint,
            workingdir,
            user,
            port,
            volume,
            author,
            stop_signal,
        } => {
            let (id, mut config) = load_config(&engine, &container)?;
            let image = engine.store().container(&id)?.metadata[KEY]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for kv in env {
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                config.set_env(k, v);
            }
            for kv in label {
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                config.insert_into("Labels", k, json!(v));
            }
            if let Some(c) = cmd {
                let v = command_of(&config, &c)?;
                config.set("Cmd", v);
            }
            if let Some(e) = entrypoint {
                let v = command_of(&config, &e)?;
                config.set("Entrypoint", v);
            }
            if let Some(w) = workingdir {
                config.set("WorkingDir", json!(w));
            }
            if let Some(u) = user {
                config.set("User", json!(u));
            }
            for p in port {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                config.insert_into("ExposedPorts", &p, json!({}));
            }
            for v in volume {
                config.insert_into("Volumes", &v, json!({}));
            }
            if let Some(a) = author {
                config.set_top("author", json!(a));
            }
            if let Some(s) = stop_signal {
                config.set("StopSignal", json!(s));
            }
            save_config(host, &id, &image, &config)?;
        }
        Sub::Commit {
            container,
            image,
            rm,
            quiet,
        } => {
            let (id, mut config) = load_config(&engine, &container)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            config.add_history(&crate::config::rfc3339(now), "strata builder commit", false);
            // What the runtime made as mount points for `run` is not the image's.
            crate::run_cmd::drop_mount_points(store, &id, &[])?;
            let names = image
                .iter()
                .map(|n| qualify(n).map_err(call))
                .collect::<Result<Vec<_>>>()?;
            let r = store
                .commit_with(&strata_plugin_api::store::CommitRequest {
                    container: id.clone(),
                    name: String::new(),
                    names,
                    config: Some(config.json),
                    empty_layer: false,
                })
                .map_err(call)?;
            if rm {
                engine.container(&id)?.remove(true)?;
            }
            let hex = r.image_id.trim_start_matches("sha256:").to_owned();
            if !quiet {
                eprintln!("Writing manifest to image destination");
            }
            println!("{hex}");
        }
        Sub::Mount { container } => {
            let (id, _) = load_config(&engine, &container)?;
            println!("{}", store.mount(&id).map_err(call)?);
        }
        Sub::Umount { container } => {
            let (id, _) = load_config(&engine, &container)?;
            store.unmount(&id).map_err(call)?;
        }
        Sub::Rm { containers, all } => {
            let names: Vec<String> = if all {
                list(host)?.into_iter().map(|c| c.id).collect()
            } else {
                containers
            };
            for n in names {
                let (id, _) = load_config(&engine, &n)?;
                engine.container(&id)?.remove(true)?;
                println!("{id}");
            }
        }
        Sub::List { format } => {
            let l = list(host)?;
            if format == "json" {
                let v: Vec<Value> = l
                    .iter()
                    .map(|c| json!({"id": c.id, "name": c.name, "image": c.metadata[KEY]["image"]}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("CONTAINER ID  IMAGE ID      CONTAINER NAME");
                for c in l {
                    let image = c.metadata[KEY]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("sha256:");
                    println!(
                        "{:<14}{:<14}{}",
                        &c.id[..12.min(c.id.len())],
                        &image[..12.min(image.len())],
                        c.name
                    );
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

fn list(host: &Host) -> Result<Vec<strata_plugin_api::store::ContainerInfo>> {
    host.store()
        .containers_where(&strata_plugin_api::store::ContainerFilter {
            metadata_keys: vec![KEY.into()],
            ..Default::default()
        })
        .map_err(call)
}
