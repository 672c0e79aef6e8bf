//! The shared driver conformance suite, run against btrfs on a loop-mounted filesystem.
//!
//! Every check needs btrfs, and making one needs root, including the checks the suite runs
//! unprivileged for other drivers: so each check is gated here before its fixture is made
//! (`conformance_tests!` makes the driver before a check's own gate), and the list of checks is
//! compared with the suite's so that a new check cannot be forgotten.
//!
//! Each fixture's home becomes the mount point of a fresh btrfs, owned by the driver wrapper
//! below: the fixture drops its driver before its temporary directory, so the filesystem is
//! unmounted and its loop device detached before the directory is deleted, even on failure.

mod common;

use std::path::{Path, PathBuf};

use strata_driver_api::{Change, Driver, DriverConfig, DriverStatus, Key, Mount, Result, Staging};
use strata_driver_btrfs::BtrfsDriver;

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

/// One gated `#[test]` per check, plus the test that the list is the suite's whole list.
macro_rules! btrfs_conformance {
    ($($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                if !strata_tests::require_privileged(
                    concat!("conformance::btrfs::", stringify!($check)),
                    "a loop-mounted btrfs filesystem (run as root)",
                ) {
                    return;
                }
                strata_driver_conformance::checks::$check(&make);
            }
        )*

        #[test]
        fn every_check_of_the_suite_runs_here() {
            let ours = [$(stringify!($check)),*];
            assert_eq!(suite_checks(), ours, "update the list in tests/conformance.rs");
        }
    };
}

/// The checks `conformance_tests!` expands, read from the suite's source.
fn suite_checks() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/src/lib.rs");
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let start = src
        .find("(@each $make;")
        .unwrap_or_else(|| panic!("{path} no longer has the `@each $make;` list"));
    let list = &src[start + "(@each $make;".len()..];
    let list = &list[..list.find(')').expect("the list ends")];
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

btrfs_conformance!(
    whiteouts_hide_lower_files,
    opaque_dirs_hide_lower_contents,
    hardlinks_stay_linked,
    xattrs_are_visible,
    ownership_and_modes_are_preserved,
    deep_chains_mount_the_union,
    read_only_views_refuse_writes,
    writable_layers_keep_writes_to_themselves,
    removal_while_mounted_is_refused,
    changes_reproduce_the_container,
    tarsplit_export_reproduces_the_tar,
    cleanup_staging_removes_only_dead_areas,
    keys_are_created_listed_replaced_and_removed,
);
