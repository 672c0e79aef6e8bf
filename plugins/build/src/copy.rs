//! COPY and ADD: sources from the context (globs, `**`, the ignore file), from an earlier
//! stage, an image or a `--build-context` (`--from`), or heredocs; `--chown` (names resolved
//! in the image's own passwd and group files; a user without a group gets the same number as
//! its gid, as Docker does), `--chmod`, `--parents`, `--exclude`, `--link` (accepted: every
//! COPY is already its own layer); ADD extracts local archives.
//!
//! The cache key holds the sources' content digest, modes and link targets (context sources,
//! through the stat cache, so an unchanged context reads no data), or the image ID a
//! `--from` source comes from, never times: a `touch` keeps the hit.
//!
//! Destination rules are Docker's: a destination ending in `/`, several sources or an
//! existing directory take each source by its base name (a directory's contents); one file to
//! any other path is that path; a relative destination is relative to WORKDIR.

use std::time::Instant;

use anyhow::{bail, Result};
use strata_types::Hasher;

use crate::commit::Working;
use crate::containerfile::{Command, Instruction};
use crate::ignore::Ignore;
use crate::instructions::absolute;
use crate::sources::{BuildContext, Source};
use crate::stage::{nop, Build, StageState};
use crate::tree::{self, CopyOptions, Root};

/// Where a COPY's sources come from.
enum From {
    Context,
    Named(String),
    Image(String),
}

/// Docker's `--chown`: `user[:group]`, names looked up in the image; a lone user's gid is
/// its uid.
fn chown(root: &std::path::Path, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => strata_engine_containers::user::resolve(root, user)?.uid,
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => strata_engine_containers::user::resolve(root, &format!("{uid}:{g}"))?.gid,
        },
    };
    Ok((uid, gid))
}

