//! What every command needs: the host, its store, and the engine over that store.

use std::path::PathBuf;

use anyhow::Result;
use strata_engine_containers::{Container, Engine, StoreInfo};
use strata_plugin_api::{Host, StoreClient};
use strata_plugin_bridge::HostStore;

pub struct Ctx<'h> {
    pub host: &'h Host,
    /// The plugin API's store client, for calls the engine does not make (images, commit).
    pub store: StoreClient,
    pub engine: Engine,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("engine", &self.engine).finish()
    }
}

impl<'h> Ctx<'h> {
    pub fn new(host: &'h Host) -> Result<Ctx<'h>> {
        let store = HostStore::new(host);
        let engine = Engine::new(Box::new(store))?;
        Ok(Ctx {
            host,
            store: store.client(),
            engine,
        })
    }

    pub fn info(&self) -> &StoreInfo {
        self.engine.info()
    }

    pub fn rootless(&self) -> bool {
        self.engine.rootless()
    }

    pub fn runroot(&self) -> PathBuf {
        self.engine.runroot().to_path_buf()
    }

    pub fn container(&self, name: &str) -> Result<Container<'_>> {
        Ok(self.engine.container(name)?)
    }

    pub fn containers(&self) -> Result<Vec<Container<'_>>> {
        Ok(self.engine.containers()?)
    }
}
