//! The host methods plugins call (`strata_plugin_api::store`), served from the one store
//! handle of the process, opened on first use with the global settings (`--root`, ...).

use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_graph_store::{CommitOptions, Container, CreateOptions, Opener, Store, StoreError};
use strata_plugin_api::abi::RawReader;
use strata_plugin_api::store as api;
use strata_plugin_api::stream::export_reader;
use strata_plugin_api::ErrorKind;
use strata_plugin_bridge::{api_id_map, api_kind, id_map};
use strata_types::{Digest, HasKind, LayerId};

use super::host_table::RemoteOpener;
use crate::config::Settings;

pub(super) type CallResult = Result<String, (ErrorKind, String)>;

/// The state behind a host table: the settings and the lazily opened store.
pub(crate) struct HostCtx {
    settings: Settings,
    store: OnceLock<Result<Arc<Store>, (ErrorKind, String)>>,
    /// Holds garbage collection off while the plugin has imported layers (`store.import_layer`)
    /// and not yet recorded an image; released when it does, or when its command ends.
    gc_hold: Mutex<Option<strata_graph_store::Lock>>,
}

impl HostCtx {
    pub(crate) fn new(settings: Settings) -> HostCtx {
        HostCtx {
            settings,
            store: OnceLock::new(),
            gc_hold: Mutex::new(None),
        }
    }

    /// Holds gc off (see `gc_hold`) if it is not held yet.
    fn hold_gc(&self, store: &Store) -> Result<(), (ErrorKind, String)> {
        let mut held = self.gc_hold.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            *held = Some(store.hold_off_gc().map_err(store_err)?);
        }
        Ok(())
    }

    /// The plugin recorded an image: its imported layers are referenced now.
    fn release_gc(&self) {
        *self.gc_hold.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(super) fn store(&self) -> Result<Arc<Store>, (ErrorKind, String)> {
        self.store
            .get_or_init(|| {
                crate::storage::open(&self.settings)
                    .map(|store| {
                        // Removals answer after the renames; the bytes go in the background,
                        // and before the command ends (the store's drop waits for them).
                        store.defer_deletion();
                        Arc::new(store)
                    })
                    .map_err(|e| (anyhow_kind(&e), format!("{e:#}")))
            })
            .clone()
    }
}

fn anyhow_kind(e: &anyhow::Error) -> ErrorKind {
    e.chain()
        .find_map(|c| c.downcast_ref::<StoreError>().map(|s| api_kind(s.kind())))
        .unwrap_or(ErrorKind::Internal)
}

pub(super) fn store_err(e: StoreError) -> (ErrorKind, String) {
    (api_kind(e.kind()), e.to_string())
}

pub(super) fn parse<T: DeserializeOwned>(
    method: &str,
    request: &str,
) -> Result<T, (ErrorKind, String)> {
    serde_json::from_str(request).map_err(|e| {
        (
            ErrorKind::InvalidArgument,
            format!("invalid {method} request: {e}"),
        )
    })
}

pub(super) fn reply<T: Serialize>(v: &T) -> CallResult {
    serde_json::to_string(v).map_err(|e| (ErrorKind::Internal, e.to_string()))
}

pub(super) fn digest(s: &str) -> Result<Digest, (ErrorKind, String)> {
    Digest::parse(s).map_err(|e| (ErrorKind::InvalidArgument, e.to_string()))
}

