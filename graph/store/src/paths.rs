//! Where everything lives on disk. Format version 1 (the metastore's `user_version`).
//!
//! ```text
//! <root>/                          --root, default /var/lib/strata
//! ├── strata.db (+ -wal, -shm)     the metastore (see meta.rs)
//! ├── blobs/sha256/<hex>           manifests and configs, content-addressed, immutable
//! ├── tarsplit/<chain-hex>.tsz     per-layer tar-split records (headers + file order, no data)
//! ├── tmp/                         temporary files being written (renamed into place when done)
//! ├── locks/
//! │   ├── gc.lock                  shared by every mutating operation, exclusive for gc
//! │   └── <chain-hex>.lock         held while a layer is being imported (one extraction per layer)
//! ├── containers/<container-id>/   the front end's persistent files of a container (logs,
//! │                                runtime bundle); made before its row, removed after it
//! ├── trash/                       removed containers' directories, deleted in the background
//! │                                when the store defers deletion (see trash.rs)
//! └── <driver>/                    the driver's home: payload keyed by opaque keys (fuse-overlay
//!                                  shares overlay/: one layout, two ways to mount it)
//! <runroot>/                       --runroot, default /run/strata (tmpfs: gone after reboot)
//! ├── mounts/<container-id>/       mount points of mounted containers
//! ├── mounts/<container-id>.server pid of the FUSE server serving that mount (fuse-overlay)
//! ├── containers/<container-id>/   the front end's volatile files (sockets, pid and exit files)
//! └── trash/                       their volatile directories, waiting for the collector
//! ```

use std::path::{Path, PathBuf};

use strata_driver_api::Key;
use strata_types::{ContainerId, Digest, LayerId};

/// The payload format a driver reads and writes: drivers with the same format share one home
/// and one store (`fuse-overlay` serves the `overlay` layout with a FUSE filesystem, so a layer
/// pulled once serves both, and a store may be opened with either).
pub fn payload_format(driver: &str) -> &str {
    match driver {
        "fuse-overlay" => "overlay",
        other => other,
    }
}

/// Computed paths of one store.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub runroot: PathBuf,
}

impl Paths {
    pub fn db(&self) -> PathBuf {
        self.root.join("strata.db")
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.blobs().join(d.hex())
    }
    pub fn tarsplits(&self) -> PathBuf {
        self.root.join("tarsplit")
    }
    pub fn tarsplit(&self, l: &LayerId) -> PathBuf {
        self.tarsplits().join(format!("{}.tsz", l.0.hex()))
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }
    pub fn driver_home(&self, driver: &str) -> PathBuf {
        self.root.join(payload_format(driver))
    }
    pub fn mounts(&self) -> PathBuf {
        self.runroot.join("mounts")
    }
    pub fn mountpoint(&self, c: &ContainerId) -> PathBuf {
        self.mounts().join(c.as_str())
    }
    /// The pid file of the FUSE server of a container's mount.
    pub fn mount_server(&self, c: &ContainerId) -> PathBuf {
        self.mounts().join(format!("{}.server", c.as_str()))
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    /// A container's persistent directory, owned by the front end that created it.
    pub fn container_dir(&self, c: &ContainerId) -> PathBuf {
        self.containers_dir().join(c.as_str())
    }
    pub fn container_rundirs(&self) -> PathBuf {
        self.runroot.join("containers")
    }
    /// A container's volatile directory (on the runroot's tmpfs), owned by its front end.
    pub fn container_rundir(&self, c: &ContainerId) -> PathBuf {
        self.container_rundirs().join(c.as_str())
    }

    /// Removed containers' directories waiting for the trash collector (`trash.rs`).
    pub fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }
    /// The same for their volatile directories (the runroot may be another filesystem).
    pub fn runtrash(&self) -> PathBuf {
        self.runroot.join("trash")
    }

    /// Creates every directory of the layout.
    pub fn create(&self) -> std::io::Result<()> {
        for d in [
            self.blobs(),
            self.tarsplits(),
            self.tmp(),
            self.locks(),
            self.mounts(),
            self.containers_dir(),
            self.container_rundirs(),
        ] {
            std::fs::create_dir_all(&d)?;
        }
        restrict(&self.root)
    }
}

/// The store root holds other users' image content: keep it 0700 like containers/storage.
fn restrict(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
}

/// The driver key of a layer: its chain ID's hex digits.
pub fn layer_key(l: &LayerId) -> Key {
    Key::new(l.0.hex()).expect("64 hex digits are a valid key")
}

/// The driver key of a container's read-write layer.
pub fn container_key(c: &ContainerId) -> Key {
    Key::new(format!("c-{}", c.as_str())).expect("c- plus 64 hex digits is a valid key")
}

/// The reverse of [`layer_key`]/[`container_key`], for garbage collection.
pub enum KeyOwner {
    Layer(LayerId),
    Container(ContainerId),
    Unknown,
}

pub fn key_owner(k: &Key) -> KeyOwner {
    if let Some(c) = k.as_str().strip_prefix("c-").and_then(ContainerId::parse) {
        return KeyOwner::Container(c);
    }
    match Digest::from_hex(k.as_str()) {
        Ok(d) => KeyOwner::Layer(LayerId(d)),
        Err(_) => KeyOwner::Unknown,
    }
}
