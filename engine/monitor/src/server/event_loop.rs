//! The monitor's main loop while the container runs: one `poll(2)` over the container's output,
//! the stdin sink, the attach socket and its clients, and the container's pidfd.
//!
//! Output is logged and forwarded as it arrives (never waiting for a newline); stdin from
//! clients is queued (bounded: clients are not read while the queue is full) and written when
//! the container reads; orphans are reaped on every timeout. The loop ends when the container's
//! init has been reaped; [`super::finish`] takes over from there.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::protocol::FrameType;
use crate::{LogWriter, Stream};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, WaitStatus};
use rustix::termios::Winsize;

use super::clients::{Clients, Request};
use super::output::{Output, ReadOutcome, SinkState, StdinSink};
use super::reaper;
use super::stdio::MonitorStdio;
use super::trail::Trail;

/// How long a quiet monitor sleeps before reaping orphans again.
const REAP_INTERVAL: Timespec = Timespec {
    tv_sec: 2,
    tv_nsec: 0,
};

/// How often a busy monitor reaps orphans.
const REAP_EVERY: Duration = Duration::from_secs(2);

/// How long an exited init may take to be reparented to the monitor (its first parent, a
/// runtime process, exiting) before its status counts as lost.
const REPARENT_GRACE: Duration = Duration::from_secs(5);

/// Bytes read from the container per read call.
pub const READ_CHUNK: usize = 32 * 1024;

/// Everything the running monitor holds.
#[derive(Debug)]
pub struct Monitor<'t> {
    pub trail: &'t Trail,
    pub log: LogWriter,
    log_failed: bool,
    pub outputs: Vec<Output>,
    pub stdin: Option<StdinSink>,
    terminal: Option<OwnedFd>,
    pub clients: Clients,
    container: Pid,
    pidfd: OwnedFd,
}

/// What a poll slot stands for.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Output(usize),
    Stdin,
    Listener,
    Client(usize),
    Pidfd,
}

