//! Starts a monitor for a container and waits until the container is created.
//!
//! [`launch`] spawns `strata-monitor` with its stdio on `/dev/null` and a sync pipe whose write
//! end only the monitor inherits (`--sync-fd N`). The monitor runs `runtime create` and writes
//! one line, a [`SyncReply`]: `{"pid":1234}` once the container exists, or `{"error":"..."}`
//! with the runtime's own message. The container is then *created*; starting it
//! (`runtime start ID`) is the caller's job, ideally after attaching so no output is missed.
//!
//! The monitor is not waited for: it is the caller's child until the caller exits, then it is
//! reparented. A long-lived caller (a daemon) must reap it (`waitpid(monitor_pid)`) or it stays
//! a zombie once it exits. The sync pipe's write end is created without close-on-exec (so no
//! `unsafe` `pre_exec` is needed). Another process spawned from another thread at the same
//! moment could inherit it: a monitor closes such strays at startup, other programs keep them,
//! which only delays the report of a monitor that dies without writing, because [`launch`] also
//! watches the monitor process itself.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::pipe::PipeFlags;
use serde::{Deserialize, Serialize};
use strata_types::{ErrorKind, HasKind};

use crate::attach::AttachClient;

pub use crate::args::MonitorArgs;

/// What a successful launch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    /// The monitor's pid (also in `<state-dir>/monitor.pid`).
    pub monitor_pid: i32,
    /// The container's init pid (also in `<state-dir>/pid`).
    pub container_pid: i32,
}

/// The one line a monitor writes on its sync fd.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncReply {
    /// The container's init pid, once it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Why the container could not be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a launch failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("creating the sync pipe for the monitor of container {id}: {source}")]
    Pipe { id: String, source: io::Error },
    #[error("starting container monitor {}: {source}", binary.display())]
    Spawn { binary: PathBuf, source: io::Error },
    #[error("reading from the monitor of container {id}: {source}")]
    Read { id: String, source: io::Error },
    #[error("creating container {id}: {message}")]
    Failed { id: String, message: String },
    #[error("the monitor of container {id} exited ({status}) before reporting")]
    Died {
        id: String,
        status: std::process::ExitStatus,
    },
    #[error("the monitor of container {id} sent an unreadable report {line:?}")]
    BadReply { id: String, line: String },
}

impl HasKind for LaunchError {
    fn kind(&self) -> ErrorKind {
        match self {
            LaunchError::Spawn { source, .. } => ErrorKind::from_io(source),
            LaunchError::Pipe { .. }
            | LaunchError::Read { .. }
            | LaunchError::Failed { .. }
            | LaunchError::Died { .. } => ErrorKind::Internal,
            LaunchError::BadReply { .. } => ErrorKind::Corrupt,
        }
    }
}

/// How often the monitor process is checked while waiting for its report.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Spawns `monitor_binary` for `args` and waits until the container is created (or creating
/// it failed).
pub fn launch(monitor_binary: &Path, args: &MonitorArgs) -> Result<Launched, LaunchError> {
    launch_with(monitor_binary, args, None)
}

/// Like [`launch`], with the caller attached from before the container exists: the monitor
/// gets one end of a connected socket pair (`--attach-fd`) and serves it as its first client,
/// so with `--start` (create and start in one runtime call) no output is missed. Returns the
/// caller's end as an [`AttachClient`] (hello sent, with `cleanup`).
pub fn launch_attached(
    monitor_binary: &Path,
    args: &MonitorArgs,
    cleanup: bool,
) -> Result<(Launched, AttachClient), LaunchError> {
    let pipe_err = |source| LaunchError::Pipe {
        id: args.id.clone(),
        source,
    };
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| pipe_err(e.into()))?;
    let theirs = inheritable(theirs).map_err(pipe_err)?;
    let client = AttachClient::from_stream(UnixStream::from(ours), cleanup).map_err(pipe_err)?;
    let mut args = args.clone();
    args.attach_fd = Some(theirs.as_raw_fd());
    let launched = launch_with(monitor_binary, &args, Some(theirs))?;
    Ok((launched, client))
}

/// A descriptor the child inherits: not close-on-exec, and above stdio.
fn inheritable(fd: OwnedFd) -> io::Result<OwnedFd> {
    let fd = if fd.as_raw_fd() < 3 {
        rustix::io::fcntl_dupfd_cloexec(&fd, 3)?
    } else {
        fd
    };
    rustix::io::fcntl_setfd(&fd, FdFlags::empty())?;
    Ok(fd)
}

