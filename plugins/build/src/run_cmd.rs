//! The RUN instruction: its argv (shell or exec form, heredocs), `--network`, `--mount`
//! (bind from the context, cache, tmpfs, secret), its cache key, and the step through the
//! engine (`run_step.rs`).
//!
//! Cache mounts live under `<store root>/build/cache/<id>` and persist across builds;
//! `sharing` is accepted (every mode shares one directory: builds here are serialized per
//! step, not per mount). Secrets are bound read-only at `/run/secrets/<id>` (or `target`);
//! their content is never part of a cache key, as in Docker.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use strata_engine_containers::{MountSpec, NetworkMode};
use strata_plugin_transfer::errors::call;

use crate::containerfile::{Command, Form, Instruction};
use crate::stage::{Build, StageState};

/// Paths the runtime creates as mount points when the image lacks them; an empty one added
/// by a RUN is removed before the commit, so images do not collect them.
const MOUNT_POINTS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/run/.containerenv",
    "/proc",
    "/sys",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys/fs/cgroup",
    "/run/secrets",
];

/// The argv of a RUN: heredocs as the script (`RUN <<EOF`) or fed to the command through
/// the shell (`RUN python3 <<EOF`).
pub fn run_argv(shell: Vec<String>, ins: &Instruction) -> Result<Vec<String>> {
    let Command::Run(form) = &ins.command else {
        bail!("not a RUN instruction");
    };
    Ok(match form {
        Form::Exec(v) => v.clone(),
        Form::Shell(text) => {
            let mut a = shell;
            if ins.heredocs.len() == 1
                && text.trim().starts_with("<<")
                && !text.trim().contains(' ')
            {
                a.push(ins.heredocs[0].content.clone());
            } else if ins.heredocs.is_empty() {
                a.push(text.clone());
            } else {
                let mut script = text.clone();
                script.push('\n');
                for h in &ins.heredocs {
                    script.push_str(&h.content);
                    if !h.content.is_empty() && !h.content.ends_with('\n') {
                        script.push('\n');
                    }
                    script.push_str(&h.name);
                    script.push('\n');
                }
                a.push(script);
            }
            a
        }
    })
}

/// One `--mount=type=...,k=v,...` option, parsed.
fn mount_options(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_owned()),
            None => (kv.trim().to_ascii_lowercase(), "true".to_owned()),
        })
        .collect()
}

