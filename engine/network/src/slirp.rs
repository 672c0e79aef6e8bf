//! Rootless networking with slirp4netns, podman's default for rootless containers: a user-mode
//! TCP/IP stack that owns a TAP device inside the container's network namespace and turns its
//! traffic into ordinary sockets of the caller, so that neither veth pairs nor iptables (both
//! root-only) are needed. `-p` is served by slirp4netns's own listeners on the host.
//!
//! Layout (slirp4netns's defaults, passed explicitly with `--cidr`): the container is
//! [`CONTAINER_IP`]`/24` on [`INTERFACE`] with a default route through [`GATEWAY`]; [`DNS`] is a
//! resolver built into slirp4netns that forwards to the host's (see [`resolv_conf`]). The MTU is
//! 65520, as podman sets it; the host's loopback is not reachable from the container
//! (`--disable-host-loopback`, podman's default).
//!
//! How it runs, as podman's libpod does it (`slirp4netns --configure --mtu=65520
//! --disable-host-loopback --enable-sandbox --enable-seccomp --api-socket PATH
//! --netns-type=path --ready-fd N NETNS tap0`):
//! - **Detached.** slirp4netns gets its own process group, `/` as its directory and a log file
//!   in the state directory as stdout and stderr, and no exit fd: it outlives the CLI and lives
//!   until [`stop`] kills it. [`Slirp`] records its PID with the start time from
//!   `/proc/<pid>/stat`; [`stop`] opens a pidfd first and compares the start time through it, so
//!   that a reused PID is never signalled.
//! - **A private mount namespace around the sandbox.** `--enable-sandbox` unshares a mount
//!   namespace, makes only `/` private and mounts a tmpfs on `/tmp`; where `/tmp` is a separate
//!   shared mount (systemd hosts), that tmpfs propagates back and hides the caller's `/tmp` (seen
//!   on this machine with a shared tmpfs on `/tmp`). Podman starts slirp4netns in a new mount
//!   namespace with every mount private (Go's runtime does that for `CLONE_NEWNS`); we exec it
//!   through util-linux's `unshare --mount --propagation private`, which execs slirp4netns in
//!   place (the PID is slirp4netns's). Rootless, the CLI is root of its user namespace, which owns
//!   its mount namespace, so it may unshare.
//! - **Readiness without `unsafe`.** slirp4netns writes `1` to its ready fd once the TAP device
//!   is configured, the API socket listens and the sandbox is set up. Decision: the ready pipe's
//!   write end is slirp4netns's **stdin**, with `--ready-fd=0`. std's `Command` maps only fds
//!   0-2; the alternatives were clearing `FD_CLOEXEC` on a pipe end just before the spawn (any
//!   other thread spawning at that moment inherits the write end, and then the EOF that reports
//!   an early exit never comes) or the `command-fds` crate (a dependency doing the dup2 in a
//!   `pre_exec` hook). slirp4netns never reads stdin, so fd 0 costs nothing. EOF before the `1`
//!   means it exited; the wait is bounded ([`READY_TIMEOUT`]).
//! - **Ports** go through the API socket, one connection per request as the protocol demands:
//!   `{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0",
//!   "host_port":8080,"guest_port":80}}`, then `shutdown(SHUT_WR)`, then the reply
//!   `{"return":{"id":1}}` or `{"error":{"desc":"..."}}`. A refused bind only says
//!   `slirp_add_hostfwd failed`, so the port is probed with a bind of our own (same network
//!   namespace, same `SO_REUSEADDR`) to tell "already in use" from "needs root".
//!
//! Known limit, shared with podman's slirp4netns port handler: UDP answers do not reach clients
//! on the host's loopback (`--disable-host-loopback` also blocks replies to `127.0.0.1`,
//! podman#4586); UDP clients must use another host address. TCP is not affected.
//!
//! What it deliberately does not do: IPv6 (`--enable-ipv6`, podman's default, needs the
//! `accept_dad` sysctl dance; IPv6 host addresses other than `::` are refused), rootlesskit's
//! port handler (podman's default: it keeps the client's source address, while slirp4netns's
//! forwards arrive from [`GATEWAY`]), changing forwards of a running container,
//! `host.containers.internal`, pasta, and choosing where the namespace and state files live.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, PipeReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, waitpid, Pid, PidfdFlags, Signal};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checks::{check_container_id, is_namespace};
use crate::{Attachment, NetworkError, PortMapping};

