//! The monitor's ends of the container's stdio: [`Output`] (a stdout/stderr pipe or the pty
//! master, read) and [`StdinSink`] (the stdin pipe or the pty master, written).
//!
//! All descriptors are non-blocking; nothing here ever waits. Buffering towards the container
//! is bounded by the caller, which stops reading attach clients while the sink is full.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::Stream;
use rustix::io::Errno;

/// Bytes of client stdin held for a container that is not reading.
pub const STDIN_BUFFER_LIMIT: usize = 1024 * 1024;

/// A source of container output.
#[derive(Debug)]
pub struct Output {
    fd: OwnedFd,
    pub stream: Stream,
    /// Closed outputs are dropped from the poll set after the current round.
    pub open: bool,
}

/// The result of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    WouldBlock,
    /// End of file, or the pty's slave side is gone (EIO).
    Closed,
}

impl Output {
    pub fn new(fd: OwnedFd, stream: Stream) -> Output {
        Output {
            fd,
            stream,
            open: true,
        }
    }

    /// One non-blocking read.
    pub fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            return match rustix::io::read(&self.fd, &mut *buf) {
                Ok(0) => ReadOutcome::Closed,
                Ok(n) => ReadOutcome::Data(n),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => ReadOutcome::WouldBlock,
                // EIO: a pty master whose slave side has been closed by everyone.
                Err(_) => ReadOutcome::Closed,
            };
        }
    }
}

impl AsFd for Output {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Where attach clients' stdin goes: the stdin pipe, or the pty master.
#[derive(Debug)]
pub struct StdinSink {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// A pty gets no EOF from the protocol (the terminal's ^D does that).
    pty: bool,
    eof_requested: bool,
}

/// Whether a sink is still worth keeping after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkState {
    Open,
    Closed,
}

impl StdinSink {
    pub fn new(fd: OwnedFd, pty: bool) -> StdinSink {
        StdinSink {
            fd,
            buf: Vec::new(),
            pty,
            eof_requested: false,
        }
    }

    /// Queues bytes (dropped after an EOF request).
    pub fn push(&mut self, data: &[u8]) {
        if !self.eof_requested {
            self.buf.extend_from_slice(data);
        }
    }

    /// Closes the pipe once the queued bytes are written (a no-op for a pty).
    pub fn request_eof(&mut self) {
        if !self.pty {
            self.eof_requested = true;
        }
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() >= STDIN_BUFFER_LIMIT
    }

    pub fn wants_write(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes what it can without blocking; `Closed` once the sink should be dropped (EOF
    /// delivered, or the container closed its end).
    pub fn flush(&mut self) -> SinkState {
        while !self.buf.is_empty() {
            match rustix::io::write(&self.fd, &self.buf) {
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return SinkState::Open,
                Err(_) => return SinkState::Closed,
            }
        }
        if self.eof_requested {
            SinkState::Closed
        } else {
            SinkState::Open
        }
    }
}

impl AsFd for StdinSink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
