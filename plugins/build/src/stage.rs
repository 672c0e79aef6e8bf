//! One stage of a build: FROM, then each instruction in turn, each step looked up in the
//! cache index before anything is done, so a fully cached stage creates no container, mounts
//! nothing and runs nothing: each step costs one indexed read (and one image read).
//!
//! Variable expansion follows Docker: ENV over ARG, ARG values from `--build-arg` or the
//! declared default (a bare `ARG NAME` takes the global value of that name, or a predefined
//! platform value), expansion in ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME
//! WORKDIR and never in RUN/CMD/ENTRYPOINT (their shell does it). What each instruction does
//! to the image config is `instructions.rs`; COPY/ADD are `copy.rs`; RUN is `run_step.rs`.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use strata_engine_containers::Engine;
use strata_plugin_api::{Host, StoreClient};
use strata_plugin_transfer::errors::call;

use crate::cache::KeyBuilder;
use crate::commit::{record_config, Current};
use crate::config::{rfc3339, ImageConfig};
use crate::containerfile::lex::Lexer;
use crate::containerfile::{Command, Containerfile, Instruction};
use crate::options::Options;
use crate::progress::Progress;
use crate::run_step::Interrupt;
use crate::sources::BuildContext;

/// What a build shares across its stages.
pub struct Build<'a> {
    pub host: &'a Host,
    pub store: StoreClient,
    pub engine: &'a Engine,
    pub opts: &'a Options,
    pub file: &'a Containerfile,
    pub context: BuildContext,
    /// `--build-context NAME=DIR`.
    pub named_contexts: BTreeMap<String, BuildContext>,
    /// `--build-context NAME=docker-image://IMAGE`, by lowercased name.
    pub named_images: BTreeMap<String, String>,
    pub lexer: Lexer,
    /// The image each finished stage produced, by index.
    pub stage_images: Vec<Option<String>>,
    /// The image each stage started from (its FROM), by index.
    pub stage_bases: Vec<Option<String>>,
    /// Global ARG values (before the first FROM), for FROM and bare stage ARGs.
    pub global_args: BTreeMap<String, Option<String>>,
    pub used_args: HashSet<String>,
    pub interrupt: Interrupt,
    pub progress: Progress,
    /// The scratch image, recorded when first needed.
    scratch: Option<Current>,
    /// The key fields of the step that just missed, kept with its record.
    pending_fields: Vec<(String, String)>,
}

impl std::fmt::Debug for Build<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Build")
            .field("stage_images", &self.stage_images)
            .finish_non_exhaustive()
    }
}

/// A stage's state as its instructions run.
#[derive(Debug)]
pub struct StageState {
    pub index: usize,
    pub cur: Current,
    /// Declared ARGs of this stage with their values (`None`: declared, no value).
    pub args: Vec<(String, Option<String>)>,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it; else it resets an inherited one).
    pub cmd_set: bool,
    /// Whether a step of this stage missed the cache (every later one misses for that reason).
    pub missed: bool,
    /// The instruction being run, as written (for messages and the key-fields file).
    pub step_text: String,
}

impl StageState {
    /// The value of a variable as instructions see it: ENV first, then declared ARGs.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.cur.config.env_value(name) {
            return Some(v);
        }
        self.args
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }

    /// The environment of a RUN: the config's `Env` (a default `PATH` if it has none) and
    /// the declared ARGs with values that ENV does not set.
    pub fn run_env(&self) -> Vec<String> {
        let mut env = self.cur.config.env();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={}", crate::config::DEFAULT_PATH));
        }
        for (n, v) in &self.args {
            if let Some(v) = v {
                if self.cur.config.env_value(n).is_none() {
                    env.push(format!("{n}={v}"));
                }
            }
        }
        env
    }
}

