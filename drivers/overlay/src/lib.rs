//! The overlay driver: each layer stores only its own files, and kernel overlayfs stacks them.
//!
//! A layer's tar is extracted into its own `diff` directory with whiteouts in the kernel's
//! format (0:0 character devices and `trusted.overlay.opaque=y`, or the `user.overlay.*` forms
//! and the `userxattr` mount option when the store says it is rootless (a non-root user, or root
//! of a user namespace)), so layers are independent: an image's layers can be staged in parallel and
//! a layer is never copied. Views are overlay mounts described by [`mounts`]; the changes of a
//! container are read from its upper directory alone ([`changes`]).
//!
//! On-disk layout (format version [`FORMAT_VERSION`]):
//!
//! ```text
//! <home>/
//! ├── format               "1": the layout version, checked on open
//! ├── empty/               always empty: lower of parentless writable keys, and second lower
//! │                        of single-layer read-only views
//! ├── layers/
//! │   └── <key>/
//! │       ├── diff/        the key's own files; whiteouts in kernel format
//! │       └── work/        writable keys only: overlayfs' work directory
//! └── staging/
//!     ├── <random>.lock    flock held by the process filling the area
//!     ├── <random>/        a staging area: diff/ (Staging.root), plus work/ for writable
//!     │                    keys; commit renames it to layers/<key>
//!     └── <random>-removed/  payload being deleted (renamed here first)
//! ```
//!
//! Removal refuses (kind `Busy`) while a mount in this mount namespace uses the key, including
//! as a lower layer of a container.
//!
//! What it deliberately does not do: mount (it returns specs), use metacopy, redirects or the
//! inode index (see [`mounts::FIXED_OPTIONS`]), or support its home on an overlay filesystem.

pub mod changes;
pub mod metacopy;
pub mod mounts;

use std::path::PathBuf;

use strata_driver_api::{
    key_dir, Driver, DriverConfig, DriverError, DriverStatus, Key, Result, Staging,
};
use strata_driver_vfs::{area, home, usage};
use strata_types::{Change, Mount, WhiteoutFormat};

pub use strata_driver_vfs::FORMAT_VERSION;

use crate::mounts::MountPlan;

/// Overlay options the driver sets itself; `mountopt` may not override them.
const DRIVER_CONTROLLED: &[&str] = &[
    "index",
    "metacopy",
    "redirect_dir",
    "userxattr",
    "lowerdir",
    "lowerdir+",
    "datadir+",
    "upperdir",
    "workdir",
];

/// The overlay driver over one home directory.
#[derive(Debug)]
pub struct OverlayDriver {
    home: PathBuf,
    rootless: bool,
    /// Extra mount options (`mountopt=nodev,...`).
    extra: Vec<String>,
}

impl OverlayDriver {
    /// Opens (creating if needed) the driver's home. Options: `mountopt` (or
    /// `overlay.mountopt`), a comma-separated list of extra overlay/mount options such as
    /// `nodev` or `volatile`.
    pub fn open(config: &DriverConfig) -> Result<OverlayDriver> {
        let extra = parse_options(&config.options)?;
        check_kernel()?;
        let d = OverlayDriver::open_layout(config, extra)?;
        if home::fs_name(&config.home) == "overlay" {
            return Err(DriverError::Unsupported {
                driver: "overlay",
                reason: format!(
                    "{} is on an overlay filesystem, which cannot hold overlay upper directories; \
                     put the store on another filesystem (or use the vfs driver)",
                    config.home.display()
                ),
            });
        }
        Ok(d)
    }

    /// Opens (creating if needed) the layout alone, without the kernel overlay checks: for
    /// the FUSE overlay driver, which serves the same layout itself. `extra` are the options
    /// `mounts` puts on every mount.
    pub fn open_layout(config: &DriverConfig, extra: Vec<String>) -> Result<OverlayDriver> {
        home::prepare(&config.home, &["layers", "staging", "empty"], "overlay")?;
        home::set_mode(&config.home.join("empty"), 0o755)?;
        Ok(OverlayDriver {
            home: config.home.clone(),
            rootless: config.rootless,
            extra,
        })
    }

