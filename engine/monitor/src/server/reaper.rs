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
