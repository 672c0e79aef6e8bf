//! Running the OCI runtime: `create` (with the container's stdio, a pid file and a JSON log)
//! and, when the monitor cannot go on after a successful create, `delete --force`.
//!
//! A failed `create` is explained with the runtime's own words: the last error messages of
//! `<state-dir>/runtime.log` (crun and runc both write JSON lines with a `msg` field there when
//! given `--log FILE --log-format json`), or else what it printed on stderr. `start`, `kill`
//! and `delete` of a running container are the front end's job, not this module's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{statedir, MonitorArgs};

use super::output::{Output, ReadOutcome};
use super::stdio::RuntimeStdio;

/// How many of the runtime's last error messages a failure report quotes.
const QUOTED_ERRORS: usize = 3;

/// Runs `RUNTIME [runtime-args] --log=... --log-format=json create --bundle B --pid-file P
/// [--console-socket S] ID` and waits for it. `Err` carries a message for the user; when the
/// runtime's log has none, what it wrote to `stderr` (the container's stderr pipe) is quoted.
pub fn create(
    args: &MonitorArgs,
    stdio: RuntimeStdio,
    console_socket: Option<&Path>,
    stderr: Option<&mut Output>,
) -> Result<(), String> {
    let log = runtime_log(args);
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new(&args.runtime);
    cmd.args(&args.runtime_args)
        .arg(format!("--log={}", log.display()))
        .arg("--log-format=json");
    // `run --detach` creates and starts in one process (one fork and exec fewer than
    // `create` plus the caller's `start`).
    if args.start {
        cmd.arg("run").arg("--detach");
    } else {
        cmd.arg("create");
    }
    cmd.arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(statedir::path(
            &args.state_dir,
            statedir::CONTAINER_PID_FILE,
        ));
    if let Some(socket) = console_socket {
        cmd.arg("--console-socket").arg(socket);
    }
    cmd.arg(&args.id)
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr);
    let status = cmd.status();
    // `cmd` holds the child's ends of the stdio pipes: close them now, so the monitor's ends
    // see EOF and EPIPE when the container closes its own.
    drop(cmd);
    let status =
        status.map_err(|e| format!("running OCI runtime {}: {e}", args.runtime.display()))?;
    if status.success() {
        return Ok(());
    }
    let mut errors = runtime_errors(&log);
    if errors.is_empty() {
        errors.extend(stderr.and_then(printed_text));
    }
    let verb = if args.start { "run" } else { "create" };
    let mut message = format!("{} {verb} failed ({status})", args.runtime.display());
    if !errors.is_empty() {
        message.push_str(": ");
        message.push_str(&errors.join("; "));
    }
    if message.contains("cgroups in hybrid mode") {
        message.push_str(
            " (crun needs a cgroup v1 controller that is not bound to any hierarchy here, \
             typically hugetlb: mkdir -p /sys/fs/cgroup/hugetlb && \
             mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb)",
        );
    }
    Err(message)
}

/// Best-effort `RUNTIME [runtime-args] delete --force ID`, for a container created by a
/// monitor that then failed to take charge of it.
pub fn delete(args: &MonitorArgs) {
    let _ = Command::new(&args.runtime)
        .args(&args.runtime_args)
        .args(["delete", "--force"])
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn runtime_log(args: &MonitorArgs) -> PathBuf {
    statedir::path(&args.state_dir, statedir::RUNTIME_LOG)
}

/// What the runtime left in its stderr pipe (non-blocking, at most a few KiB), trimmed.
fn printed_text(stderr: &mut Output) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match stderr.read(&mut buf[len..]) {
            ReadOutcome::Data(n) => len += n,
            ReadOutcome::WouldBlock | ReadOutcome::Closed => break,
        }
    }
    let text = String::from_utf8_lossy(&buf[..len])
        .trim()
        .replace('\n', "; ");
    (!text.is_empty()).then_some(text)
}

/// The last error messages in the runtime's JSON log (any messages if none is an error).
fn runtime_errors(log: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    let entries: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let msg = v.get("msg")?.as_str()?.trim().to_owned();
            let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
            Some((level.to_owned(), msg))
        })
        .collect();
    let errors: Vec<&String> = entries
        .iter()
        .filter(|(level, _)| matches!(level.as_str(), "error" | "fatal" | "panic"))
        .map(|(_, msg)| msg)
        .collect();
    let chosen = if errors.is_empty() {
        entries.iter().map(|(_, msg)| msg).collect()
    } else {
        errors
    };
    let skip = chosen.len().saturating_sub(QUOTED_ERRORS);
    chosen.into_iter().skip(skip).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_last_errors_of_a_json_runtime_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("runtime.log");
        std::fs::write(
            &log,
            concat!(
                r#"{"msg": "a warning", "level": "warning", "time": "x"}"#,
                "\n",
                "not json\n",
                r#"{"level":"error","msg":"first error"}"#,
                "\n",
                r#"{"level":"error","msg":"container_linux.go:380: no such file"}"#,
                "\n",
            ),
        )
        .expect("write");
        assert_eq!(
            runtime_errors(&log),
            ["first error", "container_linux.go:380: no such file"]
        );
        std::fs::write(&log, r#"{"msg":"only info","level":"info"}"#).expect("write");
        assert_eq!(runtime_errors(&log), ["only info"]);
        assert!(runtime_errors(&tmp.path().join("missing")).is_empty());
    }
}
