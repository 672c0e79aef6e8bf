//! The steps of a thin device's life, each announced in its record before it is taken (see
//! `record`): make the thin id (a new thin or a snapshot), activate (device + mount), deactivate,
//! tear down and destroy; and the recovery steps `plan` asks for.
//!
//! Snapshots of an active origin suspend it around `create_snap`, as the kernel's
//! thin-provisioning documentation requires (the suspend also freezes the mounted
//! filesystem); a process that dies in between leaves it suspended, which recovery undoes first.
//!
//! What it does not do: choose thin ids, record locations or keys (the operations in `stage`,
//! `remove` and `recover` do).

use std::path::{Path, PathBuf};

use crate::blockmount;
use crate::dm::{self, Dm, Removal};
use crate::error::{Error, Result};
use crate::fault;
use crate::layout::{Layout, ROOTFS};
use crate::plan::{Observed, Step};
use crate::pool::Pool;
use crate::record::{self, Record, State};

/// What the lifecycle steps work with.
#[derive(Debug)]
pub struct Devices {
    pub layout: Layout,
    pub dm: Dm,
    pub pool: Pool,
}

/// Fault points of one activation: after `activating` is persisted, after the device is
/// made, after `active` is persisted.
pub type ActivationPoints = Option<[&'static str; 3]>;

impl Devices {
    /// The absolute mount point of a record.
    pub fn mount_point(&self, rec: &Record) -> PathBuf {
        self.layout.home.join(&rec.mount)
    }

    pub fn name(&self, rec: &Record) -> String {
        self.layout.thin_name(rec.thin_id)
    }

    /// Moves `rec` to `next`, persists it at `path`, then passes fault point `point`.
    pub fn persist(
        &self,
        path: &Path,
        rec: &mut Record,
        next: State,
        point: Option<&'static str>,
    ) -> Result<()> {
        rec.advance(next, path)?;
        record::store(path, rec)?;
        if let Some(p) = point {
            fault::point(p);
        }
        Ok(())
    }

    /// Makes thin `rec.thin_id` in the pool: a snapshot of `rec.origin`, or a new thin.
    pub fn make_thin(&self, rec: &Record) -> Result<()> {
        let Some(origin) = rec.origin else {
            return self.pool.create_thin(&self.dm, rec.thin_id);
        };
        let origin_name = self.layout.thin_name(origin);
        if self.dm.info(&origin_name)?.is_none() {
            return self.pool.create_snap(&self.dm, rec.thin_id, origin);
        }
        self.dm.suspend(&origin_name)?;
        fault::point("snapshot:suspended");
        let made = self.pool.create_snap(&self.dm, rec.thin_id, origin);
        let resumed = self.dm.resume(&origin_name);
        made.and(resumed)
    }

    /// created → activating → active: the device, then its filesystem mounted at the record's
    /// mount point (read-only unless `rec.writable`). With `format`, the filesystem is made
    /// first and its `rootfs` directory created (the base device).
    pub fn activate(
        &self,
        path: &Path,
        rec: &mut Record,
        points: ActivationPoints,
        format: bool,
    ) -> Result<()> {
        self.persist(path, rec, State::Activating, points.map(|p| p[0]))?;
        let name = self.name(rec);
        let dev = self.dm.create_thin(
            &name,
            self.pool.dev,
            rec.thin_id,
            rec.sectors,
            !rec.writable,
        )?;
        if let Some(p) = points {
            fault::point(p[1]);
        }
        let node = dm::node(&name, dev)?;
        if format {
            blockmount::mkfs(&node, rec.fs)?;
        }
        let target = self.mount_point(rec);
        std::fs::create_dir_all(&target).map_err(Error::io("create", &target))?;
        blockmount::mount_device(&node, rec.fs, !rec.writable, &target)?;
        if format {
            let root = target.join(ROOTFS);
            std::fs::create_dir(&root).map_err(Error::io("create", &root))?;
            std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(Error::io("chmod", &root))?;
        }
        self.persist(path, rec, State::Active, points.map(|p| p[2]))
    }

    /// active → deactivating → created: unmount and remove the device. Refused (kind Busy,
    /// nothing changed) while the filesystem is mounted elsewhere too (a view).
    pub fn deactivate(&self, path: &Path, rec: &mut Record) -> Result<()> {
        self.refuse_if_viewed(rec, &path.display().to_string())?;
        self.persist(path, rec, State::Deactivating, None)?;
        blockmount::unmount(&self.mount_point(rec))?;
        self.dm.remove(&self.name(rec), false)?;
        self.persist(path, rec, State::Created, None)
    }

    /// Unmounts and removes the device, whatever state it is in. With `defer`, a busy mount
    /// is detached lazily and a busy device left for the kernel to remove on last close
    /// (`Removal::Deferred`); without it, busy is an error. A suspended device is resumed
    /// first (unmounting a frozen filesystem would hang).
    /// `after_unmount` is the fault point passed between the two.
    pub fn teardown(
        &self,
        rec: &Record,
        defer: bool,
        after_unmount: Option<&'static str>,
    ) -> Result<Removal> {
        let name = self.name(rec);
        if self.dm.info(&name)?.is_some_and(|i| i.suspended) {
            self.dm.resume(&name)?;
        }
        let target = self.mount_point(rec);
        match blockmount::unmount(&target) {
            Ok(()) => {}
            Err(Error::Busy { .. }) if defer => {
                tracing::warn!(target = %target.display(), "mount busy: detaching it lazily");
                blockmount::unmount_lazily(&target)?;
            }
            Err(e) => return Err(e),
        }
        if let Some(p) = after_unmount {
            fault::point(p);
        }
        self.dm.remove(&name, defer)
    }

    /// Tears everything down without deferring, deletes the thin id and forgets the record.
    /// Used for rollbacks of devices nobody else can be using.
    pub fn destroy(&self, path: &Path, rec: &Record) -> Result<()> {
        self.teardown(rec, false, None)?;
        self.pool.delete(&self.dm, rec.thin_id)?;
        let _ = std::fs::remove_dir(self.mount_point(rec));
        record::forget(path)
    }

    /// Fails with kind Busy if `rec`'s filesystem is mounted anywhere but its own mount point.
    pub fn refuse_if_viewed(&self, rec: &Record, what: &str) -> Result<()> {
        let Some(info) = self.dm.info(&self.name(rec))? else {
            return Ok(());
        };
        let own = self.mount_point(rec);
        let others: Vec<_> = strata_mount::mounts_of_device(info.dev)
            .map_err(|e| Error::Io {
                op: "read the mount table for",
                path: own.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
            .into_iter()
            .filter(|p| *p != own)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = others.iter().map(|p| p.display().to_string()).collect();
        Err(Error::Busy {
            what: what.to_owned(),
            detail: format!("still mounted at {}; unmount it first", list.join(", ")),
        })
    }

    /// What the kernel shows of `rec`'s device and mount.
    pub fn observe(&self, rec: &Record) -> Result<Observed> {
        let info = self.dm.info(&self.name(rec))?;
        Ok(Observed {
            device: info.is_some(),
            live: info.is_some_and(|i| i.live),
            suspended: info.is_some_and(|i| i.suspended),
            mounted: blockmount::is_mounted(&self.mount_point(rec))?,
        })
    }

    /// Carries out recovery steps on the record at `path`.
    pub fn execute(&self, path: &Path, rec: &mut Record, steps: &[Step]) -> Result<()> {
        for step in steps {
            tracing::info!(record = %path.display(), thin_id = rec.thin_id, state = rec.state.as_str(), ?step, "recovering");
            match step {
                Step::Resume => self.dm.resume(&self.name(rec))?,
                Step::Unmount => blockmount::unmount(&self.mount_point(rec))?,
                Step::RemoveDevice => {
                    self.dm.remove(&self.name(rec), false)?;
                }
                Step::DeleteThin => {
                    self.pool.delete(&self.dm, rec.thin_id)?;
                }
                Step::Forget => {
                    let _ = std::fs::remove_dir(self.mount_point(rec));
                    record::forget(path)?;
                }
                Step::MarkCreated => {
                    rec.state = State::Created;
                    record::store(path, rec)?;
                }
                Step::MarkActive => {
                    rec.state = State::Active;
                    record::store(path, rec)?;
                }
                Step::Mount => {
                    let name = self.name(rec);
                    let info = self
                        .dm
                        .info(&name)?
                        .ok_or_else(|| Error::Missing(name.clone()))?;
                    let target = self.mount_point(rec);
                    std::fs::create_dir_all(&target).map_err(Error::io("create", &target))?;
                    blockmount::mount_device(
                        &dm::node(&name, info.dev)?,
                        rec.fs,
                        !rec.writable,
                        &target,
                    )?;
                    rec.state = State::Active;
                    record::store(path, rec)?;
                }
                Step::Activate => self.activate(path, rec, None, false)?,
            }
        }
        Ok(())
    }
}
