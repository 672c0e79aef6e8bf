//! The btrfs driver: every layer is a subvolume, and a child layer starts as a snapshot of its
//! parent.
//!
//! A snapshot shares every extent and metadata block with its source, so staging a child layer
//! or creating a container takes the same few milliseconds whatever the size of the image or
//! the depth of the chain, and uses no space until files change. The layer pipeline applies the
//! layer's tar in place on the writable snapshot ([`WhiteoutFormat::Apply`], as for vfs);
//! commit makes it read-only and renames it to its key. Views are bind mounts of the key's
//! subvolume (the `mount` crate performs them).
//!
//! On-disk layout (format version [`FORMAT_VERSION`]):
//!
//! ```text
//! <home>/                  must be on btrfs (checked on open)
//! ├── format               "1": the layout version, checked on open
//! └── subvolumes/
//!     ├── <key>/           a subvolume: read-only for committed layers, writable for
//!     │                    containers' read-write layers (snapshots of their parent)
//!     ├── +<random>.lock   flock held by the process filling the staging area
//!     ├── +<random>/       a staging area: a writable subvolume; commit renames it to <key>
//!     └── +<random>-removed/  a key being deleted
//! ```
//!
//! Staging areas sit beside the keys, under names no key can have, because a read-only
//! subvolume can be renamed only within its directory (see `area`).
//!
//! Design choices:
//! - **Raw ioctls** (`sys`, the crate's one `unsafe` module, through `rustix::ioctl`) rather than
//!   the `btrfsutil` crate: btrfsutil builds its bindings with bindgen and libclang at compile
//!   time, slow on small build machines and one more system package, for the seven ioctls this
//!   driver needs.
//! - **Read-only layers by flag**: a staged layer is a writable subvolume; commit sets
//!   `BTRFS_SUBVOL_RDONLY` on it (`BTRFS_IOC_SUBVOL_SETFLAGS`) and renames it to its key. The
//!   alternative, a read-only snapshot of the staging subvolume made at the key's place, costs
//!   the same transaction plus deleting the staging subvolume on every commit, which is file
//!   by file for a non-root user without `user_subvol_rm_allowed`. Setting the flag before
//!   the rename means a crash never leaves a writable committed layer. Deletion clears the
//!   flag where a non-root user needs it cleared (`remove`).
//! - **Changes by tree comparison** (`strata_driver_vfs::changes`): a layer or container is
//!   compared with its parent's subvolume, skipping unchanged regular files by size and mtime.
//!   btrfs can answer faster from its own metadata (`btrfs send` walks only the changed parts
//!   of the B-tree; `find-new` lists inodes written since a generation), but send needs
//!   `CAP_SYS_ADMIN`, read-only sources (a container would first need a read-only snapshot)
//!   and a parser for its stream, and find-new (a `TREE_SEARCH`, also root only) misses
//!   deletions and metadata-only changes. A rootless store needs the comparison anyway.
//! - **Removal** is one ioctl for root, and for non-root users where the filesystem is mounted
//!   with `user_subvol_rm_allowed`; elsewhere it falls back to deleting file by file
//!   (`remove`). A key is refused (kind `Busy`) while a mount in this namespace shows it
//!   (`strata_mount::mounts_using`, which finds the filesystem of a subvolume through its
//!   mount rather than its per-subvolume `st_dev`).
//! - **`size=`** limits containers' read-write layers with a quota group ([`quota`]).
//!
//! What it deliberately does not do: mount anything, stage a child before its parent is
//! committed (a snapshot needs its source), or limit the size of committed layers.

mod area;
pub mod quota;
mod remove;
pub mod subvol;
mod sys;

use std::path::PathBuf;

use strata_driver_api::{
    key_dir, Driver, DriverConfig, DriverError, DriverStatus, Key, Result, Staging,
};
use strata_driver_vfs::{changes, home, usage};
use strata_types::{Change, Mount, WhiteoutFormat};

use crate::area::Access;

pub use strata_driver_vfs::FORMAT_VERSION;

