//! The shared driver conformance suite, run against devicemapper on a loop-backed thin pool.
//!
//! Every check needs device-mapper, including the ones the suite runs unprivileged for other
//! drivers, so each check is gated (root and device-mapper) before its fixture makes the
//! driver (the macro's `gate`).
//!
//! Each fixture's driver releases its devices, pool and loop devices when the fixture drops it
//! (before its temporary directory is deleted), even when the check fails.

mod common;

use std::path::Path;

use strata_driver_api::Driver;

fn make(home: &Path) -> Box<dyn Driver> {
    Box::new(common::open(home, common::small_pool()).release_on_drop())
}

strata_driver_conformance::conformance_tests!(
    make,
    gate = |check: &str| common::require_dm(&format!("conformance::devicemapper::{check}"))
);
