//! Home-directory chores shared by the file-based drivers: creating the layout and checking its
//! format version, listing keys, refusing to delete mounted payload, naming the backing
//! filesystem.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata_driver_api::{DriverError, Key, Result};

/// Version of the on-disk layouts drawn in the drivers' module docs.
pub const FORMAT_VERSION: u32 = 1;

/// Creates `home` and its `subdirs`, and writes or checks `home/format`.
pub fn prepare(home: &Path, subdirs: &[&str], driver: &'static str) -> Result<()> {
    for d in subdirs {
        let p = home.join(d);
        std::fs::create_dir_all(&p).map_err(DriverError::io("create", &p))?;
    }
    let format = home.join("format");
    match std::fs::read_to_string(&format) {
        Ok(v) if v.trim() == FORMAT_VERSION.to_string() => Ok(()),
        Ok(v) => Err(DriverError::Unsupported {
            driver,
            reason: format!(
                "{} has layout version {:?}; this build reads version {FORMAT_VERSION}",
                home.display(),
                v.trim()
            ),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Written aside and renamed into place: several processes may open a fresh home at
            // once, and none may read a half-written file.
            let tmp = home.join(format!(".format.{}", std::process::id()));
            std::fs::write(&tmp, format!("{FORMAT_VERSION}\n"))
                .map_err(DriverError::io("write", &tmp))?;
            std::fs::rename(&tmp, &format).map_err(DriverError::io("rename", &format))
        }
        Err(e) => Err(DriverError::io("read", &format)(e)),
    }
}

/// Sets the permission bits of `path` (independent of the umask).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(DriverError::io("chmod", path))
}

/// The keys named by the directories in `dir`; other names are skipped with a warning.
pub fn list_keys(dir: &Path) -> Result<Vec<Key>> {
    let mut keys = Vec::new();
    for e in std::fs::read_dir(dir).map_err(DriverError::io("read", dir))? {
        let e = e.map_err(DriverError::io("read", dir))?;
        let name = e.file_name();
        match name.to_str().map(Key::new) {
            Some(Ok(k)) => keys.push(k),
            _ => {
                tracing::warn!(path = %e.path().display(), "ignoring a directory that is not a driver key")
            }
        }
    }
    keys.sort();
    Ok(keys)
}

/// Fails with kind `Busy` if a mount in this namespace uses `payload`.
pub fn refuse_if_mounted(payload: &Path) -> Result<()> {
    let users = strata_mount::mounts_using(payload).map_err(|e| {
        DriverError::io("check mounts of", payload)(std::io::Error::other(e.to_string()))
    })?;
    if users.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = users.iter().map(|p| p.display().to_string()).collect();
    Err(DriverError::io("remove", payload)(std::io::Error::new(
        ErrorKind::ResourceBusy,
        format!("still mounted at {}; unmount it first", list.join(", ")),
    )))
}

/// Refuses to commit a staging area that this driver did not hand out.
pub fn check_own_area(area: &Path, staging_dir: &Path) -> Result<()> {
    if area.parent() == Some(staging_dir) {
        Ok(())
    } else {
        Err(DriverError::io("commit", area)(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "not a staging area of this driver (expected one in {})",
                staging_dir.display()
            ),
        )))
    }
}

/// A name for the filesystem holding `path` (for `storage info`).
pub fn fs_name(path: &Path) -> String {
    match rustix::fs::statfs(path) {
        Ok(s) => match s.f_type as u64 {
            0xEF53 => "ext4".into(),
            0x9123_683E => "btrfs".into(),
            0x5846_5342 => "xfs".into(),
            0x0102_1994 => "tmpfs".into(),
            0x794C_7630 => "overlay".into(),
            0x2FC1_2FC1 => "zfs".into(),
            0x6573_5546 => "fuse".into(),
            other => format!("unknown (0x{other:x})"),
        },
        Err(e) => format!("unknown ({e})"),
    }
}
