//! The monitor process. This file is its startup: detach from the launcher (new session, child
//! subreaper, `/` as working directory, stdio on `/dev/null`), prepare the container's stdio
//! and the attach socket, have the runtime create the container, and report the outcome on the
//! sync fd. [`event_loop`] then serves the running container and [`finish`] its exit.
//!
//! A failure before the container exists is reported on the sync fd and ends the monitor with
//! status 1, leaving no sockets behind; a failure after `create` succeeded also deletes the
//! container again (`runtime delete --force`).

mod clients;
mod event_loop;
mod finish;
mod output;
mod raw;
mod reaper;
mod runtime;
mod stdio;
mod sync;
mod trail;

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::{statedir, LogWriter, MonitorArgs};
use rustix::process::{Pid, PidfdFlags};

use clients::Clients;
use event_loop::Monitor;
use stdio::RuntimeStdio;
use sync::SyncFd;
use trail::Trail;

/// Why the monitor could not take charge of a container.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Runtime(String),
}

/// Adds what was being done to an I/O error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StartError>;
}

impl<T, E: Into<io::Error>> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StartError> {
        self.map_err(|e| StartError::Io {
            what: what(),
            source: e.into(),
        })
    }
}

/// What [`start`] hands to the event loop.
struct Started {
    container_pid: Pid,
    pidfd: OwnedFd,
    stdio: stdio::MonitorStdio,
    clients: Clients,
    log: LogWriter,
}

