//! The fuse-overlay driver: the overlay driver's on-disk layout, mounted by Strata's own FUSE
//! overlay filesystem (`strata-fuse-overlay`, crate `strata-tools-fuse-overlay`) instead of
//! kernel overlayfs.
//!
//! Everything but mounting is the overlay driver's: staging, commit, native diff of the upper
//! directory, removal. The store gives both drivers one home (`<root>/overlay`), so a layer
//! pulled once serves both, and a store made with one opens with the other. Its mounts are
//! [`Mount::FuseOverlay`] specs over the same directories, which the mount crate serves by
//! starting the filesystem server.
//!
//! Where it is the choice: rootless hosts whose kernel overlay cannot be mounted in a user
//! namespace (kernels before 5.11, a store on a filesystem overlay cannot use, nested
//! overlays), and containers whose user-namespace map differs from the image's owners, which
//! the filesystem shifts itself (no chown copy of the image).
//!
//! Options (`--storage-opt`): `mountopt=` (or `fuse-overlay.mountopt=`), a comma-separated
//! list of the filesystem's options: `squash_to_root`, `squash_to_uid=N`, `squash_to_gid=N`,
//! `passthrough=on|off`, `threads=N`, `timeout=SECONDS`.
//!
//! What it deliberately does not do: start the server (the mount crate does), or keep a
//! layout of its own.

use std::path::PathBuf;

use strata_driver_api::{Driver, DriverConfig, DriverError, DriverStatus, Key, Result, Staging};
use strata_driver_overlay::OverlayDriver;
use strata_types::{Change, Mount};

/// Filesystem options a user may add (the layers, `userxattr` and id maps are the driver's
/// and the store's).
const USER_OPTIONS: &[&str] = &[
    "squash_to_root",
    "squash_to_uid",
    "squash_to_gid",
    "passthrough",
    "threads",
    "timeout",
];

#[derive(Debug)]
pub struct FuseOverlayDriver {
    layout: OverlayDriver,
    home: PathBuf,
    rootless: bool,
    options: Vec<String>,
}

impl FuseOverlayDriver {
    /// Opens the driver over the overlay layout at `config.home`. Fails clearly when this
    /// user cannot open `/dev/fuse`.
    pub fn open(config: &DriverConfig) -> Result<FuseOverlayDriver> {
        let options = parse_options(&config.options)?;
        check_fuse()?;
        let layout = OverlayDriver::open_layout(config, Vec::new())?;
        Ok(FuseOverlayDriver {
            layout,
            home: config.home.clone(),
            rootless: config.rootless,
            options,
        })
    }

    /// The filesystem options of every mount.
    pub fn fs_options(&self) -> Vec<String> {
        let mut o = Vec::new();
        if self.rootless {
            o.push("userxattr".to_owned());
        }
        o.extend(self.options.iter().cloned());
        o
    }
}

fn parse_options(options: &[(String, String)]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (k, v) in options {
        if k != "mountopt" && k != "fuse-overlay.mountopt" {
            return Err(DriverError::InvalidOption(format!(
                "{k}={v} (the fuse-overlay driver knows only mountopt)"
            )));
        }
        for opt in v.split(',').filter(|o| !o.is_empty()) {
            let name = opt.split_once('=').map_or(opt, |(n, _)| n);
            if !USER_OPTIONS.contains(&name) {
                return Err(DriverError::InvalidOption(format!(
                    "{k}={v}: {name} is not a fuse-overlay option (known: {})",
                    USER_OPTIONS.join(", ")
                )));
            }
            out.push(opt.to_owned());
        }
    }
    Ok(out)
}

/// `/dev/fuse` must be there and open to this user.
fn check_fuse() -> Result<()> {
    let access = rustix::fs::access(
        "/dev/fuse",
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
    );
    match access {
        Ok(()) => Ok(()),
        Err(errno) => Err(DriverError::Unsupported {
            driver: "fuse-overlay",
            reason: format!(
                "cannot use /dev/fuse: {}; {}",
                std::io::Error::from(errno),
                strata_mount::fuse::fuse_device_hint(errno)
            ),
        }),
    }
}

impl Driver for FuseOverlayDriver {
    fn name(&self) -> &'static str {
        "fuse-overlay"
    }

    fn status(&self) -> DriverStatus {
        let server = strata_mount::fuse_server_binary()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| e.to_string());
        let mut details = self.layout.status().details;
        details.retain(|(k, _)| k != "mount options");
        details.push(("filesystem options".into(), self.fs_options().join(",")));
        details.push(("server".into(), server));
        DriverStatus {
            name: "fuse-overlay",
            home: self.home.clone(),
            details,
        }
    }

    fn stage(&self, parents: &[Key]) -> Result<Staging> {
        self.layout.stage(parents)
    }

    fn parallel_stage(&self) -> bool {
        true
    }

    fn commit(&self, staging: Staging, key: &Key) -> Result<()> {
        self.layout.commit(staging, key)
    }

    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()> {
        self.layout.create_writable(key, parents)
    }

    fn mounts(&self, key: &Key, parents: &[Key], writable: bool) -> Vec<Mount> {
        self.layout
            .mounts(key, parents, writable)
            .into_iter()
            .map(|m| match m {
                Mount::Overlay {
                    lower, upper, work, ..
                } => Mount::FuseOverlay {
                    lower,
                    upper,
                    work,
                    options: self.fs_options(),
                },
                other => other,
            })
            .collect()
    }

    fn diff_dir(&self, key: &Key) -> PathBuf {
        self.layout.diff_dir(key)
    }

    fn changes(&self, key: &Key, parents: &[Key]) -> Result<Vec<Change>> {
        self.layout.changes(key, parents)
    }

    fn remove(&self, key: &Key) -> Result<()> {
        self.layout.remove(key)
    }

    fn retire(&self, key: &Key) -> Result<()> {
        self.layout.retire(key)
    }

    fn exists(&self, key: &Key) -> bool {
        self.layout.exists(key)
    }

    fn list(&self) -> Result<Vec<Key>> {
        self.layout.list()
    }

    fn cleanup_staging(&self) -> Result<usize> {
        self.layout.cleanup_staging()
    }

    fn size(&self, key: &Key) -> Result<u64> {
        self.layout.size(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use strata_types::{ErrorKind, HasKind};

    #[test]
    fn user_options_are_checked_and_mounts_are_fuse_over_the_overlay_layout() {
        let o = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(
            parse_options(&o("mountopt", "squash_to_root,threads=4")).unwrap(),
            ["squash_to_root", "threads=4"]
        );
        let e = parse_options(&o("mountopt", "lowerdir=/x")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(parse_options(&o("size", "1G")).is_err());

        let t = tempfile::tempdir().unwrap();
        let d = FuseOverlayDriver {
            layout: OverlayDriver::open_layout(
                &DriverConfig {
                    home: t.path().to_path_buf(),
                    rootless: true,
                    options: vec![],
                },
                vec![],
            )
            .unwrap(),
            home: t.path().to_path_buf(),
            rootless: true,
            options: vec!["passthrough=off".into()],
        };
        let k = |s: &str| Key::new(s).unwrap();
        match d.mounts(&k("c-1"), &[k("l2"), k("l1")], true).as_slice() {
            [Mount::FuseOverlay {
                lower,
                upper: Some(upper),
                work: Some(_),
                options,
            }] => {
                assert_eq!(lower[0], t.path().join("layers/l2/diff"));
                assert_eq!(lower[1], t.path().join("layers/l1/diff"));
                assert_eq!(upper, &t.path().join("layers/c-1/diff"));
                assert_eq!(options, &["userxattr", "passthrough=off"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
