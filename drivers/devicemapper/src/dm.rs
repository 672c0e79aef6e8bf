//! Device-mapper ioctls, through the `devicemapper` crate: device info, thin device
//! activation and removal (with the kernel's deferred removal when a device is busy), suspend
//! and resume, pool messages and status. Names are plain strings here; the caller derives them
//! from its home (`layout`).
//!
//! No udev is needed: devicemapper 0.34.8 skips udev synchronisation when no udev daemon runs,
//! and devices are reached through the kernel's own `/dev/dm-<minor>` nodes (devtmpfs), not
//! the `/dev/mapper/<name>` links that udev (or libdevmapper) would make.
//!
//! What it does not do: keep any state, or decide when to call what.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use devicemapper::{DevId, DmFlags, DmName, DmOptions, DM};
use rustix::io::Errno;

use crate::error::{dm_errno, Error, Result};

const CONTROL: &str = "/dev/mapper/control";

/// A device-mapper context.
pub struct Dm(DM);

impl std::fmt::Debug for Dm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dm")
    }
}

/// What the kernel shows of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevInfo {
    pub dev: (u32, u32),
    /// A table is loaded and live.
    pub live: bool,
    pub suspended: bool,
    pub open_count: i32,
}

/// How a removal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// The device was busy; the kernel removes it when its last user closes it.
    Deferred,
    Absent,
}

fn name(n: &str) -> Result<&DmName> {
    DmName::new(n).map_err(Error::dm("name", n))
}

impl Dm {
    /// Opens `/dev/mapper/control`, failing clearly where the kernel has no device-mapper.
    pub fn open() -> Result<Dm> {
        if !Path::new(CONTROL).exists() {
            return Err(Error::NoDeviceMapper {
                reason: format!("{CONTROL} does not exist"),
            });
        }
        let dm = DM::new().map_err(|e| Error::NoDeviceMapper {
            reason: format!("cannot open {CONTROL}: {e}"),
        })?;
        Ok(Dm(dm))
    }

    /// The device's info, or `None` if there is no such device.
    pub fn info(&self, n: &str) -> Result<Option<DevInfo>> {
        match self.0.device_info(&DevId::Name(name(n)?)) {
            Ok(i) => Ok(Some(DevInfo {
                dev: (i.device().major, i.device().minor),
                live: i.flags().contains(DmFlags::DM_ACTIVE_PRESENT),
                suspended: i.flags().contains(DmFlags::DM_SUSPEND),
                open_count: i.open_count(),
            })),
            Err(e) if dm_errno(&e) == Some(Errno::NXIO) => Ok(None),
            Err(e) => Err(Error::dm("info of", n)(e)),
        }
    }

    /// Creates device `n` mapping thin `thin_id` of the pool `pool` (major, minor) over
    /// `sectors`, and resumes it. A failure after the device was made removes it again.
    pub fn create_thin(
        &self,
        n: &str,
        pool: (u32, u32),
        thin_id: u32,
        sectors: u64,
        read_only: bool,
    ) -> Result<(u32, u32)> {
        let id = DevId::Name(name(n)?);
        self.0
            .device_create(name(n)?, None, DmOptions::default())
            .map_err(Error::dm("creation of", n))?;
        let table = vec![(
            0,
            sectors,
            "thin".to_owned(),
            format!("{}:{} {thin_id}", pool.0, pool.1),
        )];
        let flags = if read_only {
            DmFlags::DM_READONLY
        } else {
            DmFlags::empty()
        };
        let loaded = self
            .0
            .table_load(&id, &table, DmOptions::default().set_flags(flags))
            .map_err(Error::dm("table load of", n))
            .and_then(|_| self.resume(n));
        if let Err(e) = loaded {
            let _ = self.0.device_remove(&id, DmOptions::default());
            return Err(e);
        }
        self.info(n)?
            .map(|i| i.dev)
            .ok_or_else(|| Error::Missing(n.to_owned()))
    }

    /// Creates `n` with one `target` line over `sectors` (the pool itself).
    pub fn create_table(
        &self,
        n: &str,
        sectors: u64,
        target: &str,
        params: String,
    ) -> Result<(u32, u32)> {
        let id = DevId::Name(name(n)?);
        self.0
            .device_create(name(n)?, None, DmOptions::default())
            .map_err(Error::dm("creation of", n))?;
        let table = vec![(0, sectors, target.to_owned(), params)];
        let loaded = self
            .0
            .table_load(&id, &table, DmOptions::default())
            .map_err(Error::dm("table load of", n))
            .and_then(|_| self.resume(n));
        if let Err(e) = loaded {
            let _ = self.0.device_remove(&id, DmOptions::default());
            return Err(e);
        }
        self.info(n)?
            .map(|i| i.dev)
            .ok_or_else(|| Error::Missing(n.to_owned()))
    }

