//! Device records: the small JSON file that says, for one thin device, which thin id it is,
//! what it was snapshotted from, where it is mounted while active, and which state of its life
//! it is in. Every state change is written (to a temporary file, fsynced, renamed over the
//! record, directory fsynced) *before* the step it announces, so that after a crash the record
//! says what may be half done and recovery (`plan`) knows what to undo or finish.
//!
//! ```text
//!   creating ──► created ──► activating ──► active ──► deactivating ──► created
//!      │            │             │            │             │
//!      └────────────┴─────────────┴─────┬──────┴─────────────┘
//!                                       ▼
//!                                    removing ──► (record deleted)
//! ```
//!
//! - `creating`: the thin id is allocated; `create_thin`/`create_snap` may or may not have
//!   reached the pool.
//! - `created`: the thin exists in the pool; no device-mapper device, nothing mounted.
//! - `activating`: the device and its mount may be partly set up.
//! - `active`: the device exists and its filesystem is mounted at `mount`.
//! - `deactivating`: the unmount and device removal may be partly done.
//! - `removing`: the device is being torn down and its thin id deleted; `deferred` says the
//!   kernel still had the device open, so it will remove it on last close and the thin id is
//!   deleted on a later pass.
//!
//! What it does not do: carry out any step (see `lifecycle`), or decide recovery (see `plan`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::options::FsType;

/// Version of the record format.
pub const RECORD_VERSION: u32 = 1;

/// The life of a thin device (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Creating,
    Created,
    Activating,
    Active,
    Deactivating,
    Removing,
}

impl State {
    /// Whether the driver may move a device from `self` to `next` (the arrows above).
    pub fn may_become(self, next: State) -> bool {
        use State::*;
        matches!(
            (self, next),
            (Creating, Created)
                | (Created, Activating)
                | (Activating, Active)
                | (Active, Deactivating)
                | (Deactivating, Created)
                | (_, Removing)
        ) && self != Removing
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Created => "created",
            State::Activating => "activating",
            State::Active => "active",
            State::Deactivating => "deactivating",
            State::Removing => "removing",
        }
    }
}

/// One thin device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub version: u32,
    pub thin_id: u32,
    /// The thin id this device is a snapshot of (`None` for the base device).
    pub origin: Option<u32>,
    /// Virtual size in 512-byte sectors.
    pub sectors: u64,
    pub fs: FsType,
    pub state: State,
    /// Mounted read-write (staging areas, containers, the base while it is formatted) or
    /// read-only (committed layers).
    pub writable: bool,
    /// Where the filesystem is mounted while active, relative to the driver's home.
    pub mount: PathBuf,
    /// The base device only: its filesystem is complete.
    #[serde(default)]
    pub formatted: bool,
    /// Removal is waiting for the kernel to release the device.
    #[serde(default)]
    pub deferred: bool,
}

impl Record {
    /// A record in state `creating`.
    pub fn new(
        thin_id: u32,
        origin: Option<u32>,
        sectors: u64,
        fs: FsType,
        writable: bool,
        mount: PathBuf,
    ) -> Record {
        Record {
            version: RECORD_VERSION,
            thin_id,
            origin,
            sectors,
            fs,
            state: State::Creating,
            writable,
            mount,
            formatted: false,
            deferred: false,
        }
    }

    /// Moves to `next`, refusing an arrow the state machine does not have.
    pub fn advance(&mut self, next: State, path: &Path) -> Result<()> {
        if !self.state.may_become(next) {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "thin device {} cannot go from {} to {}",
                    self.thin_id,
                    self.state.as_str(),
                    next.as_str()
                ),
            });
        }
        self.state = next;
        Ok(())
    }
}

/// Reads a record. `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Record>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    let rec: Record = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a device record: {e}"),
    })?;
    if rec.version != RECORD_VERSION {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "record version {} (this build reads {RECORD_VERSION})",
                rec.version
            ),
        });
    }
    Ok(Some(rec))
}

/// Writes `rec` to `path` atomically and durably.
pub fn store(path: &Path, rec: &Record) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let json = serde_json::to_vec_pretty(rec).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot encode record: {e}"),
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(&json).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(Error::io("rename into place", path))?;
    sync_dir(dir)
}

/// Moves a record to another name (atomic; the destination is replaced), durably.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(Error::io("rename", from))?;
    if let Some(d) = to.parent() {
        sync_dir(d)?;
    }
    match from.parent() {
        Some(d) if Some(d) != to.parent() => sync_dir(d),
        _ => Ok(()),
    }
}

/// Deletes a record, durably. A missing record is fine.
pub fn forget(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("remove", path)(e)),
    }
    match path.parent() {
        Some(d) => sync_dir(d),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(Error::io("open", dir))?;
    f.sync_all().map_err(Error::io("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    const ALL: [State; 6] = [
        Creating,
        Created,
        Activating,
        Active,
        Deactivating,
        Removing,
    ];

    #[test]
    fn only_the_drawn_arrows_are_allowed() {
        let allowed: Vec<(State, State)> = ALL
            .iter()
            .flat_map(|a| ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.may_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Creating, Created),
                (Creating, Removing),
                (Created, Activating),
                (Created, Removing),
                (Activating, Active),
                (Activating, Removing),
                (Active, Deactivating),
                (Active, Removing),
                (Deactivating, Created),
                (Deactivating, Removing),
            ]
        );
    }

    #[test]
    fn advance_refuses_a_skipped_step_and_says_which() {
        let mut r = Record::new(7, Some(1), 2048, FsType::Ext4, true, "mnt/k".into());
        let e = r
            .advance(Active, Path::new("/h/devices/k.json"))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("thin device 7 cannot go from creating to active"),
            "{e}"
        );
        assert_eq!(r.state, Creating, "a refused step changes nothing");
        r.advance(Created, Path::new("x")).unwrap();
        r.advance(Activating, Path::new("x")).unwrap();
        assert_eq!(r.state, Activating);
    }

    #[test]
    fn records_round_trip_atomically_and_bad_ones_are_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("k.json");
        assert_eq!(load(&p).unwrap(), None);
        let mut r = Record::new(3, None, 1 << 21, FsType::Xfs, false, "mnt/k".into());
        r.formatted = true;
        store(&p, &r).unwrap();
        assert_eq!(load(&p).unwrap(), Some(r.clone()));
        r.state = Created;
        store(&p, &r).unwrap();
        assert_eq!(load(&p).unwrap().unwrap().state, Created);
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k.json"], "no temporary file is left behind");

        let q = t.path().join("moved.json");
        rename(&p, &q).unwrap();
        assert!(!p.exists() && load(&q).unwrap().is_some());
        forget(&q).unwrap();
        forget(&q).unwrap();
        assert!(!q.exists());

        std::fs::write(&p, "{\"thin_id\": 1}").unwrap();
        assert!(matches!(load(&p), Err(Error::Corrupt { .. })));
        let mut future = serde_json::to_value(&r).unwrap();
        future["version"] = 99.into();
        std::fs::write(&p, future.to_string()).unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.to_string().contains("record version 99"), "{e}");
    }
}
