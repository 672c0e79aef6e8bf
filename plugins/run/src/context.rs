//! What every command needs: the host's store, where it lives, the monitor binary, and the
//! container records with their config and files.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use strata_plugin_api::store::{ContainerInfo, StoreInfo};
use strata_plugin_api::{Host, StoreClient};

use crate::config::{ContainerConfig, METADATA_KEY};
use crate::state::{Paths, State};

pub struct Ctx<'h> {
    pub host: &'h Host,
    pub store: StoreClient,
    pub info: StoreInfo,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("info", &self.info).finish()
    }
}

impl<'h> Ctx<'h> {
    pub fn new(host: &'h Host) -> Result<Ctx<'h>> {
        let store = host.store();
        let info = store.info().map_err(crate::errors::call)?;
        Ok(Ctx { host, store, info })
    }

    pub fn runroot(&self) -> PathBuf {
        PathBuf::from(&self.info.runroot)
    }

    /// The `strata-monitor` binary: `$STRATA_MONITOR`, next to `strata`, or in the
    /// installed `lib/strata` directories.
    pub fn monitor_path(&self) -> Result<PathBuf> {
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
            None => bail!(
                "strata-monitor not found (looked in {}); install it with `cargo xtask install` or set STRATA_MONITOR",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The command the monitor runs when a container ends: `strata container cleanup ID`
    /// with this process's store settings.
    pub fn exit_command(&self, id: &str) -> Result<(PathBuf, Vec<String>)> {
        let exe = std::env::current_exe().context("find the strata binary")?;
        let args = vec![
            "--root".into(),
            self.info.root.clone(),
            "--runroot".into(),
            self.info.runroot.clone(),
            "--driver".into(),
            self.info.driver.clone(),
            "container".into(),
            "cleanup".into(),
            id.to_owned(),
        ];
        Ok((exe, args))
    }

    pub fn container(&self, name: &str) -> Result<Container> {
        let info = self.store.container(name).map_err(crate::errors::call)?;
        Container::from_info(info)
    }

    pub fn containers(&self) -> Result<Vec<Container>> {
        let all = self.store.containers().map_err(crate::errors::call)?;
        // Containers made by other front ends (plain `storage create`) are not ours to show.
        Ok(all
            .into_iter()
            .filter(|c| c.metadata.get(METADATA_KEY).is_some())
            .filter_map(|c| Container::from_info(c).ok())
            .collect())
    }
}

/// One of our containers: its store record, its config and its files.
#[derive(Debug, Clone)]
pub struct Container {
    pub info: ContainerInfo,
    pub config: ContainerConfig,
    pub paths: Paths,
}

impl Container {
    pub fn from_info(info: ContainerInfo) -> Result<Container> {
        let mut config: ContainerConfig = match info.metadata.get(METADATA_KEY) {
            Some(v) => serde_json::from_value(v.clone())
                .with_context(|| format!("container {} has an unreadable config", info.name))?,
            None => bail!(
                "container {} was not created by the run front end (see `strata storage containers`)",
                info.name
            ),
        };
        if config.hostname.is_empty() {
            // podman's default host name: the short ID.
            config.hostname = info.id[..12.min(info.id.len())].to_owned();
        }
        let paths = Paths {
            dir: PathBuf::from(&info.dir),
            run_dir: PathBuf::from(&info.run_dir),
        };
        Ok(Container {
            info,
            config,
            paths,
        })
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn short_id(&self) -> &str {
        &self.info.id[..12.min(self.info.id.len())]
    }

    pub fn state(&self) -> Result<State> {
        State::load(&self.paths)
    }
}
