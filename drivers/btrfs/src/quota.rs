//! The `size=` option: a cap on how much data a container's read-write layer may reference,
//! enforced by a btrfs quota group.
//!
//! When the option is given, the driver enables quota groups on the filesystem when it opens
//! (`BTRFS_IOC_QUOTA_CTL`, a no-op when already enabled) and gives every writable key's own
//! quota group (`0/<subvolume id>`, created by the kernel with the subvolume) a limit on
//! *referenced* bytes (`BTRFS_IOC_QGROUP_LIMIT`, `max_rfer`). Referenced bytes include the
//! extents shared with the image, so the limit is the size of the container's whole root
//! filesystem as its user sees it, as with Docker's `--storage-opt size=`. Writes past it fail
//! with `EDQUOT`.
//!
//! Both ioctls need `CAP_SYS_ADMIN`: a rootless store refuses the option with a clear message.
//!
//! What it deliberately does not do: limit committed layers (an image is as big as it is),
//! create quota group hierarchies, or remove quota groups (the kernel drops a subvolume's
//! quota group when it deletes the subvolume).

use std::os::fd::AsFd;
use std::path::Path;

use strata_driver_api::{DriverError, Result};

use crate::{subvol, sys};

/// Parses a size such as `10G`, `512m`, `1.5GiB` or `1048576` into bytes (binary units, as
/// containers/storage reads them). Returns `None` for anything else, or zero.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let bytes = match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(1u64 << shift)?,
        Some((whole, frac)) if !frac.is_empty() && frac.len() <= 6 && shift > 0 => {
            let whole = whole.parse::<u64>().unwrap_or(0);
            let frac_value = frac.parse::<u64>().ok()?;
            let scale = 10u64.pow(u32::try_from(frac.len()).ok()?);
            whole
                .checked_mul(1u64 << shift)?
                .checked_add(frac_value.checked_mul(1u64 << shift)? / scale)?
        }
        Some(_) => return None,
    };
    (bytes > 0).then_some(bytes)
}

/// Enables quota groups on the filesystem holding `path`.
pub fn enable(path: &Path) -> Result<()> {
    let fd = subvol::open_dir(path).map_err(subvol::errno("open", path))?;
    sys::quota_enable(fd.as_fd())
        .map_err(|e| DriverError::io("enable btrfs quotas for the size= option on", path)(e.into()))
}

/// Caps the bytes the subvolume `path` may reference.
pub fn limit(path: &Path, bytes: u64) -> Result<()> {
    let fd = subvol::open_dir(path).map_err(subvol::errno("open subvolume", path))?;
    sys::limit_referenced(fd.as_fd(), bytes)
        .map_err(subvol::errno("set the size= quota limit of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units_and_refuse_nonsense() {
        let cases = [
            ("1048576", Some(1 << 20)),
            ("10G", Some(10 << 30)),
            ("10g", Some(10 << 30)),
            ("512M", Some(512 << 20)),
            ("512MB", Some(512 << 20)),
            ("2GiB", Some(2 << 30)),
            ("1.5G", Some(3 << 29)),
            ("64k", Some(64 << 10)),
            (" 1T ", Some(1 << 40)),
            ("0", None),
            ("", None),
            ("G", None),
            ("ten", None),
            ("1.5", None),
            ("10X", None),
            ("-1G", None),
            ("99999999999P", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), want, "{input:?}");
        }
    }
}
