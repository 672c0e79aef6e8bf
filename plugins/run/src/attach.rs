//! The foreground side of `run` and `start -a`: the user's terminal (raw mode with `-t`,
//! size changes), stdin forwarding with `-i`, signal forwarding (podman's `--sig-proxy`),
//! and the container's output to our stdout and stderr until the exit frame.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use rustix::termios::{self, OptionalActions, Termios};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
use signal_hook::iterator::Signals;
use strata_engine_monitor::attach::{AttachClient, ServerMessage};
use strata_engine_monitor::protocol::ExitStatus;

#[derive(Debug, Clone, Copy)]
pub struct AttachOptions {
    pub tty: bool,
    pub stdin: bool,
    /// Forward signals the CLI receives to the container.
    pub sig_proxy: bool,
}

/// Restores the terminal's settings when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !termios::isatty(stdin.as_fd()) {
            return None;
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// The user's terminal size (rows, columns), if stdout or stdin is a terminal.
pub fn window_size() -> Option<(u16, u16)> {
    for fd in [std::io::stdout().as_fd(), std::io::stdin().as_fd()] {
        if let Ok(ws) = termios::tcgetwinsize(fd) {
            if ws.ws_row > 0 {
                return Some((ws.ws_row, ws.ws_col));
            }
        }
    }
    None
}

/// Streams until the container exits. `signal` is called for each signal to forward (by
/// number). Returns the exit status (`None` if the monitor went away without one) and the
/// connection, for [`ack`] after the caller's cleanup.
pub fn attach(
    client: AttachClient,
    opts: AttachOptions,
    signal: impl Fn(i32) + Send + 'static,
) -> Result<(Option<ExitStatus>, AttachClient)> {
    let mut reader = client;
    let mut writer = reader.try_clone().context("clone the attach connection")?;
    let raw = if opts.tty { RawMode::enter() } else { None };
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH])
        .context("install signal handlers")?;
    let handle = signals.handle();
    let mut resize_writer = writer.try_clone().context("clone the attach connection")?;
    let tty = opts.tty;
    let sig_proxy = opts.sig_proxy;
    let sig_thread = std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGWINCH {
                if tty {
                    if let Some((rows, cols)) = window_size() {
                        let _ = resize_writer.resize(rows, cols);
                    }
                }
            } else if sig_proxy {
                signal(sig);
            }
        }
    });
    if opts.stdin {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => {
                        let _ = writer.send_eof();
                        break;
                    }
                    Ok(n) => {
                        if writer.send_stdin(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
    }
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let result = loop {
        match reader.recv() {
            Ok(Some(ServerMessage::Stdout(b))) => {
                let _ = stdout.write_all(&b);
                let _ = stdout.flush();
            }
            Ok(Some(ServerMessage::Stderr(b))) => {
                let _ = stderr.write_all(&b);
            }
            Ok(Some(ServerMessage::Exit(status))) => break Ok(Some(status)),
            Ok(None) => break Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e).context("read from the container's monitor"),
        }
    };
    drop(raw);
    handle.close();
    let _ = sig_thread.join();
    // The connection goes back for the cleanup acknowledgement.
    result.map(|r| (r, reader))
}

/// Tells the monitor the cleanup is done (it then skips its exit command).
pub fn ack(mut client: AttachClient) {
    let _ = client.ack_cleanup();
}

/// A signal's name for `runtime kill` (`INT`, `TERM`, ...).
pub fn signal_name(sig: i32) -> String {
    match sig {
        SIGINT => "INT".into(),
        SIGTERM => "TERM".into(),
        SIGHUP => "HUP".into(),
        SIGQUIT => "QUIT".into(),
        SIGUSR1 => "USR1".into(),
        SIGUSR2 => "USR2".into(),
        n => n.to_string(),
    }
}
