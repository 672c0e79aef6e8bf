//! The CRI's containers in memory: each one's engine container and CRI record (both fixed at
//! create), loaded from the store on first use and kept up to date by this server's own
//! creates and removes, so listing 500 containers reads their live states and nothing else
//! (a created container's with one `stat`: only a start changes it, and a start replaces the
//! state file).
//! A container removed behind the server's back (`strata rm -f`) is dropped when its
//! directory is found gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use strata_engine_containers::Container;

use crate::records::ContainerRecord;
use crate::server::Cri;

#[derive(Debug)]
pub struct Entry {
    pub c: Container<'static>,
    pub rec: ContainerRecord,
    /// Set once the container was seen exited: CRI containers never start again, so its
    /// state needs no more reading.
    pub exited: std::sync::atomic::AtomicBool,
    /// A created container's state with the identity of the state file it was read from:
    /// a created container changes only by a start, which replaces that file.
    seen: Mutex<Option<(FileKey, k8s_cri::v1::ContainerState)>>,
}

/// What tells one version of a file from another: `state.json` is replaced by a rename, so
/// each version has its own inode.
type FileKey = (u64, i64, i64, u64);

impl Entry {
    fn new(c: Container<'static>, rec: ContainerRecord) -> Entry {
        Entry {
            c,
            rec,
            exited: std::sync::atomic::AtomicBool::new(false),
            seen: Mutex::new(None),
        }
    }

    /// The state for listings, or `None` when the container's directory is gone (removed
    /// behind the server's back): one `stat` for a created or exited container.
    pub fn listed_state(&self) -> Option<k8s_cri::v1::ContainerState> {
        use k8s_cri::v1::ContainerState;
        use std::os::unix::fs::MetadataExt;
        use std::sync::atomic::Ordering;
        let meta = match std::fs::metadata(self.c.paths.state()) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => return Some(ContainerState::ContainerUnknown),
        };
        if self.exited.load(Ordering::Relaxed) {
            return Some(ContainerState::ContainerExited);
        }
        let key = (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.size());
        let seen = *self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, st)) = seen {
            if k == key {
                return Some(st);
            }
        }
        let st = self.state();
        if st == ContainerState::ContainerCreated {
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, st));
        }
        Some(st)
    }

    /// The container's state as the CRI names it.
    pub fn state(&self) -> k8s_cri::v1::ContainerState {
        use std::sync::atomic::Ordering;
        if self.exited.load(Ordering::Relaxed) {
            return k8s_cri::v1::ContainerState::ContainerExited;
        }
        let st = crate::container::cri_state(&self.c);
        if st == k8s_cri::v1::ContainerState::ContainerExited {
            self.exited.store(true, Ordering::Relaxed);
        }
        st
    }
}

#[derive(Debug, Default)]
pub struct Index {
    map: Mutex<Option<HashMap<String, Arc<Entry>>>>,
}

impl Index {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<String, Arc<Entry>>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every CRI container.
    pub fn all(&self, cri: &Cri) -> Result<Vec<Arc<Entry>>> {
        let mut g = self.lock();
        if g.is_none() {
            let mut m = HashMap::new();
            for c in cri.engine.containers()? {
                if let Some(rec) = crate::container::record(&c) {
                    m.insert(c.id().to_owned(), Arc::new(Entry::new(c, rec)));
                }
            }
            *g = Some(m);
        }
        let m = g.get_or_insert_with(HashMap::new);
        m.retain(|_, e| e.c.paths.dir.exists());
        Ok(m.values().cloned().collect())
    }

    /// Every CRI container as last known, without checking that each still exists (for
    /// [`Entry::listed_state`], which finds out; [`Index::forget_gone`] then drops those).
    pub fn known(&self, cri: &Cri) -> Result<Vec<Arc<Entry>>> {
        {
            let g = self.lock();
            if let Some(m) = g.as_ref() {
                return Ok(m.values().cloned().collect());
            }
        }
        self.all(cri)
    }

    /// Drops containers found gone.
    pub fn forget_gone(&self, ids: &[String]) {
        if let Some(m) = self.lock().as_mut() {
            for id in ids {
                m.remove(id);
            }
        }
    }

    /// The container with this full ID, if the index is loaded and has it.
    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.lock().as_ref().and_then(|m| m.get(id).cloned())
    }

    pub fn insert(&self, c: Container<'static>, rec: ContainerRecord) {
        if let Some(m) = self.lock().as_mut() {
            m.insert(c.id().to_owned(), Arc::new(Entry::new(c, rec)));
        }
    }

    pub fn remove(&self, id: &str) {
        if let Some(m) = self.lock().as_mut() {
            m.remove(id);
        }
    }
}