/// The btrfs driver over one home directory.
#[derive(Debug)]
pub struct BtrfsDriver {
    home: PathBuf,
    /// `size=`: the referenced-bytes limit of every writable key.
    size_limit: Option<u64>,
}

impl BtrfsDriver {
    /// Opens (creating if needed) the driver's home, which must be on btrfs. Options: `size`
    /// (or `btrfs.size`), the largest size of a container's root filesystem (`10G`, `512M`...),
    /// which needs real root.
    pub fn open(config: &DriverConfig) -> Result<BtrfsDriver> {
        let size_limit = parse_options(&config.options)?;
        if size_limit.is_some() && (config.rootless || !rustix::process::geteuid().is_root()) {
            return Err(DriverError::Unsupported {
                driver: "btrfs",
                reason: "the size= option needs btrfs quota groups, which only real root may \
                         enable and set; drop the option for a rootless store"
                    .into(),
            });
        }
        subvol::require_btrfs(&config.home)?;
        home::prepare(&config.home, &["subvolumes"], "btrfs")?;
        if size_limit.is_some() {
            quota::enable(&config.home)?;
        }
        Ok(BtrfsDriver {
            home: config.home.clone(),
            size_limit,
        })
    }

    fn dir(&self, key: &Key) -> PathBuf {
        key_dir(&self.home, "subvolumes", key)
    }

    fn subvolumes(&self) -> PathBuf {
        self.home.join("subvolumes")
    }

    /// A locked staging subvolume: a writable snapshot of `parent`, or an empty subvolume;
    /// with a quota limit if given.
    fn new_area(
        &self,
        parent: Option<&Key>,
        limit: Option<u64>,
    ) -> Result<(PathBuf, std::fs::File)> {
        let source = match parent {
            Some(p) if !self.dir(p).is_dir() => return Err(DriverError::Missing(p.to_string())),
            Some(p) => Some(self.dir(p)),
            None => None,
        };
        area::create(&self.subvolumes(), |area| {
            match &source {
                Some(src) => subvol::snapshot(src, area, false)?,
                None => {
                    subvol::create(area)?;
                    home::set_mode(area, 0o755)?;
                }
            }
            match limit {
                Some(bytes) => quota::limit(area, bytes),
                None => Ok(()),
            }
        })
    }
}

/// Reads the driver options: `size=` / `btrfs.size=`.
fn parse_options(options: &[(String, String)]) -> Result<Option<u64>> {
    let mut size = None;
    for (k, v) in options {
        match k.as_str() {
            "size" | "btrfs.size" => {
                size = Some(quota::parse_size(v).ok_or_else(|| {
                    DriverError::InvalidOption(format!(
                        "{k}={v} (expected a size such as 10G or 512M)"
                    ))
                })?);
            }
            _ => {
                return Err(DriverError::InvalidOption(format!(
                    "{k}={v} (the btrfs driver knows only size=)"
                )))
            }
        }
    }
    Ok(size)
}

impl Driver for BtrfsDriver {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn status(&self) -> DriverStatus {
        let limit = match self.size_limit {
            Some(b) => format!("{b} bytes per container (quota group)"),
            None => "none".into(),
        };
        DriverStatus {
            name: "btrfs",
            home: self.home.clone(),
            details: vec![
                ("backing filesystem".into(), home::fs_name(&self.home)),
                ("format".into(), FORMAT_VERSION.to_string()),
                ("container size limit".into(), limit),
            ],
        }
    }

    fn stage(&self, parents: &[Key]) -> Result<Staging> {
        let _span = tracing::debug_span!("btrfs stage", parent = ?parents.first()).entered();
        let (area, lock) = self.new_area(parents.first(), None)?;
        Ok(Staging {
            root: area.clone(),
            area,
            whiteouts: WhiteoutFormat::Apply,
            lock,
        })
    }