    fn plan(&self) -> MountPlan<'_> {
        MountPlan {
            home: &self.home,
            rootless: self.rootless,
            extra: &self.extra,
        }
    }

    fn layer_dir(&self, key: &Key) -> PathBuf {
        key_dir(&self.home, "layers", key)
    }

    fn staging_dir(&self) -> PathBuf {
        self.home.join("staging")
    }

    /// A staging area with `diff/` (and `work/` if `writable`).
    fn new_area(&self, writable: bool) -> Result<Staging> {
        let (area, lock) = area::create(&self.staging_dir())?;
        let root = area.join("diff");
        let made = make_dir(&root, 0o755).and_then(|()| {
            if writable {
                make_dir(&area.join("work"), 0o700)
            } else {
                Ok(())
            }
        });
        if let Err(e) = made {
            let _ = area::remove_tree(&area);
            let _ = std::fs::remove_file(area::lock_path(&area));
            return Err(e);
        }
        let whiteouts = if self.rootless {
            WhiteoutFormat::OverlayUser
        } else {
            WhiteoutFormat::OverlayTrusted
        };
        Ok(Staging {
            area,
            root,
            whiteouts,
            lock,
        })
    }
}

fn make_dir(p: &std::path::Path, mode: u32) -> Result<()> {
    std::fs::create_dir(p).map_err(DriverError::io("create", p))?;
    home::set_mode(p, mode)
}

fn parse_options(options: &[(String, String)]) -> Result<Vec<String>> {
    let mut extra = Vec::new();
    for (k, v) in options {
        if k != "mountopt" && k != "overlay.mountopt" {
            return Err(DriverError::InvalidOption(format!(
                "{k}={v} (the overlay driver knows only mountopt)"
            )));
        }
        for opt in v.split(',').filter(|o| !o.is_empty()) {
            let name = opt.split_once('=').map_or(opt, |(n, _)| n);
            if DRIVER_CONTROLLED.contains(&name) {
                return Err(DriverError::InvalidOption(format!(
                    "{k}={v}: {name} is set by the driver"
                )));
            }
            extra.push(opt.to_owned());
        }
    }
    Ok(extra)
}

/// Fails clearly when the kernel has no overlayfs at all.
fn check_kernel() -> Result<()> {
    match std::fs::read_to_string("/proc/filesystems") {
        Ok(list) if !list.lines().any(|l| l.split_whitespace().last() == Some("overlay")) => {
            Err(DriverError::Unsupported {
                driver: "overlay",
                reason: "the kernel has no overlay filesystem (not in /proc/filesystems); use the vfs driver".into(),
            })
        }
        _ => Ok(()),
    }
}

impl Driver for OverlayDriver {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn status(&self) -> DriverStatus {
        DriverStatus {
            name: "overlay",
            home: self.home.clone(),
            details: vec![
                ("backing filesystem".into(), home::fs_name(&self.home)),
                ("format".into(), FORMAT_VERSION.to_string()),
                ("native diff".into(), "true".into()),
                ("mount options".into(), self.plan().options().join(",")),
            ],
        }
    }

    fn stage(&self, _parents: &[Key]) -> Result<Staging> {
        let _span = tracing::debug_span!("overlay stage").entered();
        self.new_area(false)
    }

    fn parallel_stage(&self) -> bool {
        true
    }

    fn commit(&self, staging: Staging, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("overlay commit", %key).entered();
        home::check_own_area(&staging.area, &self.staging_dir())?;
        area::commit(&staging.area, staging.lock, &self.layer_dir(key))
    }

    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()> {
        let _span = tracing::debug_span!("overlay create_writable", %key).entered();
        if let Some(p) = parents.iter().find(|p| !self.exists(p)) {
            return Err(DriverError::Missing(p.to_string()));
        }
        let staging = self.new_area(true)?;
        area::commit(&staging.area, staging.lock, &self.layer_dir(key))
    }

    fn mounts(&self, key: &Key, parents: &[Key], writable: bool) -> Vec<Mount> {
        self.plan().mounts(key, parents, writable)
    }

    fn diff_dir(&self, key: &Key) -> PathBuf {
        self.plan().diff(key)
    }