pub fn copy(b: &mut Build<'_>, st: &mut StageState, ins: &Instruction) -> Result<()> {
    let (raw_sources, raw_dest, is_add) = match &ins.command {
        Command::Copy { sources, dest } => (sources, dest, false),
        Command::Add { sources, dest } => (sources, dest, true),
        _ => bail!("not a COPY or ADD instruction"),
    };
    b.progress.step(&ins.original);
    let started = Instant::now();
    let lookup = |n: &str| st.lookup(n);
    let word = |w: &str| b.lexer.process_word(w, &lookup).map_err(|e| b.at(ins, e));
    let dest_word = word(raw_dest)?;
    let dest = absolute(&st.cur.config.workdir(), &dest_word);
    let dest_is_dir_hint =
        dest_word.ends_with('/') || dest_word == "." || dest_word.ends_with("/.");
    let flag = |n: &str| ins.flag(n).flatten().map(str::to_owned);
    let chown_spec = flag("chown").map(|c| word(&c)).transpose()?;
    let chmod = flag("chmod")
        .map(|m| {
            u32::from_str_radix(&m, 8)
                .map_err(|_| b.at(ins, format!("invalid --chmod {m:?}: an octal mode")))
        })
        .transpose()?;
    let parents = ins.flag("parents").is_some_and(|v| v != Some("false"));
    let excludes: Vec<String> = ins
        .flags
        .iter()
        .filter(|f| f.name == "exclude")
        .filter_map(|f| f.value.clone())
        .collect();
    let exclude = Ignore::parse(&excludes.join("\n")).map_err(|e| b.at(ins, e))?;
    let from = match flag("from").map(|f| word(&f)).transpose()? {
        None => From::Context,
        Some(f) if b.named_contexts.contains_key(&f) => From::Named(f),
        Some(f) => match b.stage_named(&f, st.index) {
            Some(i) => From::Image(
                b.stage_images[i]
                    .clone()
                    .ok_or_else(|| b.at(ins, format!("stage {f:?} has not been built")))?,
            ),
            None if b
                .file
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(f.to_ascii_lowercase().as_str())) =>
            {
                return Err(b.at(
                    ins,
                    format!("COPY --from={f}: a stage cannot copy from itself or a later stage"),
                ))
            }
            None => {
                let info = strata_plugin_transfer::images::resolve(
                    b.host,
                    &f,
                    b.opts.pull,
                    &b.opts.registry,
                    b.opts.quiet,
                )
                .map_err(|e| b.at(ins, format!("COPY --from={f}: {e}")))?;
                From::Image(info.id)
            }
        },
    };
    let mut key = b.key(st, ins);
    key.add("dest", &dest);
    key.add("dest_is_dir", &dest_is_dir_hint.to_string());
    key.add("chown", chown_spec.as_deref().unwrap_or(""));
    key.add("chmod", &format!("{chmod:?}"));
    key.add("parents", &parents.to_string());
    key.add("exclude", &excludes.join("\n"));
    key.add("add", &is_add.to_string());
    // Resolve and digest the sources (context ones only; a --from image is its ID).
    let mut heredocs = Vec::new();
    let mut patterns = Vec::new();
    for s in raw_sources {
        if let Some(h) = ins.heredoc_for(s) {
            key.add("heredoc", &format!("{}\n{}", h.name, h.content));
            heredocs.push(h.clone());
            continue;
        }
        let p = word(s)?;
        if is_add && (p.starts_with("http://") || p.starts_with("https://")) {
            return Err(b.at(ins, format!("ADD {p}: remote URLs are not supported yet; download the file into the context")));
        }
        if matches!(from, From::Context) && (p.starts_with("git@") || p.ends_with(".git")) {
            return Err(b.at(ins, format!("ADD {p}: git sources are not supported")));
        }
        patterns.push(p);
    }
    let mut resolved: Vec<Source> = Vec::new();
    match &from {
        From::Context | From::Named(_) => {
            let ctx: &mut BuildContext = match &from {
                From::Named(n) => b.named_contexts.get_mut(n).expect("checked above"),
                _ => &mut b.context,
            };
            let mut h = Hasher::new();
            for p in &patterns {
                let found = ctx.resolve(p).map_err(|e| {
                    anyhow::anyhow!("{}:{}: {}: {e:#}", b.opts.file_name, ins.line, ins.keyword)
                })?;
                for s in found {
                    h.update(s.rel.as_bytes());
                    ctx.digest_into(&s, &mut h)?;
                    resolved.push(s);
                }
            }
            key.add("sources", h.finish().as_str());
        }
        From::Image(id) => {
            key.add("from", id);
            key.add("sources", &patterns.join("\n"));
        }
    }
    let Some(key) = b.lookup(st, key, started)? else {
        return Ok(());
    };
    // The work: a working container of the current image, files written into its root.
    let mut work = Working::new(b.store, &st.cur.id, &ins.original)?;
    let root_path = work.root()?;
    let owner = match &chown_spec {
        Some(c) => {
            Some(chown(&root_path, c).map_err(|e| b.at(ins, format!("--chown={c}: {e:#}")))?)
        }
        None => None,
    };
    let dst = Root::open(&root_path)?;
    // A --from image's files: mount it in a working container of its own.
    let mut from_work = None;
    let mut from_ctx = None;
    if let From::Image(id) = &from {
        let mut w = Working::new(b.store, id, "COPY --from")?;
        let p = w.root()?;
        from_work = Some(w);
        let c = BuildContext::open(&p, Ignore::empty(), None)?;
        for pat in &patterns {
            resolved.extend(c.resolve(pat).map_err(|e| b.at(ins, format!("{e:#}")))?);
        }
        from_ctx = Some(c);
    }
    let src_ctx: &BuildContext = match (&from, &from_ctx) {
        (From::Named(n), _) => &b.named_contexts[n],
        (From::Image(_), Some(c)) => c,
        _ => &b.context,
    };
    let total = resolved.len() + heredocs.len();
    let existing_dir = dst.stat(&dest)?.is_some_and(|s| {
        rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory
    });
    let into_dir = dest_is_dir_hint || total > 1 || existing_dir;
    let opts = CopyOptions {
        owner,
        keep_owners: matches!(from, From::Image(_)),
        mode: chmod,
    };
    let parent_owner = owner.unwrap_or((0, 0));
    let mut described = Vec::new();
    for s in &resolved {
        b.interrupt.check()?;
        let base = tree::components(&s.rel)
            .last()
            .copied()
            .unwrap_or("")
            .to_owned();
        let mut entries = s.entries.clone();
        if !exclude.is_empty() {
            entries.retain(|e| {
                let full = tree::join(&s.rel, &e.rel);
                e.rel.is_empty() || !(exclude.is_excluded(&full) || exclude.is_excluded(&e.rel))
            });
        }
        if is_add && !s.is_dir() && matches!(from, From::Context | From::Named(_)) {
            let fd = src_ctx
                .root
                .open_in(&s.rel, rustix::fs::OFlags::RDONLY)
                .map_err(|e| b.at(ins, format!("open {}: {e}", s.rel)))?;
            let mut file = std::fs::File::from(fd);
            let head = crate::extract::head(&mut file)?;
            if let Some(kind) = crate::extract::detect(&head) {
                let target = if parents {
                    tree::join(&dest, &s.rel)
                } else {
                    dest.clone()
                };
                dst.mkdir_all(&target, parent_owner)?;
                crate::extract::extract(file, kind, &dst, &target, owner)
                    .map_err(|e| b.at(ins, format!("extract {}: {e:#}", s.rel)))?;
                described.push(format!("file:{}", s.rel));
                continue;
            }
        }
        let target = if parents {
            tree::join(&dest, &s.rel)
        } else if s.is_dir() || !into_dir {
            dest.clone()
        } else {
            tree::join(&dest, &base)
        };
        tree::copy_entries(
            &src_ctx.root,
            &s.rel,
            &entries,
            &dst,
            &target,
            &opts,
            parent_owner,
        )
        .map_err(|e| b.at(ins, format!("{e:#}")))?;
        described.push(format!(
            "{}:{}",
            if s.is_dir() { "dir" } else { "file" },
            s.rel
        ));
    }
    for h in &heredocs {
        let target = if into_dir {
            tree::join(&dest, &h.name)
        } else {
            dest.clone()
        };
        let c = tree::components(&target);
        let (name, parent) = c
            .split_last()
            .ok_or_else(|| b.at(ins, "cannot write a heredoc over /"))?;
        let pdir = dst.mkdir_all(&parent.join("/"), parent_owner)?;
        let _ = rustix::fs::unlinkat(&pdir, *name, rustix::fs::AtFlags::empty());
        let fd = rustix::fs::openat(
            &pdir,
            *name,
            rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::from_raw_mode(chmod.unwrap_or(0o644)),
        )
        .map_err(|e| b.at(ins, format!("create /{target}: {e}")))?;
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, h.content.as_bytes())?;
        let (uid, gid) = owner.unwrap_or((0, 0));
        rustix::fs::fchown(
            &f,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
        rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(chmod.unwrap_or(0o644)))?;
        described.push(format!("heredoc:{}", h.name));
    }
    // Every descriptor into the mounts goes before they are unmounted.
    drop(dst);
    drop(from_ctx);
    drop(from_work);
    let mut config = st.cur.config.clone();
    let what = if is_add { "ADD" } else { "COPY" };
    let created_by = nop(&format!("{what} {} in {dest} ", described.join(" ")));
    config.add_history(&b.created(), &created_by, false);
    let id = work.commit(&config)?;
    drop(work);
    let cur = b.load(&id)?;
    b.record(st, &key, cur, started)
}
