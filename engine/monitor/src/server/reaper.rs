//! Reaping children. The monitor is a child subreaper, so besides the container's init
//! (reparented to it when `runtime create` exits) it inherits every orphan below it; all of
//! them are collected here so none is left a zombie.

use crate::{timestamp, ExitStatus};
use rustix::io::Errno;
use rustix::process::{Pid, WaitId, WaitIdOptions, WaitOptions, WaitStatus};

/// Reaps every child that has exited (after the container's own exit).
pub fn reap_orphans() {
    reap(None);
}

/// Reaps every child that has exited; returns the container's status if it was among them.
pub fn reap(container: Option<Pid>) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if Some(pid) == container {
                    found = Some(status);
                }
            }
            Err(Errno::INTR) => {}
            // Ok(None): children remain but none has exited; ECHILD: no children at all.
            Ok(None) | Err(_) => return found,
        }
    }
}

/// Whether `pid` is a child of the monitor (it can be reaped), as opposed to a process that
/// escaped it; `false` only when the kernel says so (ECHILD). Does not reap it.
pub fn is_child(pid: Pid) -> bool {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(
        rustix::process::waitid(WaitId::Pid(pid), options),
        Err(Errno::CHILD)
    )
}

/// The exit status to record for the container's wait status (`None`: it could not be
/// collected), stamped now. A signal `n` is reported as exit code `128 + n`, as shells and
/// podman do; an unknown status as 255.
pub fn exit_status(status: Option<WaitStatus>) -> ExitStatus {
    let unix_nanos = timestamp::now_unix_nanos();
    let (exit_code, signal) = match status.map(|s| (s.exit_status(), s.terminating_signal())) {
        Some((Some(code), _)) => (code, None),
        Some((None, Some(signal))) => (128 + signal, Some(signal)),
        _ => (255, None),
    };
    ExitStatus {
        exit_code,
        signal,
        finished_at: timestamp::format_rfc3339_nanos(unix_nanos),
        finished_at_unix_nanos: unix_nanos,
        oom_killed: false,
    }
}

/// The OOM kill count of the container's memory cgroup (cgroup v1 `memory.oom_control`, v2
/// `memory.events`, both with an `oom_kill N` line), so the container's end can tell whether
/// the kernel's OOM killer struck. Every start gets a new cgroup, so any kill counts. The
/// cgroup comes from the bundle's `cgroupsPath` (the process may already be gone when the
/// monitor looks: an OOM kill can come at once), else from the process; the file stays open,
/// so the count can be read even after the runtime began tearing the cgroup down.
#[derive(Debug)]
pub struct OomWatch {
    file: Option<std::fs::File>,
}

impl OomWatch {
    /// Watches the memory cgroup of the container of `bundle` (or of process `pid`);
    /// watches nothing when it has none.
    pub fn of(bundle: &std::path::Path, pid: i32) -> OomWatch {
        let from_spec = std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_owned))
            .filter(|p| p.starts_with('/'))
            .map(|p| {
                let v1 = std::path::PathBuf::from(format!(
                    "/sys/fs/cgroup/memory{p}/memory.oom_control"
                ));
                if v1.exists() {
                    v1
                } else {
                    format!("/sys/fs/cgroup{p}/memory.events").into()
                }
            });
        let path = from_spec.filter(|p| p.exists()).or_else(|| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .ok()
                .and_then(|text| memory_events_path(&text))
        });
        OomWatch {
            file: path.and_then(|p| std::fs::File::open(p).ok()),
        }
    }

    /// Whether the cgroup saw an OOM kill.
    pub fn fired(&self) -> bool {
        self.file
            .as_ref()
            .and_then(oom_kills)
            .is_some_and(|n| n > 0)
    }
}

fn memory_events_path(proc_cgroup: &str) -> Option<std::path::PathBuf> {
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(format!("/sys/fs/cgroup/memory{path}/memory.oom_control").into());
        }
        if controllers.is_empty() {
            v2 = Some(format!("/sys/fs/cgroup{path}/memory.events").into());
        }
    }
    v2.filter(|p: &std::path::PathBuf| p.exists())
}

fn oom_kills(mut file: &std::fs::File) -> Option<u64> {
    use std::io::{Read, Seek};
    file.rewind().ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod oom_tests {
    #[test]
    fn the_memory_cgroup_file_is_found_for_v1_and_v2() {
        let v1 = "12:memory:/strata/abc\n0::/strata/abc\n";
        assert_eq!(
            super::memory_events_path(v1),
            Some("/sys/fs/cgroup/memory/strata/abc/memory.oom_control".into())
        );
        assert_eq!(super::memory_events_path("3:cpu:/x\n"), None);
    }
}