fn launch_with(
    monitor_binary: &Path,
    args: &MonitorArgs,
    inherited: Option<OwnedFd>,
) -> Result<Launched, LaunchError> {
    let pipe_err = |source| LaunchError::Pipe {
        id: args.id.clone(),
        source,
    };
    let (read_end, write_end) = sync_pipe().map_err(pipe_err)?;
    let mut child = Command::new(monitor_binary)
        .args(args.to_argv(Some(write_end.as_raw_fd())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            binary: monitor_binary.to_path_buf(),
            source,
        })?;
    drop(write_end);
    drop(inherited);
    let monitor_pid = i32::try_from(child.id()).unwrap_or(i32::MAX);

    let read_err = |source| LaunchError::Read {
        id: args.id.clone(),
        source,
    };
    let mut reader = std::fs::File::from(read_end);
    let mut line = Vec::new();
    loop {
        if !wait_readable(&reader).map_err(read_err)? {
            if let Some(status) = child.try_wait().map_err(read_err)? {
                // Whatever it wrote before exiting is readable now.
                if !wait_readable(&reader).map_err(read_err)? {
                    return Err(LaunchError::Died {
                        id: args.id.clone(),
                        status,
                    });
                }
            }
            continue;
        }
        let mut buf = [0u8; 512];
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        line.extend_from_slice(&buf[..n]);
        if n == 0 || line.contains(&b'\n') {
            break;
        }
    }
    if line.is_empty() {
        let status = child.wait().map_err(read_err)?;
        return Err(LaunchError::Died {
            id: args.id.clone(),
            status,
        });
    }
    let text = String::from_utf8_lossy(&line).trim().to_owned();
    let reply: SyncReply = serde_json::from_str(&text).map_err(|_| LaunchError::BadReply {
        id: args.id.clone(),
        line: text.clone(),
    })?;
    match reply {
        SyncReply {
            pid: Some(container_pid),
            error: None,
        } => Ok(Launched {
            monitor_pid,
            container_pid,
        }),
        SyncReply {
            error: Some(message),
            ..
        } => {
            // A failed monitor exits right after reporting; do not leave a zombie behind.
            let _ = child.wait();
            Err(LaunchError::Failed {
                id: args.id.clone(),
                message,
            })
        }
        SyncReply {
            pid: None,
            error: None,
        } => Err(LaunchError::BadReply {
            id: args.id.clone(),
            line: text,
        }),
    }
}

/// A pipe whose read end is close-on-exec and whose write end (at fd 3 or above) is inherited.
fn sync_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read_end, write_end) = rustix::pipe::pipe_with(PipeFlags::empty())?;
    rustix::io::fcntl_setfd(&read_end, FdFlags::CLOEXEC)?;
    // A caller with a closed stdio fd could get the pipe at 0-2, which the child's stdio
    // redirection would overwrite.
    let write_end = if write_end.as_raw_fd() < 3 {
        let moved = rustix::io::fcntl_dupfd_cloexec(&write_end, 3)?;
        rustix::io::fcntl_setfd(&moved, FdFlags::empty())?;
        moved
    } else {
        write_end
    };
    Ok((read_end, write_end))
}

/// Waits up to [`POLL_INTERVAL`] for `fd` to be readable (or hung up).
fn wait_readable(fd: &impl std::os::fd::AsFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: POLL_INTERVAL.as_nanos() as i64,
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_replies_have_the_documented_shape() {
        let ok = SyncReply {
            pid: Some(1234),
            error: None,
        };
        assert_eq!(serde_json::to_string(&ok).expect("json"), r#"{"pid":1234}"#);
        let failed: SyncReply =
            serde_json::from_str(r#"{"error":"no such bundle"}"#).expect("json");
        assert_eq!(failed.error.as_deref(), Some("no such bundle"));
        assert_eq!(failed.pid, None);
    }

    #[test]
    fn a_missing_monitor_binary_is_not_found() {
        let args = MonitorArgs::new("c", "/b", "crun", "/s", "/l");
        let err = launch(Path::new("/nonexistent/strata-monitor"), &args).expect_err("spawn");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn a_monitor_that_dies_silently_is_reported() {
        let args = MonitorArgs::new("c", "/b", "crun", "/s", "/l");
        // `false` ignores its arguments and exits 1 without writing to the sync pipe.
        let err = launch(Path::new("/bin/false"), &args).expect_err("died");
        assert!(matches!(err, LaunchError::Died { .. }), "{err}");
    }
}
