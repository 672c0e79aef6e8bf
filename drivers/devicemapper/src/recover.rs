//! Bringing a home to rest when the driver opens, making the base device the first time,
//! releasing everything (`release`), and auditing what the kernel and the pool hold against
//! the records (`audit`, for tests and fsck).
//!
//! On open, with the home lock held:
//! 1. the base device is made if missing, or recovered (`plan`, role `Base`): made again if
//!    its filesystem was never finished, otherwise left inactive;
//! 2. removals in `removing/` are finished (deferred ones whose device the kernel released);
//! 3. every committed layer and container is brought to `active` (`plan`, role `Key`): after
//!    a reboot this re-activates and re-mounts them all, after a crash it finishes or redoes
//!    the interrupted activation, and it resumes any device left suspended by a snapshot;
//! 4. device-mapper devices named after this home that no record accounts for are removed.
//!
//! Staging areas are left to `cleanup_staging`, which knows whether their process lives.
//!
//! What it does not do: repair pool metadata, or guess at thin ids the records do not name
//! (the records are written before the pool is touched, so there are none).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::plan::{plan, Role};
use crate::pool::Usage;
use crate::record::{self, Record, State};
use crate::remove::records_in;
use crate::DmDriver;

/// What [`DmDriver::audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Device-mapper devices named after this home that no record accounts for.
    pub stray_devices: Vec<String>,
    /// Records not at rest: `<record path>: <state>` (a committed key that is not active, a
    /// staging area, a removal still in progress or deferred).
    pub unsettled: Vec<String>,
    /// Thin ids handed out by this home that no record owns but the pool still has.
    pub leaked_thin_ids: Vec<u32>,
    /// Keys whose device is active and mounted.
    pub active_keys: usize,
    /// The pool's usage when the audit started.
    pub usage: Usage,
}

impl DmDriver {
    /// Steps 2 to 4 of the module docs. Call with the home lock held.
    pub(crate) fn recover(&self) -> Result<()> {
        let waiting = self.finish_removals()?;
        if waiting > 0 {
            tracing::info!(waiting, "removals still deferred by the kernel");
        }
        for path in records_in(&self.layout().devices_dir())? {
            let Some(mut rec) = record::load(&path)? else {
                continue;
            };
            // One broken key must not keep the whole store from opening: it is logged, left
            // as it is (`audit` lists it) and tried again on the next open.
            let recovered = self.devices.observe(&rec).and_then(|seen| {
                let steps = plan(Role::Key, rec.state, seen);
                self.devices.execute(&path, &mut rec, &steps)
            });
            if let Err(e) = recovered {
                tracing::error!(record = %path.display(), error = %e, "cannot recover this key; it stays unusable until fixed");
            }
        }
        self.remove_stray_devices()
    }

    /// Step 1: the base device. Call with the home lock held.
    pub(crate) fn ensure_base(&self) -> Result<Record> {
        let path = self.layout().base_record();
        if let Some(mut rec) = record::load(&path)? {
            let seen = self.devices.observe(&rec)?;
            let steps = plan(
                Role::Base {
                    formatted: rec.formatted,
                },
                rec.state,
                seen,
            );
            self.devices.execute(&path, &mut rec, &steps)?;
            if path.exists() {
                if rec.sectors != self.options.base_bytes / 512 || rec.fs != self.options.fs {
                    tracing::warn!(
                        base_bytes = rec.sectors * 512,
                        fs = rec.fs.as_str(),
                        "dm.basesize and dm.fs apply only when the base device is made; keeping the existing one"
                    );
                }
                return Ok(rec);
            }
        }
        let id = self.layout().allocate_thin_id()?;
        let mut rec = Record::new(
            id,
            None,
            self.options.base_bytes / 512,
            self.options.fs,
            true,
            "base".into(),
        );
        tracing::info!(
            thin_id = id,
            bytes = self.options.base_bytes,
            fs = self.options.fs.as_str(),
            "making the base device"
        );
        record::store(&path, &rec)?;
        self.devices.make_thin(&rec)?;
        self.devices
            .persist(&path, &mut rec, State::Created, None)?;
        self.devices.activate(&path, &mut rec, None, true)?;
        self.devices.deactivate(&path, &mut rec)?;
        rec.formatted = true;
        record::store(&path, &rec)?;
        Ok(rec)
    }

