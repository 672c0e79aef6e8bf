//! Making devices: staging areas (`stage`), committing them as layers (`commit`) and
//! containers' read-write layers (`create_writable`).
//!
//! - **stage**: a thin snapshot of the parent (or of the base device) is made, activated and
//!   mounted read-write at `staging/<name>/`; the layer pipeline extracts into
//!   `staging/<name>/rootfs`, applying whiteouts in place (the snapshot already holds the
//!   parent's whole tree).
//! - **commit**: the staging filesystem is unmounted (which flushes it) and its device
//!   removed; the record is renamed from `staging/<name>.json` to `devices/<key>.json` (the
//!   atomic step that hands the thin device to the key), then the device is activated
//!   read-only (`DM_READONLY` and a read-only mount) at `mnt/<key>/`.
//! - **create_writable**: like stage, but recorded in `devices/<key>.json` from the start and
//!   mounted read-write at `mnt/<key>/`.
//!
//! Every step is persisted first (`record`), so a crash at any point is undone or finished by
//! `recover` (committed keys) or `cleanup_staging` (staging areas). A failure that returns
//! normally is rolled back on the spot.
//!
//! What it does not do: extract anything (the layer pipeline does), or check that a parent's
//! payload is what the store believes it is.

use std::path::{Path, PathBuf};

use rustix::io::Errno;
use strata_driver_api::{Key, Staging};
use strata_types::WhiteoutFormat;

use crate::error::{Error, Result};
use crate::fault;
use crate::layout::{Layout, ROOTFS};
use crate::lifecycle::ActivationPoints;
use crate::options::FsType;
use crate::record::{self, Record, State};
use crate::DmDriver;

/// Attempts at finding a thin id the pool does not already have.
const ID_ATTEMPTS: usize = 16;

/// What a new device is snapshotted from.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub thin_id: u32,
    pub sectors: u64,
    pub fs: FsType,
}

impl DmDriver {
    /// The origin of a child of `parents`: the nearest parent, or the base device.
    pub(crate) fn origin_of(&self, parents: &[Key]) -> Result<Origin> {
        let (path, missing) = match parents.first() {
            Some(p) => (self.layout().key_record(p), p.to_string()),
            None => (self.layout().base_record(), "the base device".to_owned()),
        };
        match record::load(&path)? {
            Some(r) if r.state != State::Creating && r.state != State::Removing => Ok(Origin {
                thin_id: r.thin_id,
                sectors: r.sectors,
                fs: r.fs,
            }),
            _ => Err(Error::Missing(missing)),
        }
    }

    /// Records a new snapshot of `origin` at `path` (state `creating`) and makes it in the
    /// pool; then `created`. Skips thin ids the pool already has (a pool shared by mistake).
    fn make_snapshot(
        &self,
        path: &Path,
        origin: Origin,
        writable: bool,
        mount: PathBuf,
        points: [&'static str; 2],
    ) -> Result<Record> {
        for _ in 0..ID_ATTEMPTS {
            let id = self.layout().allocate_thin_id()?;
            let mut rec = Record::new(
                id,
                Some(origin.thin_id),
                origin.sectors,
                origin.fs,
                writable,
                mount.clone(),
            );
            record::store(path, &rec)?;
            fault::point(points[0]);
            match self.devices.make_thin(&rec) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(Errno::EXIST) => {
                    tracing::warn!(thin_id = id, pool = %self.devices.pool.name, "thin id already in the pool (is the pool shared?); trying the next");
                    record::forget(path)?;
                    continue;
                }
                Err(e) => {
                    self.roll_back(path, &rec);
                    return Err(e);
                }
            }
            self.devices
                .persist(path, &mut rec, State::Created, Some(points[1]))?;
            return Ok(rec);
        }
        Err(Error::PoolUnusable {
            pool: self.devices.pool.name.clone(),
            reason: format!("{ID_ATTEMPTS} thin ids in a row were already taken; the pool must be dedicated to this store"),
        })
    }

    /// Activates `rec`, rolling everything back if that fails.
    fn activate_or_roll_back(
        &self,
        path: &Path,
        rec: &mut Record,
        points: ActivationPoints,
    ) -> Result<()> {
        if let Err(e) = self.devices.activate(path, rec, points, false) {
            self.roll_back(path, rec);
            return Err(e);
        }
        Ok(())
    }

    /// Best-effort removal of a device that was never handed out.
    fn roll_back(&self, path: &Path, rec: &Record) {
        if let Err(e) = self.devices.destroy(path, rec) {
            tracing::warn!(record = %path.display(), error = %e, "rollback failed; recovery will finish it");
        }
    }