/// The subnet slirp4netns emulates.
pub const SUBNET: &str = "10.0.2.0/24";
/// The container's address (network address + 100, what `--configure` sets).
pub const CONTAINER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// The gateway, which is also how the container reaches the host (network address + 2).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// slirp4netns's built-in DNS forwarder (network address + 3).
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The TAP device slirp4netns creates in the container's namespace.
pub const INTERFACE: &str = "tap0";
const PREFIX_LEN: u8 = 24;
const MTU: u32 = 65520;
/// How long slirp4netns may take to configure the namespace (it takes ~10 ms here).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`stop`] waits after SIGTERM, then after SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// `sun_path` holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running slirp4netns, as recorded in the container's state: enough to stop it from another
/// process, and the addresses the container got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slirp {
    pub container_id: String,
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot): with `pid`, names the process
    /// even after the PID has been reused.
    pub start_time: u64,
    pub api_socket: PathBuf,
    /// slirp4netns's stdout and stderr.
    pub log: PathBuf,
    pub ip: String,
    pub gateway: String,
    pub dns: String,
}

impl Slirp {
    /// The container's interface and address, as the bridge network reports them. The MAC
    /// address is the kernel's random one, not known here: it is left empty.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            interface: INTERFACE.into(),
            ip: self.ip.clone(),
            prefix_len: PREFIX_LEN,
            gateway: self.gateway.clone(),
            mac: String::new(),
        }
    }
}

/// Starts slirp4netns for the pinned namespace `netns`, waits until it has configured `tap0`,
/// and publishes `ports` through it. Its API socket and log go to `state_dir` (created if
/// needed; the socket path must stay under 108 bytes). On failure, whatever was started is
/// killed and its files removed.
pub fn start(
    netns: &Path,
    ports: &[PortMapping],
    state_dir: &Path,
    container_id: &str,
) -> Result<Slirp, NetworkError> {
    check_container_id(container_id)?;
    if !is_namespace(netns) {
        return Err(NetworkError::NetnsMissing(netns.into()));
    }
    let hosts = ports.iter().map(host_addr).collect::<Result<Vec<_>, _>>()?;
    let slirp = find_program("slirp4netns", "slirp4netns")?;
    let unshare = find_program("unshare", "util-linux")?;
    let short: String = container_id.chars().take(12).collect();
    let api_socket = state_dir.join(format!("slirp4netns-{short}.sock"));
    let log = state_dir.join(format!("slirp4netns-{short}.log"));
    if api_socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(NetworkError::InvalidConfig(format!(
            "the slirp4netns API socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a \
             shorter state directory",
            api_socket.display()
        )));
    }
    fs::create_dir_all(state_dir).map_err(NetworkError::io("create directory", state_dir))?;
    let _span = tracing::debug_span!("slirp4netns", container = container_id).entered();

    let (mut child, mut ready) = spawn(&unshare, &slirp, netns, &api_socket, &log)?;
    let pid = i32::try_from(child.id()).expect("Linux PIDs fit an i32");
    if let Err(why) = wait_ready(&mut ready, READY_TIMEOUT) {
        let status = abort_status(&mut child);
        let text = fs::read_to_string(&log).unwrap_or_default();
        remove_files(&api_socket, &log);
        return Err(startup_error(container_id, why, &status, &text));
    }
    let started = match read_stat(pid) {
        Ok(Some(stat)) => Ok(stat.start_time),
        Ok(None) => Err(slirp_error(container_id, "exited once ready".into())),
        Err(e) => Err(slirp_error(container_id, e.to_string())),
    }
    .and_then(|start_time| {
        for (mapping, host) in ports.iter().zip(&hosts) {
            add_forward(&api_socket, mapping, *host, container_id)?;
        }
        Ok(start_time)
    });
    let start_time = match started {
        Ok(t) => t,
        Err(e) => {
            let status = abort_status(&mut child);
            tracing::debug!(%status, "stopped slirp4netns after a failure");
            remove_files(&api_socket, &log);
            return Err(e);
        }
    };
    tracing::info!(pid, ports = ports.len(), "slirp4netns is ready");
    // Dropping the handle neither kills nor waits for it: it keeps running detached.
    drop(child);
    Ok(Slirp {
        container_id: container_id.into(),
        pid,
        start_time,
        api_socket,
        log,
        ip: CONTAINER_IP.to_string(),
        gateway: GATEWAY.to_string(),
        dns: DNS.to_string(),
    })
}