/// Runs the monitor to the end; the process's exit code.
pub fn run(args: MonitorArgs, sync_fd: Option<RawFd>) -> ExitCode {
    let keep: Vec<RawFd> = sync_fd.into_iter().chain(args.attach_fd).collect();
    raw::close_inherited_fds(&keep);
    let sync = match sync_fd.map(|fd| raw::adopt_fd(fd, "--sync-fd")).transpose() {
        Ok(fd) => SyncFd::new(fd),
        Err(e) => {
            eprintln!("strata-monitor: {e}");
            return ExitCode::from(2);
        }
    };
    let args = match absolute(args) {
        Ok(args) => args,
        Err(e) => {
            sync.report_error(&format!("resolving the monitor's paths: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // Without a new session the monitor would die with the launcher's terminal (setsid only
    // fails for a process group leader, which is detached enough).
    let _ = rustix::process::setsid();
    let _ = raw::ignore_hangup();
    // The container's init must become our child when `runtime create` exits, or its exit
    // status is lost.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        sync.report_error(&format!("becoming a child subreaper: {e}"));
        return ExitCode::FAILURE;
    }
    let _ = rustix::process::chdir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }

    let trail = Trail::open(&args.state_dir);
    trail.note(format_args!(
        "monitor {} starting for container {}",
        std::process::id(),
        args.id
    ));
    // The launcher's own connection, made before the container exists (`--attach-fd`).
    let first_client = match args
        .attach_fd
        .map(|fd| raw::adopt_fd(fd, "--attach-fd"))
        .transpose()
    {
        Ok(fd) => fd.map(std::os::unix::net::UnixStream::from),
        Err(e) => {
            sync.report_error(&format!("adopting the attach connection: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let started = match start(&args, first_client) {
        Ok(started) => started,
        Err(e) => {
            trail.note(format_args!("start failed: {e}"));
            for name in [statedir::ATTACH_SOCKET, statedir::CONSOLE_SOCKET] {
                let _ = std::fs::remove_file(statedir::path(&args.state_dir, name));
            }
            sync.report_error(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let pid = started.container_pid.as_raw_nonzero().get();
    trail.note(format_args!("container created with pid {pid}"));
    sync.report_pid(pid);

    let oom = reaper::OomWatch::of(&args.bundle, pid);
    let mut monitor = Monitor::new(
        &trail,
        started.log,
        started.stdio,
        started.clients,
        started.container_pid,
        started.pidfd,
    );
    let status = monitor.run_until_exit();
    monitor.finish(status, &args, &oom);
    trail.note("monitor exiting");
    ExitCode::SUCCESS
}

/// Creates the container and everything the monitor serves it with.
fn start(
    args: &MonitorArgs,
    first_client: Option<std::os::unix::net::UnixStream>,
) -> Result<Started, StartError> {
    let state = &args.state_dir;
    let pid_file = statedir::path(state, statedir::MONITOR_PID_FILE);
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .context(|| format!("writing {}", pid_file.display()))?;
    let log = LogWriter::open(&args.log_path, args.log_max_size)
        .context(|| "opening the container log".to_owned())?;

    let attach = statedir::path(state, statedir::ATTACH_SOCKET);
    let listener =
        statedir::listen(&attach, 64).context(|| format!("listening on {}", attach.display()))?;
    std::fs::set_permissions(&attach, std::fs::Permissions::from_mode(0o600))
        .context(|| format!("restricting {}", attach.display()))?;
    listener
        .set_nonblocking(true)
        .context(|| format!("configuring {}", attach.display()))?;

    let stdio = if args.terminal {
        let console = stdio::console_listener(state).context(|| {
            format!(
                "listening on {}",
                statedir::path(state, statedir::CONSOLE_SOCKET).display()
            )
        })?;
        let socket = statedir::path(state, statedir::CONSOLE_SOCKET);
        // A unix socket path holds at most 107 bytes and runc dials it as given: a long
        // state dir gets a short symlink in /tmp (connect follows it), removed after create.
        let short = stdio::short_alias(&socket)
            .context(|| format!("linking {} from /tmp", socket.display()))?;
        let created = runtime::create(
            args,
            RuntimeStdio::null(),
            Some(short.as_deref().unwrap_or(&socket)),
            None,
        );
        if let Some(link) = &short {
            let _ = std::fs::remove_file(link);
        }
        created.map_err(StartError::Runtime)?;
        stdio::receive_terminal(console, state, args.stdin)
            .context(|| "receiving the container's terminal from the runtime".to_owned())
    } else {
        let (mut monitor_side, runtime_side) = stdio::pipes(args.stdin)
            .context(|| "creating the container's stdio pipes".to_owned())?;
        runtime::create(args, runtime_side, None, monitor_side.outputs.get_mut(1))
            .map_err(StartError::Runtime)?;
        Ok(monitor_side)
    };
    // From here on the container exists: do not leave it behind if the monitor cannot go on.
    let taken = stdio.and_then(|stdio| {
        let container_pid = read_container_pid(state)?;
        let pidfd = rustix::process::pidfd_open(container_pid, PidfdFlags::empty())
            .context(|| format!("opening a pidfd for container process {container_pid:?}"))?;
        Ok((stdio, container_pid, pidfd))
    });
    match taken {
        Ok((stdio, container_pid, pidfd)) => Ok(Started {
            container_pid,
            pidfd,
            stdio,
            clients: Clients::with_first(listener, first_client),
            log,
        }),
        Err(e) => {
            runtime::delete(args);
            Err(e)
        }
    }
}

fn read_container_pid(state: &Path) -> Result<Pid, StartError> {
    let path = statedir::path(state, statedir::CONTAINER_PID_FILE);
    let text = std::fs::read_to_string(&path)
        .context(|| format!("reading the runtime's {}", path.display()))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| {
            StartError::Runtime(format!(
                "the runtime's pid file {} holds {:?}, not a pid",
                path.display(),
                text.trim()
            ))
        })
}

/// Makes every path absolute (the monitor changes to `/`); a bare runtime or exit command name
/// stays as it is, for the `PATH` lookup.
fn absolute(mut args: MonitorArgs) -> io::Result<MonitorArgs> {
    let abs = |p: &Path| std::path::absolute(p);
    let has_dir = |p: &PathBuf| p.components().count() > 1;
    args.bundle = abs(&args.bundle)?;
    args.state_dir = abs(&args.state_dir)?;
    args.log_path = abs(&args.log_path)?;
    if has_dir(&args.runtime) {
        args.runtime = abs(&args.runtime)?;
    }
    if let Some(cmd) = args.exit_command.as_mut().filter(|c| has_dir(c)) {
        *cmd = abs(cmd)?;
    }
    Ok(args)
}
