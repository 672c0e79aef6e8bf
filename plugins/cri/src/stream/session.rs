//! What runs behind a streaming connection, whatever the transport: an exec'd process (pipes,
//! or a pty of ours that the runtime's foreground `exec --tty` proxies, resized with
//! SIGWINCH), an attach to the container's monitor, and port-forward connections dialled
//! inside the pod's network namespace.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use anyhow::{Context, Result};
use k8s_cri::v1 as cri;
use strata_engine_containers::{ExecOptions, Status};
use strata_engine_monitor::ServerMessage;

use crate::server::Cri;

/// What the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Stdin(Vec<u8>),
    StdinEof,
    Resize {
        width: u16,
        height: u16,
    },
    /// The connection ended.
    Closed,
}

/// Where output goes; `finish` writes the final status on the error channel and closes
/// every channel.
pub trait Out: Send + Sync {
    fn stdout(&self, data: &[u8]) -> io::Result<()>;
    fn stderr(&self, data: &[u8]) -> io::Result<()>;
    fn finish(&self, status: &[u8]);
}

/// The v4 protocols' final status: `Success`, or `Failure` (with the exit code as a cause
/// when there is one).
pub fn status(code: Option<i32>, error: Option<&str>) -> Vec<u8> {
    let v = match (code, error) {
        (Some(0), None) => serde_json::json!({ "metadata": {}, "status": "Success" }),
        (Some(c), None) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command, exit status {c}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": c.to_string() }] },
        }),
        (_, e) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": e.unwrap_or("the command could not be run"),
            "reason": "InternalError",
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Parses the resize channel's JSON objects (`{"Width":80,"Height":24}`), as many as are
/// complete in `buf`; keeps the rest.
pub fn resizes(buf: &mut Vec<u8>) -> Vec<Event> {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    while let Some(Ok(v)) = it.next() {
        used = it.byte_offset();
        let w = v["Width"].as_u64().unwrap_or(0).min(u64::from(u16::MAX)) as u16;
        let h = v["Height"].as_u64().unwrap_or(0).min(u64::from(u16::MAX)) as u16;
        out.push(Event::Resize {
            width: w,
            height: h,
        });
    }
    buf.drain(..used);
    out
}

fn copy_out(mut from: impl Read, to: impl Fn(&[u8]) -> io::Result<()>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: the pty's other side closed (the process ended).
            Err(_) => return,
        }
    }
}

struct Pty {
    master: OwnedFd,
    slave: File,
}

fn pty() -> io::Result<Pty> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let path = std::path::PathBuf::from(std::ffi::OsStr::new(
        std::str::from_utf8(name.to_bytes()).map_err(io::Error::other)?,
    ));
    use std::os::unix::fs::OpenOptionsExt;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(0o400) // O_NOCTTY
        .open(path)?;
    Ok(Pty { master, slave })
}

fn set_size(master: &OwnedFd, width: u16, height: u16) {
    let ws = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let _ = rustix::termios::tcsetwinsize(master.as_fd(), ws);
}

/// Runs the exec'd command, streaming its I/O; returns when it has ended and its output is
/// sent.
pub fn exec(cri: &Cri, req: &cri::ExecRequest, out: Arc<dyn Out>, events: Receiver<Event>) {
    match run_exec(cri, req, out.clone(), events) {
        Ok(code) => out.finish(&status(Some(code), None)),
        Err(e) => out.finish(&status(None, Some(&format!("{e:#}")))),
    }
}

fn run_exec(
    cri: &Cri,
    req: &cri::ExecRequest,
    out: Arc<dyn Out>,
    events: Receiver<Event>,
) -> Result<i32> {
    let (c, _) = crate::container::find(cri, &req.container_id)?
        .with_context(|| format!("container {} not found", req.container_id))?;
    let prepared = c.prepare_exec(&ExecOptions {
        args: req.cmd.clone(),
        tty: req.tty,
        ..ExecOptions::default()
    })?;
    let mut cmd = prepared.command;
    if req.tty {
        let p = pty().context("allocate a terminal")?;
        cmd.stdin(p.slave.try_clone()?)
            .stdout(p.slave.try_clone()?)
            .stderr(p.slave.try_clone()?);
        let mut child = cmd.spawn().context("run the runtime's exec")?;
        drop(p.slave);
        drop(cmd);
        let master = Arc::new(p.master);
        let reader = {
            let m = File::from(master.try_clone()?);
            let out = out.clone();
            std::thread::spawn(move || copy_out(m, |b| out.stdout(b)))
        };
        let pid = child.id();
        {
            let master = master.clone();
            std::thread::spawn(move || {
                let mut w = match master.try_clone() {
                    Ok(fd) => File::from(fd),
                    Err(_) => return,
                };
                for ev in events {
                    match ev {
                        Event::Stdin(b) => {
                            if w.write_all(&b).is_err() {
                                return;
                            }
                        }
                        // A terminal's end of input is its EOF character.
                        Event::StdinEof => {
                            let _ = w.write_all(&[4]);
                        }
                        Event::Resize { width, height } => {
                            set_size(&master, width, height);
                            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                                let _ = rustix::process::kill_process(
                                    p,
                                    rustix::process::Signal::WINCH,
                                );
                            }
                        }
                        Event::Closed => return,
                    }
                }
            });
        }
        let st = child.wait().context("wait for exec")?;
        let _ = reader.join();
        return Ok(code_of(st));
    }
    cmd.stdin(if req.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("run the runtime's exec")?;
    let so = child.stdout.take().map(|s| {
        let out = out.clone();
        let want = req.stdout;
        std::thread::spawn(move || copy_out(s, |b| if want { out.stdout(b) } else { Ok(()) }))
    });
    let se = child.stderr.take().map(|s| {
        let out = out.clone();
        let want = req.stderr;
        std::thread::spawn(move || copy_out(s, |b| if want { out.stderr(b) } else { Ok(()) }))
    });
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            for ev in events {
                match ev {
                    Event::Stdin(b) => {
                        if stdin.write_all(&b).is_err() {
                            return;
                        }
                    }
                    Event::StdinEof | Event::Closed => return,
                    Event::Resize { .. } => {}
                }
            }
        });
    }
    let st = child.wait().context("wait for exec")?;
    for h in [so, se].into_iter().flatten() {
        let _ = h.join();
    }
    Ok(code_of(st))
}