/// Stops the slirp4netns `s` describes (SIGTERM, then SIGKILL) and removes its socket and log.
/// Idempotent: a process already gone, or a PID now used by another process, is left alone.
pub fn stop(s: &Slirp) -> Result<(), NetworkError> {
    if let Some(pid) = Pid::from_raw(s.pid).filter(|_| s.pid > 0) {
        terminate(pid, s)?;
    }
    remove_files(&s.api_socket, &s.log);
    Ok(())
}

/// `/etc/resolv.conf` for a slirp4netns container: [`DNS`] first, then the host's file without
/// the nameservers the container cannot reach (loopback ones, and IPv6 ones: it has no IPv6).
pub fn resolv_conf(host: &str) -> String {
    let mut out = format!("nameserver {DNS}\n");
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            match words.next().and_then(|a| a.parse::<IpAddr>().ok()) {
                Some(IpAddr::V4(a)) if a.is_loopback() || a == DNS => continue,
                Some(IpAddr::V6(_)) => continue,
                _ => {}
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn spawn(
    unshare: &Path,
    slirp: &Path,
    netns: &Path,
    api_socket: &Path,
    log: &Path,
) -> Result<(Child, PipeReader), NetworkError> {
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(log)
        .map_err(NetworkError::io("create", log))?;
    let err = out
        .try_clone()
        .map_err(NetworkError::io("duplicate", log))?;
    let (ready, ready_w) =
        io::pipe().map_err(NetworkError::io("create the readiness pipe for", netns))?;
    let mut cmd = Command::new(unshare);
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(slirp)
        .args(slirp_args(netns, api_socket))
        .stdin(Stdio::from(ready_w))
        .stdout(out)
        .stderr(err)
        .current_dir("/")
        .process_group(0);
    tracing::debug!(command = ?cmd, "starting slirp4netns");
    let child = cmd.spawn().map_err(NetworkError::io("run", unshare))?;
    // The command holds our copy of the write end; only the child's must remain, so that EOF
    // on the pipe means slirp4netns is gone.
    drop(cmd);
    Ok((child, ready))
}

fn slirp_args(netns: &Path, api_socket: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--configure".to_string(),
        format!("--mtu={MTU}"),
        "--disable-host-loopback".into(),
        "--enable-sandbox".into(),
        "--enable-seccomp".into(),
        format!("--cidr={SUBNET}"),
        "--ready-fd=0".into(),
        "--netns-type=path".into(),
        "--api-socket".into(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.extend([api_socket.into(), netns.into(), INTERFACE.into()]);
    args
}

/// Why slirp4netns never reported ready.
#[derive(Debug, PartialEq, Eq)]
enum NotReady {
    Exited,
    TimedOut,
    Failed(String),
}

fn wait_ready(ready: &mut PipeReader, timeout: Duration) -> Result<(), NotReady> {
    let deadline = Instant::now() + timeout;
    let mut byte = [0u8; 1];
    loop {
        if !wait_readable(ready.as_fd(), deadline).map_err(|e| NotReady::Failed(e.to_string()))? {
            return Err(NotReady::TimedOut);
        }
        match ready.read(&mut byte) {
            Ok(0) => return Err(NotReady::Exited),
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NotReady::Failed(e.to_string())),
        }
    }
}

/// Polls `fd` until it is readable (`true`) or `deadline` passes (`false`).
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant) -> Result<bool, Errno> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let timeout = Timespec::try_from(left).expect("a few seconds fit a timespec");
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// Kills and reaps the child; returns how it ended.
fn abort_status(child: &mut Child) -> String {
    // Fails only when the child was already reaped, which nothing here does.
    let _ = child.kill();
    match child.wait() {
        Ok(status) => status.to_string(),
        Err(e) => format!("unknown status ({e})"),
    }
}

fn startup_error(container: &str, why: NotReady, status: &str, log: &str) -> NetworkError {
    if log.contains("open(\"/dev/net/tun\")") {
        if log.contains("Permission denied") {
            return NetworkError::TunUnavailable {
                reason: "permission denied; as root, run `chmod 0666 /dev/net/tun` (the mode \
                         Debian and most distributions give it) to let users create TAP devices"
                    .into(),
            };
        }
        if log.contains("No such file or directory") {
            return NetworkError::TunUnavailable {
                reason: "the device does not exist; the kernel needs TUN/TAP support \
                         (`modprobe tun`) and the node (`mknod /dev/net/tun c 10 200`)"
                    .into(),
            };
        }
    }
    let what = match why {
        NotReady::Exited => format!("exited ({status}) before it was ready"),
        NotReady::TimedOut => format!(
            "was not ready after {} s and was killed",
            READY_TIMEOUT.as_secs()
        ),
        NotReady::Failed(e) => format!("cannot wait for it to be ready ({e}); killed"),
    };
    slirp_error(container, format!("{what}; its log: {}", log_tail(log)))
}

/// The last lines of a log, on one line.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("; ");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail
    }
}

