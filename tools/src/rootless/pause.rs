//! The pause process: `strata __strata-pause PIDFILE`, which holds the rootless user and
//! mount namespaces open so every later command can join them.
//!
//! Setup is a line protocol over the child's stdin and stdout:
//!
//! ```text
//! child                                   parent (the first strata command)
//! setsid, chdir /
//! unshare(CLONE_NEWUSER)      "unshared" ─>
//!                                         newuidmap PID 0 UID 1 1 SUBUID COUNT
//!                             <─ "mapped" newgidmap PID 0 GID 1 1 SUBGID COUNT
//! unshare(CLONE_NEWNS)
//! make / a recursive slave (host mounts propagate in, ours never out)
//! write PIDFILE               "ready"    ─>  joins the namespaces
//! stdio to /dev/null, sleep forever
//! ```
//!
//! Any failure is sent as `error: MESSAGE` and the child exits. The pause process is in its own
//! session, so a terminal's Ctrl-C or hangup never reaches it, and holds no descriptor of the
//! command that started it (stderr is `/dev/null` from the start, stdin and stdout after setup).
//!
//! What it does not do: exit by itself. It is ended by a signal (`kill PID`); the next command
//! then creates a new one.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use rustix::mount::{mount_change, MountPropagationFlags};

use super::idmap::Plan;
use super::sys::{self, NewNamespace};

/// `argv[1]` of the pause process, intercepted at the top of `main` before any parsing.
pub const PAUSE_COMMAND: &str = "__strata-pause";

/// The pause process named by `pidfile`, if it is alive, ours (owned by `uid`) and really a
/// pause process for this pid file.
pub fn find(pidfile: &Path, uid: u32) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if std::fs::metadata(&proc_dir).ok()?.uid() != uid {
        return None;
    }
    // A zombie or a recycled pid has another (or an empty) command line.
    let cmdline = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = argv.get(1) == Some(&PAUSE_COMMAND.as_bytes())
        && argv.get(2) == Some(&pidfile.as_os_str().as_encoded_bytes());
    ours.then_some(pid)
}

/// Starts a pause process, maps its ids and waits until it is ready; returns its pid.
pub fn spawn(pidfile: &Path) -> Result<u32> {
    // Checked first, so a missing range or helper is reported before anything is started.
    let plan = Plan::for_current_user()?;
    // /proc/self/exe works even when the binary was replaced since this process started;
    // `ps` shows the binary's name.
    let name = std::env::current_exe().map_or_else(|_| "strata".into(), PathBuf::into_os_string);
    let mut child = Command::new("/proc/self/exe")
        .arg0(name)
        .arg(PAUSE_COMMAND)
        .arg(pidfile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
        .context("cannot start the rootless pause process")?;
    let pid = child.id();
    match handshake(&mut child, &plan) {
        Ok(()) => {
            tracing::debug!(pid, "started the rootless pause process");
            Ok(pid)
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e.context("cannot set up the rootless user namespace"))
        }
    }
}

fn handshake(child: &mut Child, plan: &Plan) -> Result<()> {
    let mut from = BufReader::new(
        child
            .stdout
            .take()
            .context("no pipe from the pause process")?,
    );
    let mut to = child.stdin.take().context("no pipe to the pause process")?;
    expect(&mut from, "unshared")?;
    plan.apply(child.id())?;
    writeln!(to, "mapped").context("cannot reach the pause process")?;
    expect(&mut from, "ready")
}

fn expect(from: &mut impl BufRead, want: &str) -> Result<()> {
    let mut line = String::new();
    from.read_line(&mut line)
        .context("cannot read from the pause process")?;
    let line = line.trim_end();
    if line == want {
        return Ok(());
    }
    match line.strip_prefix("error: ") {
        Some(msg) => bail!("{msg}"),
        None if line.is_empty() => bail!("the pause process ended during setup"),
        None => bail!("unexpected message from the pause process: {line:?}"),
    }
}

/// The pause process's `main`.
pub fn pause_main(args: &[OsString]) -> ExitCode {
    let Some(pidfile) = args.get(2).map(PathBuf::from) else {
        eprintln!("strata: {PAUSE_COMMAND} is internal to rootless mode");
        return ExitCode::from(2);
    };
    // Its own session: no controlling terminal, so no SIGINT or SIGHUP from one.
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    let mut out = std::io::stdout().lock();
    let mut say = |msg: &str| writeln!(out, "{msg}").and_then(|()| out.flush());
    if let Err(e) = setup(&pidfile, &mut say) {
        let _ = say(&format!("error: {e}"));
        return ExitCode::FAILURE;
    }
    if say("ready").is_err() {
        return ExitCode::FAILURE;
    }
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    loop {
        std::thread::park();
    }
}

fn setup(pidfile: &Path, say: &mut impl FnMut(&str) -> std::io::Result<()>) -> Result<(), String> {
    sys::unshare(NewNamespace::User).map_err(|e| {
        format!(
            "unshare(CLONE_NEWUSER): {e} (are unprivileged user namespaces disabled? see sysctl \
             user.max_user_namespaces, and kernel.apparmor_restrict_unprivileged_userns on Ubuntu)"
        )
    })?;
    say("unshared").map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim_end() != "mapped" {
        return Err("the ids were not mapped".into());
    }
    sys::unshare(NewNamespace::Mount).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("make / a recursive slave mount: {e}"))?;
    let tmp = pidfile.with_extension(format!("pid.{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, pidfile))
        .map_err(|e| format!("write {}: {e}", pidfile.display()))
}
