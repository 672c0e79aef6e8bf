//! The [`Store`] handle: opens the metastore, the blob store and the driver, and offers listing
//! and information. Operations live in their own modules (`import`, `container_ops`,
//! `image_ops`, `oci`, `gc`, `fsck`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use strata_driver_api::{Driver, DriverConfig, DriverStatus, Key};
use strata_types::LayerId;

use crate::blobs::Blobs;
use crate::containers::Container;
use crate::error::{Result, StoreError};
use crate::images::Image;
use crate::layers::Layer;
use crate::locks::{self, Lock};
use crate::meta::{Meta, ReadTxn};
use crate::paths::{layer_key, Paths};
use crate::trash::Trash;

/// Where a store lives.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Persistent data (`/var/lib/strata` for root).
    pub root: PathBuf,
    /// Transient state such as mount points (`/run/strata` for root).
    pub runroot: PathBuf,
    /// The driver to use, by name.
    pub driver: String,
    /// Driver options (`--storage-opt key=value`).
    pub driver_options: Vec<(String, String)>,
    /// The most uncompressed bytes one layer may expand to; an import over it fails (and
    /// leaves the store as it was). Guards against decompression bombs. See
    /// [`DEFAULT_MAX_LAYER_SIZE`].
    pub max_layer_size: u64,
}

/// The default [`StoreOptions::max_layer_size`]: 256 GiB, far above any real layer, so only a
/// hostile stream hits it. Lower it where disk is scarce.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 256 << 30;

/// Builds a driver from its config. The binary supplies this: drivers are compiled into it.
pub type DriverFactory<'a> =
    &'a dyn Fn(&str, DriverConfig) -> strata_driver_api::Result<Box<dyn Driver>>;

/// An open store. Cheap operations take `&self`; it is `Sync`, so threads may share it.
#[derive(Debug)]
pub struct Store {
    pub(crate) paths: Paths,
    pub(crate) meta: Arc<Meta>,
    pub(crate) blobs: Blobs,
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) max_layer_size: u64,
    pub(crate) trash: Trash,
}

/// What `storage info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub driver: DriverStatus,
    pub format_version: i64,
    /// Bytes one layer may expand to (see [`StoreOptions::max_layer_size`]).
    pub max_layer_size: u64,
    pub images: usize,
    pub layers: usize,
    pub containers: usize,
}