    fn commit(&self, staging: Staging, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("btrfs commit", %key).entered();
        area::check_own(&staging.area, &self.subvolumes())?;
        area::commit(
            &staging.area,
            staging.lock,
            &self.dir(key),
            Access::ReadOnly,
        )
    }

    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()> {
        let _span = tracing::debug_span!("btrfs create_writable", %key).entered();
        let (area, lock) = self.new_area(parents.first(), self.size_limit)?;
        area::commit(&area, lock, &self.dir(key), Access::Writable)
    }

    fn mounts(&self, key: &Key, _parents: &[Key], writable: bool) -> Vec<Mount> {
        vec![Mount::Bind {
            source: self.dir(key),
            read_only: !writable,
        }]
    }

    fn diff_dir(&self, key: &Key) -> PathBuf {
        self.dir(key)
    }

    fn changes(&self, key: &Key, parents: &[Key]) -> Result<Vec<Change>> {
        let _span = tracing::debug_span!("btrfs changes", %key).entered();
        changes::full_tree_changes(|k| self.dir(k), key, parents)
    }

    fn remove(&self, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("btrfs remove", %key).entered();
        let dir = self.dir(key);
        home::refuse_if_mounted(&dir)?;
        area::retire(&dir, &self.subvolumes())
    }

    fn retire(&self, key: &Key) -> Result<()> {
        let dir = self.dir(key);
        home::refuse_if_mounted(&dir)?;
        area::retire_deferred(&dir, &self.subvolumes())
    }

    fn exists(&self, key: &Key) -> bool {
        self.dir(key).is_dir()
    }

    fn list(&self) -> Result<Vec<Key>> {
        let dir = self.subvolumes();
        let mut keys = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(DriverError::io("read", &dir))? {
            let name = e.map_err(DriverError::io("read", &dir))?.file_name();
            if area::is_area_name(&name) {
                continue;
            }
            match name.to_str().map(Key::new) {
                Some(Ok(k)) => keys.push(k),
                _ => {
                    tracing::warn!(name = %name.to_string_lossy(), dir = %dir.display(), "ignoring an entry that is not a driver key")
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn cleanup_staging(&self) -> Result<usize> {
        area::cleanup(&self.subvolumes())
    }

    /// Bytes allocated to the files of `key`'s tree, counting extents shared with its parent
    /// (btrfs accounts shared extents exactly only with quota groups enabled).
    fn size(&self, key: &Key) -> Result<u64> {
        let dir = self.dir(key);
        if !dir.is_dir() {
            return Err(DriverError::Missing(key.to_string()));
        }
        usage::disk_usage(&dir)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use strata_types::{ErrorKind, HasKind};

    fn config(home: &std::path::Path, rootless: bool, options: &[(&str, &str)]) -> DriverConfig {
        DriverConfig {
            home: home.to_path_buf(),
            rootless,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn options_are_checked_before_anything_is_created() {
        let t = tempfile::tempdir_in("/tmp").unwrap();
        let home = t.path().join("btrfs");
        for (opts, wanted) in [
            (&[("size", "lots")][..], "size=lots"),
            (&[("btrfs.size", "10Q")][..], "btrfs.size=10Q"),
            (&[("mountopt", "nodev")][..], "knows only size="),
        ] {
            let e = BtrfsDriver::open(&config(&home, false, opts)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains(wanted), "{e}");
        }
        let e = BtrfsDriver::open(&config(&home, true, &[("size", "10G")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("only real root"), "{e}");
        assert!(!home.exists());
        assert_eq!(
            parse_options(&config(&home, false, &[("size", "1G")]).options).unwrap(),
            Some(1 << 30)
        );
    }

    #[test]
    fn a_store_off_btrfs_is_refused_with_the_filesystem_named() {
        let t = tempfile::tempdir_in("/tmp").unwrap();
        let fs = home::fs_name(t.path());
        assert_ne!(fs, "btrfs", "this test needs /tmp off btrfs");
        let home = t.path().join("store/btrfs");
        let e = BtrfsDriver::open(&config(&home, false, &[])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{} is on {fs}, not btrfs", home.display())),
            "{msg}"
        );
        assert!(msg.contains("overlay or vfs"), "says what to do: {msg}");
        assert!(!t.path().join("store").exists(), "nothing was created");
    }
}
