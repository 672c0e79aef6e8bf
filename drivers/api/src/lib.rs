//! The storage driver contract.
//!
//! A driver manages *payload*: directories (or devices) keyed by opaque [`Key`]s. It knows
//! nothing of names, images, reference counts or parents beyond what the store passes in on each
//! call: the layer graph lives in the store's metastore, and every driver answer is a function of
//! the arguments (the key and its parent chain) plus what is on disk under the driver's home.
//!
//! Drivers **describe** mounts ([`Mount`]); they never call mount(2) themselves. The `mount` crate
//! performs them. This keeps drivers testable without root and keeps all mount logic in one place.
//!
//! Payload is built in a [`Staging`] area (on the same filesystem as the final place), filled by
//! the store through the layer pipeline, then [`Driver::commit`]ted with an atomic rename. A crash
//! leaves staging debris, which [`Driver::cleanup_staging`] removes; it never leaves a half-visible
//! layer.
//!
//! What this crate deliberately does not do: extract tars (the `strata-graph-archive` crate does),
//! keep metadata, or lock (the store serialises writers; staging areas carry their own lock).

mod error;
mod staging;

use std::path::{Path, PathBuf};

pub use error::{DriverError, Result};
pub use staging::Staging;
use strata_types::{Change, Mount};

/// An opaque payload key. The store uses the chain ID's hex digits for layers and
/// `c-<container id>` for containers' read-write layers. Keys are safe file names: they are
/// validated on construction (`[A-Za-z0-9_.-]`, 1..=128 bytes, not `.` or `..`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

impl Key {
    pub fn new(s: impl Into<String>) -> Result<Key> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Key(s))
        } else {
            Err(DriverError::InvalidKey(s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Key {
    type Error = DriverError;
    fn try_from(s: String) -> Result<Key> {
        Key::new(s)
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

/// Settings every driver receives when it is opened.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The driver's home directory, e.g. `<store root>/overlay`. Created if missing.
    pub home: PathBuf,
    /// `true` when the store runs inside a user namespace without real root; drivers then use
    /// the `user.overlay.*` xattr forms and skip device nodes they may not create.
    pub rootless: bool,
    /// Driver-specific options (`--storage-opt key=value`), already split.
    pub options: Vec<(String, String)>,
}

/// What a driver reports about itself for `strata storage info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DriverStatus {
    pub name: &'static str,
    pub home: PathBuf,
    /// Human-readable facts (backing filesystem, supported features...).
    pub details: Vec<(String, String)>,
}

/// A storage driver. `parents` arguments are always the key's ancestors, **nearest first**
/// (the direct parent at index 0, the base layer last); an empty slice means "no parent".
///
/// All methods take `&self` and must be safe to call from several processes at once for
/// *different* keys; the store guarantees a key is never committed, removed or written by two
/// processes at the same time.
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// The driver's name as users select it (`overlay`, `vfs`, ...).
    fn name(&self) -> &'static str;

    /// Facts for `storage info`.
    fn status(&self) -> DriverStatus;

    /// Creates an empty staging area for a new layer on top of `parents`. For a driver whose
    /// layers are full copies (vfs) the staging area already contains the parent's tree.
    /// The returned [`Staging`] says which whiteout format the layer pipeline must write.
    fn stage(&self, parents: &[Key]) -> Result<Staging>;

    /// Whether `stage` can be called for a child before its parents are committed (their
    /// payload is not read while staging). Overlay-style drivers return `true`, which lets the
    /// store extract all of an image's layers in parallel; full-copy drivers keep the default.
    fn parallel_stage(&self) -> bool {
        false
    }

    /// Atomically moves a filled staging area into place as `key`. If a stale payload for `key`
    /// exists (debris of a crash between payload commit and metadata commit), it is replaced.
    fn commit(&self, staging: Staging, key: &Key) -> Result<()>;

    /// Creates a writable layer (a container's read-write layer) `key` on top of `parents`.
    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()>;

    /// Describes how to mount `key` (with its `parents`) as a filesystem tree. `writable` keys
    /// (created by `create_writable`) mount read-write; committed layers mount read-only.
    /// Pure: computes paths, touches nothing.
    fn mounts(&self, key: &Key, parents: &[Key], writable: bool) -> Vec<Mount>;

    /// The directory holding the files that `key` itself added or changed, readable without a
    /// mount (overlay: the layer's `diff` directory; vfs: the layer's full tree). The tar-split
    /// exporter reads file contents from here by path.
    fn diff_dir(&self, key: &Key) -> PathBuf;

    /// Lists what `key` changed relative to its parents, sorted by path, as the OCI layer format
    /// needs it (native diff: overlay walks only the upper directory). Paths are relative, with
    /// no leading `/`.
    fn changes(&self, key: &Key, parents: &[Key]) -> Result<Vec<Change>>;

    /// The directory in which a change's path is found (the source for added/modified files).
    /// For overlay this is the upper (`diff`) directory; for vfs the full tree.
    fn changes_source(&self, key: &Key) -> PathBuf {
        self.diff_dir(key)
    }

    /// Removes `key`'s payload. Removing a missing key is not an error.
    fn remove(&self, key: &Key) -> Result<()>;

    /// Takes `key`'s payload out of sight in constant time and leaves its bytes for the next
    /// [`Driver::cleanup_staging`] to delete (the store's deferred deletion). After it returns
    /// the key does not exist. Drivers whose removal is not a rename (devicemapper) remove
    /// now. Retiring a missing key is not an error.
    fn retire(&self, key: &Key) -> Result<()> {
        self.remove(key)
    }

    /// Whether `key`'s payload exists.
    fn exists(&self, key: &Key) -> bool;

    /// Every key with payload on disk (for garbage collection and fsck).
    fn list(&self) -> Result<Vec<Key>>;

    /// Removes staging areas whose creating process has died. Returns how many were removed.
    fn cleanup_staging(&self) -> Result<usize>;

    /// Disk usage of `key`'s own payload in bytes (best effort).
    fn size(&self, key: &Key) -> Result<u64>;
}

/// Helper for drivers: the home-relative path of a key's directory.
pub fn key_dir(home: &Path, subdir: &str, key: &Key) -> PathBuf {
    home.join(subdir).join(key.as_str())
}
