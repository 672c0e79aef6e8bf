//! Test support for the monitor's privileged tests: a throwaway container (a busybox bundle
//! made with `crun spec`, a state directory, a private runtime root) driven through the real
//! `strata-monitor` binary and a real runtime, and cleaned up by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};
use strata_engine_monitor::{exitfile, launch, logfile, ExitStatus, Launched, MonitorArgs, Stream};

/// How long any wait in these tests may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Busybox applets linked into the test rootfs.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "tty", "stty", "yes", "head", "cp",
];

/// crun 1.8 refuses to run on this machine's hybrid cgroup layout until the hugetlb controller
/// is bound to a v1 hierarchy (see MACHINE.md); do that once.
pub fn prepare_cgroups() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read mounts");
        if mounts.contains("/sys/fs/cgroup/hugetlb ") {
            return;
        }
        std::fs::create_dir_all("/sys/fs/cgroup/hugetlb").expect("mkdir hugetlb cgroup");
        let status = Command::new("mount")
            .args([
                "-t",
                "cgroup",
                "-o",
                "hugetlb",
                "cgroup",
                "/sys/fs/cgroup/hugetlb",
            ])
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting the hugetlb cgroup failed");
    });
}

/// The runtime's absolute path, or a failure telling what to install.
pub fn runtime_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (apt-get install -y {name})"))
}

/// A container under test.
pub struct Container {
    _tmp: tempfile::TempDir,
    pub runtime: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub state: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    /// Written by the exit command: a copy of the exit file as the command saw it.
    pub cleaned: PathBuf,
    pub launched: Option<Launched>,
    /// The monitor was reaped by `wait_monitor`: its pid may be reused, never signal it.
    monitor_reaped: bool,
}

impl Container {
    /// A bundle running `process_args` in a busybox rootfs, with or without a terminal.
    pub fn new(runtime: &str, process_args: &[&str], terminal: bool) -> Container {
        prepare_cgroups();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "strata-monitor-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("bundle");
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("mkdir rootfs");
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "/bin/busybox is missing (apt-get install -y busybox-static)"
        );
        std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
        }
        write_config(&bundle, process_args, terminal);
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).expect("mkdir state");
        Container {
            runtime: runtime_path(runtime),
            id,
            bundle,
            root: tmp.path().join("runtime-root"),
            log: tmp.path().join("ctr.log"),
            cleaned: tmp.path().join("cleaned"),
            state,
            _tmp: tmp,
            launched: None,
            monitor_reaped: false,
        }
    }

    /// Monitor arguments for this container; the exit command copies the exit file to
    /// `self.cleaned`, proving both that it ran and that the exit file existed by then.
    pub fn args(&self) -> MonitorArgs {
        let mut args = MonitorArgs::new(
            self.id.clone(),
            &self.bundle,
            &self.runtime,
            &self.state,
            &self.log,
        );
        args.runtime_args = vec!["--root".into(), self.root.clone().into()];
        args.exit_command = Some("/bin/sh".into());
        args.exit_command_args = vec![
            "-c".into(),
            r#"cp "$0/exit" "$1""#.into(),
            self.state.clone().into(),
            self.cleaned.clone().into(),
        ];
        args
    }

    /// Launches the monitor (the container is then created).
    pub fn launch(&mut self, args: &MonitorArgs) -> Launched {
        let launched = launch(Path::new(env!("CARGO_BIN_EXE_strata-monitor")), args)
            .unwrap_or_else(|e| panic!("launch failed: {e}"));
        self.launched = Some(launched);
        launched
    }

    /// `runtime start ID`.
    pub fn start(&self) {
        let out = self
            .runtime_cmd(&["start", &self.id])
            .output()
            .expect("run start");
        assert!(
            out.status.success(),
            "runtime start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits for the exit file.
    pub fn wait_exit(&self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = exitfile::read_exit(&self.state).expect("read exit file") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit file after {TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the monitor (our child, via launch) to exit and reaps it; its exit code.
    pub fn wait_monitor(&mut self) -> i32 {
        let pid = self.monitor_pid();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => {
                    self.monitor_reaped = true;
                    return status.exit_status().unwrap_or(-1);
                }
                Ok(None) => {}
                Err(e) => panic!("waiting for the monitor: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "monitor still running after {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn monitor_pid(&self) -> Pid {
        let launched = self.launched.expect("launched");
        Pid::from_raw(launched.monitor_pid).expect("pid")
    }

    /// The log records as (stream, partial, content) triples.
    pub fn log_records(&self) -> Vec<(Stream, bool, String)> {
        logfile::read_log(&self.log)
            .expect("read container log")
            .into_iter()
            .map(|r| {
                let content = String::from_utf8(r.content).expect("utf8 log");
                (r.stream, r.partial, content)
            })
            .collect()
    }

    /// Fails if any process still runs for this container: the container's init, the monitor,
    /// or anything whose command line names the container ID.
    pub fn assert_no_processes_left(&self) {
        let launched = self.launched.expect("launched");
        for pid in [launched.container_pid, launched.monitor_pid] {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} is still there"
            );
        }
        // A process can show a stale command line for a moment (between fork and exec, or
        // while it exits under load): only one that stays is a leak.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<String> = std::fs::read_dir("/proc")
                .expect("read /proc")
                .flatten()
                .filter_map(|entry| {
                    let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    let status =
                        std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
                    let state: String = status
                        .lines()
                        .filter(|l| l.starts_with("State:") || l.starts_with("PPid:"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    cmdline
                        .contains(&self.id)
                        .then(|| format!("{:?} ({state}): {cmdline}", entry.file_name()))
                })
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "processes are left: {left:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn runtime_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .runtime_cmd(&["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `delete --force` ended the container; the monitor is still our child (so its pid
        // cannot have been reused) unless `wait_monitor` reaped it.
        if let (Some(launched), false) = (self.launched, self.monitor_reaped) {
            if let Some(pid) = Pid::from_raw(launched.monitor_pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
            }
        }
    }
}

/// `config.json` from `crun spec`, with our process and terminal setting.
fn write_config(bundle: &Path, process_args: &[&str], terminal: bool) {
    let status = Command::new(runtime_path("crun"))
        .arg("spec")
        .current_dir(bundle)
        .status()
        .expect("run crun spec");
    assert!(status.success(), "crun spec failed");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read config")).expect("json");
    config["process"]["terminal"] = terminal.into();
    config["process"]["args"] = serde_json::json!(process_args);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
}