impl Store {
    /// Opens the store at `opts.root`, creating it if needed. A store remembers the driver it was
    /// created with; opening it with another one is refused (their payloads are not compatible),
    /// except for drivers of the same payload format (`overlay` and `fuse-overlay`).
    pub fn open(opts: StoreOptions, make_driver: DriverFactory<'_>) -> Result<Store> {
        let paths = Paths {
            root: opts.root.clone(),
            runroot: opts.runroot.clone(),
        };
        paths
            .create()
            .map_err(StoreError::io("create store directories", &opts.root))?;
        let meta = Meta::open(&paths.db(), &paths.locks().join("init.lock"))?;
        let recorded = meta.read(recorded_driver)?;
        if let Some(rec) = &recorded {
            check_driver(&opts, rec)?;
        }
        let cfg = DriverConfig {
            home: paths.driver_home(&opts.driver),
            rootless: !rustix::process::geteuid().is_root() || strata_mount::in_user_namespace(),
            options: opts.driver_options.clone(),
        };
        std::fs::create_dir_all(&cfg.home).map_err(StoreError::io("create", &cfg.home))?;
        let driver = make_driver(&opts.driver, cfg)?;
        // Only a driver that opened is recorded, so a mistyped --driver cannot claim a store.
        if recorded.is_none() {
            let winner = meta.write_additive(|tx| {
                tx.sql()
                    .execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('driver', ?1)",
                        [&opts.driver],
                    )
                    .map_err(tx.err())?;
                recorded_driver(tx)
            })?;
            // Another process may have created the store with another driver meanwhile.
            if let Some(w) = &winner {
                check_driver(&opts, w)?;
            }
        }
        let blobs = Blobs::new(paths.clone());
        tracing::debug!(root = %opts.root.display(), driver = %opts.driver, "store opened");
        let meta = Arc::new(meta);
        let driver: Arc<dyn Driver> = Arc::from(driver);
        Ok(Store {
            trash: Trash::new(paths.clone(), Arc::clone(&meta), Arc::clone(&driver)),
            paths,
            meta,
            blobs,
            driver,
            max_layer_size: opts.max_layer_size,
        })
    }

    /// From now on, removals take rows out and leave payload to a collector thread, which
    /// deletes the bytes afterwards (see `trash.rs`): `remove_container` costs one unsynced
    /// commit and `remove_image` a synced one and a rename per layer, whatever the size. Trash
    /// left by a killed process is collected now, in the background. Dropping the store waits
    /// for the collector.
    pub fn defer_deletion(&self) {
        self.trash.set_deferred();
        if self.trash.has_leftovers() {
            self.trash.wake();
        }
    }

    pub fn root(&self) -> &Path {
        &self.paths.root
    }

    pub fn runroot(&self) -> &Path {
        &self.paths.runroot
    }

    pub fn driver(&self) -> &dyn Driver {
        self.driver.as_ref()
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Runs `f` in a metadata read transaction.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTxn<'_>) -> Result<T>) -> Result<T> {
        self.meta.read(f)
    }

    /// The shared side of the gc lock, held by every operation that adds or removes payload.
    pub(crate) fn gc_shared(&self) -> Result<Lock> {
        locks::acquire(&self.paths.locks().join("gc.lock"), false)
    }

    /// Keeps garbage collection from running while it lives (the gc lock, shared): for a
    /// caller that imported layers it has not yet recorded an image of (`import_layer`).
    pub fn hold_off_gc(&self) -> Result<Lock> {
        self.gc_shared()
    }

    pub(crate) fn gc_exclusive(&self) -> Result<Lock> {
        locks::acquire(&self.paths.locks().join("gc.lock"), true)
    }

    pub(crate) fn layer_lock_path(&self, id: &LayerId) -> PathBuf {
        self.paths.locks().join(format!("{}.lock", id.0.hex()))
    }

    /// The driver keys of `top` and its ancestors, nearest first.
    pub(crate) fn chain_keys(tx: &ReadTxn<'_>, top: Option<&LayerId>) -> Result<Vec<Key>> {
        match top {
            None => Ok(Vec::new()),
            Some(t) => Ok(tx.chain(t)?.iter().map(|l| layer_key(&l.id)).collect()),
        }
    }

    pub fn info(&self) -> Result<StoreInfo> {
        let (images, layers, containers) = self.meta.read(|tx| {
            Ok((
                tx.images()?.len(),
                tx.layers()?.len(),
                tx.containers()?.len(),
            ))
        })?;
        Ok(StoreInfo {
            root: self.paths.root.clone(),
            runroot: self.paths.runroot.clone(),
            driver: self.driver.status(),
            format_version: crate::meta::FORMAT_VERSION,
            max_layer_size: self.max_layer_size,
            images,
            layers,
            containers,
        })
    }

    pub fn images(&self) -> Result<Vec<Image>> {
        self.meta.read(|tx| tx.images())
    }

    pub fn layers(&self) -> Result<Vec<Layer>> {
        self.meta.read(|tx| tx.layers())
    }

    pub fn containers(&self) -> Result<Vec<Container>> {
        self.meta.read(|tx| tx.containers())
    }

    pub fn image(&self, name: &str) -> Result<Image> {
        self.meta.read(|tx| tx.resolve_image(name))
    }

    pub fn container(&self, name: &str) -> Result<Container> {
        self.meta.read(|tx| tx.resolve_container(name))
    }

    /// An image's layers, bottom first.
    pub fn image_layers(&self, img: &Image) -> Result<Vec<Layer>> {
        self.meta.read(|tx| match &img.top_layer {
            None => Ok(Vec::new()),
            Some(t) => {
                let mut c = tx.chain(t)?;
                c.reverse();
                Ok(c)
            }
        })
    }

    /// Whether a container's root filesystem is mounted.
    pub fn is_mounted(&self, c: &Container) -> Result<bool> {
        Ok(strata_mount::is_mounted(&self.paths.mountpoint(&c.id))?)
    }
}

/// The driver a store was created with, if it has been recorded yet.
fn recorded_driver(tx: &ReadTxn<'_>) -> Result<Option<String>> {
    rusqlite::OptionalExtension::optional(tx.sql().query_row(
        "SELECT value FROM meta WHERE key = 'driver'",
        [],
        |r| r.get(0),
    ))
    .map_err(tx.err())
}

/// Refuses to open a store with another driver than the one it was created with.
fn check_driver(opts: &StoreOptions, recorded: &str) -> Result<()> {
    if crate::paths::payload_format(recorded) == crate::paths::payload_format(&opts.driver) {
        return Ok(());
    }
    Err(StoreError::Precondition(format!(
        "the store at {} was created with the {recorded} driver, not {}; use --driver {recorded} \
         or another --root",
        opts.root.display(),
        opts.driver
    )))
}
