//! Stopping, killing, waiting for, cleaning up after and removing containers.
//!
//! Waiting never holds the container's lock: the monitor's cleanup command needs it when the
//! container ends. Exits are seen through a pidfd on the container's init (no polling of
//! the runtime), then through the monitor's exit file.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use strata_plugin_api::ErrorKind;

use crate::context::{Container, Ctx};
use crate::errors::{call, kind_of, kinded};
use crate::runtime::Runtime;
use crate::start::{cleanup_locked, runtime_alive};
use crate::state::{self, State, Status};

pub fn runtime_of(ctx: &Ctx<'_>, c: &Container, st: &State) -> Result<Runtime> {
    Runtime::find(
        st.runtime.as_deref().unwrap_or(&c.config.runtime),
        &ctx.runroot(),
    )
}

/// The container's state with what happened since folded in (and saved if it changed).
pub fn current_state(ctx: &Ctx<'_>, c: &Container) -> Result<State> {
    let mut st = c.state()?;
    if st.status == Status::Running {
        let rt = runtime_of(ctx, c, &st)?;
        if st.refresh(&c.paths, || runtime_alive(&rt, c.id())) {
            // Record it under the lock, from a fresh read: a concurrent cleanup's update
            // must not be lost.
            let _lock = state::lock(&c.paths)?;
            st = c.state()?;
            if st.refresh(&c.paths, || runtime_alive(&rt, c.id())) {
                st.save(&c.paths)?;
            }
        }
    }
    Ok(st)
}

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

/// Waits for a running container to end, then for its exit to be recorded; returns the state.
pub fn wait_exit(ctx: &Ctx<'_>, c: &Container, timeout: Option<Duration>) -> Result<Option<State>> {
    let st = current_state(ctx, c)?;
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
        let st = current_state(ctx, c)?;
        if st.status != Status::Running || Instant::now() > deadline {
            return Ok(Some(st));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `stop`: the stop signal, then SIGKILL after `timeout`; then cleanup.
pub fn stop(ctx: &Ctx<'_>, c: &Container, timeout: Duration) -> Result<()> {
    let st = current_state(ctx, c)?;
    if st.status == Status::Running {
        let rt = runtime_of(ctx, c, &st)?;
        let sig = c.config.stop_signal.trim_start_matches("SIG").to_owned();
        let sig = if sig.is_empty() {
            "TERM".to_owned()
        } else {
            sig
        };
        if let Err(e) = rt.kill(c.id(), &sig, false) {
            tracing::debug!(error = %e, "stop signal not delivered");
        }
        if wait_exit(ctx, c, Some(timeout))?.is_none() {
            tracing::info!(
                container = c.short_id(),
                "did not stop in time; sending SIGKILL"
            );
            rt.kill(c.id(), "KILL", true)
                .or_else(|e| ignore_gone(&rt, c, e))?;
            wait_exit(ctx, c, Some(Duration::from_secs(30)))?;
        }
    }
    cleanup(ctx, c)
}

fn ignore_gone(rt: &Runtime, c: &Container, e: anyhow::Error) -> Result<()> {
    match runtime_alive(rt, c.id()) {
        Some(false) => Ok(()),
        _ => Err(e),
    }
}

/// `kill`: sends a signal to the container's init.
pub fn kill(ctx: &Ctx<'_>, c: &Container, signal: &str) -> Result<()> {
    let st = current_state(ctx, c)?;
    if st.status != Status::Running {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!(
                "container {} is not running (it is {})",
                c.info.name,
                st.status.as_str()
            ),
        ));
    }
    let rt = runtime_of(ctx, c, &st)?;
    rt.kill(c.id(), signal.trim_start_matches("SIG"), false)
}

/// Cleans up after an exit (see [`cleanup_locked`]); removes the container if it was made
/// with `--rm`. Safe to run twice and from two processes at once.
pub fn cleanup(ctx: &Ctx<'_>, c: &Container) -> Result<()> {
    {
        let _lock = state::lock(&c.paths)?;
        let mut st = c.state()?;
        let rt = runtime_of(ctx, c, &st)?;
        st.refresh(&c.paths, || runtime_alive(&rt, c.id()));
        if st.status == Status::Running {
            return Ok(()); // restarted meanwhile: nothing to clean
        }
        if !st.cleaned {
            cleanup_locked(ctx, c, &mut st, &rt)?;
        } else {
            st.save(&c.paths)?;
        }
    }
    if c.config.remove {
        match ctx.store.remove_container(c.id()) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(call(e)),
        }
    }
    Ok(())
}

/// `rm`: refuses running containers unless `force` (then kills them first).
pub fn remove(ctx: &Ctx<'_>, c: &Container, force: bool) -> Result<()> {
    let st = current_state(ctx, c)?;
    if st.status == Status::Running {
        if !force {
            return Err(kinded(
                ErrorKind::FailedPrecondition,
                format!(
                    "container {} is running: stop it first or use rm -f",
                    c.info.name
                ),
            ));
        }
        let rt = runtime_of(ctx, c, &st)?;
        rt.kill(c.id(), "KILL", true)
            .or_else(|e| ignore_gone(&rt, c, e))?;
        if wait_exit(ctx, c, Some(Duration::from_secs(30)))?
            .is_some_and(|s| s.status == Status::Running)
        {
            // The monitor is gone: nobody will write an exit file.
            let mut st = c.state()?;
            st.status = Status::Exited;
            st.save(&c.paths)?;
        }
    }
    {
        let _lock = state::lock(&c.paths)?;
        let mut st = c.state()?;
        if st.status == Status::Running {
            // Killed but the monitor is gone: nobody else will record the end.
            st.status = Status::Exited;
        }
        let rt = runtime_of(ctx, c, &st)?;
        if !st.cleaned || st.status == Status::Created {
            cleanup_locked(ctx, c, &mut st, &rt)?;
        }
    }
    match ctx.store.remove_container(c.id()) {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(call(e)).with_context(|| format!("remove container {}", c.info.name)),
    }
}

/// Whether an error means "no such container" (for `rm --ignore`, cleanup races).
pub fn is_not_found(e: &anyhow::Error) -> bool {
    kind_of(e) == ErrorKind::NotFound
}
