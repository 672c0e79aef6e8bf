//! Privileged tests of `strata-monitor` with real runtimes (crun, runc) and busybox
//! containers: the log, the exit file, the exit command, attach (output, stdin, terminal,
//! resize, cleanup handshake), signals, slow clients, rotation, and a failing create.

mod support;

use std::os::unix::fs::PermissionsExt;

use rustix::process::{Pid, Signal};
use strata_engine_monitor::{
    exitfile, logfile, statedir, AttachClient, ExitStatus, LaunchError, ServerMessage, Stream,
};
use support::{Container, TIMEOUT};

const WHY: &str = "OCI runtimes (crun, runc) creating containers";

/// Everything a client received until the exit frame (or the end of the connection).
#[derive(Debug, Default)]
struct Received {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<ExitStatus>,
}

fn receive_all(client: &mut AttachClient) -> Received {
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut got = Received::default();
    while let Some(message) = client.recv().expect("receive from the monitor") {
        match message {
            ServerMessage::Stdout(data) => got.stdout.extend(data),
            ServerMessage::Stderr(data) => got.stderr.extend(data),
            ServerMessage::Exit(status) => {
                got.exit = Some(status);
                break;
            }
        }
    }
    got
}

fn full(stream: Stream, content: &str) -> (Stream, bool, String) {
    (stream, false, content.to_owned())
}

fn logs_exit_code_and_runs_the_exit_command(runtime: &str) {
    let mut c = Container::new(
        runtime,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
    );
    let launched = c.launch(&c.args());
    let pid_file = std::fs::read_to_string(c.state.join("pid")).expect("pid file");
    assert_eq!(pid_file.trim(), launched.container_pid.to_string());
    let monitor_pid = std::fs::read_to_string(c.state.join("monitor.pid")).expect("monitor.pid");
    assert_eq!(monitor_pid.trim(), launched.monitor_pid.to_string());
    let attach = c.state.join(statedir::ATTACH_SOCKET);
    let mode = std::fs::metadata(&attach)
        .expect("attach socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        exitfile::read_exit(&c.state).expect("read"),
        None,
        "not exited yet"
    );

    c.start();
    let exit = c.wait_exit();
    assert_eq!((exit.exit_code, exit.signal), (3, None));
    assert_eq!(c.wait_monitor(), 0);
    assert_eq!(
        c.log_records(),
        [full(Stream::Stdout, "out"), full(Stream::Stderr, "err")]
    );
    let seen_by_cleanup: ExitStatus =
        serde_json::from_slice(&std::fs::read(&c.cleaned).expect("exit command ran"))
            .expect("exit file copied by the exit command");
    assert_eq!(seen_by_cleanup, exit);
    assert!(!attach.exists(), "attach socket removed");
    c.assert_no_processes_left();
}

#[test]
fn crun_container_is_logged_recorded_and_cleaned_up() {
    if !strata_tests::require_privileged("monitor_crun_exit_and_log", WHY) {
        return;
    }
    logs_exit_code_and_runs_the_exit_command("crun");
}

#[test]
fn runc_container_is_logged_recorded_and_cleaned_up() {
    if !strata_tests::require_privileged("monitor_runc_exit_and_log", WHY) {
        return;
    }
    logs_exit_code_and_runs_the_exit_command("runc");
}

#[test]
fn attach_client_gets_output_and_exit_and_can_own_the_cleanup() {
    if !strata_tests::require_privileged("monitor_attach_cleanup_ack", WHY) {
        return;
    }
    let mut c = Container::new(
        "crun",
        &["sh", "-c", "echo one; echo two >&2; exit 5"],
        false,
    );
    c.launch(&c.args());
    let mut client = AttachClient::connect(&c.state, true).expect("attach");
    c.start();
    let got = receive_all(&mut client);
    assert_eq!(got.stdout, b"one\n");
    assert_eq!(got.stderr, b"two\n");
    let exit = got.exit.expect("exit frame");
    assert_eq!(exit.exit_code, 5);
    assert_eq!(
        exitfile::read_exit(&c.state).expect("read"),
        Some(exit),
        "the exit file is written before the exit frame is sent"
    );
    client.ack_cleanup().expect("ack");
    assert_eq!(c.wait_monitor(), 0);
    assert!(
        !c.cleaned.exists(),
        "the exit command must not run once a client acknowledged the cleanup"
    );
    c.assert_no_processes_left();
}