impl<'a> Build<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: &'a Host,
        engine: &'a Engine,
        opts: &'a Options,
        file: &'a Containerfile,
        context: BuildContext,
        named_contexts: BTreeMap<String, BuildContext>,
        interrupt: Interrupt,
        progress: Progress,
    ) -> Build<'a> {
        Build {
            host,
            store: host.store(),
            engine,
            opts,
            file,
            context,
            named_contexts,
            named_images: BTreeMap::new(),
            lexer: Lexer {
                escape: file.escape,
            },
            stage_images: vec![None; file.stages.len()],
            stage_bases: vec![None; file.stages.len()],
            global_args: BTreeMap::new(),
            used_args: HashSet::new(),
            interrupt,
            progress,
            scratch: None,
            pending_fields: Vec::new(),
        }
    }

    /// An error naming the Containerfile, the line and the instruction.
    pub fn at(&self, ins: &Instruction, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}:{}: {}: {e}", self.opts.file_name, ins.line, ins.keyword)
    }

    /// The build arg `name`, if given (and remembers it was used).
    pub fn build_arg(&mut self, name: &str) -> Option<String> {
        let v = self.opts.build_args.get(name).cloned();
        if v.is_some() {
            self.used_args.insert(name.to_owned());
        }
        v
    }

    /// Evaluates the ARGs before the first FROM.
    pub fn global_args(&mut self) -> Result<()> {
        for (k, v) in crate::options::predefined_args() {
            self.global_args.insert(k, Some(v));
        }
        for ins in &self.file.global_args.clone() {
            let Command::Arg(list) = &ins.command else {
                continue;
            };
            for (name, default) in list {
                let value = match self.build_arg(name) {
                    Some(v) => Some(v),
                    None => match default {
                        Some(d) => {
                            let g = &self.global_args;
                            let lookup = |n: &str| g.get(n).cloned().flatten();
                            Some(
                                self.lexer
                                    .process_word(d, &lookup)
                                    .map_err(|e| self.at(ins, e))?,
                            )
                        }
                        None => None,
                    },
                };
                self.global_args.insert(name.clone(), value);
            }
        }
        Ok(())
    }

    /// The image of `FROM scratch` (no layers, this host's platform), recorded once.
    pub fn scratch(&mut self) -> Result<Current> {
        if let Some(s) = &self.scratch {
            return Ok(s.clone());
        }
        let mut config = ImageConfig::scratch();
        let id = record_config(self.store, &[], &mut config, self.opts.format)?;
        let s = Current {
            id,
            config,
            layers: Vec::new(),
        };
        self.scratch = Some(s.clone());
        Ok(s)
    }

    /// The stage an image name refers to (`AS` name, case-insensitive, or index).
    pub fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.file.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                lower
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < before && !name.contains(['/', ':']))
            })
    }

    /// Runs stage `index`; returns its image ID.
    pub fn run_stage(&mut self, index: usize) -> Result<String> {
        let stage = &self.file.stages[index];
        let from = &stage.from;
        let Command::From { image, .. } = &from.command else {
            bail!("stage {index} does not start with FROM");
        };
        let g = self.global_args.clone();
        let lookup = |n: &str| g.get(n).cloned().flatten();
        let name = self
            .lexer
            .process_word(image, &lookup)
            .map_err(|e| self.at(from, e))?;
        self.progress.step(&from.original);
        let started = Instant::now();
        let cur = if name.eq_ignore_ascii_case("scratch") {
            self.scratch()?
        } else if let Some(i) = self.stage_named(&name, index) {
            let id = self.stage_images[i]
                .clone()
                .ok_or_else(|| self.at(from, format!("stage {name:?} has not been built")))?;
            Current::load(self.store, &id)?
        } else if self.file.stages[index..]
            .iter()
            .any(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()))
        {
            return Err(self.at(
                from,
                format!("stage {name:?} refers to itself or a later stage"),
            ));
        } else {
            let name = self
                .named_images
                .get(&name.to_ascii_lowercase())
                .cloned()
                .unwrap_or(name);
            let info = strata_plugin_transfer::images::resolve(
                self.host,
                &name,
                self.opts.pull,
                &self.opts.registry,
                self.opts.quiet,
            )
            .map_err(call)
            .map_err(|e| self.at(from, format!("{e:#}")))?;
            Current::from_info(&info)?
        };
        self.progress.done(&cur.id, None, started);
        self.stage_bases[index] = Some(cur.id.clone());
        let mut st = StageState {
            index,
            cur,
            args: Vec::new(),
            cmd_set: false,
            missed: false,
            step_text: String::new(),
        };
        // The base image's ONBUILD triggers run first, then are cleared (Docker).
        let triggers = crate::config::strings(st.cur.config.json["config"].get("OnBuild"));
        if !triggers.is_empty() {
            let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
            let parsed = crate::containerfile::parse("ONBUILD", &text)
                .map_err(|e| self.at(from, format!("the base image's ONBUILD: {e}")))?;
            st.cur.config.remove("OnBuild");
            for ins in &parsed.stages[0].instructions {
                self.instruction(&mut st, ins)?;
            }
        }
        for ins in &stage.instructions {
            self.interrupt.check()?;
            self.instruction(&mut st, ins)?;
        }
        Ok(st.cur.id)
    }

    fn instruction(&mut self, st: &mut StageState, ins: &Instruction) -> Result<()> {
        st.step_text.clone_from(&ins.original);
        match &ins.command {
            Command::Arg(list) => {
                self.progress.step(&ins.original);
                for (name, default) in list {
                    let value = match self.build_arg(name) {
                        Some(v) => Some(v),
                        None => match default {
                            Some(d) => Some(
                                self.lexer
                                    .process_word(d, &|n: &str| st.lookup(n))
                                    .map_err(|e| self.at(ins, e))?,
                            ),
                            None => self.global_args.get(name).cloned().flatten(),
                        },
                    };
                    st.args.retain(|(n, _)| n != name);
                    st.args.push((name.clone(), value));
                }
                Ok(())
            }
            Command::Run(_) => crate::run_cmd::run(self, st, ins),
            Command::Copy { .. } | Command::Add { .. } => crate::copy::copy(self, st, ins),
            Command::Workdir(_) => crate::instructions::workdir(self, st, ins),
            _ => {
                let mut config = st.cur.config.clone();
                let created_by = crate::instructions::apply(self, st, ins, &mut config)?;
                self.config_step(st, ins, config, &created_by)
            }
        }
    }

    /// The `created` time of a new step: `--timestamp`/`SOURCE_DATE_EPOCH`, else now.
    pub fn created(&self) -> String {
        let secs = self.opts.timestamp.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        rfc3339(secs)
    }

    /// A key builder for a step on top of the stage's current image.
    pub fn key(&self, st: &StageState, ins: &Instruction) -> KeyBuilder {
        let mut k = KeyBuilder::new(&st.cur.id, self.opts.format.name());
        k.add("instruction", &ins.keyword);
        if let Some(t) = self.opts.timestamp {
            k.add("timestamp", &t.to_string());
        }
        k
    }

    /// Looks the key up. On a hit the stage moves to the cached image and `None` comes back;
    /// on a miss, the key to record the step under.
    pub fn lookup(
        &mut self,
        st: &mut StageState,
        key: KeyBuilder,
        started: Instant,
    ) -> Result<Option<String>> {
        let (key, fields) = key.finish();
        if self.opts.use_cache() {
            if let Some(id) = self.store.cache_lookup(&key).map_err(call)? {
                st.cur = Current::load(self.store, &id)?;
                self.progress.done(&id, Some(true), started);
                return Ok(None);
            }
            let why = self.why_missed(st, &fields);
            tracing::debug!(key, "cache miss at {}: {why}", st.step_text);
        }
        st.missed = true;
        self.pending_fields = fields;
        Ok(Some(key))
    }

    /// Where the last recorded key of this step (this file, stage and instruction) is kept.
    fn fields_file(&self, st: &StageState) -> std::path::PathBuf {
        let mut h = strata_types::Hasher::new();
        for part in [
            self.opts.file_name.as_str(),
            &st.index.to_string(),
            &st.step_text,
        ] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        self.opts
            .build_dir
            .join("keys")
            .join(format!("{}.json", &h.finish().hex()[..32]))
    }

    /// Why a step missed, for `--log-level debug`: the step before it was rebuilt, or which
    /// parts of its key differ from the last time it was recorded.
    fn why_missed(&self, st: &StageState, fields: &[(String, String)]) -> String {
        if st.missed {
            return "the step before it was rebuilt, so its parent image is new".into();
        }
        let Ok(text) = std::fs::read(self.fields_file(st)) else {
            return "this step was never recorded on this image (or --no-cache recorded it \
                    apart)"
                .into();
        };
        let old: Vec<(String, String)> = serde_json::from_slice(&text).unwrap_or_default();
        let mut changed = Vec::new();
        for (label, value) in fields {
            match old.iter().find(|(l, _)| l == label) {
                Some((_, v)) if v == value => {}
                Some((_, v)) => changed.push(format!("{label} was {v:?}, now {value:?}")),
                None => changed.push(format!("{label} is new: {value:?}")),
            }
        }
        for (label, _) in &old {
            if !fields.iter().any(|(l, _)| l == label) {
                changed.push(format!("{label} is gone"));
            }
        }
        if changed.is_empty() {
            "the same key as last time, but its image is gone (removed, or never recorded)".into()
        } else {
            changed.join("; ")
        }
    }

    /// Records a step's image under its key (unless caching is off) and moves the stage on.
    pub fn record(
        &mut self,
        st: &mut StageState,
        key: &str,
        cur: Current,
        started: Instant,
    ) -> Result<()> {
        if self.opts.layers {
            self.store.cache_record(key, &cur.id).map_err(call)?;
            let fields = std::mem::take(&mut self.pending_fields);
            let file = self.fields_file(st);
            let _ = std::fs::create_dir_all(file.parent().expect("a file in keys/"));
            if let Ok(text) = serde_json::to_vec(&fields) {
                let tmp = file.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, text).is_ok() {
                    let _ = std::fs::rename(&tmp, &file);
                }
            }
        }
        self.progress.done(&cur.id, Some(false), started);
        st.cur = cur;
        Ok(())
    }

    /// A step that changes only the config: cached by the config it produces.
    fn config_step(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        mut config: ImageConfig,
        created_by: &str,
    ) -> Result<()> {
        self.progress.step(&ins.original);
        let started = Instant::now();
        let mut key = self.key(st, ins);
        let mut settings = config.json.clone();
        if let Some(o) = settings.as_object_mut() {
            for k in ["created", "history", "rootfs"] {
                o.remove(k);
            }
        }
        key.add("config", &settings.to_string());
        key.add("created_by", created_by);
        let Some(key) = self.lookup(st, key, started)? else {
            return Ok(());
        };
        config.add_history(&self.created(), created_by, true);
        let id = record_config(self.store, &st.cur.layers, &mut config, self.opts.format)?;
        let cur = Current {
            id,
            config,
            layers: st.cur.layers.clone(),
        };
        self.record(st, &key, cur, started)
    }

    /// The layers a committed image has, with its config, as the stage follows it.
    pub fn load(&self, id: &str) -> Result<Current> {
        Current::load(self.store, id).with_context(|| format!("read image {id}"))
    }
}

/// `created_by` text of a config-only step, as buildah writes it.
pub fn nop(text: &str) -> String {
    format!("/bin/sh -c #(nop) {text}")
}

/// JSON for an object-valued config field entry (`ExposedPorts`, `Volumes`).
pub fn empty_object() -> serde_json::Value {
    json!({})
}
