//! The metastore: every name, parent link, size and reference lives here, in one SQLite database
//! in WAL mode shared by every process that opens the store.
//!
//! Why SQLite: it gives multi-process ACID transactions with crash safety (a `kill -9` at any
//! moment rolls back to the last committed transaction on the next open), concurrent readers
//! during a write, and row-level updates, which is exactly what containers/storage's
//! rewrite-whole-JSON-files-under-flock model lacks.
//!
//! Locking rules are types: functions that read take a [`ReadTxn`], functions that change
//! metadata take a [`WriteTxn`] (begun `IMMEDIATE`, so it holds SQLite's write lock from its
//! first statement and can never deadlock upgrading). A `WriteTxn` derefs to a `ReadTxn`.
//!
//! Schema (format version 3, kept in `PRAGMA user_version`; version 1 lacked `containers.id_map`,
//! version 2 the build cache; both are upgraded in place on open):
//! ```text
//! meta(key PK, value)                              driver name, created time
//! layers(id PK = chain ID, parent -> layers, diff_id, blob_digest?, blob_size?,
//!        compression?, size = uncompressed tar bytes, created)
//! images(id PK = config digest, top_layer -> layers?, manifest_digest, created)
//! image_names(name PK, image -> images ON DELETE CASCADE)
//! containers(id PK, name UNIQUE, image -> images, parent_layer -> layers?, created, metadata JSON,
//!            id_map JSON?)
//! build_cache(key PK, image -> images ON DELETE CASCADE, created)   build steps' results
//! ```
//! Invariant: a row exists only while its payload (driver key, tar-split file, blobs) exists.
//! Payload is written before the row is inserted and removed after the row is deleted, so a crash
//! can leave payload without a row (garbage, removed by `gc`) but never a row without payload.
//! Payload is made durable (fsync of its parent directory) before its row commits. Deletions
//! commit synced (`synchronous=FULL`) before payload goes; transactions that only add rows
//! commit with `NORMAL` ([`Meta::write_additive`]), so a power loss can at worst drop the
//! newest additions, which again leaves only garbage.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Result, StoreError};

/// WAL size (about 64 pages) past which a commit checkpoints and truncates the WAL (see
/// [`Meta::open`]).
const WAL_TRUNCATE_BYTES: u64 = 64 * (4096 + 24);

/// Space the store keeps in a `reserve` file beside the database, released when a deletion
/// finds the disk full: removing a container or an image must be possible exactly when the
/// disk is full, and SQLite needs a few free pages to record a deletion.
const RESERVE_BYTES: u64 = 1 << 20;

/// The schema version this code reads and writes.
pub const FORMAT_VERSION: i64 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    id          TEXT PRIMARY KEY,
    parent      TEXT REFERENCES layers(id) DEFERRABLE INITIALLY DEFERRED,
    diff_id     TEXT NOT NULL,
    blob_digest TEXT,
    blob_size   INTEGER,
    compression TEXT,
    size        INTEGER NOT NULL,
    created     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);
CREATE TABLE IF NOT EXISTS images (
    id              TEXT PRIMARY KEY,
    top_layer       TEXT REFERENCES layers(id) DEFERRABLE INITIALLY DEFERRED,
    manifest_digest TEXT NOT NULL,
    created         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_names (
    name  TEXT PRIMARY KEY,
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX IF NOT EXISTS image_names_image ON image_names(image);
CREATE TABLE IF NOT EXISTS containers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    image        TEXT NOT NULL REFERENCES images(id) DEFERRABLE INITIALLY DEFERRED,
    parent_layer TEXT REFERENCES layers(id) DEFERRABLE INITIALLY DEFERRED,
    created      INTEGER NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}',
    id_map       TEXT
);
CREATE TABLE IF NOT EXISTS build_cache (
    key     TEXT PRIMARY KEY,
    image   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image);
"#;

/// The metastore connection. One per process (per `Store`); SQLite coordinates processes.
#[derive(Debug)]
pub struct Meta {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A read transaction: a consistent snapshot of the metadata.
#[derive(Debug)]
pub struct ReadTxn<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
}

/// A write transaction: holds the store-wide metadata write lock until it ends. Keep it short:
/// never extract or copy payload while holding one.
#[derive(Debug)]
pub struct WriteTxn<'a> {
    read: ReadTxn<'a>,
}

impl<'a> Deref for WriteTxn<'a> {
    type Target = ReadTxn<'a>;
    fn deref(&self) -> &ReadTxn<'a> {
        &self.read
    }
}

impl<'a> ReadTxn<'a> {
    /// The underlying SQL transaction, for the store's query modules.
    pub(crate) fn sql(&self) -> &rusqlite::Transaction<'a> {
        &self.tx
    }

    /// Maps a database error to a store error naming the database file.
    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            path: self.path.to_owned(),
            source,
        }
    }
}

