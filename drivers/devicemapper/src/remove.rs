//! Removing devices: a key's (`remove`), dead staging areas' (`cleanup_staging`), and
//! finishing removals the kernel deferred.
//!
//! Removing a key:
//! 1. refused (kind Busy) while its filesystem is mounted anywhere but the driver's own mount
//!    point (`mountinfo`: a view, i.e. a bind mount of it, is still mounted);
//! 2. its record is renamed from `devices/<key>.json` to `removing/<thin id>.json` (atomic:
//!    from here on the key does not exist, and a crash leaves a removal to finish, never a
//!    half-removed key), then marked `removing`;
//! 3. the driver's mount is unmounted (if a process still has files open there, it is
//!    detached lazily), the device removed (if the kernel still has it open, the removal is
//!    **deferred**: the kernel removes it on last close), and the thin id deleted;
//! 4. the record is deleted. A deferred removal keeps its record (flagged `deferred`) until a
//!    later pass (`finish_deferred`, run by `cleanup_staging` and on every open) finds the
//!    device gone and deletes the thin id.
//!
//! Every step is idempotent (unmounting what is not mounted, removing an absent device,
//! deleting an absent thin id all succeed), so a removal is finished by simply running it
//! again.
//!
//! What it does not do: decide *whether* a key may go (the store's reference counts do).

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;
use strata_driver_api::Key;

use crate::dm::Removal;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::plan::{plan, Role};
use crate::record::{self, Record, State};
use crate::{blockmount, fault, DmDriver};

impl DmDriver {
    /// Removes `key` (see the module docs). Call with the home lock held.
    pub(crate) fn remove_key(&self, key: &Key) -> Result<()> {
        let kpath = self.layout().key_record(key);
        let Some(mut rec) = record::load(&kpath)? else {
            return Ok(());
        };
        self.devices
            .refuse_if_viewed(&rec, &format!("layer {key}"))?;
        let rpath = self.layout().removing_record(rec.thin_id);
        record::rename(&kpath, &rpath)?;
        fault::point("remove:renamed");
        self.devices
            .persist(&rpath, &mut rec, State::Removing, Some("remove:removing"))?;
        self.finish_removal(&rpath, &mut rec)
    }

    /// Steps 3 and 4 of a removal (see the module docs); idempotent.
    pub(crate) fn finish_removal(&self, rpath: &Path, rec: &mut Record) -> Result<()> {
        match self.devices.teardown(rec, true, Some("remove:unmounted"))? {
            Removal::Deferred => {
                if !rec.deferred {
                    rec.deferred = true;
                    record::store(rpath, rec)?;
                }
                tracing::info!(
                    thin_id = rec.thin_id,
                    "device busy: removal deferred to the kernel"
                );
                return Ok(());
            }
            Removal::Removed | Removal::Absent => {}
        }
        fault::point("remove:device-removed");
        match self.devices.pool.delete(&self.devices.dm, rec.thin_id) {
            Ok(_) => {}
            // The kernel has dropped the device's name but not yet closed its thin (the tail
            // of a deferred removal): wait for the next pass.
            Err(e) if e.errno() == Some(Errno::BUSY) => {
                if !rec.deferred {
                    rec.deferred = true;
                    record::store(rpath, rec)?;
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        fault::point("remove:thin-deleted");
        let _ = std::fs::remove_dir(self.devices.mount_point(rec));
        record::forget(rpath)
    }

    /// Finishes every removal in `removing/`: deferred ones whose device the kernel has
    /// released, and any interrupted by a crash. Returns how many are still deferred.
    pub(crate) fn finish_removals(&self) -> Result<usize> {
        let mut waiting = 0;
        for path in records_in(&self.layout().removing_dir())? {
            let Some(mut rec) = record::load(&path)? else {
                continue;
            };
            if rec.state != State::Removing {
                // Renamed here but not yet marked: the rename is what counts.
                rec.state = State::Removing;
                record::store(&path, &rec)?;
            }
            if rec.deferred {
                if let Some(info) = self.devices.dm.info(&self.devices.name(&rec))? {
                    tracing::debug!(
                        thin_id = rec.thin_id,
                        open = info.open_count,
                        "deferred removal still waiting for the kernel"
                    );
                    waiting += 1;
                    continue;
                }
            }
            self.finish_removal(&path, &mut rec)?;
            if rec.deferred && path.exists() {
                waiting += 1;
            }
        }
        Ok(waiting)
    }

    /// Removes staging areas whose process died, with their devices; finishes deferred
    /// removals. Returns how many staging areas were removed.
    pub(crate) fn cleanup_dead_staging(&self) -> Result<usize> {
        let _lock = self.layout().lock()?;
        let dir = self.layout().staging_dir();
        let mut removed = 0;
        for area in area_names(&dir)? {
            let lock_path = strata_driver_vfs::area::lock_path(&area);
            let _held = match File::open(&lock_path) {
                Ok(f) => match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
                    Ok(()) => Some(f),
                    Err(Errno::WOULDBLOCK) => continue, // alive
                    Err(e) => return Err(Error::io("lock", &lock_path)(e.into())),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io("open", &lock_path)(e)),
            };
            tracing::info!(area = %area.display(), "removing the staging area of a dead process");
            let rpath = Layout::staging_record(&area);
            if let Some(mut rec) = record::load(&rpath)? {
                let seen = self.devices.observe(&rec)?;
                let steps = plan(Role::DeadStaging, rec.state, seen);
                self.devices.execute(&rpath, &mut rec, &steps)?;
            } else {
                blockmount::unmount(&area)?;
            }
            match std::fs::remove_dir(&area) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &area)(e)),
            }
            match std::fs::remove_file(&lock_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &lock_path)(e)),
            }
            removed += 1;
        }
        self.finish_removals()?;
        Ok(removed)
    }
}

/// The `*.json` records in `dir`.
pub fn records_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let p = e.map_err(Error::io("read", dir))?.path();
        if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Every staging area named in `dir` by its lock file, record or directory.
fn area_names(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let e = e.map_err(Error::io("read", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let base = name
            .strip_suffix(".lock")
            .or_else(|| name.strip_suffix(".json"))
            .unwrap_or(&name);
        if base.contains(".json.tmp-") || base.starts_with('.') {
            continue;
        }
        names.insert(dir.join(base));
    }
    Ok(names.into_iter().collect())
}