    fn changes(&self, key: &Key, _parents: &[Key]) -> Result<Vec<Change>> {
        let _span = tracing::debug_span!("overlay changes", %key).entered();
        let diff = self.diff_dir(key);
        if !diff.is_dir() {
            return Err(DriverError::Missing(key.to_string()));
        }
        // Files the FUSE overlay changed only the metadata of get their data first, so the
        // diff is made of whole files (see `metacopy`).
        metacopy::complete_all(&diff)
            .map_err(|e| DriverError::io("complete metadata-only copies in", &diff)(e.into()))?;
        changes::upper_changes(&diff)
    }

    fn remove(&self, key: &Key) -> Result<()> {
        let _span = tracing::debug_span!("overlay remove", %key).entered();
        let dir = self.layer_dir(key);
        home::refuse_if_mounted(&dir)?;
        area::retire(&dir, &self.staging_dir())
    }

    fn retire(&self, key: &Key) -> Result<()> {
        let dir = self.layer_dir(key);
        home::refuse_if_mounted(&dir)?;
        area::retire_deferred(&dir, &self.staging_dir())
    }

    fn exists(&self, key: &Key) -> bool {
        self.diff_dir(key).is_dir()
    }

    fn list(&self) -> Result<Vec<Key>> {
        home::list_keys(&self.home.join("layers"))
    }

    fn cleanup_staging(&self) -> Result<usize> {
        area::cleanup(&self.staging_dir())
    }

    fn size(&self, key: &Key) -> Result<u64> {
        let diff = self.diff_dir(key);
        if !diff.is_dir() {
            return Err(DriverError::Missing(key.to_string()));
        }
        usage::disk_usage(&diff)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use strata_types::{ErrorKind, HasKind};

    fn opts(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn mountopt_adds_options_but_cannot_override_the_drivers() {
        assert_eq!(
            parse_options(&opts(&[("mountopt", "nodev,volatile")])).unwrap(),
            ["nodev", "volatile"]
        );
        let e = parse_options(&opts(&[("overlay.mountopt", "metacopy=on")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            e.to_string().contains("metacopy is set by the driver"),
            "{e}"
        );
        assert!(parse_options(&opts(&[("size", "10G")])).is_err());
    }

    #[test]
    fn open_creates_the_layout_and_staging_is_unprivileged() {
        let t = tempfile::tempdir().unwrap();
        let config = DriverConfig {
            home: t.path().join("overlay"),
            rootless: true,
            options: vec![],
        };
        let d = OverlayDriver::open(&config).unwrap();
        for sub in ["layers", "staging", "empty"] {
            assert!(config.home.join(sub).is_dir(), "{sub}");
        }
        assert_eq!(
            std::fs::read_to_string(config.home.join("format")).unwrap(),
            "1\n"
        );
        let s = d.stage(&[]).unwrap();
        assert_eq!(s.whiteouts, WhiteoutFormat::OverlayUser);
        assert_eq!(s.root, s.area.join("diff"));
        std::fs::write(s.root.join("f"), "x").unwrap();
        let key = Key::new("l1").unwrap();
        d.commit(s, &key).unwrap();
        assert!(d.exists(&key));
        assert_eq!(d.list().unwrap(), std::slice::from_ref(&key));
        assert_eq!(d.changes(&key, &[]).unwrap().len(), 1);
        assert!(d.size(&key).unwrap() > 0);
        let c = Key::new("c-1").unwrap();
        d.create_writable(&c, std::slice::from_ref(&key)).unwrap();
        assert!(config.home.join("layers/c-1/work").is_dir());
        let missing = Key::new("nope").unwrap();
        assert_eq!(
            d.create_writable(&c, &[missing]).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        d.remove(&c).unwrap();
        d.remove(&key).unwrap();
        d.remove(&key).unwrap();
        assert!(d.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(config.home.join("staging"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_newer_layout_is_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("format"), "2\n").unwrap();
        let config = DriverConfig {
            home: t.path().to_path_buf(),
            rootless: false,
            options: vec![],
        };
        let e = OverlayDriver::open(&config).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}
