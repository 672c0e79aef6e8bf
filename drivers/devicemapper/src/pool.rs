//! The thin pool: an existing one (`dm.thinpooldev`), or the driver's own on two sparse files
//! under its home attached as loop devices; its usage and the free-space check; and the pool
//! messages that create, snapshot and delete thin ids.
//!
//! The driver's own pool is made with `error_if_no_space`, so a write that finds the pool full
//! fails at once instead of hanging for a minute; the free-space check (`check_free`) refuses
//! new devices well before that point.
//!
//! What it does not do: resize pools, repair pool metadata (`thin_check`/`thin_repair` are
//! the tools for that), or share an existing pool's thin id space with another user: a pool
//! given with `dm.thinpooldev` must be dedicated to this store.

use std::path::Path;
use std::str::FromStr;

use devicemapper::{ThinPoolStatus, ThinPoolStatusSummary};
use rustix::io::Errno;

use crate::dm::Dm;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::loopdev;
use crate::options::{Options, PoolSource};

/// An active thin pool.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub dev: (u32, u32),
    /// Made (and removed on release) by the driver, on loop devices.
    pub own: bool,
    /// Data block size in sectors.
    pub block_sectors: u64,
}

/// How full a pool is, in its own blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used_data: u64,
    pub total_data: u64,
    pub used_meta: u64,
    pub total_meta: u64,
}

impl Pool {
    /// Opens the pool the options name, making the driver's own pool if needed.
    pub fn open(dm: &Dm, layout: &Layout, options: &Options) -> Result<Pool> {
        match &options.pool {
            PoolSource::Existing(name) => {
                let info = dm.info(name)?.ok_or_else(|| Error::PoolUnusable {
                    pool: name.clone(),
                    reason: "there is no device-mapper device of that name (see `dmsetup ls`)"
                        .into(),
                })?;
                Pool::describe(dm, name, info.dev, false)
            }
            PoolSource::Loop {
                data_bytes,
                metadata_bytes,
            } => {
                let name = layout.pool_name();
                if let Some(info) = dm.info(&name)? {
                    return Pool::describe(dm, &name, info.dev, true);
                }
                let data = sparse_file(&layout.pool_file("data"), *data_bytes)?;
                let meta = sparse_file(&layout.pool_file("metadata"), *metadata_bytes)?;
                let meta_dev = loopdev::attach(&layout.pool_file("metadata"))?;
                let data_dev = loopdev::attach(&layout.pool_file("data"))?;
                let blocks = data / 512 / options.block_sectors;
                if blocks < 16 || meta < 2 << 20 {
                    return Err(Error::PoolUnusable {
                        pool: name,
                        reason: format!(
                            "its files are too small ({data} bytes of data, {meta} of metadata)"
                        ),
                    });
                }
                let params = format!(
                    "{} {} {} {} 1 error_if_no_space",
                    meta_dev.devno(),
                    data_dev.devno(),
                    options.block_sectors,
                    (blocks / 100).max(1)
                );
                tracing::info!(pool = %name, data_bytes = data, metadata_bytes = meta, "creating the driver's thin pool on loop devices");
                let dev =
                    dm.create_table(&name, blocks * options.block_sectors, "thin-pool", params)?;
                Pool::describe(dm, &name, dev, true)
            }
        }
    }

