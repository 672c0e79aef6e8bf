//! Staging areas that are subvolumes, kept beside the keys, with the same lock protocol as the
//! file-based drivers (`strata_driver_vfs::area`): a crash leaves only debris that [`cleanup`]
//! removes, never a half-visible key.
//!
//! ```text
//! <subvolumes dir>/
//! ├── <key>/              a key's subvolume
//! ├── +<random>.lock      created first and flock(LOCK_EX)ed for the Staging's whole life
//! ├── +<random>/          the area: a subvolume, made only once the lock is held and verified
//! └── +<random>-removed/  a key being deleted (no lock file)
//! ```
//!
//! Areas live in the same directory as the keys, under names no key can have (`+` is not a key
//! character), because a read-only subvolume can be renamed within its directory but not
//! moved to another one (that would rewrite its `..` entry: `EROFS`).
//!
//! - **Create**: make the lock file (`O_EXCL`), lock it, check that the path still names the
//!   locked file (a concurrent cleanup may have removed it in between: then start over), then
//!   let the caller make the subvolume (empty, or a snapshot of the parent).
//! - **Commit**: for a layer, set the read-only flag; rename the area to its key (atomically
//!   exchanging it with stale debris of an earlier crash, which is then deleted), fsync the
//!   directory, and remove the lock file while still holding the lock.
//! - **Cleanup**: a lock file that can be locked without waiting belongs to a dead process:
//!   delete its area, then the lock file. An area without a lock file is debris too.
//! - **Retire**: a key is renamed to `+<random>-removed` (gone in one atomic step), then deleted
//!   (at once, or by the next cleanup when the store defers deletion).
//!
//! What it does not do: decide what goes into an area (the driver does).

use std::ffi::OsStr;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, RenameFlags, CWD};
use rustix::io::Errno;
use strata_driver_api::{DriverError, Result};
use strata_driver_vfs::area::{self, lock_path, still_named};

use crate::{remove, subvol};

/// First character of every area, lock and grave name: never part of a key.
const PREFIX: char = '+';
const LOCK_SUFFIX: &str = ".lock";
const GRAVE_SUFFIX: &str = "-removed";

/// Whether `name` (in the subvolumes directory) belongs to this module rather than to a key.
pub fn is_area_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&(PREFIX as u8))
}

fn random_name() -> Result<String> {
    area::random_name(&PREFIX.to_string())
}

/// Creates a locked staging area in `dir`: `make` is called with the area's path and must
/// create the subvolume there. Returns the area and the held lock. If `make` fails, whatever
/// it left is deleted and nothing remains.
pub fn create(dir: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<(PathBuf, File)> {
    let (area, lock) = area::lock_fresh(dir, &PREFIX.to_string())?;
    if let Err(e) = make(&area) {
        if let Err(cleanup) = remove::delete(&area) {
            tracing::warn!(area = %area.display(), error = %cleanup, "cannot delete a failed staging area; cleanup will retry");
        }
        let _ = std::fs::remove_file(area::lock_path(&area));
        return Err(e);
    }
    Ok((area, lock))
}

/// Refuses to commit an area that this module did not hand out for `dir`.
pub fn check_own(area: &Path, dir: &Path) -> Result<()> {
    let ours = area.parent() == Some(dir)
        && area
            .file_name()
            .is_some_and(|n| is_area_name(n) && !n.to_string_lossy().ends_with(GRAVE_SUFFIX));
    if ours {
        return Ok(());
    }
    Err(DriverError::io("commit", area)(std::io::Error::new(
        ErrorKind::InvalidInput,
        format!(
            "not a staging area of this driver (expected a {PREFIX}name in {})",
            dir.display()
        ),
    )))
}

/// What a committed key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A layer: the subvolume is made read-only before it is renamed into place.
    ReadOnly,
    /// A container's read-write layer.
    Writable,
}

