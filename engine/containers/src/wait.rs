//! `wait`: until a running container ends and its exit is recorded.
//!
//! Waiting never holds the container's lock: the monitor's cleanup command needs it when the
//! container ends. Exits are seen through a pidfd on the container's init (no polling of the
//! runtime), then through the monitor's exit file.

use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};

use crate::container::Container;
use crate::error::Result;
use crate::state::{State, Status};

/// Waits until `pid` ends or `timeout` passes; returns whether it ended.
fn wait_pid(pid: i32, timeout: Option<Duration>) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return true, // already gone
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return false;
        }
        let ts = left.map(|l| rustix::event::Timespec {
            tv_sec: l.as_secs() as i64,
            tv_nsec: l.subsec_nanos() as i64,
        });
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) if n > 0 => return true,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

impl Container<'_> {
    /// Waits for a running container to end, then for its exit to be recorded; returns the
    /// state, or `None` if `timeout` passed first. A container that is not running returns
    /// at once.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Option<State>> {
        let st = self.state()?;
        if st.status != Status::Running {
            return Ok(Some(st));
        }
        if let Some(pid) = st.pid {
            if !wait_pid(pid, timeout) {
                return Ok(None);
            }
        }
        // The monitor writes the exit file right after reaping; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = self.state()?;
            if st.status != Status::Running || Instant::now() > deadline {
                return Ok(Some(st));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
