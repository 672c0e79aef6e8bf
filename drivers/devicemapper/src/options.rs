//! The driver's `--storage-opt` options, parsed and checked before anything touches the kernel.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `dm.thinpooldev=NAME` | none | use this existing thin pool (`NAME` or `/dev/mapper/NAME`); it must be dedicated to this store |
//! | `dm.loopdatasize=SIZE` | `100G` | without `dm.thinpooldev`: size of the sparse data file of the driver's own pool |
//! | `dm.loopmetadatasize=SIZE` | `2G` | without `dm.thinpooldev`: size of its sparse metadata file |
//! | `dm.blocksize=SIZE` | `64K` | data block size of a pool the driver creates (64 KiB to 1 GiB, a multiple of 64 KiB) |
//! | `dm.basesize=SIZE` | `10G` | virtual size of the base device, hence of every layer and container |
//! | `dm.fs=ext4\|xfs` | `ext4` | filesystem made once on the base device |
//! | `dm.min_free_space=PCT` | `10%` | refuse new devices when less than this share of the pool's data or metadata space is free |
//!
//! Sizes take a binary unit suffix (`K`, `M`, `G`, `T`, optionally followed by `B` or `iB`;
//! none means bytes). `dm.basesize` and `dm.fs` matter only when the base device is made:
//! later changes are logged and ignored (the base device is never re-made).
//!
//! It deliberately does not accept options it would ignore: an unknown key is an error.

use crate::error::{Error, Result};

/// Which filesystem the base device carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext4,
    Xfs,
}

impl FsType {
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }
}

/// Where the thin pool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolSource {
    /// An existing pool, by device-mapper name; never created or removed by the driver.
    Existing(String),
    /// A pool the driver makes on two sparse files under its home, attached as loop devices.
    Loop {
        data_bytes: u64,
        metadata_bytes: u64,
    },
}

/// The parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub pool: PoolSource,
    /// Data block size in 512-byte sectors (pools the driver creates).
    pub block_sectors: u64,
    pub base_bytes: u64,
    pub fs: FsType,
    pub min_free_pct: u32,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

impl Default for Options {
    fn default() -> Options {
        Options {
            pool: PoolSource::Loop {
                data_bytes: 100 * GIB,
                metadata_bytes: 2 * GIB,
            },
            block_sectors: 128,
            base_bytes: 10 * GIB,
            fs: FsType::Ext4,
            min_free_pct: 10,
        }
    }
}

impl Options {
    /// Parses `key=value` pairs as `DriverConfig.options` carries them.
    pub fn parse(pairs: &[(String, String)]) -> Result<Options> {
        let mut o = Options::default();
        let mut existing = None;
        let (mut data, mut meta) = (100 * GIB, 2 * GIB);
        for (k, v) in pairs {
            let bad = |reason: &str| Error::InvalidOption {
                option: format!("{k}={v}"),
                reason: reason.to_owned(),
            };
            match k.as_str() {
                "dm.thinpooldev" => {
                    let name = v.strip_prefix("/dev/mapper/").unwrap_or(v);
                    if name.is_empty() || name.contains('/') || name.len() > 127 {
                        return Err(bad("expected a device-mapper device name"));
                    }
                    existing = Some(name.to_owned());
                }
                "dm.loopdatasize" => {
                    data = parse_size(v).ok_or_else(|| bad("expected a size such as 100G"))?;
                    if data < 64 * MIB {
                        return Err(bad("the data file must be at least 64M"));
                    }
                }
                "dm.loopmetadatasize" => {
                    meta = parse_size(v).ok_or_else(|| bad("expected a size such as 2G"))?;
                    if !(2 * MIB..=16 * GIB).contains(&meta) {
                        return Err(bad("the metadata file must be between 2M and 16G"));
                    }
                }
                "dm.blocksize" => {
                    let b = parse_size(v).ok_or_else(|| bad("expected a size such as 64K"))?;
                    if b % (64 * KIB) != 0 || !(64 * KIB..=GIB).contains(&b) {
                        return Err(bad("must be a multiple of 64K between 64K and 1G"));
                    }
                    o.block_sectors = b / 512;
                }
                "dm.basesize" => {
                    let b = parse_size(v).ok_or_else(|| bad("expected a size such as 10G"))?;
                    if b < 32 * MIB || b % 4096 != 0 {
                        return Err(bad("must be at least 32M and a multiple of 4K"));
                    }
                    o.base_bytes = b;
                }
                "dm.fs" => {
                    o.fs = match v.as_str() {
                        "ext4" => FsType::Ext4,
                        "xfs" => FsType::Xfs,
                        _ => return Err(bad("expected ext4 or xfs")),
                    }
                }
                "dm.min_free_space" => {
                    let pct = v
                        .strip_suffix('%')
                        .unwrap_or(v)
                        .parse::<u32>()
                        .ok()
                        .filter(|p| *p < 100)
                        .ok_or_else(|| bad("expected a percentage from 0% to 99%"))?;
                    o.min_free_pct = pct;
                }
                _ => {
                    return Err(bad(
                        "unknown option (see the devicemapper driver's documentation)",
                    ))
                }
            }
        }
        o.pool = match existing {
            Some(name) => PoolSource::Existing(name),
            None => PoolSource::Loop {
                data_bytes: data,
                metadata_bytes: meta,
            },
        };
        Ok(o)
    }
}

