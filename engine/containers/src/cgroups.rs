//! Where a container's cgroup goes, and whether it gets one at all.
//!
//! Root: `cgroupsPath` `/strata/<id>` on every host (cgroupfs, v1 and v2), or
//! `<parent>/strata-<id>` below a parent the front end names (the CRI's pod cgroups).
//!
//! Rootless: cgroup v1 cannot be delegated to a user, so there is none. On a pure cgroup v2
//! host a user can own a *delegated* subtree (systemd's `Delegate=yes` gives every user
//! `user@UID.service`; any manager can `chown` a cgroup directory and its `cgroup.procs`,
//! `cgroup.subtree_control` and `cgroup.threads` to the user). Then containers get cgroups
//! below it, as `<delegated>/strata/<id>`, with the runtime's cgroupfs manager, and resource
//! limits work rootless.
//!
//! Which subtree: the highest ancestor of this process's own cgroup whose directory the user
//! owns. This process must sit *below* it, not in it: cgroup v2 forbids enabling controllers
//! for the children of a cgroup that has processes of its own (systemd puts the user's
//! processes in `session-N.scope`/`app.slice` below `user@UID.service` for that reason). The
//! controllers this front end uses (cpu, memory, pids) are enabled in `<delegated>` and
//! `<delegated>/strata` as far as `<delegated>/cgroup.controllers` offers them.
//!
//! What it does not do: talk to systemd (no transient scopes), or use the user's session
//! cgroup itself.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A root container's `cgroupsPath`: `/strata/<id>`, or `<parent>/strata-<id>` when the
/// front end gave a parent cgroup (a cgroupfs path; a systemd slice name `a-b.slice` is
/// expanded to its cgroupfs path `/a.slice/a-b.slice`, as the systemd driver would place it).
pub fn path(parent: &str, id: &str) -> String {
    if parent.is_empty() {
        return format!("/strata/{id}");
    }
    let parent = if parent.ends_with(".slice") && !parent.contains('/') {
        let stem = parent.trim_end_matches(".slice");
        let mut out = String::new();
        let mut acc = String::new();
        for part in stem.split('-').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            out.push_str(&format!("/{acc}.slice"));
        }
        out
    } else {
        parent.trim_end_matches('/').to_owned()
    };
    let parent = if parent.starts_with('/') {
        parent
    } else {
        format!("/{parent}")
    };
    format!("{parent}/strata-{id}")
}

/// The controllers resource flags need.
const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

/// The cgroup subtree a rootless process may put containers in, as a path in the cgroup v2
/// hierarchy (`/strata-rootless`, `/user.slice/user-1000.slice/user@1000.service`), or `None`
/// (cgroup v1 or hybrid host, nothing delegated, or this process in the delegated cgroup
/// itself).
pub fn delegated() -> Option<PathBuf> {
    if !crate::runtime::cgroup_v2_only() {
        return None;
    }
    let own = own_cgroup()?;
    let me = rustix::process::geteuid().as_raw();
    let mut best = None;
    let mut cur = own.parent().map(Path::to_path_buf);
    while let Some(c) = cur {
        if c == Path::new("/") {
            break;
        }
        match std::fs::metadata(host_path(&c)) {
            Ok(m) if m.uid() == me && writable_controls(&c, me) => best = Some(c.clone()),
            _ => break,
        }
        cur = c.parent().map(Path::to_path_buf);
    }
    best
}

/// `/proc/self/cgroup`'s v2 line (`0::/path`).
fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
}

fn host_path(cgroup: &Path) -> PathBuf {
    Path::new(CGROUP_ROOT).join(cgroup.strip_prefix("/").unwrap_or(cgroup))
}

fn writable_controls(cgroup: &Path, me: u32) -> bool {
    ["cgroup.procs", "cgroup.subtree_control"]
        .iter()
        .all(|f| std::fs::metadata(host_path(cgroup).join(f)).is_ok_and(|m| m.uid() == me))
}

/// Prepares `<delegated>/strata` for containers (controllers enabled on the way) and returns
/// the `cgroupsPath` for container `id`.
pub fn prepare_rootless(delegated: &Path, id: &str) -> Result<String> {
    let parent = host_path(delegated);
    let wanted: Vec<&str> = std::fs::read_to_string(parent.join("cgroup.controllers"))
        .with_context(|| format!("read {}", parent.join("cgroup.controllers").display()))?
        .split_whitespace()
        .filter_map(|c| CONTROLLERS.iter().copied().find(|w| *w == c))
        .collect();
    let strata = parent.join("strata");
    enable(&parent, &wanted)?;
    match std::fs::create_dir(&strata) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("create cgroup {}", strata.display()))
        }
        _ => {}
    }
    enable(&strata, &wanted)?;
    Ok(delegated.join("strata").join(id).display().to_string())
}

/// Writes `+c` for each controller not yet enabled in `dir/cgroup.subtree_control`.
fn enable(dir: &Path, controllers: &[&str]) -> Result<()> {
    let file = dir.join("cgroup.subtree_control");
    let on = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !on.split_whitespace().any(|o| o == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|mut f| f.write_all(missing.join(" ").as_bytes()))
        .with_context(|| {
            format!(
                "enable {} in {} (a delegated cgroup must not hold processes itself)",
                missing.join(" "),
                file.display()
            )
        })
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn parents_are_cgroupfs_paths() {
        assert_eq!(super::path("", "abc"), "/strata/abc");
        assert_eq!(
            super::path("/kubepods/pod1/", "abc"),
            "/kubepods/pod1/strata-abc"
        );
        assert_eq!(super::path("kubepods", "abc"), "/kubepods/strata-abc");
        assert_eq!(
            super::path("kubepods-besteffort.slice", "abc"),
            "/kubepods.slice/kubepods-besteffort.slice/strata-abc"
        );
    }
}