    pub(crate) fn stage_device(&self, parents: &[Key]) -> Result<Staging> {
        let _lock = self.layout().lock()?;
        self.devices
            .pool
            .check_free(&self.devices.dm, self.options.min_free_pct)?;
        let origin = self.origin_of(parents)?;
        let staging_dir = self.layout().staging_dir();
        let (area, lock) =
            strata_driver_vfs::area::create(&staging_dir).map_err(|e| Error::Io {
                op: "create a staging area in",
                path: staging_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let rec_path = Layout::staging_record(&area);
        let mount = area
            .strip_prefix(&self.layout().home)
            .unwrap_or(&area)
            .to_path_buf();
        let made = self
            .make_snapshot(
                &rec_path,
                origin,
                true,
                mount,
                ["stage:creating", "stage:created"],
            )
            .and_then(|mut rec| {
                self.activate_or_roll_back(
                    &rec_path,
                    &mut rec,
                    Some(["stage:activating", "stage:device", "stage:active"]),
                )
            });
        if let Err(e) = made {
            let _ = std::fs::remove_dir(&area);
            let _ = std::fs::remove_file(strata_driver_vfs::area::lock_path(&area));
            return Err(e);
        }
        Ok(Staging {
            root: area.join(ROOTFS),
            area,
            whiteouts: WhiteoutFormat::Apply,
            lock,
        })
    }

    pub(crate) fn commit_device(&self, staging: Staging, key: &Key) -> Result<()> {
        let staging_dir = self.layout().staging_dir();
        if staging.area.parent() != Some(staging_dir.as_path()) {
            return Err(Error::Io {
                op: "commit",
                path: staging.area.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "not a staging area of this driver (expected one in {})",
                        staging_dir.display()
                    ),
                ),
            });
        }
        let _lock = self.layout().lock()?;
        let spath = Layout::staging_record(&staging.area);
        let mut rec = record::load(&spath)?.ok_or_else(|| Error::Corrupt {
            path: spath.clone(),
            reason: "the staging area has no device record".into(),
        })?;
        if rec.state != State::Active {
            return Err(Error::Corrupt {
                path: spath,
                reason: format!("the staging device is {}, not active", rec.state.as_str()),
            });
        }
        // Unmount (flushing the filesystem) and take the device down.
        self.devices.persist(
            &spath,
            &mut rec,
            State::Deactivating,
            Some("commit:deactivating"),
        )?;
        crate::blockmount::unmount(&staging.area)?;
        fault::point("commit:unmounted");
        self.devices.dm.remove(&self.devices.name(&rec), false)?;
        rec.mount = Layout::key_mount(key);
        rec.writable = false;
        self.devices
            .persist(&spath, &mut rec, State::Created, Some("commit:created"))?;

        // Hand the device to the key, replacing stale payload of an interrupted earlier try.
        let kpath = self.layout().key_record(key);
        if kpath.exists() {
            tracing::warn!(%key, "replacing stale payload (debris of an interrupted operation)");
            self.remove_key(key)?;
        }
        record::rename(&spath, &kpath)?;
        fault::point("commit:renamed");
        self.devices.activate(
            &kpath,
            &mut rec,
            Some(["commit:activating", "commit:device", "commit:active"]),
            false,
        )?;

        let _ = std::fs::remove_dir(&staging.area);
        let lp = strata_driver_vfs::area::lock_path(&staging.area);
        std::fs::remove_file(&lp).map_err(Error::io("remove", &lp))?;
        drop(staging.lock);
        Ok(())
    }

    pub(crate) fn create_writable_device(&self, key: &Key, parents: &[Key]) -> Result<()> {
        let _lock = self.layout().lock()?;
        self.devices
            .pool
            .check_free(&self.devices.dm, self.options.min_free_pct)?;
        let origin = self.origin_of(parents)?;
        let kpath = self.layout().key_record(key);
        if kpath.exists() {
            tracing::warn!(%key, "replacing stale payload (debris of an interrupted operation)");
            self.remove_key(key)?;
        }
        let mut rec = self.make_snapshot(
            &kpath,
            origin,
            true,
            Layout::key_mount(key),
            ["writable:creating", "writable:created"],
        )?;
        self.activate_or_roll_back(
            &kpath,
            &mut rec,
            Some(["writable:activating", "writable:device", "writable:active"]),
        )
    }
}