/// Parses `10G`, `512M`, `64KiB`, `1TB`, `4096` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => KIB,
        "M" | "MB" | "MIB" => MIB,
        "G" | "GB" | "GIB" => GIB,
        "T" | "TB" | "TIB" => 1024 * GIB,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Result<Options> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Options::parse(&pairs)
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("64kib"), Some(65536));
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("1TB"), Some(1 << 40));
        assert_eq!(parse_size("1.5G"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("10X"), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
    }

    #[test]
    fn defaults_make_a_loop_pool_with_ext4() {
        let o = opts(&[]).unwrap();
        assert_eq!(
            o.pool,
            PoolSource::Loop {
                data_bytes: 100 << 30,
                metadata_bytes: 2 << 30
            }
        );
        assert_eq!(
            (o.block_sectors, o.base_bytes, o.fs, o.min_free_pct),
            (128, 10 << 30, FsType::Ext4, 10)
        );
    }

    #[test]
    fn every_option_is_read() {
        let o = opts(&[
            ("dm.loopdatasize", "1G"),
            ("dm.loopmetadatasize", "64M"),
            ("dm.blocksize", "128K"),
            ("dm.basesize", "256M"),
            ("dm.fs", "xfs"),
            ("dm.min_free_space", "5%"),
        ])
        .unwrap();
        assert_eq!(
            o,
            Options {
                pool: PoolSource::Loop {
                    data_bytes: 1 << 30,
                    metadata_bytes: 64 << 20
                },
                block_sectors: 256,
                base_bytes: 256 << 20,
                fs: FsType::Xfs,
                min_free_pct: 5,
            }
        );
        let o = opts(&[("dm.thinpooldev", "/dev/mapper/vg-pool")]).unwrap();
        assert_eq!(o.pool, PoolSource::Existing("vg-pool".into()));
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_with_the_option_named() {
        for (k, v) in [
            ("dm.fs", "btrfs"),
            ("dm.basesize", "1M"),
            ("dm.blocksize", "96K"),
            ("dm.loopdatasize", "lots"),
            ("dm.loopmetadatasize", "32G"),
            ("dm.min_free_space", "100%"),
            ("dm.thinpooldev", "a/b"),
            ("dm.mountopt", "nodiscard"),
        ] {
            let e = opts(&[(k, v)]).unwrap_err();
            assert!(matches!(e, Error::InvalidOption { .. }), "{k}={v}: {e}");
            assert!(e.to_string().contains(&format!("{k}={v}")), "{e}");
        }
    }
}
