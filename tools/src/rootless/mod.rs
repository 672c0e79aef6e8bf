//! Rootless mode: a non-root user's commands run inside one user namespace and one mount
//! namespace per user, held open by a pause process, as podman does.
//!
//! At the start of `main`, [`enter`] looks for the pause process named by
//! `$XDG_RUNTIME_DIR/strata/pause.pid` (else `/tmp/strata-<uid>/pause.pid`). If it is alive and
//! ours, the process joins its user namespace, then its mount namespace; otherwise it starts
//! one (see [`pause`]) under a lock, so two first commands at once end up in the same
//! namespaces. Inside, the user is root (uid 0 maps to the user's uid, 1-N to the subordinate
//! ranges of `/etc/subuid` and `/etc/subgid`), so the store can chown layer files and mount
//! overlay (with `userxattr`); mounts made inside never show on the host.
//!
//! Whether we are rootless is read from `/proc/self/uid_map`, not from the euid, which is 0
//! inside the namespace ([`is_rootless`]).
//!
//! What it deliberately does not do: recover the namespaces of running containers when the
//! pause process was killed (a new pause process makes new namespaces; containers started in
//! the old ones keep running there but their mounts are not visible to later commands), or
//! fall back to a single-uid mapping when the user has no subordinate ranges (that is an error
//! saying how to add them).

mod idmap;
mod pause;
mod sys;

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use strata_types::idmap::{outside_id, parse_proc_map};

pub use pause::{pause_main, PAUSE_COMMAND};

/// Whether this process is in a user namespace other than the initial one: its uid map is
/// not the identity map (`0 0 4294967295`).
pub use strata_mount::in_user_namespace;

/// Whether strata runs rootless: as a non-root user, or as root of a user namespace (ours,
/// after [`enter`], or any other one).
pub fn is_rootless() -> bool {
    !rustix::process::geteuid().is_root() || in_user_namespace()
}

/// This process's uid outside its user namespace (the euid itself outside any).
pub fn host_uid() -> u32 {
    let uid = rustix::process::geteuid().as_raw();
    std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| outside_id(&parse_proc_map(&m), uid))
        .unwrap_or(uid)
}

/// The rootless user's runtime directory for strata: `$XDG_RUNTIME_DIR/strata`, else
/// `/tmp/strata-<uid>`. It holds the pause process's pid file and is the default runroot.
pub fn runtime_dir(uid: u32) -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|d| PathBuf::from(d).join("strata"))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/strata-{uid}")))
}

/// Moves this process into the user's namespaces, creating them first if needed. A no-op for
/// root and for processes already in a user namespace as its root (ours: the monitor's cleanup
/// command, `strata unshare` shells). Must run while the process has one thread.
pub fn enter() -> Result<()> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let uid = rustix::process::geteuid().as_raw();
    let dir = runtime_dir(uid);
    private_dir(&dir, uid)?;
    let pidfile = dir.join("pause.pid");
    if let Some(pid) = pause::find(&pidfile, uid) {
        if let Some(ns) = Namespaces::open(pid) {
            return ns.join();
        }
    }
    let lock_path = dir.join("pause.lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    flock(lock.as_fd(), FlockOperation::LockExclusive)
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    // Another command may have started it while we waited for the lock.
    let pid = match pause::find(&pidfile, uid) {
        Some(pid) => pid,
        None => pause::spawn(&pidfile)?,
    };
    let ns = Namespaces::open(pid).with_context(|| {
        format!("the rootless pause process {pid} ended before this command could join it")
    })?;
    drop(lock);
    ns.join()
}

/// Creates `dir` (mode 0700) or checks that it is a directory of ours: `/tmp/strata-<uid>`
/// sits in a world-writable directory where someone else could have made it first.
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let m = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?;
    if !m.is_dir() || m.uid() != uid {
        bail!(
            "{} is not a directory owned by you (uid {uid}); remove it or set XDG_RUNTIME_DIR",
            dir.display()
        );
    }
    Ok(())
}

/// The pause process's namespaces, held open by descriptors (so they outlive the process
/// between the check and the join).
struct Namespaces {
    pid: u32,
    user: File,
    mnt: File,
}

impl Namespaces {
    fn open(pid: u32) -> Option<Namespaces> {
        let open = |ns: &str| File::open(format!("/proc/{pid}/ns/{ns}")).ok();
        Some(Namespaces {
            pid,
            user: open("user")?,
            mnt: open("mnt")?,
        })
    }

    /// Joins the user namespace, then the mount namespace, and returns to the working
    /// directory (joining a mount namespace moves the process to its root).
    fn join(self) -> Result<()> {
        let cwd = std::env::current_dir().ok();
        let pid = self.pid;
        let fail = |what: &str, e: io::Error| {
            anyhow::anyhow!(
                "cannot join the {what} namespace of the rootless pause process {pid}: {e}"
            )
        };
        move_into_link_name_space(self.user.as_fd(), Some(LinkNameSpaceType::User))
            .map_err(|e| fail("user", e.into()))?;
        move_into_link_name_space(self.mnt.as_fd(), Some(LinkNameSpaceType::Mount))
            .map_err(|e| fail("mount", e.into()))?;
        if let Some(cwd) = cwd {
            std::env::set_current_dir(&cwd).with_context(|| {
                format!(
                    "cannot return to the working directory {} inside the user namespace",
                    cwd.display()
                )
            })?;
        }
        Ok(())
    }
}

/// `strata unshare [CMD...]`: runs a command (default `$SHELL`, else `/bin/sh`) inside the
/// namespaces, where the store's files show with their in-container owners.
pub fn unshare(command: &[std::ffi::OsString]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if !in_user_namespace() {
        bail!("strata unshare is for rootless mode: as root there is no user namespace to enter");
    }
    let (program, args) = match command.split_first() {
        Some((p, a)) => (p.clone(), a),
        None => (
            std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
            &[][..],
        ),
    };
    let e = std::process::Command::new(&program).args(args).exec();
    bail!("cannot run {}: {e}", Path::new(&program).display())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use strata_types::idmap::is_initial_map;

    #[test]
    fn the_initial_namespace_has_the_identity_map() {
        let initial = |m: &str| is_initial_map(&parse_proc_map(m));
        assert!(initial("         0          0 4294967295\n"));
        assert!(!initial("0 1000 1\n1 100000 65536\n"));
        assert!(!initial(""));
    }

    #[test]
    fn ids_map_to_the_outside_through_every_range() {
        let map = &parse_proc_map("0 1000 1\n1 100000 65536\n");
        assert_eq!(outside_id(map, 0), Some(1000));
        assert_eq!(outside_id(map, 1), Some(100000));
        assert_eq!(outside_id(map, 1000), Some(100999));
        assert_eq!(outside_id(map, 65536), Some(165535));
        assert_eq!(outside_id(map, 65537), None);
    }
}