pub(crate) fn dispatch(
    ctx: &HostCtx,
    method: &str,
    request: &str,
    input: Option<&RemoteOpener<'_>>,
    output: Option<&mut RawReader>,
) -> CallResult {
    tracing::debug!(method, "plugin call");
    match method {
        api::IMPORT_IMAGE => {
            let req: api::ImportImageRequest = parse(method, request)?;
            let opener = input.ok_or((
                ErrorKind::InvalidArgument,
                "store.import_image needs an input opener".to_owned(),
            ))?;
            let r = import_image(&*ctx.store()?, req, opener)?;
            ctx.release_gc();
            Ok(r)
        }
        api::IMAGE => {
            let req: api::ImageRequest = parse(method, request)?;
            image(&*ctx.store()?, &req.name)
        }
        api::IMAGES => {
            // `{}` from plugins before 1.4 is a request without a filter.
            let req: api::ImagesRequest = parse(method, request)?;
            super::listing::images(&*ctx.store()?, &req.filter)
        }
        api::EXPORT_LAYER => {
            let req: api::ExportLayerRequest = parse(method, request)?;
            let out = output.ok_or((
                ErrorKind::InvalidArgument,
                "store.export_layer needs an output reader".to_owned(),
            ))?;
            let id = LayerId(digest(&req.layer)?);
            let store = ctx.store()?;
            *out = export_reader(Box::new(pipe_from(move |w| {
                store.export_layer(&id, w).map(|_| ())
            })?));
            reply(&api::Empty {})
        }
        api::INFO => {
            let s = &ctx.settings;
            reply(&api::StoreInfo {
                root: s.root.display().to_string(),
                runroot: s.runroot.display().to_string(),
                driver: s.driver.clone(),
                rootless: crate::rootless::is_rootless(),
            })
        }
        api::TAG => {
            let req: api::TagRequest = parse(method, request)?;
            ctx.store()?
                .tag(&req.image, &req.names)
                .map_err(store_err)?;
            reply(&api::Empty {})
        }
        api::UNTAG => {
            let req: api::ImageRequest = parse(method, request)?;
            ctx.store()?.untag(&req.name).map_err(store_err)?;
            reply(&api::Empty {})
        }
        api::REMOVE_IMAGE => {
            let req: api::ImageRequest = parse(method, request)?;
            let r = ctx.store()?.remove_image(&req.name).map_err(store_err)?;
            reply(&api::RemoveImageReply {
                image_id: r.image.0.to_string(),
                layers: r.layers.iter().map(|l| l.0.to_string()).collect(),
            })
        }
        api::CREATE_CONTAINER => {
            let req: api::CreateContainerRequest = parse(method, request)?;
            let store = ctx.store()?;
            let c = store
                .create_container(
                    &req.image,
                    CreateOptions {
                        name: req.name,
                        metadata: Some(req.metadata),
                        id_map: req.id_map.as_ref().map(id_map),
                    },
                )
                .map_err(store_err)?;
            reply(&container_info(&store, c))
        }
        api::CONTAINER => {
            let req: api::ContainerRequest = parse(method, request)?;
            let store = ctx.store()?;
            let c = store.container(&req.name).map_err(store_err)?;
            reply(&container_info(&store, c))
        }
        api::CONTAINERS => {
            let req: api::ContainersRequest = parse(method, request)?;
            let store = ctx.store()?;
            let all = super::listing::containers(&store, &req.filter)?;
            reply(
                &all.into_iter()
                    .map(|c| container_info(&store, c))
                    .collect::<Vec<_>>(),
            )
        }
        api::MOUNT => {
            let req: api::ContainerRequest = parse(method, request)?;
            let path = ctx.store()?.mount(&req.name).map_err(store_err)?;
            reply(&api::MountReply {
                path: path.display().to_string(),
            })
        }
        api::UNMOUNT => {
            let req: api::ContainerRequest = parse(method, request)?;
            ctx.store()?.unmount(&req.name).map_err(store_err)?;
            reply(&api::Empty {})
        }
        api::REMOVE_CONTAINER => {
            let req: api::ContainerRequest = parse(method, request)?;
            let store = ctx.store()?;
            let c = store.remove_container(&req.name).map_err(store_err)?;
            reply(&container_info(&store, c))
        }
        api::COMMIT => {
            let req: api::CommitRequest = parse(method, request)?;
            let mut names = req.names;
            if !req.name.is_empty() {
                names.insert(0, req.name);
            }
            let c = ctx
                .store()?
                .commit_with(
                    &req.container,
                    &CommitOptions {
                        names,
                        config: req.config,
                        empty_layer: req.empty_layer,
                    },
                )
                .map_err(store_err)?;
            ctx.release_gc();
            reply(&api::CommitReply {
                image_id: c.image.0.to_string(),
                layer: c.layer.map(|l| l.0.to_string()),
                diff_id: c.diff_id.map(|d| d.to_string()),
            })
        }
        api::IMPORT_LAYER => {
            let req: api::ImportLayerRequest = parse(method, request)?;
            let opener = input.ok_or((
                ErrorKind::InvalidArgument,
                "store.import_layer needs an input opener".to_owned(),
            ))?;
            let parent = req.parent.as_deref().map(digest).transpose()?.map(LayerId);
            let diff_id = req.diff_id.as_deref().map(digest).transpose()?;
            let store = ctx.store()?;
            ctx.hold_gc(&store)?;
            // Opened only if the store must read it (not when it has the layer).
            let open = Box::new(move || {
                opener
                    .open(0)
                    .map(|r| Box::new(r) as Box<dyn Read + Send>)
                    .map_err(|(k, message)| StoreError::Source {
                        kind: strata_plugin_bridge::kind(k),
                        message,
                    })
            });
            let l = store
                .import_layer(parent.as_ref(), diff_id, open)
                .map_err(store_err)?;
            reply(&api::ImportLayerReply {
                layer: l.layer.0.to_string(),
                diff_id: l.diff_id.to_string(),
                size: l.size,
                extracted: l.extracted,
            })
        }
        api::SET_METADATA => {
            let req: api::SetMetadataRequest = parse(method, request)?;
            let store = ctx.store()?;
            let c = store
                .set_container_metadata(&req.container, &req.key, req.value)
                .map_err(store_err)?;
            reply(&container_info(&store, c))
        }
        api::CACHE_LOOKUP => {
            let req: api::CacheLookupRequest = parse(method, request)?;
            let image = ctx.store()?.cache_lookup(&req.key).map_err(store_err)?;
            reply(&api::CacheLookupReply {
                image: image.map(|i| i.0.to_string()),
            })
        }
        api::CACHE_RECORD => {
            let req: api::CacheRecordRequest = parse(method, request)?;
            ctx.store()?
                .cache_record(&req.key, &req.image)
                .map_err(store_err)?;
            reply(&api::Empty {})
        }
        api::DIFF => {
            let req: api::ContainerRequest = parse(method, request)?;
            let out = output.ok_or((
                ErrorKind::InvalidArgument,
                "store.diff needs an output reader".to_owned(),
            ))?;
            let store = ctx.store()?;
            store.container(&req.name).map_err(store_err)?;
            *out = export_reader(Box::new(pipe_from(move |w| {
                store.diff(&req.name, w).map(|_| ())
            })?));
            reply(&api::Empty {})
        }
        api::CHANGES => {
            let req: api::ContainerRequest = parse(method, request)?;
            let changes = ctx.store()?.changes(&req.name).map_err(store_err)?;
            reply(
                &changes
                    .into_iter()
                    .map(|c| api::Change {
                        path: format!("/{}", c.path.display()),
                        kind: c.kind.to_string(),
                        size: c.size,
                    })
                    .collect::<Vec<_>>(),
            )
        }
        api::GC => {
            let r = ctx.store()?.gc().map_err(store_err)?;
            reply(&api::GcReply {
                layers: r.layers,
                orphan_payloads: r.orphan_payloads,
                orphan_tarsplits: r.orphan_tarsplits,
                blobs: r.blobs,
                staging: r.staging,
                temp_files: r.temp_files,
                mountpoints: r.mountpoints,
                container_dirs: r.container_dirs,
            })
        }
        other => Err((
            ErrorKind::Unsupported,
            format!("this strata has no host method {other:?}; upgrade strata"),
        )),
    }
}

