//! Deferred deletion (the trash): removing a container or an image costs a few renames and no
//! wait for the disk, whatever its size; the bytes are deleted afterwards by a collector thread
//! of the same process.
//!
//! ```text
//! <root>/trash/<container-id>.container  a removed container whose payload is still in place
//! <root>/trash/<name>-<random>           front-end directories of removed containers
//! <runroot>/trash/<name>-<random>        their volatile directories (the runroot may be another
//!                                        filesystem: each tree is renamed within its own)
//! <root>/trash/.graves-<random>          payload was retired into graves: the collector runs
//!                                        the driver's cleanup (made after the renames)
//! <driver staging>/<random>-removed      retired layer payload (the driver's graves)
//! ```
//!
//! - Only a store told to [`Store::defer_deletion`](crate::Store::defer_deletion) defers (the
//!   plugin host, so every front end and the CRI server); the `storage` plumbing deletes at once.
//! - **Containers** (the CRI's hot path): the row is deleted with an unsynced commit
//!   ([`Meta::delete_unsynced`]) and a `.container` note is left; nothing else happens before
//!   the call returns. The collector first makes the deletions durable ([`Meta::sync`], one
//!   fsync for every removal since the last pass), then, for each note whose row is gone,
//!   retires the payload and renames the directories into the trash, and deletes them. A
//!   power loss before that sync can only bring a container back whole (its payload was not
//!   touched); a note whose row exists again is dropped.
//! - **Images**: rows go with a synced commit (as before), then the layers are retired at once
//!   (renamed into graves) and deleted by the collector.
//! - Nothing in the trash is live: no row refers to it (fsck and every listing read rows). A
//!   kill leaves notes, marked graves or trash directories, and the next process that opens
//!   the store in deferred mode and finds its trash directories not empty (one `readdir`
//!   each) collects them; `gc` collects them too. A kill between a
//!   container's row deletion and its note (microseconds) leaves payload without a row: garbage
//!   that `gc` removes, as a kill during a create can; so does a kill between a retire and its
//!   mark (an unmarked grave).
//! - Dropping the store waits for the collector, so a short command has deleted everything it
//!   removed (durably) before it exits; a long-running server answers first.
//! - Collectors of several processes may run at once: every step tolerates another one having
//!   done it first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use strata_driver_api::Driver;
use strata_types::ContainerId;

use crate::blobs::random_hex;
use crate::error::{Result, StoreError};
use crate::meta::Meta;
use crate::paths::{container_key, Paths};

/// The suffix of a removed container's note.
const NOTE_SUFFIX: &str = ".container";
/// The prefix of a mark left after payload was retired into the driver's staging directory
/// (graves) and removed by the collector once the driver's cleanup deleted them: so that
/// graves a kill left are found by the next process without scanning the driver at every
/// start. Each mark has its own name, so a collector removes only marks it has served.
const GRAVES_MARK: &str = ".graves-";

/// What the collector works with (shared with its thread).
struct Parts {
    paths: Paths,
    meta: Arc<Meta>,
    driver: Arc<dyn Driver>,
}