impl<'t> Monitor<'t> {
    pub fn new(
        trail: &'t Trail,
        log: LogWriter,
        stdio: MonitorStdio,
        clients: Clients,
        container: Pid,
        pidfd: OwnedFd,
    ) -> Monitor<'t> {
        Monitor {
            trail,
            log,
            log_failed: false,
            outputs: stdio.outputs,
            stdin: stdio.stdin,
            terminal: stdio.terminal,
            clients,
            container,
            pidfd,
        }
    }

    /// Serves output, stdin and clients until the container's init has been reaped; `None`
    /// if it exited without being the monitor's child (its status is then unknown).
    pub fn run_until_exit(&mut self) -> Option<WaitStatus> {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut last_reap = Instant::now();
        // When the init exited while its first parent (a runtime process) was still alive, it
        // becomes our child only once that parent exits: wait a little for the reparenting.
        let mut orphan_since: Option<Instant> = None;
        loop {
            let ready = self.poll();
            // Orphans are collected when things are quiet, and at least every interval when
            // they are not.
            let mut reap = ready.is_empty() || last_reap.elapsed() >= REAP_EVERY;
            let mut exited = false;
            let mut requests = Vec::new();
            for (slot, revents) in ready {
                match slot {
                    Slot::Output(i) => self.read_output(i, &mut buf),
                    Slot::Stdin => self.flush_stdin(),
                    Slot::Listener => self.clients.accept_all(self.trail),
                    Slot::Client(i) => {
                        let client = &mut self.clients.list[i];
                        if revents.intersects(PollFlags::OUT) {
                            client.flush();
                        }
                        if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                            client.receive(&mut requests, self.trail);
                        }
                    }
                    Slot::Pidfd => {
                        reap = true;
                        exited = true;
                    }
                }
            }
            for request in requests {
                self.handle(request);
            }
            self.outputs.retain(|o| o.open);
            self.clients.remove_dead();
            if reap {
                last_reap = Instant::now();
                if let Some(status) = reaper::reap(Some(self.container)) {
                    return Some(status);
                }
                if exited && !reaper::is_child(self.container) {
                    let since = *orphan_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < REPARENT_GRACE {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    self.trail.note(
                        "the container's process exited but is not the monitor's child; \
                         its exit status is unknown",
                    );
                    return None;
                }
            }
        }
    }

    /// Waits for events; returns the ready slots (empty on timeout).
    fn poll(&self) -> Vec<(Slot, PollFlags)> {
        let mut slots = Vec::new();
        let mut fds = Vec::new();
        for (i, output) in self.outputs.iter().enumerate() {
            slots.push(Slot::Output(i));
            fds.push(PollFd::new(output, PollFlags::IN));
        }
        let stdin_full = match &self.stdin {
            Some(sink) => {
                if sink.wants_write() {
                    slots.push(Slot::Stdin);
                    fds.push(PollFd::new(sink, PollFlags::OUT));
                }
                sink.is_full()
            }
            None => false,
        };
        slots.push(Slot::Listener);
        fds.push(PollFd::new(&self.clients.listener, PollFlags::IN));
        for (i, client) in self.clients.list.iter().enumerate() {
            let mut events = PollFlags::empty();
            if !stdin_full {
                events |= PollFlags::IN;
            }
            if client.wants_write() {
                events |= PollFlags::OUT;
            }
            slots.push(Slot::Client(i));
            fds.push(PollFd::new(client.stream(), events));
        }
        slots.push(Slot::Pidfd);
        fds.push(PollFd::new(&self.pidfd, PollFlags::IN));

        match rustix::event::poll(&mut fds, Some(&REAP_INTERVAL)) {
            Ok(_) => slots
                .into_iter()
                .zip(fds.iter().map(PollFd::revents))
                .filter(|(_, revents)| !revents.is_empty())
                .collect(),
            // EINTR (a signal) or a transient failure: treat as a timeout.
            Err(_) => Vec::new(),
        }
    }

    fn read_output(&mut self, i: usize, buf: &mut [u8]) {
        let output = &mut self.outputs[i];
        match output.read(buf) {
            ReadOutcome::Data(n) => {
                let stream = output.stream;
                self.forward(stream, &buf[..n]);
            }
            ReadOutcome::WouldBlock => {}
            ReadOutcome::Closed => output.open = false,
        }
    }

    /// Logs container output and sends it to every client.
    pub fn forward(&mut self, stream: Stream, data: &[u8]) {
        if let Err(e) = self.log.write(stream, data) {
            if !self.log_failed {
                self.trail
                    .note(format_args!("container log write failed: {e}"));
                self.log_failed = true;
            }
        } else {
            self.log_failed = false;
        }
        let kind = match stream {
            Stream::Stdout => FrameType::Stdout,
            Stream::Stderr => FrameType::Stderr,
        };
        self.clients.broadcast(kind, data, self.trail);
    }

    fn flush_stdin(&mut self) {
        if let Some(sink) = &mut self.stdin {
            if sink.flush() == SinkState::Closed {
                self.stdin = None;
            }
        }
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Stdin(data) => {
                if let Some(sink) = &mut self.stdin {
                    sink.push(&data);
                    self.flush_stdin();
                }
            }
            Request::StdinEof => {
                if let Some(sink) = &mut self.stdin {
                    sink.request_eof();
                    self.flush_stdin();
                }
            }
            Request::Resize { rows, cols } => {
                if let Some(master) = &self.terminal {
                    let size = Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    if let Err(e) = rustix::termios::tcsetwinsize(master.as_fd(), size) {
                        self.trail.note(format_args!("resizing the terminal: {e}"));
                    }
                }
            }
            Request::ReopenLog => {
                if let Err(e) = self.log.reopen() {
                    self.trail.note(format_args!("reopening the log: {e}"));
                }
            }
            Request::CleanupDone => self
                .trail
                .note("cleanup acknowledged before the container exited; ignored"),
        }
    }
}
