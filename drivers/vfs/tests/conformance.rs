//! The shared driver conformance suite, run against vfs.

use std::path::Path;

use strata_driver_api::{Driver, DriverConfig};
use strata_driver_vfs::VfsDriver;

fn make(home: &Path) -> Box<dyn Driver> {
    let config = DriverConfig {
        home: home.to_path_buf(),
        rootless: false,
        options: vec![],
    };
    Box::new(VfsDriver::open(&config).expect("open the vfs driver"))
}

strata_driver_conformance::conformance_tests!(make);
