//! After the container's init is reaped: drain the remaining output, record the exit, tell the
//! clients, wait for a cleanup-owning client's acknowledgement, run the exit command.
//!
//! Draining reads only what is already buffered (until EAGAIN or EOF): processes outside the
//! container's pid namespace may still hold its pipes, and the monitor must not wait for them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{exitfile, statedir, MonitorArgs};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::WaitStatus;

use super::clients::Request;
use super::event_loop::{Monitor, READ_CHUNK};
use super::output::ReadOutcome;
use super::reaper;

/// At most this much leftover output is drained per stream after the exit.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// How long clients without a cleanup role get to receive their last frames.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

impl Monitor<'_> {
    /// Everything from the container's exit to the monitor's.
    pub fn finish(
        mut self,
        status: Option<WaitStatus>,
        args: &MonitorArgs,
        oom: &reaper::OomWatch,
    ) {
        let mut exit = reaper::exit_status(status);
        exit.oom_killed = oom.fired();
        self.trail.note(format_args!(
            "container exited: code {}, signal {:?}",
            exit.exit_code, exit.signal
        ));
        self.drain();
        self.stdin = None;
        if let Err(e) = exitfile::write_exit(&args.state_dir, &exit) {
            self.trail.note(format_args!("{e}"));
        }
        match serde_json::to_vec(&exit) {
            Ok(payload) => self.clients.broadcast_exit(&payload, self.trail),
            Err(e) => self
                .trail
                .note(format_args!("encoding the exit frame: {e}")),
        }

        let acked = self.serve_until_cleanup(args.exit_delay);
        let trail = self.trail;
        drop(self);
        let _ = std::fs::remove_file(statedir::path(&args.state_dir, statedir::ATTACH_SOCKET));

        if acked {
            trail.note("cleanup acknowledged by an attach client; exit command skipped");
        } else if let Some(program) = &args.exit_command {
            let status = Command::new(program)
                .args(&args.exit_command_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match status {
                Ok(status) => trail.note(format_args!(
                    "exit command {} finished: {status}",
                    program.display()
                )),
                Err(e) => trail.note(format_args!(
                    "exit command {} could not run: {e}",
                    program.display()
                )),
            }
        }
        reaper::reap_orphans();
    }

    /// Reads what the container left in its pipes or terminal.
    fn drain(&mut self) {
        let mut buf = vec![0u8; READ_CHUNK];
        for i in 0..self.outputs.len() {
            let mut drained = 0;
            while drained < DRAIN_LIMIT {
                let output = &mut self.outputs[i];
                let stream = output.stream;
                match output.read(&mut buf) {
                    ReadOutcome::Data(n) => {
                        drained += n;
                        self.forward(stream, &buf[..n]);
                    }
                    ReadOutcome::WouldBlock | ReadOutcome::Closed => break,
                }
            }
        }
        self.outputs.clear();
    }

    /// Serves clients after the exit: new ones get the exit frame, everyone gets their queued
    /// output. Returns true if a cleanup-owning client acknowledged in time. Waits up to
    /// `exit_delay` while such a client is connected, otherwise at most [`FLUSH_GRACE`] for
    /// slow clients.
    fn serve_until_cleanup(&mut self, exit_delay: Duration) -> bool {
        let start = Instant::now();
        loop {
            let cleanup_pending = self.clients.list.iter().any(|c| c.cleanup);
            let output_pending = self.clients.list.iter().any(|c| c.wants_write());
            if !cleanup_pending && !output_pending {
                return false;
            }
            let limit = if cleanup_pending {
                exit_delay
            } else {
                FLUSH_GRACE
            };
            let Some(left) = limit.checked_sub(start.elapsed()).filter(|d| !d.is_zero()) else {
                if cleanup_pending {
                    self.trail
                        .note("no cleanup acknowledgement within the exit delay");
                }
                return false;
            };
            let mut requests = Vec::new();
            self.poll_clients(left, &mut requests);
            if requests.contains(&Request::CleanupDone) {
                // Let the others have their last frames, briefly.
                for client in &mut self.clients.list {
                    client.flush();
                }
                return true;
            }
            self.clients.remove_dead();
        }
    }

    /// One poll round over the listener and the clients.
    fn poll_clients(&mut self, timeout: Duration, requests: &mut Vec<Request>) {
        let mut fds = vec![PollFd::new(&self.clients.listener, PollFlags::IN)];
        for client in &self.clients.list {
            let mut events = PollFlags::IN;
            if client.wants_write() {
                events |= PollFlags::OUT;
            }
            fds.push(PollFd::new(client.stream(), events));
        }
        // Wake up at least every two seconds to collect orphans.
        let capped = timeout.min(Duration::from_secs(2));
        let timeout = Timespec {
            tv_sec: capped.as_secs() as i64,
            tv_nsec: i64::from(capped.subsec_nanos()),
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
            return;
        }
        let revents: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds);
        if !revents[0].is_empty() {
            self.clients.accept_all(self.trail);
        }
        for (client, revents) in self.clients.list.iter_mut().zip(&revents[1..]) {
            if revents.intersects(PollFlags::OUT) {
                client.flush();
            }
            if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                client.receive(requests, self.trail);
            }
        }
        reaper::reap_orphans();
    }
}
