//! The vfs driver: every layer is a complete copy of its filesystem tree.
//!
//! It works on any filesystem and needs no mount support beyond a bind mount: a child layer is
//! staged as a copy of its parent ([`copy`]: reflinks where the filesystem has them, in-kernel
//! copies otherwise) and the layer pipeline applies the layer's tar on top, deleting whited-out
//! paths in place ([`WhiteoutFormat::Apply`]). Changes are found by comparing a tree with its
//! parent's ([`changes`]). The price is disk space and staging time proportional to the whole
//! image for every layer.
//!
//! On-disk layout (format version [`FORMAT_VERSION`]):
//!
//! ```text
//! <home>/
//! ├── format               "1": the layout version, checked on open
//! ├── dir/
//! │   └── <key>/           the key's full tree (layers and containers alike)
//! └── staging/             see `area`
//!     ├── <random>.lock    flock held by the process filling the area
//!     ├── <random>/        a staging area: Staging.root is the area itself; commit renames it
//!     │                    to dir/<key>
//!     └── <random>-removed/  payload being deleted (renamed here first)
//! ```
//!
//! Removal refuses (kind `Busy`) while a mount in this mount namespace shows the key.
//!
//! What it deliberately does not do: share data between layers other than by reflink, or
//! mount anything (it returns bind-mount specs).

pub mod area;
pub mod changes;
pub mod copy;
pub mod home;
pub mod usage;
mod xattrs;

use std::path::PathBuf;

use strata_driver_api::{
    key_dir, Driver, DriverConfig, DriverError, DriverStatus, Key, Result, Staging,
};
use strata_types::{Change, Mount, WhiteoutFormat};

pub use home::FORMAT_VERSION;

/// The vfs driver over one home directory.
#[derive(Debug)]
pub struct VfsDriver {
    home: PathBuf,
    /// Copy owners, privileged xattrs and device nodes strictly (root outside a user namespace).
    strict: bool,
}

impl VfsDriver {
    /// Opens (creating if needed) the driver's home. vfs takes no driver options.
    pub fn open(config: &DriverConfig) -> Result<VfsDriver> {
        if let Some((k, v)) = config.options.first() {
            return Err(DriverError::InvalidOption(format!(
                "{k}={v} (the vfs driver has no options)"
            )));
        }
        home::prepare(&config.home, &["dir", "staging"], "vfs")?;
        Ok(VfsDriver {
            home: config.home.clone(),
            strict: !config.rootless && copy::is_root(),
        })
    }

    fn dir(&self, key: &Key) -> PathBuf {
        key_dir(&self.home, "dir", key)
    }

    fn staging_dir(&self) -> PathBuf {
        self.home.join("staging")
    }

    /// A staging area holding a copy of `parents[0]`'s tree (or an empty root directory).
    fn stage_copy(&self, parents: &[Key]) -> Result<Staging> {
        let (area, lock) = area::create(&self.staging_dir())?;
        let filled = match parents.first() {
            Some(parent) => {
                let src = self.dir(parent);
                if !src.is_dir() {
                    Err(DriverError::Missing(parent.to_string()))
                } else {
                    copy::copy_tree(&src, &area, self.strict).map(|stats| {
                        tracing::debug!(parent = %parent, entries = stats.entries, bytes = stats.bytes,
                            reflinked = stats.reflinked, "copied parent tree");
                    })
                }
            }
            None => home::set_mode(&area, 0o755),
        };
        if let Err(e) = filled {
            // Leave nothing behind: the area is ours and locked.
            let _ = area::remove_tree(&area);
            let _ = std::fs::remove_file(area::lock_path(&area));
            return Err(e);
        }
        Ok(Staging {
            root: area.clone(),
            area,
            whiteouts: WhiteoutFormat::Apply,
            lock,
        })
    }
}

impl Driver for VfsDriver {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn status(&self) -> DriverStatus {
        DriverStatus {
            name: "vfs",
            home: self.home.clone(),
            details: vec![
                ("backing filesystem".into(), home::fs_name(&self.home)),
                ("format".into(), FORMAT_VERSION.to_string()),
            ],
        }
    }

    fn stage(&self, parents: &[Key]) -> Result<Staging> {
        let _span = tracing::debug_span!("vfs stage", parent = ?parents.first()).entered();
        self.stage_copy(parents)
    }