pub fn run(b: &mut Build<'_>, st: &mut StageState, ins: &Instruction) -> Result<()> {
    b.progress.step(&ins.original);
    let started = Instant::now();
    let args = run_argv(st.cur.config.shell(), ins)?;
    let env = st.run_env();
    let network = match ins.flag("network").flatten().or(b.opts.network.as_deref()) {
        None | Some("default") => b.opts.default_network(),
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(other) => {
            return Err(b.at(
                ins,
                format!("unknown network {other:?}: use none, host or default"),
            ))
        }
    };
    let mut key = b.key(st, ins);
    key.add("args", &serde_json::to_string(&args)?);
    key.add("env", &serde_json::to_string(&env)?);
    key.add("user", &st.cur.config.user());
    key.add("workdir", &st.cur.config.workdir());
    key.add("network", &format!("{network:?}"));
    let mut mounts = Vec::new();
    let mut deferred = Vec::new();
    for f in ins.flags.iter().filter(|f| f.name == "mount") {
        let spec = f.value.clone().unwrap_or_default();
        let o = mount_options(&spec);
        let get = |k: &str| o.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let target = get("target")
            .or_else(|| get("dst"))
            .or_else(|| get("destination"));
        let kind = get("type").unwrap_or_else(|| "bind".into());
        let read_only = get("ro")
            .or_else(|| get("readonly"))
            .is_some_and(|v| v != "false")
            || (kind == "bind"
                && get("rw")
                    .or_else(|| get("readwrite"))
                    .is_none_or(|v| v == "false"));
        match kind.as_str() {
            "bind" => {
                let target = target.ok_or_else(|| b.at(ins, "--mount needs target="))?;
                let source = get("source").or_else(|| get("src")).unwrap_or_default();
                if let Some(from) = get("from") {
                    let image = bind_image(b, st, ins, &from)?;
                    key.add(
                        "mount",
                        &format!("bind from {image} {source} {target} ro={read_only}"),
                    );
                    deferred.push(Deferred::BindImage {
                        image,
                        source,
                        target,
                        read_only,
                    });
                    continue;
                }
                let sources = b
                    .context
                    .resolve(&source)
                    .map_err(|e| b.at(ins, format!("{e:#}")))?;
                let mut h = strata_types::Hasher::new();
                for s in &sources {
                    b.context
                        .digest_into(s, &mut h)
                        .map_err(|e| b.at(ins, format!("{e:#}")))?;
                }
                key.add(
                    "mount",
                    &format!("bind {source} {target} ro={read_only} {}", h.finish()),
                );
                deferred.push(Deferred::BindContext {
                    rel: sources[0].rel.clone(),
                    target,
                    read_only,
                });
            }
            "cache" => {
                let target = target.ok_or_else(|| b.at(ins, "--mount=type=cache needs target="))?;
                let id = get("id").unwrap_or_else(|| target.clone());
                let mut h = strata_types::Hasher::new();
                h.update(id.as_bytes());
                let dir: PathBuf = b.opts.build_dir.join("cache").join(&h.finish().hex()[..32]);
                let fresh = !dir.exists();
                std::fs::create_dir_all(&dir)?;
                if fresh {
                    let mode = get("mode")
                        .map(|m| u32::from_str_radix(&m, 8))
                        .transpose()
                        .map_err(|_| b.at(ins, "invalid cache mount mode"))?
                        .unwrap_or(0o755);
                    let uid = get("uid")
                        .map(|u| u.parse::<u32>())
                        .transpose()
                        .map_err(|_| b.at(ins, "invalid uid"))?;
                    let gid = get("gid")
                        .map(|g| g.parse::<u32>())
                        .transpose()
                        .map_err(|_| b.at(ins, "invalid gid"))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
                    std::os::unix::fs::chown(&dir, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))?;
                }
                key.add(
                    "mount",
                    &format!("cache {id} {target} ro={}", get("ro").is_some()),
                );
                mounts.push(MountSpec {
                    kind: "bind".into(),
                    source: dir.display().to_string(),
                    destination: target,
                    read_only: get("ro")
                        .or_else(|| get("readonly"))
                        .is_some_and(|v| v != "false"),
                    options: Vec::new(),
                });
            }
            "tmpfs" => {
                let target = target.ok_or_else(|| b.at(ins, "--mount=type=tmpfs needs target="))?;
                let mut options = Vec::new();
                if let Some(size) = get("size").or_else(|| get("tmpfs-size")) {
                    options.push(format!("size={size}"));
                }
                key.add("mount", &format!("tmpfs {target} {options:?}"));
                mounts.push(MountSpec {
                    kind: "tmpfs".into(),
                    source: String::new(),
                    destination: target,
                    read_only: false,
                    options,
                });
            }
            "secret" => {
                let id = get("id").ok_or_else(|| b.at(ins, "--mount=type=secret needs id="))?;
                let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
                let Some(file) = b.opts.secrets.get(&id) else {
                    if get("required").is_some_and(|v| v == "true") {
                        return Err(b.at(
                            ins,
                            format!(
                                "secret {id:?} is required; give it with --secret id={id},src=FILE"
                            ),
                        ));
                    }
                    continue;
                };
                let num = |k: &str, radix: u32, default: u32| -> Result<u32> {
                    get(k)
                        .map(|v| u32::from_str_radix(&v, radix))
                        .transpose()
                        .map_err(|_| b.at(ins, format!("invalid secret {k}")))
                        .map(|v| v.unwrap_or(default))
                };
                let (mode, uid, gid) = (
                    num("mode", 8, 0o400)?,
                    num("uid", 10, 0)?,
                    num("gid", 10, 0)?,
                );
                key.add(
                    "mount",
                    &format!("secret {id} {target} {mode:o} {uid}:{gid}"),
                );
                deferred.push(Deferred::Secret {
                    file: file.clone(),
                    target,
                    mode,
                    owner: (uid, gid),
                });
            }
            other => {
                return Err(b.at(
                    ins,
                    format!("unknown --mount type {other:?}: use bind, cache, tmpfs or secret"),
                ))
            }
        }
    }
    let Some(key) = b.lookup(st, key, started)? else {
        return Ok(());
    };
    // What the mounts need, made only now that the step runs; removed when `prepared` goes.
    let mut prepared = Prepared::default();
    for d in deferred {
        mounts.push(
            prepared
                .make(b, d)
                .map_err(|e| b.at(ins, format!("{e:#}")))?,
        );
    }
    let mut config = st.cur.config.clone();
    let created_by = format!(
        "/bin/sh -c {}",
        match &ins.command {
            Command::Run(Form::Shell(s)) => s.clone(),
            _ => args.join(" "),
        }
    );
    config.add_history(&b.created(), &created_by, false);
    let destinations: Vec<String> = mounts.iter().map(|m| m.destination.clone()).collect();
    let spec = crate::run_step::RunSpec {
        image: st.cur.id.clone(),
        args,
        env,
        workdir: st.cur.config.workdir(),
        user: st.cur.config.user(),
        network,
        mounts,
        runtime: b.opts.runtime.clone(),
        step: ins.original.clone(),
    };
    let store = b.store;
    let id = crate::run_step::run(b.engine, spec, &b.interrupt, |cid| {
        drop_mount_points(store, cid, &destinations)?;
        crate::commit::commit_container(store, cid, &config, false)
    })
    .map_err(|e| b.at(ins, format!("{e:#}")))?;
    drop(prepared);
    let cur = b.load(&id)?;
    b.record(st, &key, cur, started)
}

