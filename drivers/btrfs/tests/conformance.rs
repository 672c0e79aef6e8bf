//! The shared driver conformance suite, run against btrfs on a loop-mounted filesystem.
//!
//! Every check needs btrfs, and making one needs root, including the checks the suite runs
//! unprivileged for other drivers: so each check is gated before its fixture is made (the
//! macro's `gate`).
//!
//! Each fixture's home becomes the mount point of a fresh btrfs, owned by the driver wrapper
//! below: the fixture drops its driver before its temporary directory, so the filesystem is
//! unmounted and its loop device detached before the directory is deleted, even on failure.

mod common;

use std::path::{Path, PathBuf};

use strata_driver_api::{Driver, DriverConfig, DriverStatus, Key, Result, Staging};
use strata_driver_btrfs::BtrfsDriver;
use strata_types::{Change, Mount};

use common::LoopBtrfs;

/// A btrfs driver together with the filesystem it lives on. Field order matters: the driver
/// is dropped before the filesystem is unmounted.
#[derive(Debug)]
struct OnLoopBtrfs {
    driver: BtrfsDriver,
    _fs: LoopBtrfs,
}

impl Driver for OnLoopBtrfs {
    fn name(&self) -> &'static str {
        self.driver.name()
    }
    fn status(&self) -> DriverStatus {
        self.driver.status()
    }
    fn stage(&self, parents: &[Key]) -> Result<Staging> {
        self.driver.stage(parents)
    }
    fn commit(&self, staging: Staging, key: &Key) -> Result<()> {
        self.driver.commit(staging, key)
    }
    fn create_writable(&self, key: &Key, parents: &[Key]) -> Result<()> {
        self.driver.create_writable(key, parents)
    }
    fn mounts(&self, key: &Key, parents: &[Key], writable: bool) -> Vec<Mount> {
        self.driver.mounts(key, parents, writable)
    }
    fn diff_dir(&self, key: &Key) -> PathBuf {
        self.driver.diff_dir(key)
    }
    fn changes(&self, key: &Key, parents: &[Key]) -> Result<Vec<Change>> {
        self.driver.changes(key, parents)
    }
    fn changes_source(&self, key: &Key) -> PathBuf {
        self.driver.changes_source(key)
    }
    fn remove(&self, key: &Key) -> Result<()> {
        self.driver.remove(key)
    }
    fn exists(&self, key: &Key) -> bool {
        self.driver.exists(key)
    }
    fn list(&self) -> Result<Vec<Key>> {
        self.driver.list()
    }
    fn cleanup_staging(&self) -> Result<usize> {
        self.driver.cleanup_staging()
    }
    fn size(&self, key: &Key) -> Result<u64> {
        self.driver.size(key)
    }
}

fn make(home: &Path) -> Box<dyn Driver> {
    let fs = LoopBtrfs::mount_at(home, "");
    let config = DriverConfig {
        home: home.to_path_buf(),
        rootless: false,
        options: vec![],
    };
    let driver = BtrfsDriver::open(&config).expect("open the btrfs driver");
    Box::new(OnLoopBtrfs { driver, _fs: fs })
}

strata_driver_conformance::conformance_tests!(
    make,
    gate = |check: &str| {
        strata_tests::require_privileged(
            &format!("conformance::btrfs::{check}"),
            "a loop-mounted btrfs filesystem (run as root)",
        )
    }
);
