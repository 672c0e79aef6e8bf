//! The staging-area protocol shared by the file-based drivers (vfs, overlay), and payload
//! removal that never leaves a half-deleted key visible.
//!
//! ```text
//! <staging dir>/
//! ├── <random>.lock   created first and flock(LOCK_EX)ed for the Staging's whole life
//! └── <random>/       the area, created only once the lock is held and verified
//! ```
//!
//! - **Create**: make the lock file (`O_EXCL`), lock it, check that the path still names the
//!   locked file (a concurrent cleanup may have removed it in between: then start over), and
//!   only then create the area. So a live area always has a locked lock file.
//! - **Commit**: rename the area onto its final place (atomically exchanging it with stale
//!   debris of an earlier crash, which is then deleted), fsync the parent directory, then
//!   remove the lock file while still holding the lock.
//! - **Cleanup**: a lock file that can be locked without waiting belongs to a dead process:
//!   remove its area, then the lock file (still holding the lock). An area without a lock file
//!   is debris too (a crash during cleanup, or a retired payload).
//! - **Retire**: payload is removed by renaming it into the staging directory first (a grave,
//!   `<random>-removed`, without a lock file, so cleanup finishes the job after a crash), then
//!   deleting it; deferred retirement stops after the rename and leaves the deletion to the
//!   next cleanup (the store's trash collector).
//!
//! What it does not do: decide what goes inside an area (the drivers do).

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, RenameFlags, CWD};
use rustix::io::Errno;
use strata_driver_api::{DriverError, Result};

const LOCK_SUFFIX: &str = ".lock";
/// The suffix of a retired payload waiting for deletion.
const GRAVE_SUFFIX: &str = "-removed";

/// The lock file of an area.
pub fn lock_path(area: &Path) -> PathBuf {
    let mut p = area.as_os_str().to_owned();
    p.push(LOCK_SUFFIX);
    PathBuf::from(p)
}

/// 24 random hex digits, the name of a fresh area (with `prefix` before them).
pub fn random_name(prefix: &str) -> Result<String> {
    let mut b = [0u8; 12];
    let mut got = 0;
    while got < b.len() {
        got += rustix::rand::getrandom(&mut b[got..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| DriverError::io("getrandom", "/dev/urandom")(e.into()))?;
    }
    Ok(std::iter::once(prefix.to_owned())
        .chain(b.iter().map(|x| format!("{x:02x}")))
        .collect())
}

/// Picks a fresh area name in `dir` (random, after `prefix`) and takes its lock: the lock
/// file is created exclusively, locked, and checked to still be the one at its path (a
/// concurrent cleanup may remove an unlocked lock file). The area itself is not created.
pub fn lock_fresh(dir: &Path, prefix: &str) -> Result<(PathBuf, File)> {
    for _ in 0..16 {
        let area = dir.join(random_name(prefix)?);
        let lock_path = lock_path(&area);
        let lock = match File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(DriverError::io("create", &lock_path)(e)),
        };
        rustix::fs::flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| DriverError::io("lock", &lock_path)(e.into()))?;
        if !still_named(&lock, &lock_path)? {
            continue; // a cleanup took it between our create and our lock
        }
        return Ok((area, lock));
    }
    Err(DriverError::io("create staging area in", dir)(
        std::io::Error::other("lost the race for a fresh staging name 16 times"),
    ))
}

/// Creates a locked staging area in `staging_dir` (created if missing). Returns the area and
/// the held lock.
pub fn create(staging_dir: &Path) -> Result<(PathBuf, File)> {
    std::fs::create_dir_all(staging_dir).map_err(DriverError::io("create", staging_dir))?;
    let (area, lock) = lock_fresh(staging_dir, "")?;
    std::fs::create_dir(&area).map_err(DriverError::io("create", &area))?;
    Ok((area, lock))
}

/// Whether `path` still names the open file `f`.
pub fn still_named(f: &File, path: &Path) -> Result<bool> {
    let held = f.metadata().map_err(DriverError::io("stat", path))?;
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(m.ino() == held.ino() && m.dev() == held.dev()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DriverError::io("stat", path)(e)),
    }
}

/// Moves the filled `area` to `dest`, replacing stale debris at `dest`, then drops the lock.
pub fn commit(area: &Path, lock: File, dest: &Path) -> Result<()> {
    match rustix::fs::renameat_with(CWD, area, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            tracing::warn!(path = %dest.display(), "replacing stale payload (debris of an interrupted operation)");
            rustix::fs::renameat_with(CWD, area, CWD, dest, RenameFlags::EXCHANGE)
                .map_err(|e| DriverError::io("replace", dest)(e.into()))?;
            // `area` now holds the stale payload; we still hold its lock.
            remove_tree(area)?;
        }
        Err(e) => return Err(DriverError::io("rename into place", dest)(e.into())),
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    let lp = lock_path(area);
    std::fs::remove_file(&lp).map_err(DriverError::io("remove", &lp))?;
    drop(lock);
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(DriverError::io("open", dir))?;
    f.sync_all().map_err(DriverError::io("fsync", dir))
}