fn slirp_error(container: &str, reason: String) -> NetworkError {
    NetworkError::Slirp {
        container: container.into(),
        reason,
    }
}

/// The IPv4 address a mapping listens on; `None` and `::` mean every address.
fn host_addr(p: &PortMapping) -> Result<Ipv4Addr, NetworkError> {
    match p.host_ip.as_deref().map(str::parse::<IpAddr>) {
        None => Ok(Ipv4Addr::UNSPECIFIED),
        Some(Ok(IpAddr::V4(a))) => Ok(a),
        Some(Ok(IpAddr::V6(a))) if a.is_unspecified() => Ok(Ipv4Addr::UNSPECIFIED),
        Some(_) => Err(NetworkError::InvalidConfig(format!(
            "cannot publish port {} on `{}`: rootless networking (slirp4netns) publishes on \
             IPv4 addresses only",
            p.host_port,
            p.host_ip.as_deref().unwrap_or_default()
        ))),
    }
}

fn add_forward(
    api_socket: &Path,
    p: &PortMapping,
    host: Ipv4Addr,
    container: &str,
) -> Result<(), NetworkError> {
    let request = json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.protocol.as_str(),
            "host_addr": host.to_string(),
            "host_port": p.host_port,
            "guest_port": p.container_port,
        }
    });
    let desc = match api_request(api_socket, &request) {
        Ok(reply) => {
            tracing::debug!(%reply, host_port = p.host_port, "published port");
            return Ok(());
        }
        Err(ApiError::Refused(desc)) => desc,
        Err(ApiError::Broken(reason)) => return Err(slirp_error(container, reason)),
    };
    let (host_ip, host_port, protocol) = (host.to_string(), p.host_port, p.protocol);
    match probe_bind(p, host) {
        Some(e) if e.kind() == io::ErrorKind::AddrInUse => Err(NetworkError::PortInUse {
            host_ip,
            host_port,
            protocol,
        }),
        Some(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let first = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "1024".into());
            Err(NetworkError::PortUnavailable {
                host_ip,
                host_port,
                protocol,
                reason: format!(
                    "ports below {first} need root on the host \
                     (sysctl net.ipv4.ip_unprivileged_port_start)"
                ),
            })
        }
        Some(e) => Err(NetworkError::PortUnavailable {
            host_ip,
            host_port,
            protocol,
            reason: e.to_string(),
        }),
        None => Err(slirp_error(
            container,
            format!("add_hostfwd {protocol} {host_ip}:{host_port}: {desc}"),
        )),
    }
}