    fn commit(&self, staging: Staging, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("vfs commit", %key).entered();
        home::check_own_area(&staging.area, &self.staging_dir())?;
        area::commit(&staging.area, staging.lock, &self.dir(key))
    }

    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()> {
        let _span = tracing::debug_span!("vfs create_writable", %key).entered();
        let staging = self.stage_copy(parents)?;
        area::commit(&staging.area, staging.lock, &self.dir(key))
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
        let _span = tracing::debug_span!("vfs changes", %key).entered();
        changes::full_tree_changes(|k| self.dir(k), key, parents)
    }

    fn remove(&self, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("vfs remove", %key).entered();
        let dir = self.dir(key);
        home::refuse_if_mounted(&dir)?;
        area::retire(&dir, &self.staging_dir())
    }

    fn retire(&self, key: &Key) -> Result<()> {
        let dir = self.dir(key);
        home::refuse_if_mounted(&dir)?;
        area::retire_deferred(&dir, &self.staging_dir())
    }

    fn exists(&self, key: &Key) -> bool {
        self.dir(key).is_dir()
    }

    fn list(&self) -> Result<Vec<Key>> {
        home::list_keys(&self.home.join("dir"))
    }

    fn cleanup_staging(&self) -> Result<usize> {
        area::cleanup(&self.staging_dir())
    }

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
    use strata_types::ChangeKind;
    use strata_types::{ErrorKind, HasKind};

    fn k(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    fn driver(home: &std::path::Path) -> VfsDriver {
        VfsDriver::open(&DriverConfig {
            home: home.to_path_buf(),
            rootless: false,
            options: vec![],
        })
        .unwrap()
    }

    #[test]
    fn layers_are_full_copies_and_changes_compare_with_the_parent() {
        let t = tempfile::tempdir().unwrap();
        let d = driver(t.path());
        let s = d.stage(&[]).unwrap();
        assert_eq!(
            (s.root.clone(), s.whiteouts),
            (s.area.clone(), WhiteoutFormat::Apply)
        );
        std::fs::write(s.root.join("base"), "b").unwrap();
        std::fs::write(s.root.join("gone"), "g").unwrap();
        d.commit(s, &k("l1")).unwrap();

        let s = d.stage(&[k("l1")]).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.root.join("base")).unwrap(),
            "b",
            "the parent's tree is copied"
        );
        std::fs::remove_file(s.root.join("gone")).unwrap();
        std::fs::write(s.root.join("new"), "n").unwrap();
        d.commit(s, &k("l2")).unwrap();

        let changes: Vec<(String, ChangeKind)> = d
            .changes(&k("l2"), &[k("l1")])
            .unwrap()
            .into_iter()
            .map(|c| (c.path.display().to_string(), c.kind))
            .collect();
        assert_eq!(
            changes,
            [
                ("gone".into(), ChangeKind::Deleted),
                ("new".into(), ChangeKind::Modified)
            ]
        );
        assert_eq!(d.changes(&k("l1"), &[]).unwrap().len(), 2);
        assert_eq!(d.list().unwrap(), [k("l1"), k("l2")]);
        assert_eq!(
            d.mounts(&k("l2"), &[k("l1")], false),
            [Mount::Bind {
                source: t.path().join("dir/l2"),
                read_only: true
            }]
        );
        assert_eq!(d.diff_dir(&k("l2")), t.path().join("dir/l2"));
    }

    #[test]
    fn missing_parents_and_foreign_staging_areas_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = driver(t.path());
        assert_eq!(
            d.stage(&[k("nope")]).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            std::fs::read_dir(t.path().join("staging")).unwrap().count(),
            0,
            "a failed stage leaves nothing"
        );
        let (area, lock) = area::create(&t.path().join("elsewhere")).unwrap();
        let foreign = Staging {
            root: area.clone(),
            area,
            whiteouts: WhiteoutFormat::Apply,
            lock,
        };
        assert_eq!(
            d.commit(foreign, &k("x")).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(!d.exists(&k("x")));
    }

    #[test]
    fn list_skips_names_that_are_not_keys_and_options_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = driver(t.path());
        d.create_writable(&k("c-1"), &[]).unwrap();
        std::fs::create_dir(t.path().join("dir/not a key")).unwrap();
        assert_eq!(d.list().unwrap(), [k("c-1")]);
        assert_eq!(
            d.mounts(&k("c-1"), &[], true),
            [Mount::Bind {
                source: t.path().join("dir/c-1"),
                read_only: false
            }]
        );
        let e = VfsDriver::open(&DriverConfig {
            home: t.path().into(),
            rootless: false,
            options: vec![("a".into(), "b".into())],
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