pub(crate) struct Trash {
    parts: Arc<Parts>,
    deferred: AtomicBool,
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Trash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trash")
            .field("deferred", &self.deferred.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Something was put in the trash since the collector last started a pass.
    pending: bool,
    /// The store is being dropped: finish the pending work, then end.
    stop: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Trash {
    pub(crate) fn new(paths: Paths, meta: Arc<Meta>, driver: Arc<dyn Driver>) -> Trash {
        Trash {
            parts: Arc::new(Parts {
                paths,
                meta,
                driver,
            }),
            deferred: AtomicBool::new(false),
            shared: Arc::default(),
            worker: Mutex::new(None),
        }
    }

    pub(crate) fn deferred(&self) -> bool {
        self.deferred.load(Ordering::Relaxed)
    }

    pub(crate) fn set_deferred(&self) {
        self.deferred.store(true, Ordering::Relaxed);
    }

    /// Leaves the note that container `id` was removed (its row is deleted, unsynced): the
    /// collector deletes its payload once the deletion is durable.
    pub(crate) fn note_container(&self, id: &ContainerId) -> Result<()> {
        self.parts.create_in_trash(&self.parts.note(id))
    }

    /// Notes that payload was retired into graves (see [`GRAVES_MARK`]). Call it after
    /// retiring, before waking the collector.
    pub(crate) fn mark_graves(&self) -> Result<()> {
        self.parts.mark_graves().map(drop)
    }

    /// Whether anything waits for a collector (notes, marks, trash directories).
    pub(crate) fn has_leftovers(&self) -> bool {
        self.parts.dirs().iter().any(|d| {
            std::fs::read_dir(d)
                .map(|mut e| e.next().is_some())
                .unwrap_or(false)
        })
    }

    /// Whether container `id` was removed and its payload awaits the collector.
    pub(crate) fn noted(&self, id: &ContainerId) -> bool {
        self.parts.note(id).exists()
    }

    /// Asks the collector for a pass (starting it on first use).
    pub(crate) fn wake(&self) {
        self.shared.lock().pending = true;
        self.shared.changed.notify_all();
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if worker.is_none() {
            let shared = Arc::clone(&self.shared);
            let parts = Arc::clone(&self.parts);
            let spawned = std::thread::Builder::new()
                .name("strata-trash".into())
                .spawn(move || collector(&shared, &parts));
            match spawned {
                Ok(h) => *worker = Some(h),
                Err(e) => {
                    // No thread: collect now, in the caller's time.
                    tracing::warn!("cannot start the trash collector ({e}); deleting at once");
                    drop(worker);
                    self.shared.lock().pending = false;
                    if let Err(e) = self.parts.collect(false) {
                        tracing::warn!("emptying the trash: {e}");
                    }
                }
            }
        }
    }

    /// Empties the trash in the caller's thread (gc).
    pub(crate) fn collect_now(&self) -> Result<usize> {
        self.parts.collect(true)
    }
}

impl Drop for Trash {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(h) = self
            .worker
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

fn collector(shared: &Shared, parts: &Parts) {
    loop {
        {
            let mut st = shared.lock();
            while !st.pending && !st.stop {
                st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if !st.pending {
                return; // stopping with nothing left
            }
            st.pending = false;
        }
        let started = std::time::Instant::now();
        match parts.collect(false) {
            Ok(n) => tracing::debug!(removed = n, took = ?started.elapsed(), "trash emptied"),
            Err(e) => tracing::warn!("emptying the trash: {e}"),
        }
    }
}

impl Parts {
    fn dirs(&self) -> [PathBuf; 2] {
        [self.paths.trash(), self.paths.runtrash()]
    }

    /// The note of a removed container.
    fn note(&self, id: &ContainerId) -> PathBuf {
        self.paths
            .trash()
            .join(format!("{}{NOTE_SUFFIX}", id.as_str()))
    }

    /// Creates the empty file `path` in the trash directory (made on first use).
    fn create_in_trash(&self, path: &Path) -> Result<()> {
        let create = || std::fs::File::create(path).map(drop);
        match create() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = self.paths.trash();
                std::fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
                create().map_err(StoreError::io("create", path))
            }
            other => other.map_err(StoreError::io("create", path)),
        }
    }

    fn mark_graves(&self) -> Result<PathBuf> {
        let mark = self
            .paths
            .trash()
            .join(format!("{GRAVES_MARK}{}", random_hex(8)));
        self.create_in_trash(&mark)?;
        Ok(mark)
    }

    /// One pass: removed containers' payload (once their deletion is durable), then the trash
    /// directories, then, when payload was retired (or `all`, for gc), the driver's graves and
    /// dead staging areas. Returns what it deleted.
    fn collect(&self, all: bool) -> Result<usize> {
        let mut notes = Vec::new();
        let mut marks = Vec::new();
        for e in crate::gc::read_dir(&self.paths.trash())? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(NOTE_SUFFIX) {
                notes.push(e.path());
            } else if name.starts_with(GRAVES_MARK) {
                marks.push(e.path());
            }
        }
        let mut retired = false;
        if !notes.is_empty() {
            self.meta.sync()?;
            for note in &notes {
                let id = note
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(NOTE_SUFFIX))
                    .and_then(ContainerId::parse);
                if let Some(id) = id {
                    retired |= self.retire_container(&id)?;
                }
                match std::fs::remove_file(note) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StoreError::io("remove", note)(e))
                    }
                    _ => {}
                }
            }
            if retired {
                // Should this pass be killed while deleting, the next process finds the mark.
                // No room for it (a full disk): the deletion below is all there is.
                if let Ok(m) = self.mark_graves() {
                    marks.push(m);
                }
            }
        }
        let mut n = notes.len() + self.empty_dirs()?;
        if all || retired || !marks.is_empty() {
            n += self.driver.cleanup_staging()?;
            // Only the marks served: one made meanwhile stays for the next pass.
            for m in &marks {
                match std::fs::remove_file(m) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StoreError::io("remove", m)(e))
                    }
                    _ => {}
                }
            }
        }
        if n > 0 {
            // A removal on a full disk may have used the space reserve: the space freed
            // here makes it again.
            self.meta.ensure_reserve();
        }
        Ok(n)
    }

    /// Moves a removed container's payload and directories into the trash, unless its row
    /// is there (a power loss undid the deletion: the container is whole again). Returns
    /// whether it retired payload.
    fn retire_container(&self, id: &ContainerId) -> Result<bool> {
        let live = self.meta.read(|tx| {
            tx.sql()
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM containers WHERE id = ?1)",
                    [id.as_str()],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(tx.err())
        })?;
        if live {
            tracing::warn!(container = %id.short(), "a removal was undone (power loss?): kept");
            return Ok(false);
        }
        self.driver.retire(&container_key(id))?;
        self.put(&self.paths.container_dir(id), false)?;
        self.put(&self.paths.container_rundir(id), true)?;
        Ok(true)
    }

    /// Renames `path`, a directory of the store's root (or of its runroot, `volatile`), into
    /// the trash of that filesystem. A missing path is fine.
    fn put(&self, path: &Path, volatile: bool) -> Result<()> {
        let dir = if volatile {
            self.paths.runtrash()
        } else {
            self.paths.trash()
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = dir.join(format!("{name}-{}", random_hex(8)));
        let moved = std::fs::rename(path, &dest).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound && path.exists() {
                // The trash directory is made on first use.
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::rename(path, &dest))
            } else {
                Err(e)
            }
        });
        match moved {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => Ok(()),
            // Mounted from elsewhere, or no room for the trash directory (a full disk):
            // delete it where it is.
            Err(_) => match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(StoreError::io("remove", path)(e))
                }
                _ => Ok(()),
            },
        }
    }

    fn empty_dirs(&self) -> Result<usize> {
        let mut n = 0;
        for dir in self.dirs() {
            for entry in crate::gc::read_dir(&dir)? {
                let p = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(NOTE_SUFFIX) || name.starts_with(GRAVES_MARK) {
                    continue; // a removal not yet durable, or a mark of graves
                }
                let gone = match entry.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                    _ => std::fs::remove_file(&p),
                };
                match gone {
                    Ok(()) => n += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("empty the trash", &p)(e)),
                }
            }
        }
        Ok(n)
    }
}
