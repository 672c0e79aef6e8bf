//! [`Engine`]: the handle every front end holds: the store, where it lives, the monitor
//! binary, the bridge network, and the lookups that turn store records into [`Container`]s.

use std::path::{Path, PathBuf};

use strata_engine_network::NetworkConfig;

use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::store::{Store, StoreInfo};
use crate::{LEGACY_METADATA_KEY, METADATA_KEY};

/// How an engine is set up beyond its store.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// The `strata-monitor` binary; `None` finds it (see [`Engine::monitor_path`]).
    pub monitor: Option<PathBuf>,
    /// The program a monitor runs when its container ends, with the arguments before the
    /// container ID (`strata --root R --runroot RR --driver D container cleanup`); `None`
    /// uses this process's executable with this store's settings.
    pub exit_command: Option<(PathBuf, Vec<String>)>,
    /// The bridge network of `--network bridge`.
    pub bridge: NetworkConfig,
}

/// The engine over one store.
pub struct Engine {
    store: Box<dyn Store>,
    info: StoreInfo,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(store: Box<dyn Store>) -> Result<Engine> {
        Engine::with_options(store, EngineOptions::default())
    }

    pub fn with_options(store: Box<dyn Store>, options: EngineOptions) -> Result<Engine> {
        let info = store.info()?;
        Ok(Engine {
            store,
            info,
            options,
        })
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn info(&self) -> &StoreInfo {
        &self.info
    }

    pub fn rootless(&self) -> bool {
        self.info.rootless
    }

    pub fn root(&self) -> &Path {
        &self.info.root
    }

    pub fn runroot(&self) -> &Path {
        &self.info.runroot
    }

    pub fn bridge(&self) -> &NetworkConfig {
        &self.options.bridge
    }

    /// The `strata-monitor` binary: the option, `$STRATA_MONITOR`, next to this program, or in
    /// the installed `lib/strata` directories.
    pub fn monitor_path(&self) -> Result<PathBuf> {
        if let Some(p) = &self.options.monitor {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("STRATA_MONITOR").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let exe = std::env::current_exe().context("find the strata binary")?;
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        let candidates = [
            dir.join("strata-monitor"),
            dir.join("../lib/strata/strata-monitor"),
            PathBuf::from("/usr/local/lib/strata/strata-monitor"),
            PathBuf::from("/usr/lib/strata/strata-monitor"),
        ];
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => Ok(p.clone()),
            None => Err(Error::precondition(format!(
                "strata-monitor not found (looked in {}); install it with `cargo xtask install` or set STRATA_MONITOR",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The command a container's monitor runs when it ends: `strata container cleanup ID`
    /// with this store's settings, unless the options name another.
    pub fn exit_command(&self, id: &str) -> Result<(PathBuf, Vec<String>)> {
        if let Some((program, args)) = &self.options.exit_command {
            let mut args = args.clone();
            args.push(id.to_owned());
            return Ok((program.clone(), args));
        }
        let exe = std::env::current_exe().context("find the strata binary")?;
        let args = vec![
            "--root".into(),
            self.info.root.display().to_string(),
            "--runroot".into(),
            self.info.runroot.display().to_string(),
            "--driver".into(),
            self.info.driver.clone(),
            "container".into(),
            "cleanup".into(),
            id.to_owned(),
        ];
        Ok((exe, args))
    }

    /// Whether container `id`'s root filesystem is mounted now (by anyone: a running
    /// container, `strata storage mount`), read from the kernel at the store's mount point
    /// (`<runroot>/mounts/<id>`).
    pub fn is_mounted(&self, id: &str) -> bool {
        strata_mount::is_mounted(&self.info.runroot.join("mounts").join(id)).unwrap_or(false)
    }

    /// A container of the engine by name, full ID or unique ID prefix.
    pub fn container(&self, name: &str) -> Result<Container<'_>> {
        let record = self.store.container(name)?;
        Container::from_record(self, record)
    }

    /// Every container of the engine, whichever front end made it. Containers the store
    /// holds without an engine record (a plain `storage create`, a build's working
    /// container) are not the engine's to run and are left out.
    pub fn containers(&self) -> Result<Vec<Container<'_>>> {
        let all = self
            .store
            .containers(&[METADATA_KEY, LEGACY_METADATA_KEY])?;
        Ok(all
            .into_iter()
            .filter_map(|r| Container::from_record(self, r).ok())
            .collect())
    }
}
