//! The devicemapper thin-pool driver: every layer is a thin volume, a child layer starts as a
//! thin snapshot of its parent, and a container's read-write layer is a writable snapshot.
//!
//! A thin snapshot shares every block with its origin, so staging a child or creating a
//! container costs the same few milliseconds whatever the depth of the chain, and space is
//! used only as files change. The filesystem (ext4 or xfs, `dm.fs`) is made once, on the base
//! device (`dm.basesize`); every device has the base's size. The pool is an existing one
//! (`dm.thinpooldev`) or the driver's own on loop-attached sparse files in its home
//! (`dm.loopdatasize`, `dm.loopmetadatasize`); see [`options`].
//!
//! **Views, staging and changes.** The trait wants directories: `diff_dir` and
//! `changes_source` are read without mounting, and `mounts` is pure. So every committed
//! layer and container is kept *active*: its device exists and its filesystem is mounted
//! under the driver's home at `mnt/<key>/` (read-only for layers, read-write for containers),
//! from `commit`/`create_writable` until `remove` (and again on open after a reboot). The
//! tree lives in the filesystem's `rootfs/` directory, keeping ext4's `lost+found` out of
//! sight. Then:
//! - `mounts(key)` is a bind mount of `mnt/<key>/rootfs` (read-only unless writable),
//!   performed by `strata-mount` like any other driver's;
//! - `diff_dir(key)` and `changes_source(key)` are `mnt/<key>/rootfs`;
//! - `changes(key, parents)` compares that tree with the parent's, as vfs and btrfs do
//!   (`strata_driver_vfs::changes`): thin-pool metadata cannot tell which files changed;
//! - a staging area is a snapshot mounted read-write at `staging/<name>/`, and the layer
//!   pipeline extracts into `staging/<name>/rootfs` applying whiteouts in place
//!   ([`WhiteoutFormat::Apply`]).
//!
//! The one mount(2) this crate makes is in `blockmount`, marked to move to `strata-mount`
//! once `Mount` has a block-device variant (see that module).
//!
//! **State and recovery.** Each device has a record (`record`) whose state — creating,
//! created, activating, active, deactivating, removing — is persisted atomically before each
//! step. On open, `recover` brings every record to rest (`plan`): what was never handed out is
//! rolled back, committed keys are rolled forward to active, removals are finished, suspended
//! devices resumed, stray devices removed. `cleanup_staging` rolls back the staging areas of
//! dead processes. Removal of a busy device is deferred to the kernel (`remove`). New devices
//! are refused with a clear error when the pool's data or metadata space falls below
//! `dm.min_free_space` (`pool`).
//!
//! The layout of the home is drawn in `layout` (format version [`FORMAT_VERSION`]).
//!
//! What it deliberately does not do: grow the base device or the pool, repair pool metadata,
//! or run without root and device-mapper (open fails with kind Unsupported).

mod blockmount;
mod dm;
pub mod error;
mod fault;
mod layout;
mod lifecycle;
mod loopdev;
pub mod options;
mod plan;
mod pool;
mod program;
mod record;
mod recover;
mod remove;
mod stage;

use std::path::PathBuf;

use strata_driver_api::{Driver, DriverConfig, DriverError, DriverStatus, Key, Result, Staging};
use strata_types::{Change, Mount};

pub use fault::{ENV as FAULT_ENV, POINTS as FAULT_POINTS};
pub use layout::FORMAT_VERSION;
pub use pool::Usage;
pub use recover::Audit;

use error::Error;
use layout::Layout;
use lifecycle::Devices;
use options::Options;
use pool::Pool;

/// The devicemapper driver over one home and one thin pool.
#[derive(Debug)]
pub struct DmDriver {
    devices: Devices,
    options: Options,
    release_on_drop: bool,
}

impl DmDriver {
    /// Opens the driver: parses the options, opens (or makes) the pool, makes the base device
    /// the first time, and recovers every device of the home (see the module docs).
    pub fn open(config: &DriverConfig) -> Result<DmDriver> {
        let home = &config.home;
        let fail = |e: Error| e.into_driver(home);
        let options = Options::parse(&config.options).map_err(fail)?;
        if config.rootless {
            return Err(DriverError::Unsupported {
                driver: "devicemapper",
                reason: "it needs real root (device-mapper ioctls, block device mounts)".into(),
            });
        }
        let dm = dm::Dm::open().map_err(fail)?;
        let layout = Layout::prepare(home).map_err(fail)?;
        let lock = layout.lock().map_err(fail)?;
        let pool = Pool::open(&dm, &layout, &options).map_err(fail)?;
        let driver = DmDriver {
            devices: Devices { layout, dm, pool },
            options,
            release_on_drop: false,
        };
        driver.ensure_base().map_err(fail)?;
        driver.recover().map_err(fail)?;
        drop(lock);
        Ok(driver)
    }

    /// Makes dropping the driver [`release`](DmDriver::release) everything (best effort,
    /// failures logged): for throwaway stores such as tests and benchmarks. A real store keeps
    /// its devices active between processes.
    pub fn release_on_drop(mut self) -> DmDriver {
        self.release_on_drop = true;
        self
    }

    /// Unmounts and deactivates every device of this home and removes the driver's own pool
    /// with its loop devices. The next [`open`](DmDriver::open) activates everything again.
    pub fn release(mut self) -> Result<()> {
        self.release_on_drop = false;
        self.release_all()
            .map_err(|e| e.into_driver(&self.devices.layout.home))
    }

