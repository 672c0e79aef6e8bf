//! Per-container network state: the result of the CNI ADD chain (DEL passes it back as
//! `prevResult`, which is how `firewall` and `bridge` know which rules and address to remove)
//! with the published ports (`portmap` removes nothing without them), and the lock that
//! serialises one container's attach and detach across processes.
//!
//! ```text
//! <state_dir>/                  NetworkConfig::state_dir (default /run/strata/networks)
//! ├── ipam/<network>/           host-local IPAM's leases and lock (the plugin's own format)
//! ├── results/<container>.json  a `Cached` record, format 1, written by rename
//! └── locks/<container>.lock    flock(2)ed during the container's attach or detach
//! ```
//!
//! A lock file is removed by the detach that holds it; a process that was waiting on the
//! removed file notices (its inode is no longer the path's) and takes the lock again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{NetworkError, PortMapping};

const FORMAT: u32 = 1;

/// What `attach` leaves for `detach`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cached {
    pub format: u32,
    pub container_id: String,
    pub network: String,
    pub netns: PathBuf,
    pub port_mappings: Vec<PortMapping>,
    /// The final result of the ADD chain, as the last plugin printed it.
    pub result: Value,
}

impl Cached {
    pub fn new(
        container_id: &str,
        network: &str,
        netns: &Path,
        ports: &[PortMapping],
        result: Value,
    ) -> Cached {
        Cached {
            format: FORMAT,
            container_id: container_id.into(),
            network: network.into(),
            netns: netns.into(),
            port_mappings: ports.to_vec(),
            result,
        }
    }
}

fn result_path(state_dir: &Path, container_id: &str) -> PathBuf {
    state_dir
        .join("results")
        .join(format!("{container_id}.json"))
}

/// The cached record of `container_id`, if it is attached.
pub(crate) fn read(state_dir: &Path, container_id: &str) -> Result<Option<Cached>, NetworkError> {
    let path = result_path(state_dir, container_id);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NetworkError::io("read", &path)(e)),
    };
    let cached: Cached = serde_json::from_slice(&bytes).map_err(|e| {
        NetworkError::io("parse", &path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })?;
    if cached.format != FORMAT {
        return Err(NetworkError::io("parse", &path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "unknown format {} (this strata reads {FORMAT})",
                cached.format
            ),
        )));
    }
    Ok(Some(cached))
}

/// Writes the record atomically (temporary file, then rename).
pub(crate) fn write(state_dir: &Path, cached: &Cached) -> Result<(), NetworkError> {
    let path = result_path(state_dir, &cached.container_id);
    let dir = state_dir.join("results");
    std::fs::create_dir_all(&dir).map_err(NetworkError::io("create directory", &dir))?;
    let tmp = dir.join(format!(".{}.json.tmp", cached.container_id));
    let bytes = serde_json::to_vec_pretty(cached).map_err(|e| {
        NetworkError::io("encode", &path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })?;
    std::fs::write(&tmp, bytes).map_err(NetworkError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(NetworkError::io("rename into place", &path))
}

/// Forgets the record; a missing one is fine.
pub(crate) fn remove(state_dir: &Path, container_id: &str) -> Result<(), NetworkError> {
    let path = result_path(state_dir, container_id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(NetworkError::io("remove", &path)(e))
        }
        _ => Ok(()),
    }
}

/// An exclusive lock on one container's network state, released on drop.
#[derive(Debug)]
pub(crate) struct ContainerLock {
    _file: File,
    path: PathBuf,
}

impl ContainerLock {
    pub fn acquire(state_dir: &Path, container_id: &str) -> Result<ContainerLock, NetworkError> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir).map_err(NetworkError::io("create directory", &dir))?;
        let path = dir.join(format!("{container_id}.lock"));
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(NetworkError::io("open lock", &path))?;
            flock(&file, FlockOperation::LockExclusive)
                .map_err(|e| NetworkError::io("lock", &path)(e.into()))?;
            let held = file.metadata().map_err(NetworkError::io("stat", &path))?;
            match std::fs::metadata(&path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(ContainerLock { _file: file, path });
                }
                // The holder we waited for removed (and maybe someone recreated) the file.
                _ => continue,
            }
        }
    }

    /// Removes the lock file, then releases the lock (for a container being forgotten).
    pub fn remove(self) -> Result<(), NetworkError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(NetworkError::io("remove", &self.path)(e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), "c1").unwrap().is_none());
        let cached = Cached::new(
            "c1",
            "strata",
            Path::new("/run/netns/x"),
            &[],
            serde_json::json!({ "cniVersion": "1.0.0", "ips": [] }),
        );
        write(dir.path(), &cached).unwrap();
        let back = read(dir.path(), "c1").unwrap().unwrap();
        assert_eq!(back.result, cached.result);
        assert_eq!(back.netns, Path::new("/run/netns/x"));
        remove(dir.path(), "c1").unwrap();
        remove(dir.path(), "c1").unwrap();
        assert!(read(dir.path(), "c1").unwrap().is_none());
    }

    #[test]
    fn a_removed_lock_file_does_not_let_two_holders_in() {
        let dir = tempfile::tempdir().unwrap();
        let first = ContainerLock::acquire(dir.path(), "c1").unwrap();
        let d = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let second = ContainerLock::acquire(&d, "c1").unwrap();
            // The waiter holds the lock on the file at the path, not on the removed one.
            let lock_path = d.join("locks/c1.lock");
            assert!(lock_path.exists());
            second.remove().unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        first.remove().unwrap();
        waiter.join().unwrap();
        assert!(!dir.path().join("locks/c1.lock").exists());
    }
}