impl Meta {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// Several processes may open a fresh store at once. Switching to WAL and creating the
    /// schema need SQLite's exclusive lock, and SQLite fails such lock upgrades at once rather
    /// than waiting, so that setup runs under the exclusive `flock` at `init_lock`. A store
    /// that is already set up (the common case) is opened without taking it.
    pub fn open(path: &Path, init_lock: &Path) -> Result<Meta> {
        let err = |source| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        // Many processes share the store: wait for the write lock rather than fail.
        conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
        // Each CLI command is a short-lived process. By default the last connection to close
        // checkpoints the WAL into the database and deletes it (two fsyncs, and the next
        // process recreates and fsyncs it again). Leave the WAL in place instead.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(err)?;
        // The first connection of a process rebuilds the WAL index from the WAL file, and
        // that forgets how much of it was already checkpointed: with SQLite's automatic
        // (passive) checkpoints the WAL then never restarts, and every commit past the
        // threshold checkpoints the whole WAL again (two more fsyncs each time). So automatic
        // checkpoints are off, and a commit that leaves the WAL past WAL_TRUNCATE_BYTES
        // checkpoints and truncates it (see `write_with`); the next processes start empty.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(err)?;
        conn.pragma_update(None, "journal_size_limit", 4 << 20)
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let version = user_version(&conn).map_err(err)?;
        let version = if version == FORMAT_VERSION {
            version // WAL mode and the schema persist in the file: nothing to set up
        } else {
            let _init = crate::locks::acquire(init_lock, true)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(err)?;
            user_version(&conn).map_err(err)?
        };
        if version > FORMAT_VERSION {
            return Err(StoreError::Precondition(format!(
                "store metadata {} has format version {version}, newer than this strata \
                 understands ({FORMAT_VERSION}); upgrade strata",
                path.display()
            )));
        }
        if version < FORMAT_VERSION {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .map_err(err)?;
            // Re-read under the write lock: another process may have upgraded meanwhile.
            let version = user_version(&tx).map_err(err)?;
            if version == 1 {
                tx.execute_batch("ALTER TABLE containers ADD COLUMN id_map TEXT;")
                    .map_err(err)?;
            }
            tx.execute_batch(SCHEMA).map_err(err)?;
            tx.pragma_update(None, "user_version", FORMAT_VERSION)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        let meta = Meta {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        };
        if version < FORMAT_VERSION {
            meta.ensure_reserve();
        }
        Ok(meta)
    }

    fn reserve_path(&self) -> PathBuf {
        self.path.with_file_name("reserve")
    }

    /// Makes the reserve file if it is missing (allocated, not sparse). Failing is fine: on a
    /// full disk there is nothing to reserve; `gc` tries again.
    pub fn ensure_reserve(&self) {
        let path = self.reserve_path();
        if path.exists() {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let made = std::fs::File::create(&tmp).and_then(|f| {
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES)?;
            f.sync_all()
        });
        match made.and_then(|()| std::fs::rename(&tmp, &path)) {
            Ok(()) => {}
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!(error = %e, "cannot make the store's space reserve");
            }
        }
    }