/// The image a `--mount=type=bind,from=` names: an earlier stage or an image.
fn bind_image(b: &Build<'_>, st: &StageState, ins: &Instruction, from: &str) -> Result<String> {
    if let Some(i) = b.stage_named(from, st.index) {
        return b.stage_images[i]
            .clone()
            .ok_or_else(|| b.at(ins, format!("stage {from:?} has not been built")));
    }
    let from = b
        .named_images
        .get(&from.to_ascii_lowercase())
        .map(String::as_str)
        .unwrap_or(from);
    strata_plugin_transfer::images::resolve(
        b.host,
        from,
        b.opts.pull,
        &b.opts.registry,
        b.opts.quiet,
    )
    .map(|i| i.id)
    .map_err(|e| {
        b.at(
            ins,
            format!("--mount from={from}: no stage of that name, and no such image ({e})"),
        )
    })
}

/// A mount whose source is made when the step runs.
#[derive(Debug)]
enum Deferred {
    BindContext {
        rel: String,
        target: String,
        read_only: bool,
    },
    BindImage {
        image: String,
        source: String,
        target: String,
        read_only: bool,
    },
    Secret {
        file: PathBuf,
        target: String,
        mode: u32,
        owner: (u32, u32),
    },
}

/// What prepared mounts hold: working containers of images, temporary copies and secret
/// files, all removed on drop.
#[derive(Debug, Default)]
struct Prepared {
    work: Vec<crate::commit::Working>,
    temp: Vec<PathBuf>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        for p in &self.temp {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// The host path of `rel` resolved inside `root` (links followed inside it, never out): a
/// bind mount follows links on the host, so it must be given the resolved path.
fn resolved_path(root: &crate::tree::Root, dir: &Path, rel: &str) -> Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let fd = root
        .open_in(rel, rustix::fs::OFlags::PATH)
        .map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if !real.starts_with(dir) {
        bail!("{rel} resolves outside its root");
    }
    Ok(real)
}

impl Prepared {
    fn temp_dir(&mut self, b: &Build<'_>) -> Result<PathBuf> {
        let p = b.opts.build_dir.join("mounts").join(format!(
            "{}-{}",
            std::process::id(),
            self.temp.len()
        ));
        std::fs::create_dir_all(&p)?;
        self.temp.push(p.clone());
        Ok(p)
    }