/// Publishes the subvolume `area` as `dest` (in the same directory) with `access`, replacing
/// stale debris at `dest`; then drops the lock.
pub fn commit(area: &Path, lock: File, dest: &Path, access: Access) -> Result<()> {
    if access == Access::ReadOnly {
        subvol::set_read_only(area, true)?;
    }
    match rustix::fs::renameat_with(CWD, area, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            tracing::warn!(path = %dest.display(), "replacing stale payload (debris of an interrupted operation)");
            rustix::fs::renameat_with(CWD, area, CWD, dest, RenameFlags::EXCHANGE)
                .map_err(|e| DriverError::io("replace", dest)(e.into()))?;
            // `area` now holds the stale payload; we still hold its lock.
            remove::delete(area)?;
        }
        Err(e) => return Err(DriverError::io("rename into place", dest)(e.into())),
    }
    if let Some(parent) = dest.parent() {
        let f = File::open(parent).map_err(DriverError::io("open", parent))?;
        f.sync_all().map_err(DriverError::io("fsync", parent))?;
    }
    let lp = lock_path(area);
    std::fs::remove_file(&lp).map_err(DriverError::io("remove", &lp))?;
    drop(lock);
    Ok(())
}

/// Deletes areas whose creator died and keys whose deletion was interrupted. Returns how many.
pub fn cleanup(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(DriverError::io("read", dir)(e)),
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for e in entries {
        let e = e.map_err(DriverError::io("read", dir))?;
        if is_area_name(&e.file_name()) {
            names.push(e.path());
        }
    }
    let is_lock = |p: &PathBuf| p.to_string_lossy().ends_with(LOCK_SUFFIX);
    let mut removed = 0;
    for path in names.iter().filter(|p| is_lock(p)) {
        let Ok(lock) = File::open(path) else { continue }; // gone meanwhile
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => continue, // alive
            Err(e) => return Err(DriverError::io("lock", path)(e.into())),
        }
        if !still_named(&lock, path)? {
            continue;
        }
        let area = PathBuf::from(path.to_string_lossy().trim_end_matches(LOCK_SUFFIX));
        tracing::info!(area = %area.display(), "deleting the staging area of a dead process");
        remove::delete(&area)?;
        std::fs::remove_file(path).map_err(DriverError::io("remove", path))?;
        removed += 1;
    }
    for path in names.iter().filter(|p| !is_lock(p)) {
        if lock_path(path).exists() {
            continue;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                if path.to_string_lossy().ends_with(GRAVE_SUFFIX) {
                    tracing::debug!(grave = %path.display(), "deleting a retired subvolume");
                } else {
                    tracing::info!(area = %path.display(), "deleting an unlocked staging area");
                }
                remove::delete(path)?;
                removed += 1;
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// Removes the key at `payload` (in `dir`): renamed out of the key namespace in one atomic
/// step, then deleted. A missing key is fine.
pub fn retire(payload: &Path, dir: &Path) -> Result<()> {
    let grave = dir.join(format!("{}{GRAVE_SUFFIX}", random_name()?));
    match std::fs::rename(payload, &grave) {
        Ok(()) => remove::delete(&grave),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io("remove", payload)(e)),
    }
}

/// Renames `payload` to a grave and leaves it for the next [`cleanup`] (deferred deletion).
pub fn retire_deferred(payload: &Path, dir: &Path) -> Result<()> {
    let grave = dir.join(format!("{}{GRAVE_SUFFIX}", random_name()?));
    match std::fs::rename(payload, &grave) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io("remove", payload)(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn area_names_can_never_be_keys() {
        let name = random_name().unwrap();
        assert!(is_area_name(OsStr::new(&name)), "{name}");
        assert!(strata_driver_api::Key::new(name).is_err());
        assert!(!is_area_name(OsStr::new("abc")));
        let dir = Path::new("/s/subvolumes");
        assert!(check_own(&dir.join("+0a1b"), dir).is_ok());
        for bad in [
            "/s/subvolumes/key",
            "/s/subvolumes/+0a-removed",
            "/elsewhere/+0a",
        ] {
            assert!(check_own(Path::new(bad), dir).is_err(), "{bad}");
        }
    }
}