    /// The thin ids every record of this home owns.
    fn owned_thin_ids(&self) -> Result<BTreeSet<u32>> {
        let l = self.layout();
        let mut paths = records_in(&l.devices_dir())?;
        paths.extend(records_in(&l.removing_dir())?);
        paths.extend(records_in(&l.staging_dir())?);
        paths.push(l.base_record());
        let mut ids = BTreeSet::new();
        for p in paths {
            if let Some(r) = record::load(&p)? {
                ids.insert(r.thin_id);
            }
        }
        Ok(ids)
    }

    fn stray_devices(&self) -> Result<Vec<String>> {
        let owned = self.owned_thin_ids()?;
        let l = self.layout();
        Ok(self
            .devices
            .dm
            .names_with_prefix(&format!("{}-", l.prefix))?
            .into_iter()
            .filter(|n| l.thin_id_of(n).is_some_and(|id| !owned.contains(&id)))
            .collect())
    }

    fn remove_stray_devices(&self) -> Result<()> {
        for name in self.stray_devices()? {
            tracing::warn!(device = %name, "removing a device no record accounts for");
            if let Err(e) = self.devices.dm.remove(&name, true) {
                tracing::warn!(device = %name, error = %e, "cannot remove a stray device");
            }
        }
        Ok(())
    }

    /// Unmounts and deactivates every device of this home, then removes the driver's own
    /// pool and detaches its loop devices (an existing pool is left as it is). Staging areas
    /// of dead processes are cleaned up first. Fails with kind Busy while a view is still
    /// mounted or a staging area is being filled; everything else is still released.
    pub(crate) fn release_all(&self) -> Result<()> {
        self.cleanup_dead_staging()?;
        let _lock = self.layout().lock()?;
        let mut first_error = None;
        if let Some(path) = records_in(&self.layout().staging_dir())?.first() {
            first_error = Some(Error::Busy {
                what: "the driver".into(),
                detail: format!("staging area {} is in use", path.display()),
            });
        }
        for path in records_in(&self.layout().devices_dir())? {
            let Some(mut rec) = record::load(&path)? else {
                continue;
            };
            if rec.state == State::Active {
                if let Err(e) = self.devices.deactivate(&path, &mut rec) {
                    tracing::warn!(record = %path.display(), error = %e, "cannot deactivate");
                    first_error.get_or_insert(e);
                }
            }
        }
        if self.finish_removals()? > 0 {
            first_error.get_or_insert(Error::Busy {
                what: "the driver".into(),
                detail: "a removed device is still open (its removal is deferred)".into(),
            });
        }
        match first_error {
            Some(e) => Err(e),
            None => self.devices.pool.release(&self.devices.dm, self.layout()),
        }
    }

    /// Checks the kernel and the pool against the records (see [`Audit`]). Leaked thin ids
    /// are found by probing: every id this home handed out that no record owns is created in
    /// the pool and deleted again; one that already exists is leaked. For tests and fsck,
    /// not for hot paths.
    pub fn audit(&self) -> Result<Audit> {
        let _lock = self.layout().lock()?;
        let l = self.layout();
        // Before the probing below, which creates and deletes thin ids.
        let usage = self.devices.pool.usage(&self.devices.dm)?;
        let mut unsettled = Vec::new();
        let mut active_keys = 0;
        for path in records_in(&l.devices_dir())? {
            let Some(rec) = record::load(&path)? else {
                continue;
            };
            let seen = self.devices.observe(&rec)?;
            if rec.state == State::Active && seen.device && seen.mounted && !seen.suspended {
                active_keys += 1;
            } else {
                unsettled.push(format!(
                    "{}: {} {seen:?}",
                    path.display(),
                    rec.state.as_str()
                ));
            }
        }
        for path in records_in(&l.removing_dir())?
            .into_iter()
            .chain(records_in(&l.staging_dir())?)
        {
            if let Some(rec) = record::load(&path)? {
                unsettled.push(format!("{}: {}", path.display(), rec.state.as_str()));
            }
        }
        let owned = self.owned_thin_ids()?;
        let mut leaked_thin_ids = Vec::new();
        for id in 1..l.thin_id_limit()? {
            if owned.contains(&id) {
                continue;
            }
            match self.devices.pool.create_thin(&self.devices.dm, id) {
                Ok(()) => {
                    self.devices.pool.delete(&self.devices.dm, id)?;
                }
                Err(e) if e.errno() == Some(rustix::io::Errno::EXIST) => leaked_thin_ids.push(id),
                Err(e) => return Err(e),
            }
        }
        Ok(Audit {
            stray_devices: self.stray_devices()?,
            unsettled,
            leaked_thin_ids,
            active_keys,
            usage,
        })
    }
}
