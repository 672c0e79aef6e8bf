//! Creating the container's stdio: pipes, or a terminal received from the runtime.
//!
//! Without a terminal the runtime is started with the child ends of fresh pipes (it passes its
//! stdio on to the container) and the monitor keeps the other ends. With a terminal the
//! runtime's stdio is `/dev/null`; it connects to `console.sock` and sends the pty master over
//! SCM_RIGHTS, and the monitor reads, writes and resizes that. This module does not decide what
//! to do with the bytes; the event loop does.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio;

use crate::{statedir, Stream};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::pipe::PipeFlags;

use super::output::{Output, StdinSink};

/// The monitor's side of the container's stdio.
#[derive(Debug)]
pub struct MonitorStdio {
    pub outputs: Vec<Output>,
    pub stdin: Option<StdinSink>,
    /// The pty master, for resizing (terminal mode only).
    pub terminal: Option<OwnedFd>,
}

/// What the runtime's `create` gets as stdin, stdout and stderr.
#[derive(Debug)]
pub struct RuntimeStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl RuntimeStdio {
    pub fn null() -> RuntimeStdio {
        RuntimeStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// Pipes for stdout and stderr, and for stdin when `stdin` (otherwise `/dev/null`).
pub fn pipes(stdin: bool) -> io::Result<(MonitorStdio, RuntimeStdio)> {
    // Only the monitor's ends are non-blocking: programs do not expect EAGAIN on their stdio.
    let (out_r, out_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    let (err_r, err_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&out_r, true)?;
    rustix::io::ioctl_fionbio(&err_r, true)?;
    let (sink, child_stdin) = if stdin {
        let (in_r, in_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&in_w, true)?;
        (Some(StdinSink::new(in_w, false)), Stdio::from(in_r))
    } else {
        (None, Stdio::null())
    };
    let monitor = MonitorStdio {
        outputs: vec![
            Output::new(out_r, Stream::Stdout),
            Output::new(err_r, Stream::Stderr),
        ],
        stdin: sink,
        terminal: None,
    };
    let runtime = RuntimeStdio {
        stdin: child_stdin,
        stdout: Stdio::from(out_w),
        stderr: Stdio::from(err_w),
    };
    Ok((monitor, runtime))
}

/// For a socket path too long for `sun_path`: a symlink to it with a short random name in
/// the temp directory (None when the path is short enough).
pub fn short_alias(socket: &Path) -> io::Result<Option<std::path::PathBuf>> {
    if socket.as_os_str().len() < 100 {
        return Ok(None);
    }
    let mut bytes = [0u8; 8];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let link = std::env::temp_dir().join(format!("strata-console-{name}.sock"));
    std::os::unix::fs::symlink(socket, &link)?;
    Ok(Some(link))
}

/// Listens on `<state_dir>/console.sock` for the runtime's pty.
pub fn console_listener(state_dir: &Path) -> io::Result<UnixListener> {
    let path = statedir::path(state_dir, statedir::CONSOLE_SOCKET);
    let listener = statedir::listen(&path, 1)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Takes the pty master the runtime sent on `listener` (after `create` returned, so the
/// connection is already queued) and removes the socket.
pub fn receive_terminal(
    listener: UnixListener,
    state_dir: &Path,
    stdin: bool,
) -> io::Result<MonitorStdio> {
    let _ = std::fs::remove_file(statedir::path(state_dir, statedir::CONSOLE_SOCKET));
    let (conn, _) = listener.accept().map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::other("the runtime did not connect to the console socket")
        } else {
            e
        }
    })?;
    conn.set_nonblocking(false)?;
    let mut name = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        &conn,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let master = control
        .drain()
        .find_map(|msg| match msg {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .ok_or_else(|| io::Error::other("the runtime sent no terminal on the console socket"))?;
    rustix::io::ioctl_fionbio(&master, true)?;
    let dup = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 3);
    Ok(MonitorStdio {
        outputs: vec![Output::new(dup(&master)?, Stream::Stdout)],
        stdin: if stdin {
            Some(StdinSink::new(dup(&master)?, true))
        } else {
            None
        },
        terminal: Some(master),
    })
}
