//! The compiled-in storage drivers, by name.

use strata_driver_api::{Driver, DriverConfig, DriverError, Result};

/// Names of the drivers this binary carries.
pub const NAMES: &[&str] = &["overlay", "fuse-overlay", "vfs", "btrfs", "devicemapper"];

pub fn make(name: &str, cfg: DriverConfig) -> Result<Box<dyn Driver>> {
    match name {
        "overlay" => Ok(Box::new(strata_driver_overlay::OverlayDriver::open(&cfg)?)),
        "fuse-overlay" => Ok(Box::new(
            strata_driver_fuse_overlay::FuseOverlayDriver::open(&cfg)?,
        )),
        "vfs" => Ok(Box::new(strata_driver_vfs::VfsDriver::open(&cfg)?)),
        "btrfs" => Ok(Box::new(strata_driver_btrfs::BtrfsDriver::open(&cfg)?)),
        "devicemapper" => Ok(Box::new(strata_driver_devicemapper::DmDriver::open(&cfg)?)),
        other => Err(DriverError::Unsupported {
            driver: "unknown",
            reason: format!(
                "no storage driver named {other:?}; this strata has: {}",
                NAMES.join(", ")
            ),
        }),
    }
}
