//! The shared driver conformance suite, run against overlay.

use std::path::Path;

use strata_driver_api::{Driver, DriverConfig};
use strata_driver_overlay::OverlayDriver;

fn make(home: &Path) -> Box<dyn Driver> {
    let config = DriverConfig {
        home: home.to_path_buf(),
        rootless: false,
        options: vec![],
    };
    Box::new(OverlayDriver::open(&config).expect("open the overlay driver"))
}

strata_driver_conformance::conformance_tests!(make);
