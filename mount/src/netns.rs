//! Network namespaces pinned by a bind mount, as `ip netns add` and podman make them: the
//! namespace lives as long as the mount at its path, independently of any process, so that CNI
//! plugins (which take a path) can configure it before the container starts and after it exits.
//!
//! How, without forking: a short-lived thread calls `unshare(CLONE_NEWNET)` (only that thread
//! moves; the rest of the process stays where it was), opens `/proc/thread-self/ns/net` and
//! ends. The open descriptor keeps the namespace alive until `open_tree(fd, "",
//! OPEN_TREE_CLONE | AT_EMPTY_PATH)` and `move_mount` attach it on an empty file at the path.
//!
//! Decision on the parent directory: iproute2 and podman bind-mount their netns directory onto
//! itself and make it shared (`MS_SHARED | MS_REC`), so that deleting a namespace propagates
//! the unmount into mount namespaces that copied it (an `ip netns exec` session, say); such a
//! copy would otherwise keep the namespace alive after its deletion. We leave the parent as it
//! is: the mount namespaces Strata starts are the OCI runtime's, which `pivot_root` and detach
//! the old root, so they keep no copy; the worst case of a stray copy is a namespace that
//! lingers until that mount namespace ends, while the path itself is free again. It also keeps
//! this crate's rule of never changing propagation.
//!
//! What it deliberately does not do: configure the namespace (CNI plugins do), enter it, or
//! choose where namespaces live.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
use rustix::thread::UnshareFlags;

use crate::{is_mounted, unmount_detach, MountError};

const DESCRIPTION: &str = "network namespace";

/// Creates a new network namespace and pins it at `path` (a file, created with its parent
/// directories). Fails with an `AlreadyExists` error if a namespace (or anything else) is
/// already mounted at `path`; a leftover unmounted file there is reused.
pub fn create_netns(path: &Path) -> Result<(), MountError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(MountError::io("create directory", parent))?;
    }
    if is_mounted(path)? {
        return Err(MountError::Io {
            op: "create network namespace at",
            path: path.into(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "something is already mounted there",
            ),
        });
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o444)
        .open(path)
        .map_err(MountError::io("create", path))?;
    let pinned = new_netns().and_then(|ns| attach(&ns, path));
    if pinned.is_err() {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the namespace file after a failure");
        }
    }
    pinned?;
    tracing::debug!(path = %path.display(), "created network namespace");
    Ok(())
}

/// Unpins the namespace at `path` (lazy unmount: processes still inside keep it alive) and
/// removes the file. Idempotent: a missing path or an unmounted file is fine.
pub fn remove_netns(path: &Path) -> Result<(), MountError> {
    // One detach per stacked mount; a path never holds more than a couple.
    for _ in 0..8 {
        if !is_mounted(path)? {
            break;
        }
        unmount_detach(path)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!(path = %path.display(), "removed network namespace");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(MountError::io("remove", path)(e)),
    }
}

/// Unshares the network namespace on a fresh thread and returns a descriptor of it.
fn new_netns() -> Result<OwnedFd, MountError> {
    let fail = |step: &str, errno| MountError::Mount {
        description: DESCRIPTION.into(),
        target: "/proc/thread-self/ns/net".into(),
        step: step.into(),
        errno,
        log: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name("strata-netns".into())
        .spawn(|| -> Result<OwnedFd, (&'static str, Errno)> {
            unshare_net().map_err(|e| ("unshare(CLONE_NEWNET)", e))?;
            rustix::fs::openat(
                CWD,
                "/proc/thread-self/ns/net",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ("open", e))
        })
        .map_err(MountError::io(
            "spawn a thread for",
            "/proc/thread-self/ns/net",
        ))?;
    match thread.join() {
        Ok(result) => result.map_err(|(step, errno)| fail(step, errno)),
        Err(_) => Err(fail("namespace thread panicked", Errno::IO)),
    }
}

#[allow(unsafe_code)]
fn unshare_net() -> Result<(), Errno> {
    // SAFETY: the unsafety of `unshare` concerns `CLONE_FILES` (descriptors created on other
    // threads becoming invalid on this one). Only `CLONE_NEWNET` is passed, which changes
    // nothing but this thread's network namespace; the thread ends right after.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }
}

/// Bind-mounts the namespace `ns` refers to onto the file `path`.
fn attach(ns: &OwnedFd, path: &Path) -> Result<(), MountError> {
    let fail = |step: &str, errno| MountError::Mount {
        description: DESCRIPTION.into(),
        target: path.into(),
        step: step.into(),
        errno,
        log: Vec::new(),
    };
    let tree = open_tree(
        ns.as_fd(),
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| fail("open_tree", e))?;
    move_mount(
        tree.as_fd(),
        "",
        CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", e))
}