/// Binds the mapping's host address ourselves to learn why slirp4netns could not.
fn probe_bind(p: &PortMapping, host: Ipv4Addr) -> Option<io::Error> {
    let addr = (host, p.host_port);
    match p.protocol {
        super::Protocol::Tcp => TcpListener::bind(addr).err(),
        super::Protocol::Udp => UdpSocket::bind(addr).err(),
    }
}

#[derive(Debug)]
enum ApiError {
    /// slirp4netns answered with an error object.
    Refused(String),
    /// The socket or the reply failed.
    Broken(String),
}

/// One request on the API socket: a connection, the JSON, `shutdown(SHUT_WR)` (slirp4netns
/// reads one message), then the reply until EOF.
fn api_request(socket: &Path, request: &Value) -> Result<Value, ApiError> {
    let broken = |what: &str, e: io::Error| {
        ApiError::Broken(format!("{what} API socket {}: {e}", socket.display()))
    };
    let mut conn = UnixStream::connect(socket).map_err(|e| broken("connect to", e))?;
    conn.set_read_timeout(Some(API_TIMEOUT))
        .and_then(|()| conn.set_write_timeout(Some(API_TIMEOUT)))
        .map_err(|e| broken("set timeouts on", e))?;
    conn.write_all(request.to_string().as_bytes())
        .and_then(|()| conn.shutdown(Shutdown::Write))
        .map_err(|e| broken("write to", e))?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .map_err(|e| broken("read from", e))?;
    let reply: Value = serde_json::from_str(&reply).map_err(|e| {
        ApiError::Broken(format!("unreadable reply `{reply}` from slirp4netns: {e}"))
    })?;
    match reply.get("error") {
        Some(err) => Err(ApiError::Refused(
            err.get("desc")
                .and_then(Value::as_str)
                .map_or_else(|| err.to_string(), str::to_string),
        )),
        None => Ok(reply),
    }
}

fn terminate(pid: Pid, s: &Slirp) -> Result<(), NetworkError> {
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(()),
        Err(e) => {
            return Err(slirp_error(
                &s.container_id,
                format!("pidfd_open({pid:?}): {e}"),
            ))
        }
    };
    // The pidfd pins the process the PID names now: if the start time matches, the signals
    // below reach slirp4netns and nothing else.
    match read_stat(s.pid) {
        Ok(Some(stat)) if stat.start_time == s.start_time => {}
        Ok(_) => {
            tracing::debug!(pid = s.pid, "slirp4netns is already gone");
            return Ok(());
        }
        Err(e) => return Err(slirp_error(&s.container_id, e.to_string())),
    }
    for (signal, name) in [(Signal::TERM, "SIGTERM"), (Signal::KILL, "SIGKILL")] {
        match pidfd_send_signal(&pidfd, signal) {
            Ok(()) | Err(Errno::SRCH) => {}
            Err(e) => {
                let reason = format!("cannot send {name} to pid {}: {e}", s.pid);
                return Err(slirp_error(&s.container_id, reason));
            }
        }
        if exited(&pidfd) {
            // Reap it when it is our child (the CLI that started it is still running).
            let _ = waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
            tracing::debug!(pid = s.pid, signal = name, "stopped slirp4netns");
            return Ok(());
        }
    }
    let reason = format!("pid {} did not exit after SIGKILL", s.pid);
    Err(slirp_error(&s.container_id, reason))
}

