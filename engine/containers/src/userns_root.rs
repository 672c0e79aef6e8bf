//! Where a rootless container with a user namespace of its own finds its root filesystem.
//!
//! The store mounts a container under the runroot, inside `$XDG_RUNTIME_DIR` (mode 0700, the
//! user's). A container whose map includes the user (`keep-id`) may walk that path; one whose
//! map leaves the user out (`nomap`, `auto`) may not: its root is a stranger to the user's
//! directories, and the runtime fails to reach the root filesystem ("Permission denied"). Such a
//! container's root is bound again under `/tmp/strata-<uid>-roots/<id>`, a directory of the
//! user's with mode 0711 (walkable, not listable). The bind exists only in the user's own mount
//! namespace; on the host that directory stays empty.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};
use strata_types::IdMap;
use strata_types::Mount;

/// Whether a container with `map` needs its root bound somewhere it can walk to.
pub fn needed(rootless: bool, map: Option<&IdMap>) -> bool {
    // A range covering the user's id (0 in its namespace) starts at 0.
    rootless && map.is_some_and(|m| !m.uids.iter().any(|r| r.outside == 0 && r.count > 0))
}

fn dir() -> Result<PathBuf> {
    let ns = crate::userns::OwnNs::current()?;
    Ok(PathBuf::from(format!("/tmp/strata-{}-roots", ns.host_uid)))
}

fn place(id: &str) -> Result<PathBuf> {
    Ok(dir()?.join(id))
}

/// Binds `rootfs` where the container's root can reach it; returns that path.
pub fn expose(rootfs: &Path, id: &str) -> Result<PathBuf> {
    let base = dir()?;
    match std::fs::create_dir(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("create {}", base.display())),
    }
    let meta =
        std::fs::symlink_metadata(&base).with_context(|| format!("stat {}", base.display()))?;
    if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() {
        bail!(
            "{} is not a directory of yours; remove it so that strata can make its own",
            base.display()
        );
    }
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("chmod {}", base.display()))?;
    let target = base.join(id);
    match std::fs::create_dir(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if strata_mount::is_mounted(&target)? {
                return Ok(target);
            }
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", target.display())),
    }
    strata_mount::mount(
        &Mount::Bind {
            source: rootfs.to_path_buf(),
            read_only: false,
        },
        &target,
    )
    .with_context(|| format!("bind the root filesystem at {}", target.display()))?;
    Ok(target)
}

/// Undoes [`expose`] (idempotent).
pub fn hide(id: &str) -> Result<()> {
    let target = place(id)?;
    while strata_mount::is_mounted(&target)? {
        strata_mount::unmount(&target)?;
    }
    match std::fs::remove_dir(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", target.display()))
        }
        _ => Ok(()),
    }
}
