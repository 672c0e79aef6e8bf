//! [`Container`]: one container of the engine: its store record, the config it was created
//! with, its files, and (in one file each) the verbs that change it: `start.rs`, `stop.rs`,
//! `kill.rs`, `wait.rs`, `exec.rs`, `cleanup.rs`, `remove.rs`; `create.rs` makes one.
//!
//! A container owns its state (`state.rs`: the files under its directories, locked while they
//! change), names its runtime (the config's, or the one that last started it) and cleans up
//! after itself; nothing else changes a container's files.

use std::path::PathBuf;

use strata_types::IdMap;

use crate::config::ContainerConfig;
use crate::engine::Engine;
use crate::error::{Context, Error, Result};
use crate::runtime::Runtime;
use crate::state::{Paths, State, Status};
use crate::store::ContainerRecord;
use crate::{LEGACY_METADATA_KEY, METADATA_KEY};

/// One container of the engine.
#[derive(Clone)]
pub struct Container<'e> {
    pub(crate) engine: &'e Engine,
    pub record: ContainerRecord,
    pub config: ContainerConfig,
    pub paths: Paths,
}

impl std::fmt::Debug for Container<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("record", &self.record)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<'e> Container<'e> {
    /// The engine's view of a store record; fails for containers without an engine record.
    pub fn from_record(engine: &'e Engine, record: ContainerRecord) -> Result<Container<'e>> {
        let legacy = record.metadata.get(METADATA_KEY).is_none();
        let value = record
            .metadata
            .get(METADATA_KEY)
            .or_else(|| record.metadata.get(LEGACY_METADATA_KEY));
        let mut config: ContainerConfig = match value {
            Some(v) => serde_json::from_value(v.clone())
                .with_context(|| format!("container {} has an unreadable config", record.name))?,
            None => {
                return Err(Error::precondition(format!(
                    "container {} was not created by the container engine (see `strata storage containers`)",
                    record.name
                )))
            }
        };
        if legacy && value.is_some_and(|v| v.get("security").is_none()) {
            // Made by the run front end before the security defaults: as it was made.
            config.before_security_defaults = true;
            config.security.seccomp = crate::spec::SeccompPolicy::Unconfined;
            config.security.no_new_privileges = !config.privileged;
        }
        if config.hostname.is_empty() {
            // podman's default host name: the short ID.
            config.hostname = record.id[..12.min(record.id.len())].to_owned();
        }
        let paths = Paths {
            dir: record.dir.clone(),
            run_dir: record.run_dir.clone(),
        };
        Ok(Container {
            engine,
            record,
            config,
            paths,
        })
    }

    pub fn engine(&self) -> &'e Engine {
        self.engine
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn short_id(&self) -> &str {
        &self.record.id[..12.min(self.record.id.len())]
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }

    pub fn id_map(&self) -> Option<&IdMap> {
        self.record.id_map.as_ref()
    }

    /// The state as last saved, without looking at what happened since.
    pub fn saved_state(&self) -> Result<State> {
        State::load(&self.paths)
    }

    /// The runtime that runs the container: the one that last started it, else the config's.
    pub fn runtime(&self, st: &State) -> Result<Runtime> {
        Runtime::find(
            st.runtime.as_deref().unwrap_or(&self.config.runtime),
            self.engine.runroot(),
        )
    }

    /// The container's state with what happened since folded in (the monitor's exit file,
    /// its liveness, the runtime's view), saved if it changed.
    pub fn state(&self) -> Result<State> {
        let mut st = self.saved_state()?;
        if st.status == Status::Running {
            let rt = self.runtime(&st)?;
            if st.refresh(&self.paths, || runtime_alive(&rt, self.id())) {
                // Record it under the lock, from a fresh read: a concurrent cleanup's update
                // must not be lost.
                let _lock = crate::state::lock(&self.paths)?;
                st = self.saved_state()?;
                if st.refresh(&self.paths, || runtime_alive(&rt, self.id())) {
                    match st.save(&self.paths) {
                        // The saved state only caches what the exit file says: on a full
                        // disk the refreshed state is still the truth (and `rm` must be able
                        // to free the space).
                        Err(e) if e.is_disk_full() => {
                            tracing::warn!("{}: cannot save its state: {e}", self.name())
                        }
                        other => other?,
                    }
                }
            }
        }
        Ok(st)
    }

    /// Holds the container's lock while it is not running, so that a concurrent `start`
    /// waits (for a caller reading or changing a stopped container's files, such as `cp`);
    /// `None` when it runs (its monitor's cleanup needs the lock when it ends).
    pub fn hold_unless_running(&self) -> Result<Option<crate::state::Lock>> {
        // Folds in an exit first (that takes the lock itself), then reads under the lock.
        self.state()?;
        let lock = crate::state::lock(&self.paths)?;
        Ok((self.saved_state()?.status != Status::Running).then_some(lock))
    }

    /// The container's log file (CRI format; rotated to `<log>.1`).
    pub fn log_path(&self) -> PathBuf {
        if self.config.log_path.is_empty() {
            self.paths.log()
        } else {
            PathBuf::from(&self.config.log_path)
        }
    }

    /// The runtime spec of its last start (`config.json`).
    pub fn spec_path(&self) -> PathBuf {
        self.paths.spec()
    }
}

/// Whether the runtime still knows the container as alive; `None` when it cannot tell.
pub(crate) fn runtime_alive(rt: &Runtime, id: &str) -> Option<bool> {
    match rt.state(id) {
        Ok(Some(s)) => Some(s.status == "running" || s.status == "created" || s.status == "paused"),
        Ok(None) => Some(false),
        Err(_) => None,
    }
}
