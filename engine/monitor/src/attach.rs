//! The attach client: connects to a monitor's `<state-dir>/attach` socket, sends stdin,
//! terminal sizes and the cleanup acknowledgement, and receives output and the exit status.
//!
//! The client is a plain blocking socket. A front end that reads and writes at the same time
//! splits it with [`AttachClient::try_clone`] (one reader thread, one writer). Raw terminal
//! mode, detach keys and signal forwarding are the front end's business, not this module's.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::protocol::{self, ExitStatus, FrameType, Hello};
use crate::statedir;

/// Stdin bytes are sent in frames of at most this size.
const STDIN_CHUNK: usize = 32 * 1024;

/// A connection to a monitor's attach socket.
#[derive(Debug)]
pub struct AttachClient {
    stream: UnixStream,
}

/// A message from the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// Output the container wrote to stdout (or its terminal).
    Stdout(Vec<u8>),
    /// Output the container wrote to stderr.
    Stderr(Vec<u8>),
    /// The container exited; nothing follows.
    Exit(ExitStatus),
}

impl AttachClient {
    /// Connects to the monitor serving `state_dir` and says hello. With `cleanup`, this client
    /// promises to run the container's cleanup itself and to confirm it with
    /// [`AttachClient::ack_cleanup`]; the monitor then waits for that (up to its exit delay)
    /// instead of running its exit command.
    pub fn connect(state_dir: &Path, cleanup: bool) -> io::Result<AttachClient> {
        let path = statedir::path(state_dir, statedir::ATTACH_SOCKET);
        let stream = statedir::connect(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("connecting to container monitor at {}: {e}", path.display()),
            )
        })?;
        let mut client = AttachClient { stream };
        let hello = serde_json::to_vec(&Hello { cleanup }).map_err(io::Error::other)?;
        client.send(FrameType::Hello, &hello)?;
        Ok(client)
    }

    /// A client over an already connected stream (the launcher's end of `--attach-fd`);
    /// says hello like [`AttachClient::connect`].
    pub fn from_stream(stream: UnixStream, cleanup: bool) -> io::Result<AttachClient> {
        let mut client = AttachClient { stream };
        let hello = serde_json::to_vec(&Hello { cleanup }).map_err(io::Error::other)?;
        client.send(FrameType::Hello, &hello)?;
        Ok(client)
    }

    /// A second handle on the same connection (for a separate reader or writer thread).
    pub fn try_clone(&self) -> io::Result<AttachClient> {
        Ok(AttachClient {
            stream: self.stream.try_clone()?,
        })
    }

    /// Makes [`AttachClient::recv`] fail with `WouldBlock`/`TimedOut` after `timeout` without
    /// data (`None`: wait forever, the default).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Sends bytes to the container's stdin (ignored by a monitor started without `--stdin`).
    pub fn send_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(STDIN_CHUNK) {
            self.send(FrameType::Stdin, chunk)?;
        }
        Ok(())
    }

    /// Closes the container's stdin once the bytes sent before have been delivered. Ignored
    /// with a terminal (send the terminal's EOF character, usually `^D`, instead).
    pub fn send_eof(&mut self) -> io::Result<()> {
        self.send(FrameType::StdinEof, &[])
    }

    /// Sets the container terminal's size (ignored without a terminal).
    pub fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        self.send(FrameType::Resize, &protocol::encode_resize(rows, cols))
    }

    /// Asks the monitor to close and reopen the container's log file at its path.
    pub fn reopen_log(&mut self) -> io::Result<()> {
        self.send(FrameType::ReopenLog, &[])
    }

    /// Tells the monitor the cleanup has been done, so it skips its exit command.
    pub fn ack_cleanup(&mut self) -> io::Result<()> {
        self.send(FrameType::CleanupDone, &[])
    }

    /// The next message; `Ok(None)` when the monitor closed the connection.
    pub fn recv(&mut self) -> io::Result<Option<ServerMessage>> {
        let Some((kind, payload)) = protocol::read_frame(&mut self.stream)? else {
            return Ok(None);
        };
        match kind {
            FrameType::Stdout => Ok(Some(ServerMessage::Stdout(payload))),
            FrameType::Stderr => Ok(Some(ServerMessage::Stderr(payload))),
            FrameType::Exit => serde_json::from_slice(&payload)
                .map(|status| Some(ServerMessage::Exit(status)))
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("monitor sent a corrupt exit status: {e}"),
                    )
                }),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("monitor sent a client-side frame {other:?}"),
            )),
        }
    }

    /// Iterates over the messages until the connection closes or fails.
    pub fn messages(&mut self) -> impl Iterator<Item = io::Result<ServerMessage>> + '_ {
        std::iter::from_fn(move || self.recv().transpose())
    }

    fn send(&mut self, kind: FrameType, payload: &[u8]) -> io::Result<()> {
        protocol::write_frame(&mut self.stream, kind, payload)
    }
}

impl AsFd for AttachClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}