/// Removes areas whose creator died (see the module docs). Returns how many were removed.
pub fn cleanup(staging_dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(staging_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(DriverError::io("read", staging_dir)(e)),
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for e in entries {
        names.push(e.map_err(DriverError::io("read", staging_dir))?.path());
    }
    let mut removed = 0;
    for path in names
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(LOCK_SUFFIX))
    {
        let Ok(lock) = File::open(path) else { continue }; // gone meanwhile
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => continue, // alive
            Err(e) => return Err(DriverError::io("lock", path)(e.into())),
        }
        if !still_named(&lock, path)? {
            continue;
        }
        let area = PathBuf::from(
            path.to_string_lossy()
                .trim_end_matches(LOCK_SUFFIX)
                .to_owned(),
        );
        tracing::info!(area = %area.display(), "removing the staging area of a dead process");
        remove_tree(&area)?;
        std::fs::remove_file(path).map_err(DriverError::io("remove", path))?;
        removed += 1;
    }
    for path in names
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(LOCK_SUFFIX))
    {
        if lock_path(path).exists() {
            continue;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                if path.to_string_lossy().ends_with(GRAVE_SUFFIX) {
                    tracing::debug!(grave = %path.display(), "deleting a retired payload");
                } else {
                    tracing::info!(area = %path.display(), "removing an unlocked staging area");
                }
                remove_tree(path)?;
                removed += 1;
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// Removes `payload` (a key's directory) so that it is never seen half-deleted: renamed into
/// `staging_dir` first, then deleted. Missing payload is fine.
pub fn retire(payload: &Path, staging_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(staging_dir).map_err(DriverError::io("create", staging_dir))?;
    let grave = staging_dir.join(format!("{}{GRAVE_SUFFIX}", random_name("")?));
    match std::fs::rename(payload, &grave) {
        Ok(()) => remove_tree(&grave),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io("remove", payload)(e)),
    }
}

/// Renames `payload` into `staging_dir` as a grave and leaves it there: the next [`cleanup`]
/// deletes it (deferred deletion). Missing payload is fine.
pub fn retire_deferred(payload: &Path, staging_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(staging_dir).map_err(DriverError::io("create", staging_dir))?;
    let grave = staging_dir.join(format!("{}{GRAVE_SUFFIX}", random_name("")?));
    match std::fs::rename(payload, &grave) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io("remove", payload)(e)),
    }
}

/// `rm -rf`, which also copes with directories whose mode forbids writing (a non-root user
/// removing a tree with `0555` directories). Missing trees are fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            make_writable(path);
            std::fs::remove_dir_all(path).map_err(DriverError::io("remove", path))
        }
        Err(e) => Err(DriverError::io("remove", path)(e)),
    }
}

/// Adds owner rwx to every directory below `path` (best effort).
fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700),
    );
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            make_writable(&e.path());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn create_commit_and_cleanup_follow_the_protocol() {
        let t = tempfile::tempdir().unwrap();
        let staging = t.path().join("staging");
        let (area, lock) = create(&staging).unwrap();
        assert!(area.is_dir() && lock_path(&area).is_file());
        std::fs::write(area.join("f"), "x").unwrap();

        // A live area survives cleanup, even from this same process (flock is per open file).
        assert_eq!(cleanup(&staging).unwrap(), 0);
        assert!(area.is_dir());

        // Dead: the lock was released without commit. An area without lock file is debris too.
        let (dead, dead_lock) = create(&staging).unwrap();
        drop(dead_lock);
        std::fs::create_dir(staging.join("orphan")).unwrap();
        std::fs::write(staging.join("orphan/f"), "x").unwrap();
        assert_eq!(cleanup(&staging).unwrap(), 2);
        assert!(!dead.exists() && !lock_path(&dead).exists());
        assert!(!staging.join("orphan").exists());
        assert!(area.is_dir(), "the live area is untouched");

        // Commit replaces stale debris at the destination.
        let dest = t.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("stale"), "old").unwrap();
        commit(&area, lock, &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "x");
        assert!(!dest.join("stale").exists());
        assert_eq!(
            std::fs::read_dir(&staging).unwrap().count(),
            0,
            "nothing left in staging"
        );
    }

    #[test]
    fn retire_removes_payload_and_tolerates_missing_and_read_only_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let staging = t.path().join("staging");
        let p = t.path().join("payload");
        std::fs::create_dir_all(p.join("ro")).unwrap();
        std::fs::write(p.join("ro/f"), "x").unwrap();
        std::fs::set_permissions(p.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        retire(&p, &staging).unwrap();
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        retire(&p, &staging).unwrap();
    }
}