#[test]
fn cleanup_client_leaving_without_ack_gets_the_exit_command_run() {
    if !strata_tests::require_privileged("monitor_cleanup_client_gone", WHY) {
        return;
    }
    let mut c = Container::new("crun", &["sh", "-c", "exit 0"], false);
    c.launch(&c.args());
    let mut client = AttachClient::connect(&c.state, true).expect("attach");
    c.start();
    let exit = receive_all(&mut client).exit.expect("exit frame");
    assert_eq!(exit.exit_code, 0);
    drop(client);
    // The exit delay is a minute; the monitor must not wait it out once the client is gone.
    assert_eq!(c.wait_monitor(), 0);
    assert!(c.cleaned.exists(), "exit command ran");
    c.assert_no_processes_left();
}

#[test]
fn a_silent_cleanup_client_is_waited_for_only_up_to_the_exit_delay() {
    if !strata_tests::require_privileged("monitor_cleanup_delay", WHY) {
        return;
    }
    let mut c = Container::new("crun", &["sh", "-c", "exit 1"], false);
    let mut args = c.args();
    args.exit_delay = std::time::Duration::from_millis(300);
    c.launch(&args);
    let mut client = AttachClient::connect(&c.state, true).expect("attach");
    c.start();
    assert_eq!(receive_all(&mut client).exit.expect("exit").exit_code, 1);
    // The client stays connected and never acknowledges.
    assert_eq!(c.wait_monitor(), 0);
    assert!(c.cleaned.exists(), "exit command ran after the delay");
    assert!(
        client.recv().expect("clean end").is_none(),
        "the monitor closed the connection"
    );
    c.assert_no_processes_left();
}

#[test]
fn stdin_round_trips_through_cat() {
    if !strata_tests::require_privileged("monitor_stdin_round_trip", WHY) {
        return;
    }
    let mut c = Container::new("crun", &["cat"], false);
    let mut args = c.args();
    args.stdin = true;
    c.launch(&args);
    let mut client = AttachClient::connect(&c.state, false).expect("attach");
    c.start();
    client.send_stdin(b"hello\n").expect("stdin");
    client.send_eof().expect("eof");
    let got = receive_all(&mut client);
    assert_eq!(got.stdout, b"hello\n");
    assert_eq!(got.exit.expect("exit frame").exit_code, 0);
    assert_eq!(c.log_records(), [full(Stream::Stdout, "hello")]);
    drop(client);
    assert_eq!(c.wait_monitor(), 0);
    assert!(c.cleaned.exists());
    c.assert_no_processes_left();
}

#[test]
fn terminal_mode_gives_a_pty_that_follows_resizes() {
    if !strata_tests::require_privileged("monitor_terminal_resize", WHY) {
        return;
    }
    let script = "tty; read line; stty size; exit 7";
    let mut c = Container::new("crun", &["sh", "-c", script], true);
    let mut args = c.args();
    args.terminal = true;
    args.stdin = true;
    c.launch(&args);
    assert!(
        !c.state.join(statedir::CONSOLE_SOCKET).exists(),
        "console socket removed once the pty arrived"
    );
    let mut client = AttachClient::connect(&c.state, false).expect("attach");
    c.start();
    // Frames are handled in order: the size is set before `read` gets its line.
    client.resize(33, 101).expect("resize");
    client.send_stdin(b"go\n").expect("stdin");
    let got = receive_all(&mut client);
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(out.contains("/dev/pts/"), "tty output: {out:?}");
    assert!(out.contains("33 101"), "stty size output: {out:?}");
    assert!(got.stderr.is_empty(), "a terminal has one output stream");
    assert_eq!(got.exit.expect("exit frame").exit_code, 7);
    let records = c.log_records();
    assert!(records
        .iter()
        .all(|(stream, _, _)| *stream == Stream::Stdout));
    assert!(
        records.iter().any(|(_, _, line)| line.contains("33 101")),
        "{records:?}"
    );
    drop(client);
    assert_eq!(c.wait_monitor(), 0);
    c.assert_no_processes_left();
}

