//! Idmapped mounts: a container with its own user namespace sees the image's files with the
//! owners they have on disk, without a chown copy of the image.
//!
//! How: an idmapped mount carries a user namespace; through it, a file whose on-disk owner is
//! `inside` appears owned by `outside`. Give every image layer the container's own map
//! (`0 100000 65536`) and the image's root-owned files appear as host uid 100000, which is uid 0
//! in the container's namespace. Overlay itself cannot be idmapped (the kernel refuses
//! `MOUNT_ATTR_IDMAP` on it), but it accepts idmapped layers. Each lower directory becomes an
//! idmapped clone, attached under a scratch tmpfs at the target only while the overlay is
//! configured (overlay clones its layers' mounts, which fails for detached ones; the clones it
//! keeps are private, so the scratch tree goes again before the overlay takes the target).
//!
//! The upper directory is not idmapped: overlay creates its work files and copies up with the
//! mounter's credentials (host root), which an idmapped upper cannot represent (`EOVERFLOW`).
//! So the container's own files land in its upper directory with host ids, as with
//! containers/storage; the upper root is handed to the container's root, and whoever turns the
//! upper directory into a layer (diff, commit) maps owners back.
//!
//! The user namespace that carries the map: the kernel has no call that makes one with a given
//! map, so a short-lived `unshare --user` child (util-linux, present on every Debian system)
//! provides it; we write its `uid_map`/`gid_map` as root, open `/proc/<pid>/ns/user`, and end
//! it. The descriptor keeps the namespace alive as long as the mounts need it. Forking
//! ourselves would need `unsafe` around `fork` in a possibly threaded process; a child costs
//! about 2 ms per mount, once per container start.
//!
//! What it deliberately does not do: choose ranges (the front end allocates them), or work
//! rootless on filesystems owned by the initial namespace (the kernel wants `CAP_SYS_ADMIN` over
//! the filesystem's owner; there the FUSE overlay driver shifts IDs itself).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use strata_types::idmap::proc_map_text;
pub use strata_types::{IdMap, IdRange};

use crate::{setattr, unmount_detach, MountError};

/// A user namespace carrying a map, held open by descriptor.
#[derive(Debug)]
pub struct UserNs {
    fd: OwnedFd,
}

impl UserNs {
    /// Makes a user namespace with `map` (needs `CAP_SETUID`/`CAP_SETGID` over the outside ids:
    /// root).
    pub fn new(map: &IdMap) -> Result<UserNs, MountError> {
        let mut child = Command::new("unshare")
            .args(["--user", "--", "sleep", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(MountError::io(
                "start `unshare --user` (util-linux) for an id map",
                Path::new("unshare"),
            ))?;
        let proc_dir = Path::new("/proc").join(child.id().to_string());
        let result = wait_for_new_userns(&mut child, &proc_dir).and_then(|()| {
            // uid_map and gid_map are written once each; root in the parent namespace needs no
            // `setgroups` deny for gid_map.
            write_map(&proc_dir.join("uid_map"), &map.uids)?;
            write_map(&proc_dir.join("gid_map"), &map.gids)?;
            let ns = proc_dir.join("ns/user");
            let f = File::open(&ns).map_err(MountError::io("open user namespace", &ns))?;
            Ok(UserNs { fd: f.into() })
        });
        let _ = child.kill();
        let _ = child.wait();
        result
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// Waits (bounded) until the child has left our user namespace.
fn wait_for_new_userns(child: &mut Child, proc_dir: &Path) -> Result<(), MountError> {
    let ours = std::fs::read_link("/proc/self/ns/user")
        .map_err(MountError::io("read", Path::new("/proc/self/ns/user")))?;
    let theirs = proc_dir.join("ns/user");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(l) = std::fs::read_link(&theirs) {
            if l != ours {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(MountError::Io {
                op: "make a user namespace for an id map",
                path: theirs,
                source: std::io::Error::other(format!("`unshare --user` exited: {status}")),
            });
        }
        if Instant::now() > deadline {
            return Err(MountError::Io {
                op: "make a user namespace for an id map",
                path: theirs,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "`unshare --user` did not enter a new namespace within 5 s",
                ),
            });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn write_map(path: &Path, ranges: &[IdRange]) -> Result<(), MountError> {
    let text = proc_map_text(ranges);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(MountError::io("write id map", path))
}

/// Idmapped clones of lower directories, attached for the moment an overlay is configured:
/// `<target>/<i>` on a scratch tmpfs mounted at `target`. Dropping it detaches the whole tree
/// (one lazy unmount of the tmpfs takes its submounts along).
#[derive(Debug)]
pub(crate) struct StagedLowers {
    target: PathBuf,
    paths: Vec<PathBuf>,
}

impl StagedLowers {
    pub(crate) fn attach(
        lowers: &[PathBuf],
        ns: &UserNs,
        target: &Path,
    ) -> Result<StagedLowers, MountError> {
        let fail = |step: String, errno: Errno| MountError::Mount {
            description: format!("scratch tmpfs for {} idmapped lower dirs", lowers.len()),
            target: target.into(),
            step,
            errno,
            log: Vec::new(),
        };
        let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| fail("fsopen tmpfs".into(), e))?;
        fsconfig_set_string(&fs, "mode", "0700").map_err(|e| fail("fsconfig mode".into(), e))?;
        fsconfig_create(&fs).map_err(|e| fail("fsconfig_create".into(), e))?;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
            .map_err(|e| fail("fsmount".into(), e))?;
        move_mount(
            mnt.as_fd(),
            "",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| fail("move_mount".into(), e))?;
        let mut staged = StagedLowers {
            target: target.to_path_buf(),
            paths: Vec::with_capacity(lowers.len()),
        };
        for (i, lower) in lowers.iter().enumerate() {
            let at = target.join(i.to_string());
            std::fs::create_dir(&at).map_err(MountError::io("create", &at))?;
            let tree = idmapped_tree(lower, ns)
                .map_err(|e| fail(format!("idmap lower dir {}", lower.display()), e))?;
            move_mount(
                tree.as_fd(),
                "",
                CWD,
                &at,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(|e| fail(format!("attach idmapped {}", lower.display()), e))?;
            staged.paths.push(at);
        }
        Ok(staged)
    }

    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for StagedLowers {
    fn drop(&mut self) {
        if let Err(e) = unmount_detach(&self.target) {
            tracing::warn!(target = %self.target.display(), error = %e, "cannot detach the idmapped lower dirs");
        }
    }
}

/// A detached, idmapped clone of the directory at `path`.
fn idmapped_tree(path: &Path, ns: &UserNs) -> Result<OwnedFd, Errno> {
    let tree = open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    setattr::set_idmap(tree.as_fd(), ns.fd().as_fd())?;
    Ok(tree)
}
