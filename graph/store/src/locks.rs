//! Cross-process locks built on `flock(2)`: released by the kernel when a process dies, so a
//! `kill -9` never leaves a lock held.
//!
//! - The **gc lock** is taken shared by every operation that creates or removes payload, and
//!   exclusive by garbage collection, so gc never sees a payload whose metadata row is about to
//!   be committed.
//! - A **layer lock** per chain ID serialises imports of the same layer: the second importer
//!   waits, then finds the layer committed and reuses it (one extraction per layer).
//!
//! Lock files are never deleted while the store is in use; gc removes layer lock files while it
//! holds the gc lock exclusively (no importer can hold or be opening one then).

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{Result, StoreError};

/// A held lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io("open lock", path))
}

/// Blocks until the lock at `path` is held, shared or exclusive.
pub fn acquire(path: &Path, exclusive: bool) -> Result<Lock> {
    let file = open(path)?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, op).map_err(|e| StoreError::Io {
        op: "lock",
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(Lock { _file: file })
}

/// Takes the lock at `path` exclusively if nobody holds it; `None` if somebody does.
pub fn try_acquire(path: &Path) -> Result<Option<Lock>> {
    let file = open(path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(Lock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(StoreError::Io {
            op: "lock",
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}