fn import_image(
    store: &Store,
    req: api::ImportImageRequest,
    opener: &RemoteOpener<'_>,
) -> CallResult {
    let mut layers: Vec<(Option<Digest>, Opener<'_>)> = Vec::with_capacity(req.layers.len());
    for (i, l) in req.layers.iter().enumerate() {
        let blob = l.blob_digest.as_deref().map(digest).transpose()?;
        layers.push((
            blob,
            Box::new(move || {
                opener
                    .open(i)
                    .map(|r| Box::new(r) as Box<dyn Read + Send>)
                    .map_err(|(k, message)| StoreError::Source {
                        kind: strata_plugin_bridge::kind(k),
                        message,
                    })
            }),
        ));
    }
    let loaded = store
        .import_image(
            req.manifest.as_bytes(),
            req.config.as_bytes(),
            layers,
            &req.names,
        )
        .map_err(store_err)?;
    reply(&api::ImportImageReply {
        image_id: loaded.image.0.to_string(),
        layers: loaded.layers,
        extracted: loaded.extracted,
    })
}

fn image(store: &Store, name: &str) -> CallResult {
    let img = store.image(name).map_err(store_err)?;
    let layers = store.image_layers(&img).map_err(store_err)?;
    let config = store.blobs().read(&img.id.0).map_err(store_err)?;
    let manifest = store.blobs().read(&img.manifest_digest).ok();
    reply(&api::ImageInfo {
        id: img.id.0.to_string(),
        names: img.names.clone(),
        manifest: manifest.map(|m| String::from_utf8_lossy(&m).into_owned()),
        config: String::from_utf8_lossy(&config).into_owned(),
        layers: layers
            .into_iter()
            .map(|l| api::LayerInfo {
                id: l.id.0.to_string(),
                diff_id: l.diff_id.to_string(),
                size: l.size,
            })
            .collect(),
        created: img.created,
    })
}

fn container_info(store: &Store, c: Container) -> api::ContainerInfo {
    api::ContainerInfo {
        dir: store.container_dir(&c.id).display().to_string(),
        run_dir: store.container_rundir(&c.id).display().to_string(),
        id: c.id.as_str().to_owned(),
        name: c.name,
        image: c.image.0.to_string(),
        created: c.created,
        metadata: c.metadata,
        id_map: c.id_map.as_ref().map(api_id_map),
    }
}

/// Streams what `write` produces (a layer tar) through a pipe from a writing thread. A failed
/// export shows up as a read error at the end of the stream, never as a silently short tar.
fn pipe_from(
    write: impl FnOnce(std::io::BufWriter<std::io::PipeWriter>) -> Result<(), StoreError>
        + Send
        + 'static,
) -> Result<PipeReader, (ErrorKind, String)> {
    let (r, w) = std::io::pipe().map_err(|e| (ErrorKind::Internal, format!("pipe: {e}")))?;
    let failure = Arc::new(Mutex::new(None));
    let slot = failure.clone();
    let thread = std::thread::spawn(move || {
        let w = std::io::BufWriter::with_capacity(256 * 1024, w);
        if let Err(e) = write(w) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    });
    Ok(PipeReader {
        pipe: r,
        thread: Some(thread),
        failure,
    })
}

struct PipeReader {
    pipe: std::io::PipeReader,
    thread: Option<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            if let Some(e) = self
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return Err(std::io::Error::other(e));
            }
        }
        Ok(n)
    }
}