    /// The pool's current usage.
    pub fn pool_usage(&self) -> Result<Usage> {
        self.devices
            .pool
            .usage(&self.devices.dm)
            .map_err(|e| e.into_driver(self.home()))
    }

    /// The device-mapper name of the pool.
    pub fn pool_name(&self) -> &str {
        &self.devices.pool.name
    }

    /// Checks devices and pool against the records: see [`Audit`].
    pub fn check(&self) -> Result<Audit> {
        self.audit().map_err(|e| e.into_driver(self.home()))
    }

    fn layout(&self) -> &Layout {
        &self.devices.layout
    }

    fn home(&self) -> &std::path::Path {
        &self.devices.layout.home
    }

    fn active_record(&self, key: &Key) -> std::result::Result<record::Record, Error> {
        match record::load(&self.layout().key_record(key))? {
            Some(r) if r.state == record::State::Active => Ok(r),
            _ => Err(Error::Missing(key.to_string())),
        }
    }
}

impl Drop for DmDriver {
    fn drop(&mut self) {
        if self.release_on_drop {
            if let Err(e) = self.release_all() {
                tracing::warn!(home = %self.home().display(), error = %e, "releasing the devicemapper driver failed");
            }
        }
    }
}

impl Driver for DmDriver {
    fn name(&self) -> &'static str {
        "devicemapper"
    }

    fn status(&self) -> DriverStatus {
        let p = &self.devices.pool;
        let mut details = vec![
            ("pool".into(), p.name.clone()),
            ("pool owned by the driver".into(), p.own.to_string()),
            (
                "data block size".into(),
                format!("{} KiB", p.block_sectors / 2),
            ),
            ("filesystem".into(), self.options.fs.as_str().into()),
            ("format".into(), FORMAT_VERSION.to_string()),
        ];
        if let Ok(Some(b)) = record::load(&self.layout().base_record()) {
            details.push((
                "base device size".into(),
                format!("{} MiB", b.sectors / 2048),
            ));
        }
        match p.usage(&self.devices.dm) {
            Ok(u) => {
                details.push((
                    "data blocks used".into(),
                    format!("{} of {}", u.used_data, u.total_data),
                ));
                details.push((
                    "metadata blocks used".into(),
                    format!("{} of {}", u.used_meta, u.total_meta),
                ));
            }
            Err(e) => details.push(("pool status".into(), e.to_string())),
        }
        DriverStatus {
            name: "devicemapper",
            home: self.home().to_path_buf(),
            details,
        }
    }

    fn stage(&self, parents: &[Key]) -> Result<Staging> {
        let _span = tracing::debug_span!("devicemapper stage", parent = ?parents.first()).entered();
        self.stage_device(parents)
            .map_err(|e| e.into_driver(self.home()))
    }

    fn commit(&self, staging: Staging, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("devicemapper commit", %key).entered();
        self.commit_device(staging, key)
            .map_err(|e| e.into_driver(self.home()))
    }

    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()> {
        let _span = tracing::debug_span!("devicemapper create_writable", %key).entered();
        self.create_writable_device(key, parents)
            .map_err(|e| e.into_driver(self.home()))
    }

    fn mounts(&self, key: &Key, _parents: &[Key], writable: bool) -> Vec<Mount> {
        vec![Mount::Bind {
            source: self.layout().key_root(key),
            read_only: !writable,
        }]
    }

    fn diff_dir(&self, key: &Key) -> PathBuf {
        self.layout().key_root(key)
    }

    fn changes(&self, key: &Key, parents: &[Key]) -> Result<Vec<Change>> {
        let _span = tracing::debug_span!("devicemapper changes", %key).entered();
        let fail = |e: Error| e.into_driver(self.home());
        self.active_record(key).map_err(fail)?;
        let old = match parents.first() {
            Some(p) => {
                self.active_record(p).map_err(fail)?;
                Some(self.layout().key_root(p))
            }
            None => None,
        };
        strata_driver_vfs::changes::tree_changes(&self.layout().key_root(key), old.as_deref())
    }

    fn remove(&self, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("devicemapper remove", %key).entered();
        let fail = |e: Error| e.into_driver(self.home());
        let _lock = self.layout().lock().map_err(fail)?;
        self.remove_key(key).map_err(fail)
    }

    fn exists(&self, key: &Key) -> bool {
        matches!(
            record::load(&self.layout().key_record(key)),
            Ok(Some(r)) if r.state != record::State::Creating
        )
    }

    fn list(&self) -> Result<Vec<Key>> {
        let keys = layout::keys_in(&self.layout().devices_dir())
            .map_err(|e| e.into_driver(self.home()))?;
        Ok(keys.into_iter().filter(|k| self.exists(k)).collect())
    }

    fn cleanup_staging(&self) -> Result<usize> {
        self.cleanup_dead_staging()
            .map_err(|e| e.into_driver(self.home()))
    }

    fn size(&self, key: &Key) -> Result<u64> {
        let fail = |e: Error| e.into_driver(self.home());
        let rec = self.active_record(key).map_err(fail)?;
        let (_, status) = self
            .devices
            .dm
            .target(&self.devices.name(&rec), false)
            .map_err(fail)?;
        // "<mapped sectors> <highest mapped sector>": blocks shared with the parent count
        // too (the pool does not report a device's exclusive blocks cheaply).
        let mapped: u64 = status
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(mapped * 512)
    }
}