fn code_of(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Attaches to the container's monitor: its output (live, not the log) and, when asked, its
/// stdin and terminal size; ends when the container does or the client leaves.
pub fn attach(cri: &Cri, req: &cri::AttachRequest, out: Arc<dyn Out>, events: Receiver<Event>) {
    match run_attach(cri, req, out.clone(), events) {
        Ok(code) => out.finish(&status(code, None)),
        Err(e) => out.finish(&status(None, Some(&format!("{e:#}")))),
    }
}

fn run_attach(
    cri: &Cri,
    req: &cri::AttachRequest,
    out: Arc<dyn Out>,
    events: Receiver<Event>,
) -> Result<Option<i32>> {
    let (c, rec) = crate::container::find(cri, &req.container_id)?
        .with_context(|| format!("container {} not found", req.container_id))?;
    if c.state()?.status != Status::Running {
        anyhow::bail!("container {} is not running", req.container_id);
    }
    let mut client = strata_engine_monitor::attach::AttachClient::connect(&c.paths.run_dir, false)
        .context("reach the container's monitor")?;
    let mut writer = client.try_clone().context("attach")?;
    let want_stdin = req.stdin;
    // The client closing its stdin, or leaving, closes the container's only when the
    // container asked for that (`stdin_once`: stdin lasts one attach session); otherwise the
    // next attach can still write to it (the kubelet's contract, containerd's behaviour).
    let close_stdin = rec.config.stdin_once;
    std::thread::spawn(move || {
        for ev in events {
            let r = match ev {
                Event::Stdin(b) if want_stdin => writer.send_stdin(&b),
                Event::StdinEof if want_stdin && close_stdin => writer.send_eof(),
                Event::Resize { width, height } => writer.resize(height, width),
                Event::Closed => {
                    if want_stdin && close_stdin {
                        let _ = writer.send_eof();
                    }
                    return;
                }
                _ => Ok(()),
            };
            if r.is_err() {
                return;
            }
        }
    });
    loop {
        match client.recv() {
            Ok(Some(ServerMessage::Stdout(b))) => {
                if req.stdout && out.stdout(&b).is_err() {
                    return Ok(None);
                }
            }
            Ok(Some(ServerMessage::Stderr(b))) => {
                let r = if !req.tty && req.stderr {
                    out.stderr(&b)
                } else if req.stdout {
                    out.stdout(&b)
                } else {
                    Ok(())
                };
                if r.is_err() {
                    return Ok(None);
                }
            }
            Ok(Some(ServerMessage::Exit(e))) => return Ok(Some(e.exit_code)),
            Ok(None) | Err(_) => return Ok(Some(0)),
        }
    }
}

/// Dials `port` on the pod's loopback, inside its network namespace.
pub fn dial(cri: &Cri, sandbox: &str, port: u16) -> Result<std::net::TcpStream> {
    let s = crate::records::find(&cri.root, sandbox)?
        .with_context(|| format!("pod sandbox {sandbox} not found"))?;
    let ns = match &s.netns {
        Some(p) => std::path::PathBuf::from(p),
        // A host-network pod: the host's loopback.
        None => return std::net::TcpStream::connect(("127.0.0.1", port)).context("connect"),
    };
    // setns affects only the calling thread: a thread of its own dials and ends.
    std::thread::spawn(move || -> Result<std::net::TcpStream> {
        let f = File::open(&ns).with_context(|| format!("open {}", ns.display()))?;
        rustix::thread::move_into_link_name_space(
            f.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(io::Error::from)
        .context("enter the pod's network namespace")?;
        std::net::TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connect to port {port} in the pod"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the dialling thread failed"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_are_parsed_as_they_complete() {
        let mut buf = br#"{"Width":80,"Height":24}{"Width":100,"#.to_vec();
        assert_eq!(
            resizes(&mut buf),
            [Event::Resize {
                width: 80,
                height: 24
            }]
        );
        buf.extend_from_slice(br#""Height":30}"#);
        assert_eq!(
            resizes(&mut buf),
            [Event::Resize {
                width: 100,
                height: 30
            }]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn statuses_carry_the_exit_code() {
        let ok: serde_json::Value = serde_json::from_slice(&status(Some(0), None)).expect("json");
        assert_eq!(ok["status"], "Success");
        let bad: serde_json::Value = serde_json::from_slice(&status(Some(3), None)).expect("json");
        assert_eq!(bad["reason"], "NonZeroExitCode");
        assert_eq!(bad["details"]["causes"][0]["message"], "3");
    }
}