    fn describe(dm: &Dm, name: &str, dev: (u32, u32), own: bool) -> Result<Pool> {
        let (target, params) = dm.target(name, true)?;
        if target != "thin-pool" {
            return Err(Error::PoolUnusable {
                pool: name.to_owned(),
                reason: format!("it is a {target} device, not a thin-pool"),
            });
        }
        // <metadata dev> <data dev> <data block size> <low water mark> [features]
        let block_sectors = params
            .split_whitespace()
            .nth(2)
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| Error::PoolUnusable {
                pool: name.to_owned(),
                reason: format!("unexpected thin-pool table {params:?}"),
            })?;
        let pool = Pool {
            name: name.to_owned(),
            dev,
            own,
            block_sectors,
        };
        pool.usage(dm)?;
        Ok(pool)
    }

    /// The pool's usage; a failed, read-only or metadata-damaged pool is an error.
    pub fn usage(&self, dm: &Dm) -> Result<Usage> {
        let (_, status) = dm.target(&self.name, false)?;
        let unusable = |reason: String| Error::PoolUnusable {
            pool: self.name.clone(),
            reason,
        };
        let w = match ThinPoolStatus::from_str(&status) {
            Ok(ThinPoolStatus::Working(w)) => w,
            Ok(_) => return Err(unusable(format!("the kernel reports it failed ({status})"))),
            Err(e) => return Err(unusable(format!("unreadable status {status:?}: {e}"))),
        };
        if w.needs_check {
            return Err(unusable(
                "its metadata needs checking (run thin_check / thin_repair)".into(),
            ));
        }
        if w.summary == ThinPoolStatusSummary::ReadOnly {
            return Err(unusable("the kernel switched it to read-only mode".into()));
        }
        Ok(Usage {
            used_data: w.usage.used_data.0,
            total_data: w.usage.total_data.0,
            used_meta: w.usage.used_meta.0,
            total_meta: w.usage.total_meta.0,
        })
    }

    /// Refuses (with the numbers) when less than `min_pct` percent of the data or metadata
    /// space is free.
    pub fn check_free(&self, dm: &Dm, min_pct: u32) -> Result<Usage> {
        let u = self.usage(dm)?;
        check_free(&self.name, u, min_pct)?;
        Ok(u)
    }

    pub fn create_thin(&self, dm: &Dm, thin_id: u32) -> Result<()> {
        dm.message(&self.name, &format!("create_thin {thin_id}"))
    }

    pub fn create_snap(&self, dm: &Dm, thin_id: u32, origin: u32) -> Result<()> {
        dm.message(&self.name, &format!("create_snap {thin_id} {origin}"))
    }

    /// Deletes a thin id; `Ok(false)` if the pool had no such id.
    pub fn delete(&self, dm: &Dm, thin_id: u32) -> Result<bool> {
        match dm.message(&self.name, &format!("delete {thin_id}")) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::NODATA) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the driver's own pool device and detaches its loop devices (no-op for an
    /// existing pool).
    pub fn release(&self, dm: &Dm, layout: &Layout) -> Result<()> {
        if !self.own {
            return Ok(());
        }
        dm.remove(&self.name, false)?;
        for f in ["metadata", "data"] {
            for d in loopdev::attached_to(&layout.pool_file(f))? {
                loopdev::detach(&d)?;
            }
        }
        Ok(())
    }
}

/// The free-space rule, apart from the kernel.
pub fn check_free(pool: &str, u: Usage, min_pct: u32) -> Result<()> {
    for (what, used, total) in [
        ("data", u.used_data, u.total_data),
        ("metadata", u.used_meta, u.total_meta),
    ] {
        let free_pct = if total == 0 {
            0.0
        } else {
            100.0 * (total.saturating_sub(used)) as f64 / total as f64
        };
        if free_pct < f64::from(min_pct) || used >= total {
            return Err(Error::NoSpace {
                pool: pool.to_owned(),
                what,
                used,
                total,
                free_pct,
                min_pct,
            });
        }
    }
    Ok(())
}

/// Creates `path` as a sparse file of `bytes` if missing; returns its size.
fn sparse_file(path: &Path, bytes: u64) -> Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    match std::fs::metadata(path) {
        Ok(m) => {
            if m.len() != bytes {
                tracing::warn!(path = %path.display(), size = m.len(), wanted = bytes, "the pool file keeps its size (pools are not resized)");
            }
            Ok(m.len())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = path.with_extension("new");
            let f = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
            f.set_len(bytes).map_err(Error::io("size", &tmp))?;
            f.sync_all().map_err(Error::io("fsync", &tmp))?;
            std::fs::rename(&tmp, path).map_err(Error::io("rename into place", path))?;
            Ok(bytes)
        }
        Err(e) => Err(Error::io("stat", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(used_data: u64, total_data: u64, used_meta: u64, total_meta: u64) -> Usage {
        Usage {
            used_data,
            total_data,
            used_meta,
            total_meta,
        }
    }

    #[test]
    fn the_free_space_rule_names_what_is_short() {
        assert!(check_free("p", usage(899, 1000, 10, 100), 10).is_ok());
        let e = check_free("p", usage(901, 1000, 10, 100), 10).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("thin pool p is too full"), "{msg}");
        assert!(
            msg.contains("data 9.9% free (901 of 1000 blocks used)"),
            "{msg}"
        );
        assert!(msg.contains("dm.min_free_space=10%"), "{msg}");
        let e = check_free("p", usage(1, 1000, 95, 100), 10).unwrap_err();
        assert!(e.to_string().contains("metadata 5.0% free"), "{e}");
        // With no threshold, only a full pool is refused.
        assert!(check_free("p", usage(999, 1000, 0, 100), 0).is_ok());
        assert!(check_free("p", usage(1000, 1000, 0, 100), 0).is_err());
    }

    #[test]
    fn pool_files_are_sparse_and_keep_their_size() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("pool/data");
        assert_eq!(sparse_file(&p, 1 << 30).unwrap(), 1 << 30);
        let m = std::fs::metadata(&p).unwrap();
        assert!(std::os::unix::fs::MetadataExt::blocks(&m) < 64, "sparse");
        assert_eq!(
            sparse_file(&p, 2 << 30).unwrap(),
            1 << 30,
            "existing files are not resized"
        );
    }
}