#[test]
fn sigkill_of_the_container_is_exit_code_137() {
    if !strata_tests::require_privileged("monitor_sigkill_137", WHY) {
        return;
    }
    let mut c = Container::new("crun", &["sleep", "1000"], false);
    let launched = c.launch(&c.args());
    c.start();
    let pid = Pid::from_raw(launched.container_pid).expect("pid");
    // The container's init is alive and not yet reaped, so this pid is still it.
    rustix::process::kill_process(pid, Signal::KILL).expect("kill the container");
    let exit = c.wait_exit();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert_eq!(c.wait_monitor(), 0);
    assert!(c.cleaned.exists());
    c.assert_no_processes_left();
}

#[test]
fn a_client_that_does_not_read_is_dropped_without_blocking_the_container() {
    if !strata_tests::require_privileged("monitor_slow_client_dropped", WHY) {
        return;
    }
    // 4 MB of output: far more than the socket buffer plus the 1 MiB client queue.
    let script = "yes 0123456789 | head -c 4000000; echo done";
    let mut c = Container::new("crun", &["sh", "-c", script], false);
    let mut args = c.args();
    args.log_max_size = 0;
    c.launch(&args);
    let mut client = AttachClient::connect(&c.state, false).expect("attach");
    c.start();
    assert_eq!(c.wait_exit().exit_code, 0, "the container ran to the end");

    let got = receive_all(&mut client);
    assert!(got.exit.is_none(), "a dropped client gets no exit frame");
    assert!(got.stdout.len() < 4_000_000, "{} bytes", got.stdout.len());
    assert_eq!(c.wait_monitor(), 0);

    let records = logfile::join_partials(logfile::read_log(&c.log).expect("log"));
    let (last, lines) = records.split_last().expect("records");
    assert_eq!(lines.len(), 4_000_000 / 11, "every full line is in the log");
    assert!(lines
        .iter()
        .all(|r| r.content == b"0123456789" && !r.partial));
    assert_eq!(last.content, b"0123done");
    c.assert_no_processes_left();
}

#[test]
fn the_log_rotates_at_the_given_size() {
    if !strata_tests::require_privileged("monitor_log_rotation", WHY) {
        return;
    }
    let script = "yes 0123456789 | head -c 300000";
    let mut c = Container::new("crun", &["sh", "-c", script], false);
    let mut args = c.args();
    args.log_max_size = 100_000;
    c.launch(&args);
    c.start();
    c.wait_exit();
    assert_eq!(c.wait_monitor(), 0);
    let rotated = logfile::rotated_path(&c.log);
    for path in [&c.log, &rotated] {
        let size = std::fs::metadata(path).expect("log file").len();
        assert!(size > 0 && size <= 100_000, "{}: {size}", path.display());
    }
    // Reads split lines anywhere; joined, every line but the first (its head was rotated away
    // twice) and the last (300000 is not a multiple of 11) is whole.
    let records = logfile::join_partials(logfile::read_log(&c.log).expect("log"));
    assert!(records.len() > 1000, "{} lines kept", records.len());
    assert!(records[1..records.len() - 1]
        .iter()
        .all(|r| r.content == b"0123456789" && r.stream == Stream::Stdout && !r.partial));
    assert_eq!(records[records.len() - 1].content, b"01234567");
}

#[test]
fn a_failing_create_reports_the_runtime_error_and_leaves_nothing_behind() {
    if !strata_tests::require_privileged("monitor_create_failure", WHY) {
        return;
    }
    let mut c = Container::new("crun", &["true"], false);
    std::fs::remove_dir_all(c.bundle.join("rootfs")).expect("remove rootfs");
    let err = strata_engine_monitor::launch(
        std::path::Path::new(env!("CARGO_BIN_EXE_strata-monitor")),
        &c.args(),
    )
    .expect_err("create must fail without a rootfs");
    let LaunchError::Failed { message, .. } = &err else {
        panic!("unexpected error: {err}");
    };
    assert!(message.contains("create failed"), "{message}");
    assert!(
        message.contains("rootfs"),
        "the runtime's own words: {message}"
    );
    for name in [
        statedir::ATTACH_SOCKET,
        statedir::CONSOLE_SOCKET,
        statedir::EXIT_FILE,
    ] {
        assert!(!c.state.join(name).exists(), "{name} left behind");
    }
    c.launched = None;
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&c.id));
    }
}
