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

/// The part of a `--parents` source's path that is dropped: what comes before the last `/./`
/// of its pattern (Docker's pivot), else nothing.
fn pivot(pattern: &str) -> String {
    let p = pattern.strip_prefix("./").unwrap_or(pattern);
    match p.rfind("/./") {
        Some(i) => tree::components(&p[..i]).join("/"),
        None => String::new(),
    }
}

/// Docker's `--chown` (and WORKDIR's owner): `user[:group]`, names looked up in the image; a
/// lone user's gid is its uid.
pub fn chown(root: &std::path::Path, spec: &str) -> Result<(u32, u32)> {
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
                let image = b
                    .named_images
                    .get(&f.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_else(|| f.clone());
                let info = strata_plugin_transfer::images::resolve(
                    b.host,
                    &image,
                    b.opts.pull,
                    &b.opts.registry,
                    b.opts.quiet,
                )
                .map_err(|e| {
                    b.at(
                        ins,
                        format!("--from={f}: no stage of that name, and no such image ({e})"),
                    )
                })?;
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
    let mut urls: Vec<String> = Vec::new();
    for s in raw_sources {
        if let Some(h) = ins.heredoc_for(s) {
            // An unquoted delimiter's body is expanded, quotes kept (BuildKit's ExpandRaw).
            let mut h = h.clone();
            if h.expand {
                h.content = b
                    .lexer
                    .expand_raw(&h.content, &lookup)
                    .map_err(|e| b.at(ins, e))?;
            }
            key.add("heredoc", &format!("{}\n{}", h.name, h.content));
            heredocs.push(h);
            continue;
        }
        let p = word(s)?;
        if is_add && crate::remote::is_url(&p) {
            urls.push(p);
            continue;
        }
        if matches!(from, From::Context) && (p.starts_with("git@") || p.ends_with(".git")) {
            return Err(b.at(ins, format!("ADD {p}: git sources are not supported")));
        }
        patterns.push(p);
    }
    let checksum = flag("checksum");
    if checksum.is_some() && urls.is_empty() {
        return Err(b.at(ins, "--checksum is only for ADD of a URL"));
    }
    let mut downloads: Vec<(String, Option<crate::remote::Downloaded>)> = Vec::new();
    for u in &urls {
        match &checksum {
            // With a checksum the content is known: a hit downloads nothing.
            Some(c) => {
                key.add("url", &format!("{u} {c}"));
                downloads.push((u.clone(), None));
            }
            None => {
                let d = crate::remote::fetch(u, &b.opts.build_dir.join("downloads"), None)
                    .map_err(|e| b.at(ins, format!("{e:#}")))?;
                key.add("url", &format!("{u} {}", d.digest));
                downloads.push((u.clone(), Some(d)));
            }
        }
    }
    let mut resolved: Vec<Source> = Vec::new();
    let mut pivots: Vec<String> = Vec::new();
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
                    ctx.digest_into(&s, &mut h).map_err(|e| {
                        anyhow::anyhow!("{}:{}: {}: {e:#}", b.opts.file_name, ins.line, ins.keyword)
                    })?;
                    pivots.push(pivot(p));
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
            for s in c.resolve(pat).map_err(|e| b.at(ins, format!("{e:#}")))? {
                pivots.push(pivot(pat));
                resolved.push(s);
            }
        }
        from_ctx = Some(c);
    }
    let src_ctx: &BuildContext = match (&from, &from_ctx) {
        (From::Named(n), _) => &b.named_contexts[n],
        (From::Image(_), Some(c)) => c,
        _ => &b.context,
    };
    let total = resolved.len() + heredocs.len() + downloads.len();
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
    for (s, piv) in resolved.iter().zip(&pivots) {
        b.interrupt.check()?;
        let base = tree::components(&s.rel)
            .last()
            .copied()
            .unwrap_or("")
            .to_owned();
        if !exclude.is_empty() && (exclude.is_excluded(&s.rel) || exclude.is_excluded(&base)) {
            continue;
        }
        // --parents keeps the source's path, from after its pattern's `/./` if it has one.
        let kept = match s.rel.strip_prefix(piv.as_str()) {
            Some(rest) if !piv.is_empty() => rest.trim_start_matches('/').to_owned(),
            _ => s.rel.clone(),
        };
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
            if let Some(kind) = crate::extract::sniff(&mut file)? {
                let target = if parents {
                    tree::join(&dest, &kept)
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
            tree::join(&dest, &kept)
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
    for (url, d) in downloads.iter_mut() {
        if d.is_none() {
            *d = Some(
                crate::remote::fetch(
                    url,
                    &b.opts.build_dir.join("downloads"),
                    checksum.as_deref(),
                )
                .map_err(|e| b.at(ins, format!("{e:#}")))?,
            );
        }
        let file = d.as_ref().expect("downloaded above");
        let target = if into_dir {
            tree::join(
                &dest,
                &crate::remote::file_name(url).map_err(|e| b.at(ins, e))?,
            )
        } else {
            dest.clone()
        };
        let content = std::fs::File::open(&file.path)?;
        write_file(
            &dst,
            &target,
            content,
            chmod.unwrap_or(0o600),
            owner.unwrap_or((0, 0)),
            parent_owner,
        )
        .map_err(|e| b.at(ins, format!("{e:#}")))?;
        described.push(format!("url:{url}"));
    }
    for h in &heredocs {
        let target = if into_dir {
            tree::join(&dest, &h.name)
        } else {
            dest.clone()
        };
        write_file(
            &dst,
            &target,
            h.content.as_bytes(),
            chmod.unwrap_or(0o644),
            owner.unwrap_or((0, 0)),
            parent_owner,
        )
        .map_err(|e| b.at(ins, format!("{e:#}")))?;
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

/// Writes `content` as the regular file `target` in `root` (replacing a file there), with
/// `mode` and `owner`; missing parents are made with `parent_owner`.
fn write_file(
    root: &Root,
    target: &str,
    mut content: impl std::io::Read,
    mode: u32,
    owner: (u32, u32),
    parent_owner: (u32, u32),
) -> Result<()> {
    use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
    let c = tree::components(target);
    let Some((name, parent)) = c.split_last() else {
        bail!("cannot write a file over /");
    };
    let pdir = root.mkdir_all(&parent.join("/"), parent_owner)?;
    match rustix::fs::unlinkat(&pdir, *name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(anyhow::anyhow!("replace /{target}: {e}")),
    }
    let fd = rustix::fs::openat(
        &pdir,
        *name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| anyhow::anyhow!("create /{target}: {e}"))?;
    let mut f = std::fs::File::from(fd);
    std::io::copy(&mut content, &mut f)?;
    rustix::fs::fchown(
        &f,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
    )?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
    Ok(())
}
