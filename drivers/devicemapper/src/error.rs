//! The driver's errors, with the device, pool or path they concern, and their mapping onto the
//! small set of kinds (`HasKind`) and onto the trait's [`DriverError`].
//!
//! It does not decide what to do about an error (recovery does); it only describes it.

use std::path::PathBuf;

use strata_driver_api::DriverError;
use strata_types::{ErrorKind, HasKind};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "device-mapper is not available ({reason}); the devicemapper driver needs a kernel \
         with device-mapper and thin provisioning (dm_thin_pool), and root"
    )]
    NoDeviceMapper { reason: String },
    #[error("device-mapper {op} {device}: {}", describe(source))]
    Dm {
        op: &'static str,
        device: String,
        #[source]
        source: Box<devicemapper::DmError>,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {args}: {detail}")]
    Command {
        program: &'static str,
        args: String,
        detail: String,
    },
    #[error(
        "thin pool {pool} is too full for a new device: {what} {free_pct:.1}% free \
         ({used} of {total} blocks used), below dm.min_free_space={min_pct}%; remove unused \
         images and containers (then `storage gc`), or give the pool more space"
    )]
    NoSpace {
        pool: String,
        what: &'static str,
        used: u64,
        total: u64,
        free_pct: f64,
        min_pct: u32,
    },
    #[error("thin pool {pool} cannot be used: {reason}")]
    PoolUnusable { pool: String, reason: String },
    #[error("{what} is busy: {detail}")]
    Busy { what: String, detail: String },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("layer {0} has no device in the driver")]
    Missing(String),
    #[error("invalid devicemapper option {option:?}: {reason}")]
    InvalidOption { option: String, reason: String },
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// Wraps a device-mapper error with the operation and device it concerns.
    pub fn dm(
        op: &'static str,
        device: impl Into<String>,
    ) -> impl FnOnce(devicemapper::DmError) -> Error {
        let device = device.into();
        move |source| Error::Dm {
            op,
            device,
            source: Box::new(source),
        }
    }

    /// The errno of a failed device-mapper ioctl, if that is what this is.
    pub fn errno(&self) -> Option<rustix::io::Errno> {
        match self {
            Error::Dm { source, .. } => dm_errno(source),
            Error::Io { source, .. } => source
                .raw_os_error()
                .map(rustix::io::Errno::from_raw_os_error),
            _ => None,
        }
    }
}

/// A failed ioctl as its errno (the library's own message dumps whole ioctl headers).
fn describe(e: &devicemapper::DmError) -> String {
    match dm_errno(e) {
        Some(errno) => format!(
            "{} ({errno:?})",
            std::io::Error::from_raw_os_error(errno.raw_os_error())
        ),
        None => e.to_string(),
    }
}

/// The errno of a failed device-mapper ioctl.
pub fn dm_errno(e: &devicemapper::DmError) -> Option<rustix::io::Errno> {
    match e {
        devicemapper::DmError::Core(devicemapper::errors::Error::Ioctl(_, _, _, errno)) => {
            Some(rustix::io::Errno::from_raw_os_error(**errno as i32))
        }
        _ => None,
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NoDeviceMapper { .. } => ErrorKind::Unsupported,
            Error::NoSpace { .. } | Error::PoolUnusable { .. } => ErrorKind::FailedPrecondition,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Corrupt { .. } | Error::Missing(_) => ErrorKind::Corrupt,
            Error::InvalidOption { .. } => ErrorKind::InvalidArgument,
            Error::Io { source, .. } => ErrorKind::from_io(source),
            Error::Dm { .. } | Error::Command { .. } => match self.errno() {
                Some(rustix::io::Errno::BUSY) => ErrorKind::Busy,
                _ => ErrorKind::Internal,
            },
        }
    }
}

impl Error {
    /// Converts into the trait's error type for the driver at `home`. The trait's type has no
    /// variant for most of these, so they travel as an I/O error on `home` whose
    /// `io::ErrorKind` keeps the kind (`ResourceBusy` → Busy, ...) and whose message is this
    /// error's. `NoSpace` and `PoolUnusable` become `DriverError::Precondition`.
    pub fn into_driver(self, home: &std::path::Path) -> DriverError {
        use std::io::ErrorKind as K;
        let e = self;
        let io_kind = match e.kind() {
            ErrorKind::Busy => K::ResourceBusy,
            ErrorKind::NotFound => K::NotFound,
            ErrorKind::AlreadyExists => K::AlreadyExists,
            ErrorKind::InvalidArgument => K::InvalidInput,
            ErrorKind::Unsupported => K::Unsupported,
            _ => K::Other,
        };
        match e {
            Error::Missing(key) => DriverError::Missing(key),
            Error::InvalidOption { option, reason } => {
                DriverError::InvalidOption(format!("{option}: {reason}"))
            }
            Error::NoDeviceMapper { .. } => DriverError::Unsupported {
                driver: "devicemapper",
                reason: e.to_string(),
            },
            Error::Io { op, path, source } => DriverError::Io { op, path, source },
            Error::NoSpace { .. } | Error::PoolUnusable { .. } => DriverError::Precondition {
                driver: "devicemapper",
                reason: e.to_string(),
            },
            other => DriverError::Io {
                op: "devicemapper driver at",
                path: home.to_path_buf(),
                source: std::io::Error::new(io_kind, other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_through_the_driver_error() {
        let home = std::path::Path::new("/s/dm");
        let busy = Error::Busy {
            what: "layer k".into(),
            detail: "still mounted at /v; unmount it first".into(),
        };
        assert_eq!(busy.kind(), ErrorKind::Busy);
        let d = busy.into_driver(home);
        assert_eq!(d.kind(), ErrorKind::Busy);
        assert_eq!(
            d.to_string(),
            "devicemapper driver at /s/dm: layer k is busy: still mounted at /v; unmount it first"
        );
        let d = Error::Missing("k".into()).into_driver(home);
        assert!(matches!(d, DriverError::Missing(ref k) if k == "k"));
        let d = Error::NoDeviceMapper {
            reason: "/dev/mapper/control does not exist".into(),
        }
        .into_driver(home);
        assert_eq!(d.kind(), ErrorKind::Unsupported);
        let d = Error::InvalidOption {
            option: "dm.fs=zfs".into(),
            reason: "expected ext4 or xfs".into(),
        }
        .into_driver(home);
        assert_eq!(d.kind(), ErrorKind::InvalidArgument);
    }
}
