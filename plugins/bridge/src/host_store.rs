//! [`HostStore`]: the engine's [`Store`] over the host's store calls, for plugins.

use std::path::PathBuf;

use strata_engine_containers::{
    ContainerRecord, ImageRecord, NewContainer, NewImage, Store, StoreError, StoreInfo,
};
use strata_plugin_api::store as api;
use strata_plugin_api::{CallError, Host, StoreClient};

/// The host's store, as the engine calls it.
#[derive(Debug, Clone, Copy)]
pub struct HostStore {
    store: StoreClient,
    host: Host,
}

impl HostStore {
    pub fn new(host: &Host) -> HostStore {
        HostStore {
            store: host.store(),
            host: *host,
        }
    }

    /// The plugin API's client, for the calls the engine does not make.
    pub fn client(&self) -> StoreClient {
        self.store
    }
}

fn err(e: CallError) -> StoreError {
    StoreError {
        kind: crate::kind(e.kind),
        message: e.message,
    }
}

fn record(c: api::ContainerInfo) -> ContainerRecord {
    ContainerRecord {
        id: c.id,
        name: c.name,
        image: c.image,
        created: c.created,
        metadata: c.metadata,
        dir: PathBuf::from(c.dir),
        run_dir: PathBuf::from(c.run_dir),
        id_map: c.id_map.as_ref().map(crate::id_map),
    }
}

impl Store for HostStore {
    fn info(&self) -> Result<StoreInfo, StoreError> {
        let i = self.store.info().map_err(err)?;
        Ok(StoreInfo {
            root: PathBuf::from(i.root),
            runroot: PathBuf::from(i.runroot),
            driver: i.driver,
            rootless: i.rootless,
        })
    }

    fn image(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let i = self.store.image(name).map_err(err)?;
        Ok(ImageRecord {
            id: i.id,
            names: i.names,
            config: i.config,
        })
    }

    fn import_image(&self, image: NewImage<'_>) -> Result<String, StoreError> {
        let request = api::ImportImageRequest {
            manifest: image.manifest,
            manifest_media_type: image.manifest_media_type,
            config: image.config,
            layers: image
                .layers
                .into_iter()
                .map(|l| api::ImportLayer {
                    diff_id: l.diff_id,
                    blob_digest: l.blob_digest,
                })
                .collect(),
            names: image.names,
        };
        let open = image.open;
        let opener = |i: usize| {
            open(i).map_err(|e| CallError {
                kind: crate::api_kind(e.kind),
                message: e.message,
            })
        };
        let reply = self.store.import_image(&request, &opener).map_err(err)?;
        Ok(reply.image_id)
    }

    fn create_container(&self, c: NewContainer) -> Result<ContainerRecord, StoreError> {
        let info = self
            .store
            .create_container(&api::CreateContainerRequest {
                image: c.image,
                name: c.name,
                metadata: c.metadata,
                id_map: c.id_map.as_ref().map(crate::api_id_map),
            })
            .map_err(err)?;
        Ok(record(info))
    }

    fn container(&self, name: &str) -> Result<ContainerRecord, StoreError> {
        self.store.container(name).map(record).map_err(err)
    }

    fn containers(&self, keys: &[&str]) -> Result<Vec<ContainerRecord>, StoreError> {
        let all = if keys.is_empty() {
            self.store.containers()
        } else if self.host.served_minor() >= 4 {
            self.store.containers_where(&api::ContainerFilter {
                metadata_keys: keys.iter().map(|k| k.to_string()).collect(),
                ..api::ContainerFilter::default()
            })
        } else {
            // An older host lists everything; pick ours here.
            self.store.containers().map(|all| {
                all.into_iter()
                    .filter(|c| keys.iter().any(|k| c.metadata.get(k).is_some()))
                    .collect()
            })
        };
        Ok(all.map_err(err)?.into_iter().map(record).collect())
    }

    fn mount(&self, id: &str) -> Result<PathBuf, StoreError> {
        self.store.mount(id).map(PathBuf::from).map_err(err)
    }

    fn unmount(&self, id: &str) -> Result<(), StoreError> {
        self.store.unmount(id).map_err(err)
    }

    fn remove_container(&self, id: &str) -> Result<(), StoreError> {
        self.store.remove_container(id).map(drop).map_err(err)
    }
}