/// Waits up to [`STOP_GRACE`] for the process behind `pidfd` to exit.
fn exited(pidfd: &OwnedFd) -> bool {
    wait_readable(pidfd.as_fd(), Instant::now() + STOP_GRACE).unwrap_or(false)
}

#[derive(Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    start_time: u64,
}

/// `/proc/<pid>/stat`'s state and start time; `None` when there is no such process.
fn read_stat(pid: i32) -> io::Result<Option<Stat>> {
    let path = format!("/proc/{pid}/stat");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
            return Ok(None)
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("read {path}: {e}"))),
    };
    parse_stat(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unreadable {path}")))
}

/// Fields after the command name (which may hold spaces and parentheses): state is field 3,
/// start time field 22.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

fn remove_files(api_socket: &Path, log: &Path) {
    for path in [api_socket, log] {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove"),
        }
    }
}

/// The first executable `name` in `$PATH`.
fn find_program(name: &'static str, package: &'static str) -> Result<PathBuf, NetworkError> {
    let search = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .ok_or_else(|| NetworkError::HelperNotFound {
            program: name,
            package,
            search_path: search.to_string_lossy().into_owned(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::net::TcpStream;
    use std::os::unix::net::UnixListener;

    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

    use super::*;
    use crate::Protocol;

    fn map(ip: Option<&str>, host: u16, container: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(str::to_string),
            host_port: host,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn slirp4netns_runs_with_podmans_flags_on_the_pinned_namespace() {
        let args = slirp_args(Path::new("/run/ns/c1"), Path::new("/run/c1/api.sock"));
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
                "--cidr=10.0.2.0/24",
                "--ready-fd=0",
                "--netns-type=path",
                "--api-socket",
                "/run/c1/api.sock",
                "/run/ns/c1",
                "tap0"
            ]
        );
    }

    #[test]
    fn host_addresses_are_ipv4_or_every_address() {
        let addr = |ip| host_addr(&map(ip, 8080, 80, Protocol::Tcp));
        assert_eq!(addr(None).unwrap(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(addr(Some("::")).unwrap(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(addr(Some("127.0.0.1")).unwrap(), Ipv4Addr::LOCALHOST);
        let e = addr(Some("::1")).unwrap_err().to_string();
        assert!(
            e.contains("port 8080 on `::1`") && e.contains("IPv4"),
            "{e}"
        );
    }

    #[test]
    fn resolv_conf_puts_the_slirp_resolver_first_and_drops_unreachable_ones() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n\
                    nameserver ::1\nnameserver 2001:db8::1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "nameserver 10.0.2.3\nsearch example.org\nnameserver 192.0.2.1\noptions edns0\n"
        );
        assert_eq!(resolv_conf(""), "nameserver 10.0.2.3\n");
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let text = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 \
                    6953394 3133440 389";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                start_time: 6953394
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        let me = read_stat(i32::try_from(std::process::id()).unwrap());
        assert!(me.unwrap().unwrap().start_time > 0);
    }

    #[test]
    fn startup_failures_say_what_to_do() {
        let denied = "open(\"/dev/net/tun\"): Permission denied\nchild failed(1)\n";
        let e = startup_error("c1", NotReady::Exited, "exit status: 1", denied);
        assert!(e.to_string().contains("chmod 0666 /dev/net/tun"), "{e}");
        assert_eq!(
            strata_types::HasKind::kind(&e),
            strata_types::ErrorKind::FailedPrecondition
        );
        let e = startup_error("c1", NotReady::Exited, "exit status: 1", "a\n\nb\n");
        assert_eq!(
            e.to_string(),
            "slirp4netns for container c1: exited (exit status: 1) before it was ready; \
             its log: a; b"
        );
        let e = startup_error("c1", NotReady::TimedOut, "signal: 9 (SIGKILL)", "");
        assert!(e.to_string().contains("not ready after 10 s"), "{e}");
    }

    #[test]
    fn a_missing_helper_says_what_to_install() {
        let e = find_program("strata-no-such-helper", "some-package").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("strata-no-such-helper not found in "),
            "{e}"
        );
        assert!(e
            .to_string()
            .ends_with("install some-package for rootless networking"));
        assert!(find_program("sh", "dash").unwrap().is_absolute());
    }

    /// The API protocol against a fake slirp4netns: it must see the whole request before
    /// replying, which it knows from the client's `shutdown(SHUT_WR)`.
    #[test]
    fn api_requests_end_with_a_write_shutdown_and_errors_carry_their_desc() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in [
                r#"{"return":{"id":1}}"#,
                r#"{"error":{"desc":"bad request"}}"#,
            ] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = String::new();
                conn.read_to_string(&mut request).unwrap();
                seen.push(serde_json::from_str::<Value>(&request).unwrap());
                conn.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        let request = json!({"execute": "add_hostfwd", "arguments": {"proto": "udp"}});
        assert_eq!(
            api_request(&socket, &request).unwrap(),
            json!({"return": {"id": 1}})
        );
        match api_request(&socket, &request) {
            Err(ApiError::Refused(desc)) => assert_eq!(desc, "bad request"),
            other => panic!("{other:?}"),
        }
        assert_eq!(server.join().unwrap(), [request.clone(), request]);
    }

    /// A stale record whose PID now names another process must not kill it.
    #[test]
    fn stop_spares_a_process_that_reused_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(sleeper.id()).unwrap();
        let real = read_stat(pid).unwrap().unwrap().start_time;
        let stale = record(pid, real + 1, dir.path());
        stop(&stale).unwrap();
        assert_eq!(
            sleeper.try_wait().unwrap(),
            None,
            "the other process was killed"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    fn record(pid: i32, start_time: u64, dir: &Path) -> Slirp {
        Slirp {
            container_id: "c1".into(),
            pid,
            start_time,
            api_socket: dir.join("api.sock"),
            log: dir.join("log"),
            ip: CONTAINER_IP.to_string(),
            gateway: GATEWAY.to_string(),
            dns: DNS.to_string(),
        }
    }

    /// A pinned network namespace in a temporary directory, removed on drop.
    struct TestNs {
        dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl TestNs {
        fn new() -> TestNs {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("netns");
            strata_mount::create_netns(&path).unwrap();
            TestNs { dir, path }
        }

        fn run(&self, args: &[&str]) -> String {
            let out = Command::new("nsenter")
                .arg(format!("--net={}", self.path.display()))
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    }

    impl Drop for TestNs {
        fn drop(&mut self) {
            if let Err(e) = strata_mount::remove_netns(&self.path) {
                eprintln!("cannot remove {}: {e}", self.path.display());
            }
        }
    }

    /// Stops slirp4netns even when an assertion fails first.
    struct Running(Slirp);

    impl Drop for Running {
        fn drop(&mut self) {
            if let Err(e) = stop(&self.0) {
                eprintln!("cannot stop slirp4netns: {e}");
            }
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// PIDs of processes whose command line mentions `needle`.
    fn processes_mentioning(needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(name);
            }
        }
        found
    }

    /// Connects to `port` until the server inside the namespace answers.
    fn tcp_reply(port: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut reply = String::new();
            if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
                conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let _ = conn.read_to_string(&mut reply);
            }
            if !reply.is_empty() || Instant::now() > deadline {
                return reply;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A UDP echo server on `port` inside `netns`, on a thread that moved there.
    fn udp_echo(netns: &Path, port: u16) -> std::thread::JoinHandle<()> {
        let ns = OwnedFd::from(fs::File::open(netns).unwrap());
        std::thread::spawn(move || {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
            let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = socket.recv_from(&mut buf).unwrap();
            socket.send_to(&buf[..n], from).unwrap();
        })
    }

    #[test]
    fn published_ports_reach_servers_in_the_namespace_until_stop() {
        if !strata_tests::require_privileged(
            "slirp_published_ports_reach_servers_in_the_namespace",
            "network namespaces and slirp4netns",
        ) {
            return;
        }
        let ns = TestNs::new();
        let state = ns.dir.path().join("state");
        let (tcp, udp) = (free_port(), free_port());
        let ports = [
            map(None, tcp, 80, Protocol::Tcp),
            map(None, udp, 5353, Protocol::Udp),
        ];
        let running = Running(start(&ns.path, &ports, &state, "0123456789abcdef").unwrap());
        let s = &running.0;
        assert_eq!(s.attachment().ip, "10.0.2.100");
        assert_eq!(
            fs::read_to_string(format!("/proc/{}/comm", s.pid)).unwrap(),
            "slirp4netns\n"
        );

        let addrs = ns.run(&["ip", "-4", "-o", "addr", "show", "dev", "tap0"]);
        assert!(addrs.contains("inet 10.0.2.100/24"), "{addrs}");
        let routes = ns.run(&["ip", "-4", "route", "show", "default"]);
        assert!(routes.contains("default via 10.0.2.2 dev tap0"), "{routes}");

        let mut server = Command::new("nsenter")
            .arg(format!("--net={}", ns.path.display()))
            .args(["busybox", "nc", "-l", "-p", "80", "-e", "echo", "hello"])
            .spawn()
            .unwrap();
        assert_eq!(tcp_reply(tcp), "hello\n");
        server.wait().unwrap();

        // UDP answers cannot reach clients on the host's loopback (`--disable-host-loopback`
        // blocks them, podman#4586): the client uses the host's outbound address.
        let echo = udp_echo(&ns.path, 5353);
        let client = UdpSocket::bind("0.0.0.0:0").unwrap();
        client.connect("192.0.2.1:9").unwrap();
        let host = client.local_addr().unwrap().ip();
        let client = UdpSocket::bind((host, 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        let answer = (0..50).find_map(|_| {
            client.send_to(b"ping", (host, udp)).unwrap();
            client.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
        });
        assert_eq!(answer.as_deref(), Some(&b"ping"[..]));
        echo.join().unwrap();

        stop(s).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", s.pid)).exists(),
            "slirp4netns remains"
        );
        assert!(!s.api_socket.exists() && !s.log.exists(), "files remain");
        assert!(
            TcpStream::connect(("127.0.0.1", tcp)).is_err(),
            "port still open"
        );
        stop(s).unwrap();
    }

    #[test]
    fn a_port_in_use_is_named_and_nothing_is_left_running() {
        if !strata_tests::require_privileged(
            "slirp_a_port_in_use_is_named_and_nothing_is_left_running",
            "network namespaces and slirp4netns",
        ) {
            return;
        }
        let ns = TestNs::new();
        let state = ns.dir.path().join("state");
        let taken = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let ports = [
            map(None, free_port(), 80, Protocol::Tcp),
            map(None, port, 81, Protocol::Tcp),
        ];
        let e = start(&ns.path, &ports, &state, "busyport").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot publish tcp port {port} on 0.0.0.0: the address is already in use")
        );
        assert_eq!(
            strata_types::HasKind::kind(&e),
            strata_types::ErrorKind::Busy
        );
        assert_eq!(
            processes_mentioning(&state.to_string_lossy()),
            Vec::<String>::new()
        );
        assert_eq!(fs::read_dir(&state).unwrap().count(), 0, "files remain");
    }

    #[test]
    fn a_missing_namespace_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let e = start(&dir.path().join("none"), &[], dir.path(), "c1").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "files were created"
        );
    }
}
