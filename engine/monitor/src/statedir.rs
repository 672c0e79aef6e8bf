//! Names of the files in a monitor's state directory (drawn as a tree in the crate docs) and
//! the unix-socket plumbing both sides use to reach them.
//!
//! `sun_path` holds at most 107 bytes, and state directories can be deeper than that. When a
//! socket path is too long, [`listen`] and [`connect`] go through the directory's file
//! descriptor (`/proc/self/fd/N/<name>`), as conmon does. This module does not create or remove
//! the state directory itself; that is the front end's job.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// The version of the state-directory layout and of the files in it.
pub const FORMAT_VERSION: u32 = 1;

/// The attach socket.
pub const ATTACH_SOCKET: &str = "attach";
/// The socket the runtime sends the pty master on (`--terminal` only).
pub const CONSOLE_SOCKET: &str = "console.sock";
/// The container's init pid, written by the runtime.
pub const CONTAINER_PID_FILE: &str = "pid";
/// The monitor's own pid.
pub const MONITOR_PID_FILE: &str = "monitor.pid";
/// The monitor's debug trail.
pub const MONITOR_LOG: &str = "monitor.log";
/// The runtime's own log (JSON lines).
pub const RUNTIME_LOG: &str = "runtime.log";
/// The exit status (JSON), present once the container has exited.
pub const EXIT_FILE: &str = "exit";
/// The temporary name the exit file is written under before it is renamed into place.
pub const EXIT_FILE_TMP: &str = "exit.tmp";

/// `<state_dir>/<name>`.
pub fn path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name)
}

/// Binds a listening `SOCK_STREAM` unix socket at `path` (close-on-exec), replacing a stale
/// socket file left there by an earlier monitor.
pub fn listen(path: &Path, backlog: i32) -> io::Result<UnixListener> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    with_addr(path, |addr| rustix::net::bind(&socket, addr))?;
    rustix::net::listen(&socket, backlog)?;
    Ok(UnixListener::from(socket))
}

/// Connects a `SOCK_STREAM` unix socket to `path` (close-on-exec).
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    with_addr(path, |addr| rustix::net::connect(&socket, addr))?;
    Ok(UnixStream::from(socket))
}

/// Calls `f` with a socket address for `path`, going through `/proc/self/fd` when the path
/// does not fit in `sun_path`.
fn with_addr(
    path: &Path,
    f: impl FnOnce(&SocketAddrUnix) -> rustix::io::Result<()>,
) -> io::Result<()> {
    // Leave room for the terminating NUL that some peers expect.
    if path.as_os_str().len() < 108 {
        let addr = SocketAddrUnix::new(path)?;
        return Ok(f(&addr)?);
    }
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir_fd).to_string())
        .join(name);
    let addr = SocketAddrUnix::new(short.as_path())?;
    f(&addr)?;
    drop(dir_fd);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn long_socket_paths_work_through_the_directory_fd() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let deep = tmp.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let sock = deep.join(ATTACH_SOCKET);
        assert!(sock.as_os_str().len() > 108);

        let listener = listen(&sock, 4).expect("listen on a long path");
        assert!(sock.exists(), "the socket is bound at the long path itself");
        let mut client = connect(&sock).expect("connect to a long path");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn listen_replaces_a_stale_socket() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sock = tmp.path().join(ATTACH_SOCKET);
        drop(listen(&sock, 1).expect("first listen"));
        let _listener = listen(&sock, 1).expect("second listen over the stale file");
        connect(&sock).expect("connect");
    }
}