    /// A read-write bind gets a copy: Docker discards what a step writes to it.
    fn copy_for_rw(&mut self, b: &Build<'_>, src: &crate::tree::Root, rel: &str) -> Result<String> {
        let tmp = self.temp_dir(b)?;
        let dst = crate::tree::Root::open(&tmp)?;
        let mut entries = Vec::new();
        crate::tree::walk(src, rel, &|_, _| false, &mut entries)?;
        let opts = crate::tree::CopyOptions {
            keep_owners: true,
            ..crate::tree::CopyOptions::default()
        };
        crate::tree::copy_entries(src, rel, &entries, &dst, "copy", &opts, (0, 0))?;
        Ok(tmp.join("copy").display().to_string())
    }

    /// A bind source inside `root` (the directory `dir`): the resolved path, or for a
    /// read-write bind a copy.
    fn bind_source(
        &mut self,
        b: &Build<'_>,
        root: &crate::tree::Root,
        dir: &Path,
        rel: &str,
        read_only: bool,
    ) -> Result<String> {
        if read_only {
            Ok(resolved_path(root, dir, rel)?.display().to_string())
        } else {
            self.copy_for_rw(b, root, rel)
        }
    }

    fn make(&mut self, b: &Build<'_>, d: Deferred) -> Result<MountSpec> {
        let (source, destination, read_only) = match d {
            Deferred::BindContext {
                rel,
                target,
                read_only,
            } => {
                let source =
                    self.bind_source(b, &b.context.root, &b.context.dir, &rel, read_only)?;
                (source, target, read_only)
            }
            Deferred::BindImage {
                image,
                source,
                target,
                read_only,
            } => {
                let mut w = crate::commit::Working::new(b.store, &image, "RUN --mount from")?;
                let dir = w.root()?;
                let root = crate::tree::Root::open(&dir)?;
                let source = self.bind_source(b, &root, &dir, &source, read_only)?;
                drop(root);
                self.work.push(w);
                (source, target, read_only)
            }
            Deferred::Secret {
                file,
                target,
                mode,
                owner,
            } => {
                // A copy with the mount's mode and owner (default 0400, root), bound read-only.
                let dir = self.temp_dir(b)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
                let p = dir.join("secret");
                std::fs::copy(&file, &p)
                    .with_context(|| format!("read secret {}", file.display()))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
                std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1))?;
                (p.display().to_string(), target, true)
            }
        };
        Ok(MountSpec {
            kind: "bind".into(),
            source,
            destination,
            read_only,
            options: Vec::new(),
        })
    }
}

/// Removes empty files and directories the runtime created as mount points.
pub(crate) fn drop_mount_points(
    store: strata_plugin_api::StoreClient,
    cid: &str,
    extra: &[String],
) -> Result<()> {
    let changes = store.changes(cid).map_err(call)?;
    let mut doomed: Vec<&str> = changes
        .iter()
        .filter(|c| c.kind == "A" && c.size == 0)
        .map(|c| c.path.as_str())
        .filter(|p| MOUNT_POINTS.contains(p) || extra.iter().any(|e| e == p))
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    doomed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let root = PathBuf::from(store.mount(cid).map_err(call)?);
    {
        let r = crate::tree::Root::open(&root)?;
        for p in doomed {
            r.remove_empty(p)?;
        }
    }
    store.unmount(cid).map_err(call)?;
    Ok(())
}
