//! Shared by the driver's privileged tests: the gate (root *and* device-mapper), and a
//! driver over a small loop-backed pool in a temporary home.
//!
//! These tests need a kernel with device-mapper. On a host without it they fail with a message
//! saying so, unless the run leaves them out (`STRATA_LEAVE_OUT=devicemapper`, or
//! `STRATA_SKIP_PRIVILEGED=1`); the VM tier runs them: `cargo xtask vm -- <test binary>`.

#![allow(dead_code)] // each test file uses part of this module

use std::path::{Path, PathBuf};

use strata_driver_api::{DriverConfig, Key};
use strata_driver_devicemapper::DmDriver;
use strata_tests::KernelFeature;

/// Gate for test `test` (its marker name) that needs root and device-mapper
/// (`strata_tests::require_kernel`):
/// `false` when the run leaves such tests out (`STRATA_LEAVE_OUT=devicemapper` or
/// `STRATA_SKIP_PRIVILEGED=1`); fails the test, saying how to run it, when the kernel has no
/// device-mapper otherwise.
pub fn require_dm(test: &str) -> bool {
    strata_tests::require_kernel(
        test,
        KernelFeature::DeviceMapper,
        "thin pools (root, and a kernel with dm_thin_pool)",
    )
}

/// Options for a small, quick pool: 2 GiB of sparse data, 64 MiB of metadata, 256 MiB devices.
pub fn small_pool() -> Vec<(String, String)> {
    [
        ("dm.loopdatasize", "2G"),
        ("dm.loopmetadatasize", "64M"),
        ("dm.basesize", "256M"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn config(home: &Path, options: Vec<(String, String)>) -> DriverConfig {
    DriverConfig {
        home: home.to_path_buf(),
        rootless: false,
        options,
    }
}

/// Opens the driver on `home` with `options`, panicking with the error.
pub fn open(home: &Path, options: Vec<(String, String)>) -> DmDriver {
    DmDriver::open(&config(home, options))
        .unwrap_or_else(|e| panic!("open the devicemapper driver at {}: {e}", home.display()))
}

/// A temporary home in /tmp (a real filesystem; in the VM, the guest's scratch disk).
pub fn home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("strata-dm-")
        .tempdir_in("/tmp")
        .expect("temp dir in /tmp");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("create home");
    (dir, home)
}

pub fn key(s: &str) -> Key {
    Key::new(s).expect("a valid key")
}