    /// Removes `n`. A busy device is an error unless `defer`, in which case the kernel is
    /// told to remove it on last close.
    pub fn remove(&self, n: &str, defer: bool) -> Result<Removal> {
        let id = DevId::Name(name(n)?);
        match self.0.device_remove(&id, DmOptions::default()) {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if dm_errno(&e) == Some(Errno::NXIO) => Ok(Removal::Absent),
            Err(e) if dm_errno(&e) == Some(Errno::BUSY) && defer => {
                self.0
                    .device_remove(
                        &id,
                        DmOptions::default().set_flags(DmFlags::DM_DEFERRED_REMOVE),
                    )
                    .map_err(Error::dm("deferred removal of", n))?;
                Ok(Removal::Deferred)
            }
            Err(e) => Err(Error::dm("removal of", n)(e)),
        }
    }

    pub fn suspend(&self, n: &str) -> Result<()> {
        self.0
            .device_suspend(
                &DevId::Name(name(n)?),
                DmOptions::default().set_flags(DmFlags::DM_SUSPEND),
            )
            .map(drop)
            .map_err(Error::dm("suspend of", n))
    }

    pub fn resume(&self, n: &str) -> Result<()> {
        self.0
            .device_suspend(&DevId::Name(name(n)?), DmOptions::default())
            .map(drop)
            .map_err(Error::dm("resume of", n))
    }

    /// Sends `msg` to the pool `pool` (`create_thin 5`, `create_snap 6 5`, `delete 5`).
    pub fn message(&self, pool: &str, msg: &str) -> Result<()> {
        self.0
            .target_msg(&DevId::Name(name(pool)?), None, msg)
            .map(drop)
            .map_err(|e| Error::Dm {
                op: "message",
                device: format!("{msg:?} to {pool}"),
                source: Box::new(e),
            })
    }

    /// The status line (`flags` empty) or table line (`DM_STATUS_TABLE`) of the device's
    /// single target: (target type, parameters).
    pub fn target(&self, n: &str, table: bool) -> Result<(String, String)> {
        let flags = if table {
            DmFlags::DM_STATUS_TABLE
        } else {
            DmFlags::empty()
        };
        let (_, lines) = self
            .0
            .table_status(
                &DevId::Name(name(n)?),
                DmOptions::default().set_flags(flags),
            )
            .map_err(Error::dm("status of", n))?;
        match lines.as_slice() {
            [(_, _, t, params)] => Ok((t.clone(), params.clone())),
            _ => Err(Error::PoolUnusable {
                pool: n.to_owned(),
                reason: format!("expected one target, found {}", lines.len()),
            }),
        }
    }

    /// Names of every device-mapper device starting with `prefix`.
    pub fn names_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let all = self
            .0
            .list_devices()
            .map_err(Error::dm("listing of", "all devices"))?;
        Ok(all
            .into_iter()
            .map(|(n, _, _)| n.to_string())
            .filter(|n| n.starts_with(prefix))
            .collect())
    }
}

/// The block device node of a device-mapper device: the kernel's `/dev/dm-<minor>`
/// (devtmpfs), or udev's `/dev/mapper/<name>`, whichever exists with the right number.
pub fn node(n: &str, dev: (u32, u32)) -> Result<PathBuf> {
    let candidates = [
        PathBuf::from(format!("/dev/dm-{}", dev.1)),
        Path::new("/dev/mapper").join(n),
    ];
    for c in &candidates {
        if let Ok(m) = std::fs::metadata(c) {
            if m.file_type().is_block_device()
                && (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())) == dev
            {
                return Ok(c.clone());
            }
        }
    }
    Err(Error::Io {
        op: "find the device node of",
        path: PathBuf::from(format!("/dev/mapper/{n}")),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "neither /dev/dm-{} nor /dev/mapper/{n} is block device {}:{} (is devtmpfs mounted on /dev?)",
                dev.1, dev.0, dev.1
            ),
        ),
    })
}
