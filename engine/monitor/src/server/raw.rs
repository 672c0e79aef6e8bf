//! The monitor's only unsafe code: closing descriptors inherited by accident, adopting the sync
//! fd inherited by number, and installing a do-nothing SIGHUP handler.
//!
//! A handler rather than `SIG_IGN` because ignored dispositions survive `execve` and would
//! leak into the runtime and the container, while handlers are reset to the default there.
//! SIGPIPE needs nothing here: the Rust runtime already ignores it in this process, and
//! `std::process::Command` restores the default in children.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use rustix::io::FdFlags;

/// Closes every descriptor above stderr except `keep`. A launcher that spawns several monitors
/// at once from different threads can leak one launch's sync pipe into another monitor; this
/// keeps such strays away from the runtime and the container (conmon does the same).
pub fn close_inherited_fds(keep: &[RawFd]) {
    let mut keep: Vec<libc::c_uint> = keep
        .iter()
        .filter_map(|fd| libc::c_uint::try_from(*fd).ok())
        .filter(|fd| *fd >= 3)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut ranges = Vec::new();
    let mut first: libc::c_uint = 3;
    for fd in keep {
        ranges.push((first, fd.saturating_sub(1)));
        first = fd + 1;
    }
    ranges.push((first, libc::c_uint::MAX));
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: this runs first thing in `main`, while the process is single-threaded and
        // before it has opened anything itself: every descriptor in the range was inherited,
        // and nothing in this process owns or refers to it.
        unsafe {
            libc::close_range(first, last, 0);
        }
    }
}

/// Takes ownership of a descriptor the parent passed by number (`flag`: `--sync-fd`,
/// `--attach-fd`) and makes it close-on-exec so it does not reach the runtime or the container.
pub fn adopt_fd(raw: RawFd, flag: &str) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{flag} {raw} would be one of the monitor's own stdio descriptors"),
        ));
    }
    // Refuse a number that is not an open descriptor before claiming it.
    std::fs::symlink_metadata(format!("/proc/self/fd/{raw}"))
        .map_err(|e| io::Error::new(e.kind(), format!("{flag} {raw} is not open: {e}")))?;
    // SAFETY: the descriptor is open (checked above) and was opened by our parent for us
    // alone; it is adopted exactly once, at startup, before anything else in this process
    // could have taken it, so no other owner exists.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
    Ok(fd)
}

extern "C" fn on_hangup(_signal: libc::c_int) {}

/// Makes SIGHUP harmless to the monitor (and only to the monitor).
pub fn ignore_hangup() -> io::Result<()> {
    // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty mask) that we then
    // fill in; the handler is an `extern "C"` function that does nothing, so it is
    // async-signal-safe; the pointers passed to `sigemptyset` and `sigaction` are valid for
    // the duration of the calls.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_hangup as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