    /// [`Meta::write`] for deletions: on a full disk the reserve is released and the
    /// transaction tried once more (the deletion then frees space; the remover, or `gc`, makes
    /// the reserve again).
    pub fn write_freeing<T>(&self, f: impl Fn(&WriteTxn<'_>) -> Result<T>) -> Result<T> {
        self.freeing(Sync::Full, f)
    }

    /// Runs a deletion with `sync`, releasing the reserve and trying once more on a full disk.
    fn freeing<T>(&self, sync: Sync, f: impl Fn(&WriteTxn<'_>) -> Result<T>) -> Result<T> {
        match self.write_with(sync, &f) {
            Err(e) if e.is_disk_full() => match std::fs::remove_file(self.reserve_path()) {
                Ok(()) => {
                    tracing::warn!("the disk is full: released the store's reserve to delete");
                    self.write_with(sync, &f)
                }
                Err(_) => Err(e),
            },
            other => other,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the guard cannot leave SQLite inconsistent (the transaction is
        // rolled back on drop), so a poisoned mutex is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a read transaction.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTxn<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let err = |source| StoreError::Db {
            path: self.path.clone(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(err)?;
        let r = ReadTxn {
            tx,
            path: &self.path,
        };
        let out = f(&r)?;
        r.tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Runs `f` in a write transaction, committing when it returns `Ok`. The commit is on
    /// disk when this returns (`synchronous=FULL`): use it for every transaction the caller
    /// acts on afterwards, above all row deletions followed by payload removal.
    pub fn write<T>(&self, f: impl FnOnce(&WriteTxn<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Sync::Full, f)
    }

    /// Runs `f` in a write transaction that only adds rows (or changes names) for payload that
    /// is already durable. It commits with `synchronous=NORMAL`: atomic, and visible to every
    /// process at once, and it survives any process crash; only a power loss before the next
    /// synced commit or checkpoint can undo it, which leaves payload without a row (garbage
    /// that `gc` reclaims), never a row without payload. Saves one fsync per container create.
    pub fn write_additive<T>(&self, f: impl FnOnce(&WriteTxn<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Sync::Normal, f)
    }

    /// Runs `f`, a transaction of deletions that nobody acts on before [`Meta::sync`], with
    /// `synchronous=NORMAL`: atomic, visible to every process at once, and it survives any
    /// process crash; only a power loss before the next synced commit can undo it, which
    /// brings the rows back whole, because their payload is not touched until `sync` (the
    /// store's trash collector calls it, once for many deletions). On a full disk the reserve
    /// is released as for [`Meta::write_freeing`].
    pub fn delete_unsynced<T>(&self, f: impl Fn(&WriteTxn<'_>) -> Result<T>) -> Result<T> {
        self.freeing(Sync::Normal, f)
    }

    /// Makes every commit so far durable: an fsync of the WAL, which holds every commit not
    /// yet checkpointed (a checkpoint syncs the WAL before it copies frames and the database
    /// after). Writes nothing, so it works on a full disk.
    pub fn sync(&self) -> Result<()> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_all().map_err(StoreError::io("fsync", &wal)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("open", &wal)(e)),
        }
    }

    fn write_with<T>(&self, sync: Sync, f: impl FnOnce(&WriteTxn<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let err = |source| StoreError::Db {
            path: self.path.clone(),
            source,
        };
        let level = match sync {
            Sync::Full => "FULL",
            Sync::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", level)
            .map_err(err)?;
        let out = {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let w = WriteTxn {
                read: ReadTxn {
                    tx,
                    path: &self.path,
                },
            };
            let out = f(&w)?;
            w.read.tx.commit().map_err(err)?;
            out
        };
        self.truncate_wal_if_long(&conn);
        Ok(out)
    }

    /// Checkpoints and truncates the WAL once it is long (see [`Meta::open`]). Never waits:
    /// if another process is reading or writing, a later commit does it.
    fn truncate_wal_if_long(&self, conn: &Connection) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let long = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_TRUNCATE_BYTES);
        if !long {
            return;
        }
        let _ = conn.busy_timeout(Duration::ZERO);
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(0) => tracing::debug!("WAL checkpointed and truncated"),
            Ok(_) => tracing::debug!("WAL checkpoint deferred: the store is busy"),
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint failed; a later commit retries"),
        }
        let _ = conn.busy_timeout(Duration::from_secs(60));
    }

    /// Runs SQLite's own integrity check; returns the problems it found.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut stmt = tx
                .sql()
                .prepare("PRAGMA integrity_check")
                .map_err(tx.err())?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(tx.err())?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(tx.err())?;
            let mut fk = tx
                .sql()
                .prepare("PRAGMA foreign_key_check")
                .map_err(tx.err())?;
            let fks = fk
                .query_map([], |r| {
                    Ok(format!(
                        "dangling reference in table {}",
                        r.get::<_, String>(0)?
                    ))
                })
                .map_err(tx.err())?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(tx.err())?;
            Ok(rows.into_iter().filter(|r| r != "ok").chain(fks).collect())
        })
    }
}

/// How far a commit goes before it returns (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy)]
enum Sync {
    /// The WAL is fsynced at commit.
    Full,
    /// The WAL is fsynced at the next `Full` commit or checkpoint.
    Normal,
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Seconds since the epoch, for `created` columns.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// A store written by format 1 (no `containers.id_map`) opens, is upgraded in place, and
    /// keeps its rows.
    #[test]
    fn a_format_1_store_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (db, lock) = (dir.path().join("meta.db"), dir.path().join("init.lock"));
        {
            let conn = Connection::open(&db).unwrap();
            let v1 = SCHEMA.replace(",\n    id_map       TEXT\n", "\n");
            assert_ne!(
                v1, SCHEMA,
                "the format-1 schema is derived from the current one"
            );
            conn.execute_batch(&v1).unwrap();
            conn.execute_batch(
                "INSERT INTO images VALUES ('sha256:aa', NULL, 'sha256:bb', 1);
                 INSERT INTO containers (id, name, image, parent_layer, created, metadata)
                 VALUES ('c1', 'old', 'sha256:aa', NULL, 1, '{}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let meta = Meta::open(&db, &lock).unwrap();
        let conn = meta.lock();
        assert_eq!(user_version(&conn).unwrap(), FORMAT_VERSION);
        let (name, map): (String, Option<String>) = conn
            .query_row("SELECT name, id_map FROM containers", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((name.as_str(), map), ("old", None));
    }
}
