//! `strata build`: reads the Containerfile, works out which stages the target needs, runs
//! them in order (each step through the cache index), and names the result.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use strata_engine_containers::Engine;
use strata_plugin_api::{ErrorKind, Host, Outcome};
use strata_plugin_bridge::HostStore;
use strata_plugin_transfer::errors::{call, kinded};

use crate::containerfile::{Command, Containerfile};
use crate::ignore::Ignore;
use crate::options::{self, BuildCmd, Options};
use crate::progress::Progress;
use crate::run_step::Interrupt;
use crate::sources::BuildContext;
use crate::stage::Build;

/// The Containerfile text and the name errors use.
fn read_containerfile(cmd: &BuildCmd, context: &Path) -> Result<(String, String)> {
    if cmd.file.is_empty() {
        for name in ["Containerfile", "Dockerfile"] {
            let p = context.join(name);
            if p.is_file() {
                let text =
                    std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
                return Ok((name.to_owned(), text));
            }
        }
        bail!(kinded(
            ErrorKind::InvalidArgument,
            format!(
                "no Containerfile or Dockerfile in {}; name one with -f",
                context.display()
            )
        ));
    }
    let mut text = String::new();
    for f in &cmd.file {
        if f == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read the Containerfile from standard input")?;
        } else {
            let p = PathBuf::from(f);
            // A relative -f is relative to the current directory, else the context (podman).
            let p = if p.is_file() || p.is_absolute() {
                p
            } else {
                context.join(&p)
            };
            text.push_str(&std::fs::read_to_string(&p).map_err(|e| {
                kinded(
                    ErrorKind::InvalidArgument,
                    format!("read Containerfile {}: {e}", p.display()),
                )
            })?);
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let name = if cmd.file.len() == 1 && cmd.file[0] != "-" {
        cmd.file[0].clone()
    } else {
        "Containerfile".to_owned()
    };
    Ok((name, text))
}

fn read_ignore(cmd: &BuildCmd, context: &Path) -> Result<Ignore> {
    let path = match &cmd.ignorefile {
        Some(p) => Some(p.clone()),
        None => [".containerignore", ".dockerignore"]
            .iter()
            .map(|n| context.join(n))
            .find(|p| p.is_file()),
    };
    let Some(path) = path else {
        return Ok(Ignore::empty());
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ignore::parse(&text).map_err(|e| {
        kinded(
            ErrorKind::InvalidArgument,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Stages the target needs, in order: the target and, transitively, the stages its FROMs
/// and `COPY --from`s name (Docker skips the others).
fn needed_stages(file: &Containerfile, target: usize) -> BTreeSet<usize> {
    let mut need = BTreeSet::new();
    let mut todo = vec![target];
    let by_name = |n: &str, before: usize| -> Vec<usize> {
        let lower = n.to_ascii_lowercase();
        if lower.contains('$') {
            return (0..before).collect(); // named through an ARG: keep every earlier stage
        }
        file.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| lower.parse::<usize>().ok().filter(|&i| i < before))
            .into_iter()
            .collect()
    };
    while let Some(i) = todo.pop() {
        if !need.insert(i) {
            continue;
        }
        let stage = &file.stages[i];
        if let Command::From { image, .. } = &stage.from.command {
            todo.extend(by_name(image, i));
        }
        for ins in &stage.instructions {
            if let Some(Some(from)) = ins.flag("from") {
                todo.extend(by_name(from, i));
            }
            for f in ins.flags.iter().filter(|f| f.name == "mount") {
                if let Some(from) = f.value.as_deref().and_then(|v| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("from="))
                        .map(str::to_owned)
                }) {
                    todo.extend(by_name(&from, i));
                }
            }
        }
    }
    need
}

pub fn build(host: &Host, cmd: BuildCmd) -> Result<Outcome> {
    if let Some(p) = &cmd.platform {
        options::check_platform(p)?;
    }
    if !matches!(cmd.isolation.as_str(), "oci" | "chroot" | "default") {
        bail!(kinded(
            ErrorKind::InvalidArgument,
            format!("--isolation {}: use oci or chroot", cmd.isolation)
        ));
    }
    let context = cmd.context.clone().unwrap_or_else(|| PathBuf::from("."));
    if !context.is_dir() {
        bail!(kinded(
            ErrorKind::InvalidArgument,
            format!("build context {} is not a directory", context.display())
        ));
    }
    let (file_name, text) = read_containerfile(&cmd, &context)?;
    let file = crate::containerfile::parse(&file_name, &text)
        .map_err(|e| kinded(ErrorKind::InvalidArgument, e.to_string()))?;
    let target = match &cmd.target {
        // A stage's index also names it (what `--jobs` gives its child builds).
        Some(t) if t.parse::<usize>().is_ok_and(|i| i < file.stages.len()) => {
            t.parse::<usize>().expect("checked")
        }
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            file.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| {
                    kinded(
                        ErrorKind::InvalidArgument,
                        format!("--target {t}: no stage of that name in {file_name}"),
                    )
                })?
        }
        None => file.stages.len() - 1,
    };
    let ignore = read_ignore(&cmd, &context)?;
    let engine = Engine::new(Box::new(HostStore::new(host)))?;
    let info = engine.info().clone();
    let build_dir = PathBuf::from(&info.root).join("build");
    let opts = Options {
        file_name: file_name.clone(),
        format: cmd.format,
        layers: cmd.layers,
        no_cache: cmd.no_cache,
        pull: cmd.pull,
        registry: cmd.registry.clone(),
        quiet: cmd.quiet,
        timestamp: cmd.timestamp.or(cmd.source_date_epoch),
        build_args: options::build_args(&cmd)?,
        secrets: options::secrets(&cmd, &build_dir.join("secrets"))?,
        network: cmd.network.clone(),
        runtime: cmd.runtime.clone(),
        rootless: engine.rootless(),
        build_dir: build_dir.clone(),
    };
    let ctx = BuildContext::open(&context, ignore, Some(&build_dir.join("stat-cache")))?;
    let mut named = BTreeMap::new();
    let mut named_images = BTreeMap::new();
    for bc in &cmd.build_context {
        let (name, dir) = bc.split_once('=').ok_or_else(|| {
            kinded(
                ErrorKind::InvalidArgument,
                format!("--build-context {bc:?}: NAME=DIR or NAME=docker-image://IMAGE"),
            )
        })?;
        // podman's image contexts: an image a FROM or COPY --from of that name uses.
        if let Some(image) = dir
            .strip_prefix("docker-image://")
            .or_else(|| dir.strip_prefix("container-image://"))
        {
            named_images.insert(name.to_ascii_lowercase(), image.to_owned());
            continue;
        }
        named.insert(
            name.to_owned(),
            BuildContext::open(
                Path::new(dir),
                Ignore::empty(),
                Some(&build_dir.join("stat-cache")),
            )?,
        );
    }
    let store = host.store();
    crate::run_step::remove_stale(&engine, store);
    let interrupt = Interrupt::install()?;
    let need = needed_stages(&file, target);
    let total: usize = need
        .iter()
        .map(|&i| 1 + file.stages[i].instructions.len())
        .sum();
    let progress = Progress::new(cmd.quiet, total);
    let mut b = Build::new(host, &engine, &opts, &file, ctx, named, interrupt, progress);
    b.named_images = named_images;
    if cmd.jobs > 1 && opts.use_cache() {
        let ahead = crate::jobs::independent(&file, &need, target);
        if ahead.len() > 1 {
            crate::jobs::prebuild(&ahead, cmd.jobs)?;
        }
    }
    let result = (|| -> Result<String> {
        b.global_args()?;
        for &i in &need {
            let id = b.run_stage(i)?;
            b.stage_images[i] = Some(id);
        }
        Ok(b.stage_images[target]
            .clone()
            .expect("the target stage was built"))
    })();
    b.context.save();
    for p in opts.secrets.values() {
        if p.starts_with(&build_dir) {
            let _ = std::fs::remove_file(p);
        }
    }
    let mut id = result?;
    // --layers=false (podman): the build's new layers end up as one.
    if cmd.squash || cmd.squash_all || !cmd.layers {
        let image = b.load(&id)?;
        let base = if cmd.squash_all {
            b.scratch()?
        } else {
            let base_id = b.stage_bases[target]
                .clone()
                .expect("the target stage was built");
            b.load(&base_id)?
        };
        id = crate::squash::squash(
            store,
            &image,
            &base,
            opts.format,
            opts.use_cache(),
            opts.layers,
        )?;
    }
    // The final image: what the format cannot carry dropped (with buildah's warnings; the
    // steps kept it, as later steps use SHELL), --label and --annotation added (no history
    // entry, as buildah). The same inputs record the same image again, so no cache is needed.
    let mut cur = b.load(&id)?;
    let warnings = cur.config.fit_format(opts.format);
    if !cmd.quiet {
        for w in &warnings {
            eprintln!("WARN[0000] {w}");
        }
    }
    if !warnings.is_empty() || !cmd.label.is_empty() || !cmd.annotation.is_empty() {
        for l in &cmd.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            cur.config.insert_into("Labels", k, serde_json::json!(v));
        }
        let annotations: BTreeMap<String, String> = cmd
            .annotation
            .iter()
            .map(|a| {
                let (k, v) = a.split_once('=').unwrap_or((a, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        id = crate::commit::record_image(
            store,
            &cur.layers,
            &mut cur.config,
            opts.format,
            &annotations,
        )?;
    }
    for w in cmd.build_arg.iter().chain(opts.build_args.keys()) {
        let name = w.split_once('=').map(|(k, _)| k).unwrap_or(w);
        let predefined = options::predefined_args().iter().any(|(k, _)| k == name);
        if !b.used_args.contains(name) && !predefined && !cmd.quiet {
            eprintln!("[Warning] one or more build args were not consumed: [{name}]");
            break;
        }
    }
    let mut names = Vec::new();
    for t in &cmd.tag {
        names.push(strata_plugin_transfer::images::qualify(t).map_err(call)?);
    }
    if !names.is_empty() {
        store.tag(&id, &names).map_err(call)?;
    }
    if let Some(f) = &cmd.iidfile {
        std::fs::write(f, &id).with_context(|| format!("write --iidfile {}", f.display()))?;
    }
    let hex = id.strip_prefix("sha256:").unwrap_or(&id);
    if !cmd.quiet {
        if let Some(n) = names.first() {
            println!("COMMIT {n}");
        }
        println!("--> {}", &hex[..hex.len().min(12)]);
        for n in &names {
            println!("Successfully tagged {n}");
        }
    }
    println!("{hex}");
    tracing::debug!(
        hits = b.progress.hits,
        misses = b.progress.misses,
        hashed = b.context.hashed_bytes(),
        "build done"
    );
    Ok(Outcome::Ok)
}
