//! Loop devices for the driver's own pool, through `losetup`: find the devices already
//! attached to a backing file (a previous process set them up, or died between attaching and
//! making the pool), attach one, detach one.
//!
//! What it does not do: set loop flags (direct I/O, autoclear) or create the backing files.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::program::run;

/// A loop device: its node and device number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopDev {
    pub node: PathBuf,
    pub dev: (u32, u32),
}

impl LoopDev {
    fn at(node: &Path) -> Result<LoopDev> {
        let m = std::fs::metadata(node).map_err(Error::io("stat", node))?;
        if !m.file_type().is_block_device() {
            return Err(Error::Corrupt {
                path: node.to_path_buf(),
                reason: "not a block device".into(),
            });
        }
        Ok(LoopDev {
            node: node.to_path_buf(),
            dev: (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())),
        })
    }

    /// `major:minor`, as device-mapper tables name devices.
    pub fn devno(&self) -> String {
        format!("{}:{}", self.dev.0, self.dev.1)
    }
}

/// The loop devices backed by `file`.
pub fn attached_to(file: &Path) -> Result<Vec<LoopDev>> {
    let file = file.to_string_lossy();
    let out = run(
        "losetup",
        &["--noheadings", "--output", "NAME", "--associated", &file],
    )?;
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| LoopDev::at(Path::new(l)))
        .collect()
}

/// The loop device backed by `file`: an attached one, else a newly attached one.
pub fn attach(file: &Path) -> Result<LoopDev> {
    if let Some(d) = attached_to(file)?.into_iter().next() {
        return Ok(d);
    }
    let f = file.to_string_lossy();
    let node = run("losetup", &["--find", "--show", &f])?;
    LoopDev::at(Path::new(node.trim()))
}

/// Detaches `dev`.
pub fn detach(dev: &LoopDev) -> Result<()> {
    run("losetup", &["--detach", &dev.node.to_string_lossy()]).map(drop)
}
