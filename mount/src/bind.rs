//! Bind mounts through the new mount API: `open_tree(OPEN_TREE_CLONE)` makes a detached copy of
//! the source, `mount_setattr` makes it read-only when asked (before it is visible anywhere),
//! and `move_mount` attaches it at the target.
//!
//! Binds are not recursive: a driver's payload directory has no submounts worth carrying.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::CWD;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use crate::idmap::UserNs;
use crate::{setattr, MountError};

pub(crate) fn mount_bind(
    source: &Path,
    read_only: bool,
    idmap: Option<&UserNs>,
    target: &Path,
) -> Result<(), MountError> {
    let description = format!(
        "bind of {}{}{}",
        source.display(),
        if read_only { " (read-only)" } else { "" },
        if idmap.is_some() { " (idmapped)" } else { "" }
    );
    let fail = |step: &str, errno| MountError::Mount {
        description: description.clone(),
        target: target.into(),
        step: step.into(),
        errno,
        log: Vec::new(),
    };
    let tree = open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| fail("open_tree", e))?;
    if let Some(ns) = idmap {
        setattr::set_idmap(tree.as_fd(), ns.fd().as_fd())
            .map_err(|e| fail("mount_setattr idmap", e))?;
    }
    if read_only {
        setattr::set_read_only(tree.as_fd()).map_err(|e| fail("mount_setattr ro", e))?;
    }
    move_mount(
        tree.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", e))?;
    tracing::debug!(target = %target.display(), mount = %description, "mounted bind");
    Ok(())
}
