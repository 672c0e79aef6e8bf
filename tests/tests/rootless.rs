//! Rootless mode, black-box: the real `strata` binary run as an unprivileged user
//! (`strata-rootless`, made here with subordinate id ranges if missing) through `runuser`, on
//! crun and runc, with the busybox fixture image.
//!
//! What a rootless podman user checks: containers run, exit codes and output pass through,
//! detached containers log, exec, stop and go away, flags and volumes land inside, files are
//! owned by the user (container root) or by a subordinate id (other container users) on the
//! host, `--rm` leaves no mounts and no processes, the first commands racing share one
//! namespace, slirp4netns gives containers a network and publishes ports, and what cannot work
//! (resource limits on cgroup v1, a bridge, a user without subordinate ids) fails with a
//! message that says what to do. Setup (`cargo xtask test`) makes `/dev/net/tun` 0666, Debian's
//! default, as slirp4netns needs.
//!
//! The tests run as root (to create users and to look at the host's view); each one has its
//! own `$XDG_RUNTIME_DIR`, so its own pause process, which it kills (by pid) at the end.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata_tests::containers::wait_for;
use strata_tests::{fixtures, require_privileged, LayerSpec, LayoutBuilder, TarBuilder};

const RUNTIMES: &[&str] = &["crun", "runc"];
const USER: &str = "strata-rootless";
const NO_SUBIDS_USER: &str = "strata-nosubids";

use strata_tests::users::{ensure_user, must, sh, TestUser as Ids};

/// One rootless user session: its own home, `$XDG_RUNTIME_DIR` (so its own pause process),
/// `$XDG_DATA_HOME` (the store) and scratch space, in a temporary directory.
struct Session {
    dir: tempfile::TempDir,
    user: &'static str,
    ids: Ids,
    bin: PathBuf,
    /// A cgroup v2 directory every command is started in (see `Delegation`).
    cgroup: Option<PathBuf>,
}

impl Session {
    fn new(user: &'static str, subids: bool) -> Session {
        let ids = ensure_user(user, subids);
        let dir = tempfile::Builder::new()
            .prefix("strata-rootless-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        for sub in ["home", "run", "data", "config", "work"] {
            let p = dir.path().join(sub);
            std::fs::create_dir(&p).expect("mkdir");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            rustix::fs::chown(
                &p,
                Some(rustix::fs::Uid::from_raw(ids.uid)),
                Some(rustix::fs::Gid::from_raw(ids.gid)),
            )
            .expect("chown");
        }
        let mut s = Session {
            bin: strata_tests::cli::strata_bin().to_path_buf(),
            dir,
            user,
            ids,
            cgroup: None,
        };
        if !s.can_use_installed_binaries() {
            s.bin = s.copy_binaries();
        }
        s
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn plugin_dir(&self) -> PathBuf {
        self.bin
            .parent()
            .expect("bin dir")
            .join("lib/strata/plugins")
    }

    /// Whether the user can run the built binaries where they are (no parent dir blocks it).
    fn can_use_installed_binaries(&self) -> bool {
        let monitor = self.bin.with_file_name("strata-monitor");
        let fuse = self.bin.with_file_name("strata-fuse-overlay");
        let plugin = self.plugin_dir().join("libstrata_plugin_run.so");
        sh(Command::new("runuser")
            .args(["-u", self.user, "--", "test", "-x"])
            .arg(&self.bin)
            .args(["-a", "-x"])
            .arg(&monitor)
            .args(["-a", "-x"])
            .arg(&fuse)
            .args(["-a", "-r"])
            .arg(&plugin))
        .status
        .success()
    }

    /// Copies the binary, the monitor and the plugins where the user can reach them.
    fn copy_binaries(&self) -> PathBuf {
        let to = self.path("bin");
        let plugins = to.join("lib/strata/plugins");
        std::fs::create_dir_all(&plugins).expect("mkdir bin");
        for d in [
            to.clone(),
            to.join("lib"),
            to.join("lib/strata"),
            plugins.clone(),
        ] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let from = self.bin.parent().expect("bin dir");
        for f in ["strata", "strata-monitor", "strata-fuse-overlay"] {
            std::fs::copy(from.join(f), to.join(f)).expect("copy binary");
        }
        for e in std::fs::read_dir(self.plugin_dir())
            .expect("plugins")
            .flatten()
        {
            if e.path().extension().is_some_and(|x| x == "so") {
                std::fs::copy(e.path(), plugins.join(e.file_name())).expect("copy plugin");
            }
        }
        to.join("strata")
    }

    /// `strata ARGS` as the user, with a clean environment.
    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = match &self.cgroup {
            None => Command::new("runuser"),
            Some(cg) => {
                // Moved into the cgroup first (as root), then the user's command.
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec runuser \"$@\""])
                    .arg(cg);
                c
            }
        };
        c.args(["-u", self.user, "--", "env", "-i"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("HOME={}", self.path("home").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.path("run").display()))
            .arg(format!("XDG_DATA_HOME={}", self.path("data").display()))
            .arg(format!("XDG_CONFIG_HOME={}", self.path("config").display()))
            .arg(format!(
                "STRATA_PLUGIN_PATH={}",
                self.plugin_dir().display()
            ))
            .arg(&self.bin)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run strata")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "strata {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 stdout")
    }

    fn fail(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().expect("exit code");
        assert_ne!(code, 0, "strata {} should have failed", args.join(" "));
        (code, err)
    }

    /// Loads the busybox fixture (copied where the user can read it) as `busybox`.
    fn load_busybox(&self) {
        let layout = self.path("work/busybox");
        must(
            Command::new("cp")
                .arg("-r")
                .arg(fixtures::layout_dir("busybox"))
                .arg(&layout),
        );
        self.chown_to_user(&layout);
        self.ok(&[
            "storage",
            "load",
            &format!("oci:{}:latest", layout.display()),
            "--name",
            "busybox",
        ]);
    }

    fn chown_to_user(&self, p: &Path) {
        must(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.ids.uid, self.ids.gid))
                .arg(p),
        );
    }

    fn pidfile(&self) -> PathBuf {
        self.path("run/strata/pause.pid")
    }

    /// The pause process of this session.
    fn pause_pid(&self) -> u32 {
        std::fs::read_to_string(self.pidfile())
            .expect("pause.pid")
            .trim()
            .parse()
            .expect("pid")
    }

    fn store(&self) -> PathBuf {
        self.path("data/strata")
    }

    fn runroot(&self) -> PathBuf {
        self.path("run/strata")
    }

    /// Mounts below this session's directory, as the pause process's mount namespace sees them.
    fn mounts_left(&self) -> Vec<String> {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pause_pid()))
            .expect("pause mountinfo");
        let base = self.dir.path().to_string_lossy().into_owned();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&base))
            .map(str::to_owned)
            .collect()
    }

    /// Processes in this session's user namespace other than the pause process.
    fn processes_left(&self) -> Vec<u32> {
        let pause = self.pause_pid();
        let ns = std::fs::read_link(format!("/proc/{pause}/ns/user")).expect("pause userns");
        pids_in_userns(&ns)
            .into_iter()
            .filter(|p| *p != pause)
            .collect()
    }

    /// Asserts no container, mount, runtime record or process is left.
    fn assert_nothing_left(&self, runtime: &str) {
        assert_eq!(self.ok(&["ps", "-aq"]), "", "ps -a lists containers");
        assert!(
            self.mounts_left().is_empty(),
            "mounts left: {:?}",
            self.mounts_left()
        );
        let rt_root = self.runroot().join("runtime").join(runtime);
        let left: Vec<_> = std::fs::read_dir(&rt_root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "runtime state left in {}: {left:?}",
            rt_root.display()
        );
        wait_for(
            "container processes to end",
            Duration::from_secs(10),
            || self.processes_left().is_empty(),
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pidfile()).map(|p| p.trim().to_owned()) {
            let Ok(pid) = pid.parse::<u32>() else { return };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.windows(14).any(|w| w == b"__strata-pause") {
                // Whatever a failed test left in the namespace goes first, then the pause process.
                if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/user")) {
                    for p in pids_in_userns(&ns) {
                        kill(p);
                    }
                }
                kill(pid);
            }
        }
    }
}

fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

fn pids_in_userns(ns: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|l| l == ns))
        .collect()
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

#[test]
fn privileged_rootless_run_rm_passes_exit_codes_and_leaves_nothing() {
    if !require_privileged(
        "rootless_run_rm",
        "runs containers as a rootless user (runuser, newuidmap)",
    ) {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    for rt in RUNTIMES {
        let out = s.run(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; id -u; cat /proc/self/uid_map | wc -l; exit 3",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{rt}: exit code; stderr: {stderr}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "out\n0\n2\n",
            "{rt}: root inside, two id ranges"
        );
        assert!(stderr.contains("err\n"), "{rt}: stderr {stderr}");
        s.assert_nothing_left(rt);
        // Detached, the monitor's exit command (run inside the namespace) does the cleanup.
        s.ok(&["run", "-d", "--rm", "--runtime", rt, "busybox", "true"]);
        wait_for("the monitor's cleanup", Duration::from_secs(10), || {
            s.ok(&["ps", "-aq"]).is_empty()
        });
        s.assert_nothing_left(rt);
    }
    // `--network none` is a private network with only loopback, up (the default, slirp4netns,
    // is tested with its ports below).
    let out = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate",
    ]);
    assert_eq!(out, "lo\nunknown\n", "loopback only");
    // A missing program is an error, and still leaves nothing.
    let (code, err) = s.fail(&["run", "--rm", "busybox", "/no/such/program"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no/such/program") || err.contains("No such file"),
        "{err}"
    );
    s.assert_nothing_left("crun");
    // `strata unshare` runs a command in the namespace, as root there.
    assert_eq!(s.ok(&["unshare", "id", "-u"]), "0\n");
    assert!(s
        .ok(&["unshare", "cat", "/proc/self/uid_map"])
        .contains(&format!(" {} ", s.ids.subuid)));
}

#[test]
fn privileged_rootless_files_belong_to_the_user_and_its_subordinate_ids() {
    if !require_privileged("rootless_ownership", "runs containers as a rootless user") {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    let vol = s.path("work/vol");
    std::fs::create_dir(&vol).expect("vol");
    s.chown_to_user(&vol);
    for rt in RUNTIMES {
        let name = format!("own-{rt}");
        let id = s
            .ok(&[
                "run",
                "-d",
                "--runtime",
                rt,
                "--name",
                &name,
                "-v",
                &format!("{}:/vol", vol.display()),
                "busybox",
                "sh",
                "-c",
                "touch /by-root /vol/by-root-$0; exec sleep 1000",
                rt,
            ])
            .trim()
            .to_owned();
        s.ok(&["exec", "-u", "1000:1000", &name, "touch", "/tmp/by-1000"]);
        // The host sees the container's root as the user, its uid 1000 as subuid + 999.
        let upper = s.store().join(format!("overlay/layers/c-{id}/diff"));
        assert_eq!(
            owner(&upper.join("by-root")),
            (s.ids.uid, s.ids.gid),
            "{rt}: root's file"
        );
        assert_eq!(
            owner(&upper.join("tmp/by-1000")),
            (s.ids.subuid + 999, s.ids.subgid + 999),
            "{rt}: uid 1000's file"
        );
        assert_eq!(
            owner(&vol.join(format!("by-root-{rt}"))),
            (s.ids.uid, s.ids.gid),
            "{rt}: volume file"
        );
        // Inside the namespace they show with their container owners.
        let shown = s.ok(&[
            "unshare",
            "stat",
            "-c",
            "%u:%g",
            upper.join("by-root").to_str().expect("utf8"),
            upper.join("tmp/by-1000").to_str().expect("utf8"),
        ]);
        assert_eq!(shown, "0:0\n1000:1000\n", "{rt}");
        s.ok(&["rm", "-f", &name]);
        assert!(!upper.exists(), "{rt}: rm removes the container's layer");
        s.assert_nothing_left(rt);
    }
}

#[test]
fn privileged_rootless_detached_containers_log_exec_stop_and_remove() {
    if !require_privileged("rootless_detached", "runs containers as a rootless user") {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    for rt in RUNTIMES {
        let name = format!("web-{rt}");
        let id = s
            .ok(&[
                "run",
                "-d",
                "--runtime",
                rt,
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                "echo hello; echo oops >&2; exec sleep 1000",
            ])
            .trim()
            .to_owned();
        assert_eq!(id.len(), 64, "{rt}: run -d prints the ID");
        assert!(s.ok(&["ps"]).contains(&name), "{rt}: ps lists it");
        wait_for("the log", Duration::from_secs(10), || {
            s.ok(&["logs", &name]).contains("hello")
        });
        let logs = s.run(&["logs", &name]);
        assert_eq!(String::from_utf8_lossy(&logs.stdout), "hello\n");
        assert_eq!(String::from_utf8_lossy(&logs.stderr), "oops\n");
        assert_eq!(
            s.ok(&["exec", &name, "cat", "/etc/hostname"]).trim(),
            &id[..12]
        );
        assert_eq!(
            s.ok(&["exec", "-e", "FOO=bar", &name, "sh", "-c", "echo $FOO"]),
            "bar\n"
        );
        assert_eq!(
            s.ok(&[
                "exec",
                "-u",
                "1234",
                "-w",
                "/tmp",
                &name,
                "sh",
                "-c",
                "id -u; pwd"
            ]),
            "1234\n/tmp\n"
        );
        assert_eq!(
            s.run(&["exec", &name, "sh", "-c", "exit 7"]).status.code(),
            Some(7),
            "{rt}"
        );
        // sleep as PID 1 ignores SIGTERM: -t 1 ends in SIGKILL, without a cgroup to find it.
        let t = Instant::now();
        s.ok(&["stop", "-t", "1", &name]);
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{rt}: stop took {:?}",
            t.elapsed()
        );
        let st: serde_json::Value =
            serde_json::from_str(&s.ok(&["inspect", "--type", "container", &name])).expect("JSON");
        assert_eq!(st[0]["State"]["Status"], "exited", "{rt}");
        assert_eq!(st[0]["State"]["ExitCode"], 137, "{rt}");
        assert!(
            s.mounts_left().is_empty(),
            "{rt}: a stopped container is unmounted"
        );
        assert!(
            s.ok(&["logs", &name]).contains("hello"),
            "{rt}: logs outlive the container"
        );
        s.ok(&["start", &name]);
        s.ok(&["kill", &name]);
        assert_eq!(s.ok(&["wait", &name]).trim(), "137", "{rt}");
        s.ok(&["rm", &name]);
        s.assert_nothing_left(rt);
    }
}

#[test]
fn privileged_rootless_flags_and_volumes_land_inside() {
    if !require_privileged("rootless_flags", "runs containers as a rootless user") {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    let vol = s.path("work/vol");
    std::fs::create_dir(&vol).expect("vol");
    std::fs::write(vol.join("x"), "from-host\n").expect("x");
    let env_file = s.path("work/env");
    std::fs::write(&env_file, "# comment\nB=two\n").expect("env file");
    s.chown_to_user(&vol);
    s.chown_to_user(&env_file);
    let script = "echo $A $B; id -u; id -g; pwd; cat /data/x; touch /data/y 2>/dev/null || echo ro-vol; \
                  touch /etc/z 2>/dev/null || echo ro-root; touch /tmp/ok && echo tmp-ok; hostname; \
                  touch /scratch/s && echo scratch-ok";
    for rt in RUNTIMES {
        let out = s.ok(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "-e",
            "A=one",
            "--env-file",
            env_file.to_str().expect("utf8"),
            "-u",
            "1000:1001",
            "-w",
            "/tmp",
            "-v",
            &format!("{}:/data:ro", vol.display()),
            "--read-only",
            "--hostname",
            "box",
            "--mount",
            "type=tmpfs,destination=/scratch",
            "busybox",
            "sh",
            "-c",
            script,
        ]);
        assert_eq!(
            out, "one two\n1000\n1001\n/tmp\nfrom-host\nro-vol\nro-root\ntmp-ok\nbox\nscratch-ok\n",
            "{rt}"
        );
        assert!(!vol.join("y").exists());
        // --network host: the host's interfaces.
        let out = s.ok(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "host",
            "busybox",
            "ls",
            "/sys/class/net",
        ]);
        let host: Vec<String> = std::fs::read_dir("/sys/class/net")
            .expect("host interfaces")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            host.iter().all(|i| out.contains(i.as_str())),
            "{rt}: {out} lacks some of {host:?}"
        );
        s.assert_nothing_left(rt);
    }
}

#[test]
fn privileged_rootless_refuses_what_needs_root_with_clear_messages() {
    if !require_privileged("rootless_refusals", "runs strata as a rootless user") {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    for flag in [
        ["--memory", "64m"],
        ["--cpus", "0.5"],
        ["--pids-limit", "10"],
    ] {
        let (code, err) = s.fail(&["run", "--rm", flag[0], flag[1], "busybox", "true"]);
        assert_eq!(code, 8, "unsupported: {err}");
        assert!(err.contains("need cgroup v2 delegation or root"), "{err}");
    }
    let (code, err) = s.fail(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-p",
        "8080:80",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 5, "invalid: {err}");
    assert!(
        err.contains("needs --network bridge or slirp4netns"),
        "{err}"
    );
    let (code, err) = s.fail(&["run", "--rm", "--network", "bridge", "busybox", "true"]);
    assert_eq!(code, 8, "unsupported: {err}");
    assert!(err.contains("needs root"), "{err}");
    let (code, err) = s.fail(&["run", "--rm", "--userns", "ns:/x", "busybox", "true"]);
    assert_eq!(code, 8, "unsupported: {err}");
    assert!(err.contains("not supported yet"), "{err}");
    assert_eq!(
        s.ok(&["ps", "-aq"]),
        "",
        "refused containers are not created"
    );
    // A layer file owned by an id outside the user's ranges: the error names it and the ranges.
    let mut t = TarBuilder::new();
    let mut e = strata_tests::EntrySpec::new(strata_tests::EntryType::File, "far-away");
    e.uid = 200_000;
    e.gid = 200_000;
    t.entry(e);
    let layout = s.path("work/far");
    LayoutBuilder::new()
        .layer(LayerSpec::tar(t.finish()))
        .write(&layout)
        .expect("layout");
    s.chown_to_user(&layout);
    let (_, err) = s.fail(&["storage", "load", &format!("oci:{}", layout.display())]);
    assert!(
        err.contains("far-away") && err.contains("200000") && err.contains("uids 0-65536"),
        "{err}"
    );
}

#[test]
fn privileged_rootless_overlay_whiteouts_and_opaque_dirs_work() {
    if !require_privileged("rootless_overlay", "mounts overlay as a rootless user") {
        return;
    }
    let s = Session::new(USER, true);
    let mut base = TarBuilder::new();
    base.dir("d")
        .file("d/old", "old\n")
        .file("gone", "x\n")
        .file("kept", "k\n");
    // A device node cannot be made in a user namespace: skipped, as podman does.
    let mut null = strata_tests::EntrySpec::new(strata_tests::EntryType::CharDevice, "null");
    null.device = (1, 3);
    base.entry(null);
    let mut top = TarBuilder::new();
    top.dir("d")
        .opaque("d")
        .file("d/new", "new\n")
        .whiteout("gone");
    let layout = s.path("work/layered");
    LayoutBuilder::new()
        .layer(LayerSpec::tar(base.finish()))
        .layer(LayerSpec::tar(top.finish()))
        .write(&layout)
        .expect("layout");
    s.chown_to_user(&layout);
    s.ok(&[
        "storage",
        "load",
        &format!("oci:{}", layout.display()),
        "--name",
        "layered",
    ]);
    let info = s.ok(&["storage", "info"]);
    assert!(
        info.contains("driver: overlay") && info.contains("userxattr"),
        "{info}"
    );
    s.ok(&["storage", "create", "layered", "--name", "c"]);
    let mp = s.ok(&["storage", "mount", "c"]).trim().to_owned();
    // The mount exists only in the namespace: the host does not see it.
    assert!(
        !Path::new(&mp).join("kept").exists(),
        "the host sees the namespace's mount"
    );
    let listing = s.ok(&["unshare", "sh", "-c", &format!("cd {mp} && ls -A . d")]);
    assert_eq!(
        listing, ".:\nd\nkept\n\nd:\nnew\n",
        "whiteout and opaque dir applied"
    );
    s.ok(&["storage", "umount", "c"]);
    s.ok(&["storage", "rm", "c"]);
    assert!(s.mounts_left().is_empty(), "{:?}", s.mounts_left());
}

#[test]
fn privileged_rootless_first_commands_racing_share_one_namespace() {
    if !require_privileged("rootless_race", "starts rootless pause processes") {
        return;
    }
    let s = Session::new(USER, true);
    let started = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|_| {
            s.command(["storage", "info"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("4 first commands at once: {:?}", started.elapsed());
    let pidfile = s.pidfile();
    let pauses: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            argv.get(1) == Some(&&b"__strata-pause"[..])
                && argv.get(2) == Some(&pidfile.as_os_str().as_encoded_bytes())
        })
        .collect();
    assert_eq!(pauses, [s.pause_pid()], "one pause process for the session");
    // It is in its own session (no terminal's signals) and holds nothing of ours open.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pauses[0])).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    assert_eq!(fields[3], pauses[0].to_string(), "session leader");
    let t = Instant::now();
    s.ok(&["storage", "info"]);
    eprintln!("a later command: {:?}", t.elapsed());
    // Killed, it is replaced by the next command.
    kill(pauses[0]);
    wait_for("the pause process to go", Duration::from_secs(5), || {
        std::fs::read(format!("/proc/{}/cmdline", pauses[0])).map_or(true, |c| c.is_empty())
    });
    s.ok(&["storage", "info"]);
    assert_ne!(s.pause_pid(), pauses[0]);
}

#[test]
fn privileged_rootless_user_without_subordinate_ids_is_told_how_to_add_them() {
    if !require_privileged(
        "rootless_no_subids",
        "runs strata as a user without subordinate ids",
    ) {
        return;
    }
    let s = Session::new(NO_SUBIDS_USER, false);
    let (code, err) = s.fail(&["storage", "info"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("/etc/subuid") && err.contains("/etc/subgid"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {NO_SUBIDS_USER}"
        )),
        "{err}"
    );
    assert!(!s.pidfile().exists(), "no pause process was started");
    // What needs no store still works.
    s.ok(&["plugins"]);
    // Root has no user namespace to enter.
    let out = sh(Command::new(strata_tests::cli::strata_bin()).args(["unshare", "true"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rootless mode"),
        "{out:?}"
    );
}

/// Runs `strata ARGS` as the session's user with a real pty as its terminal (`script`,
/// sized 33x101), as that user's terminal would be; returns what it showed and the exit code.
fn in_pty(s: &Session, args: &[&str]) -> (String, Option<i32>) {
    let base = s.command(std::iter::empty::<&str>());
    let mut parts: Vec<std::ffi::OsString> = base.get_args().map(|a| a.to_owned()).collect();
    parts.pop(); // the strata binary: `script` runs it
    let line = std::iter::once(s.bin.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("runuser")
        .args(parts)
        .args([
            "script",
            "-qec",
            &format!("stty rows 33 cols 101; {line}"),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run script as the user");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn privileged_rootless_terminals_and_pods_work() {
    if !require_privileged("rootless_tty_pod", "runs containers as a rootless user") {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    for rt in RUNTIMES {
        let (text, code) = in_pty(
            &s,
            &[
                "run",
                "--rm",
                "-t",
                "--runtime",
                rt,
                "busybox",
                "sh",
                "-c",
                "tty; stty size; exit 4",
            ],
        );
        assert!(text.contains("/dev/pts/0"), "{rt}: tty output {text:?}");
        assert!(text.contains("33 101"), "{rt}: terminal size {text:?}");
        assert_eq!(code, Some(4), "{rt}: exit code through the pty; {text:?}");
        // A pod: the second container reaches the first on localhost.
        let pod = format!("pod-{rt}");
        s.ok(&["pod", "create", "--name", &pod, "--runtime", rt]);
        s.ok(&[
            "run",
            "-d",
            "--runtime",
            rt,
            "--pod",
            &pod,
            "--name",
            &format!("srv-{rt}"),
            "busybox",
            "sh",
            "-c",
            "mkdir -p /www && echo rootless-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
        ]);
        let mut got = String::new();
        wait_for("the pod's web server", Duration::from_secs(10), || {
            let out = s.run(&[
                "run",
                "--rm",
                "--runtime",
                rt,
                "--pod",
                &pod,
                "busybox",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/index.html",
            ]);
            got = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success()
        });
        assert_eq!(got, "rootless-pod\n", "{rt}");
        s.ok(&["pod", "rm", "-f", &pod]);
        s.assert_nothing_left(rt);
    }
}

/// Every process below `pid` (children first found through /proc/<pid>/task/*/children).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn privileged_rootless_killed_cli_and_killed_monitor_are_survivable() {
    if !require_privileged(
        "rootless_kill_cli_monitor",
        "runs containers as a rootless user",
    ) {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    for rt in RUNTIMES {
        // An attached run whose CLI is SIGKILLed: the container keeps running, manageable.
        let att = format!("att-{rt}");
        let mut cli = s
            .command([
                "run",
                "--runtime",
                rt,
                "--name",
                &att,
                "busybox",
                "sh",
                "-c",
                "echo up; exec sleep 1000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the attached run");
        wait_for("the attached container", Duration::from_secs(20), || {
            let ps: serde_json::Value =
                serde_json::from_str(&s.ok(&["ps", "--format", "json"])).expect("JSON");
            ps.as_array()
                .expect("ps --format json is an array")
                .iter()
                .any(|c| c["Names"][0] == att.as_str() && c["State"] == "running")
        });
        let strata: Vec<u32> = descendants(cli.id())
            .into_iter()
            .filter(|p| comm(*p) == "strata")
            .collect();
        assert!(!strata.is_empty(), "{rt}: the CLI process under runuser");
        for p in strata {
            kill(p);
        }
        let _ = cli.wait();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            s.ok(&["exec", &att, "echo", "alive"]),
            "alive\n",
            "{rt}: the container outlives its CLI"
        );
        s.ok(&["stop", "-t", "0", &att]);
        let st: serde_json::Value =
            serde_json::from_str(&s.ok(&["inspect", "--type", "container", &att])).expect("JSON");
        assert_eq!(st[0]["State"]["Status"], "exited", "{rt}");
        s.ok(&["rm", &att]);

        // A killed monitor: ps tells the truth and rm -f cleans everything up.
        let mon = format!("mon-{rt}");
        s.ok(&[
            "run",
            "-d",
            "--runtime",
            rt,
            "--name",
            &mon,
            "busybox",
            "sleep",
            "1000",
        ]);
        let st: serde_json::Value =
            serde_json::from_str(&s.ok(&["inspect", "--type", "container", &mon])).expect("JSON");
        let monitor = st[0]["State"]["ConmonPid"].as_u64().expect("monitor pid") as u32;
        assert!(monitor > 0);
        kill(monitor);
        wait_for("the monitor to die", Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{monitor}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        });
        let st: serde_json::Value =
            serde_json::from_str(&s.ok(&["inspect", "--type", "container", &mon])).expect("JSON");
        assert_eq!(
            st[0]["State"]["Status"], "running",
            "{rt}: the container outlives its monitor"
        );
        assert!(
            st[0]["State"]["Error"]
                .as_str()
                .is_some_and(|e| e.contains("monitor")),
            "{rt}: inspect says the monitor is gone: {st}"
        );
        s.ok(&["rm", "-f", &mon]);
        s.assert_nothing_left(rt);
    }
}

/// `GET /` from 127.0.0.1:`port`, the whole response as text (empty on any failure).
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
    let mut out = String::new();
    if c.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_ok()
    {
        let _ = c.read_to_string(&mut out);
    }
    out
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

#[test]
fn privileged_rootless_slirp4netns_networks_and_publishes_ports() {
    if !require_privileged("rootless_slirp4netns", "runs containers as a rootless user") {
        return;
    }
    let tun = std::fs::metadata("/dev/net/tun").expect("/dev/net/tun");
    assert_eq!(
        tun.permissions().mode() & 0o666,
        0o666,
        "/dev/net/tun must be open to users for slirp4netns: `cargo xtask test` sets 0666"
    );
    let s = Session::new(USER, true);
    s.load_busybox();
    for rt in RUNTIMES {
        // The default network: slirp4netns's address, route and DNS.
        let out = s.ok(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "busybox",
            "sh",
            "-c",
            "ip -4 addr show tap0; ip route; cat /etc/resolv.conf",
        ]);
        assert!(out.contains("inet 10.0.2.100/24"), "{rt}: {out}");
        assert!(out.contains("default via 10.0.2.2"), "{rt}: {out}");
        assert!(
            out.lines().any(|l| l == "nameserver 10.0.2.3"),
            "{rt}: {out}"
        );

        // A published port reaches a server in the container from the host.
        let port = free_port();
        let name = format!("web-{rt}");
        s.ok(&[
            "run",
            "-d",
            "--runtime",
            rt,
            "--name",
            &name,
            "-p",
            &format!("{port}:8080"),
            "busybox",
            "sh",
            "-c",
            "mkdir /www && echo hello-rootless > /www/index.html && exec httpd -f -p 8080 -h /www",
        ]);
        let mut got = String::new();
        wait_for("the published port", Duration::from_secs(20), || {
            got = http_get(port);
            got.contains("hello-rootless")
        });
        s.ok(&["rm", "-f", &name]);
        // Gone with the container: slirp4netns, its namespace and the forward.
        s.assert_nothing_left(rt);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{rt}: port {port} still open after rm"
        );
    }
}

/// A cgroup v2 subtree delegated to a user, as systemd's `Delegate=yes` makes
/// `user@UID.service`: the directory and its control files belong to the user, the
/// controllers are enabled above it, and the user's processes live in a child (`session`),
/// never in the delegated cgroup itself. Removed (after its processes) on drop.
struct Delegation {
    dir: PathBuf,
}

impl Delegation {
    fn new(ids: Ids) -> Delegation {
        let root = Path::new("/sys/fs/cgroup");
        std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids")
            .expect("enable controllers at the root");
        let dir = root.join(format!("strata-test-{}", std::process::id()));
        let d = Delegation { dir };
        for cg in [d.dir.clone(), d.dir.join("session")] {
            std::fs::create_dir(&cg).expect("mkdir cgroup");
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                rustix::fs::chown(
                    cg.join(f),
                    Some(rustix::fs::Uid::from_raw(ids.uid)),
                    Some(rustix::fs::Gid::from_raw(ids.gid)),
                )
                .expect("chown cgroup");
            }
        }
        d
    }

    fn session(&self) -> PathBuf {
        self.dir.join("session")
    }
}

impl Drop for Delegation {
    fn drop(&mut self) {
        // Children first (depth-first), each emptied of processes.
        fn remove(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove(&e.path());
                    }
                }
            }
            for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
            {
                kill(pid);
            }
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        remove(&self.dir);
    }
}

#[test]
fn privileged_rootless_cgroup2_delegation_gives_resource_limits() {
    if !strata_tests::require_kernel(
        "rootless::privileged_rootless_cgroup2_delegation_gives_resource_limits",
        strata_tests::KernelFeature::Cgroup2,
        "rootless resource limits in a delegated cgroup v2 subtree",
    ) {
        return;
    }
    let mut s = Session::new(USER, true);
    let delegation = Delegation::new(s.ids);
    s.cgroup = Some(delegation.session());
    s.load_busybox();
    for rt in RUNTIMES {
        let out = s.ok(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max \
             /sys/fs/cgroup/cpu.max",
        ]);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["0::/", "67108864", "50", "50000 100000"],
            "{rt}: cgroup and limits inside a rootless container"
        );
        let strata = delegation.dir.join("strata");
        let left: Vec<_> = std::fs::read_dir(&strata)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{rt}: container cgroups left: {left:?}");
    }
    // The session (its pause process) ends before its cgroups are removed.
    drop(s);
}

/// Every (path, inode, owner, mode) under `dir`: the image's layer files, to show they are
/// never chowned or copied.
fn tree_identity(dir: &Path) -> Vec<(PathBuf, u64, u32, u32, u32)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .map(|e| {
            let m = e.metadata().expect("stat");
            (e.path().to_path_buf(), m.ino(), m.uid(), m.gid(), m.mode())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn privileged_rootless_user_namespaces_shift_owners_without_copying_the_image() {
    if !require_privileged(
        "rootless_userns_fuse",
        "runs rootless containers with --userns keep-id/nomap/auto (FUSE overlay, /dev/fuse)",
    ) {
        return;
    }
    for driver in ["overlay", "fuse-overlay"] {
        let s = Session::new(USER, true);
        std::fs::create_dir_all(s.path("config/strata")).expect("config dir");
        std::fs::write(
            s.path("config/strata/strata.toml"),
            format!("driver = \"{driver}\"\n"),
        )
        .expect("config");
        s.chown_to_user(&s.path("config"));
        let info = s.ok(&["storage", "info", "--format", "json"]);
        assert!(info.contains(&format!("\"{driver}\"")), "{driver}: {info}");
        s.load_busybox();
        let layers = s.store().join("overlay/layers");
        let image_files = tree_identity(&layers);
        for rt in RUNTIMES {
            // keep-id: the user's own uid inside, the image's files with their image owners.
            let out = s.ok(&[
                "run",
                "--rm",
                "--runtime",
                rt,
                "--userns",
                "keep-id",
                "busybox",
                "sh",
                "-c",
                "id -u; id -g; stat -c %u:%g / /bin/sh /etc/passwd",
            ]);
            assert_eq!(
                out,
                format!("{}\n{}\n0:0\n0:0\n0:0\n", s.ids.uid, s.ids.gid),
                "{driver}/{rt}: keep-id"
            );
            // nomap: the user's ids are not mapped; root inside owns the image's files.
            let out = s.ok(&[
                "run",
                "--rm",
                "--runtime",
                rt,
                "--userns",
                "nomap",
                "busybox",
                "sh",
                "-c",
                "id -u; stat -c %u:%g /bin/sh; cat /proc/self/uid_map",
            ]);
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(&lines[..2], ["0", "0:0"], "{driver}/{rt}: nomap: {out}");
            assert_eq!(
                lines[2].split_whitespace().collect::<Vec<_>>(),
                ["0", "1", "65536"],
                "{driver}/{rt}: nomap maps the subordinate ids only, not the user (id 0 outside)"
            );
        }
        // auto: a block of the subordinate ids; a file root writes is committed with owner 0,
        // and one uid 1000 writes with 1000, in image ids.
        let id = s
            .ok(&[
                "run",
                "-d",
                "--userns",
                "auto:size=2000",
                "--name",
                "a",
                "busybox",
                "sh",
                "-c",
                "touch /by-root && chown 1000:1000 /etc/passwd && exec sleep 1000",
            ])
            .trim()
            .to_owned();
        wait_for(
            "the container's first command",
            Duration::from_secs(20),
            || {
                s.run(&["exec", "a", "test", "-e", "/by-root"])
                    .status
                    .success()
            },
        );
        s.ok(&["exec", "-u", "1000:1000", "a", "touch", "/tmp/by-1000"]);
        let inside = s.ok(&[
            "exec",
            "a",
            "stat",
            "-c",
            "%n %u:%g",
            "/by-root",
            "/tmp/by-1000",
            "/etc/passwd",
            "/bin/sh",
        ]);
        assert_eq!(
            inside, "/by-root 0:0\n/tmp/by-1000 1000:1000\n/etc/passwd 1000:1000\n/bin/sh 0:0\n",
            "{driver}: auto"
        );
        let upper = s.store().join(format!("overlay/layers/c-{id}/diff"));
        // The container's files are stored with their image ids (seen in the namespace).
        let stored = s.ok(&[
            "unshare",
            "stat",
            "-c",
            "%u:%g",
            upper.join("by-root").to_str().expect("utf8"),
            upper.join("tmp/by-1000").to_str().expect("utf8"),
            upper.join("etc/passwd").to_str().expect("utf8"),
        ]);
        assert_eq!(
            stored, "0:0\n1000:1000\n1000:1000\n",
            "{driver}: stored owners"
        );
        s.ok(&["commit", "a", "shifted"]);
        let out = s.ok(&[
            "run",
            "--rm",
            "shifted",
            "stat",
            "-c",
            "%u:%g",
            "/by-root",
            "/tmp/by-1000",
            "/etc/passwd",
        ]);
        assert_eq!(
            out, "0:0\n1000:1000\n1000:1000\n",
            "{driver}: committed owners"
        );
        s.ok(&["rm", "-f", "a"]);
        s.ok(&["rmi", "shifted"]);
        assert_eq!(
            tree_identity(&layers),
            image_files,
            "{driver}: the image's layer files were neither chowned nor copied"
        );
        s.assert_nothing_left("crun");
        let servers: Vec<u32> = s.processes_left();
        assert!(
            servers.is_empty(),
            "{driver}: FUSE servers left: {servers:?}"
        );
    }
}

#[test]
fn privileged_rootless_default_seccomp_blocks_and_unconfined_allows() {
    if !require_privileged(
        "rootless_seccomp",
        "runs containers as a rootless user (runuser, newuidmap)",
    ) {
        return;
    }
    let s = Session::new(USER, true);
    let layout = strata_tests::probe::probe_layout(&s.path("work/probe"));
    s.chown_to_user(&s.path("work/probe"));
    s.ok(&["storage", "load", &layout.oci_ref(), "--name", "probe"]);
    let calls = ["add_key", "userfaultfd", "getpid"];
    for rt in RUNTIMES {
        let run = |flags: &[&str]| -> std::collections::BTreeMap<String, String> {
            let mut args = vec!["run", "--rm", "--network", "none", "--runtime", rt];
            args.extend_from_slice(flags);
            args.extend(["probe", "/probe"]);
            args.extend_from_slice(&calls);
            strata_tests::probe::results(&s.ok(&args))
                .into_iter()
                .collect()
        };
        let default = run(&[]);
        assert_eq!(default["add_key"], "errno=38", "{rt}: ENOSYS ({default:?})");
        assert_eq!(
            default["userfaultfd"], "errno=1",
            "{rt}: EPERM ({default:?})"
        );
        assert_eq!(default["getpid"], "ok", "{rt}");
        let free = run(&["--security-opt", "seccomp=unconfined"]);
        for call in calls {
            assert_eq!(free[call], "ok", "{rt}: {call} unconfined ({free:?})");
        }
        let nnp = s.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--runtime",
            rt,
            "--security-opt",
            "no-new-privileges",
            "probe",
            "/probe",
            "getpid",
        ]);
        assert_eq!(nnp, "getpid ok\n", "{rt}: no-new-privileges runs rootless");
        s.assert_nothing_left(rt);
    }
}

#[test]
fn privileged_rootless_build_runs_steps_and_caches() {
    if !require_privileged(
        "rootless_build",
        "builds as a rootless user (runuser, newuidmap)",
    ) {
        return;
    }
    let s = Session::new(USER, true);
    s.load_busybox();
    let ctx = s.path("work/ctx");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nCOPY --chown=1:2 f /f\nRUN echo built > /x && chown 100:100 /x && id -u\nUSER 100\nWORKDIR /home/app\nCMD [\"cat\", \"/x\"]\n",
    )
    .expect("write");
    std::fs::write(ctx.join("f"), "file\n").expect("write");
    s.chown_to_user(&ctx);
    let ctx_arg = ctx.display().to_string();
    let out = s.ok(&["build", "--network", "none", "-t", "rl", &ctx_arg]);
    assert!(
        out.lines().any(|l| l == "0"),
        "RUN as root of the namespace: {out}"
    );
    assert_eq!(s.ok(&["run", "--rm", "--network", "none", "rl"]), "built\n");
    let listing = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "rl",
        "sh",
        "-c",
        "stat -c '%u:%g %n' /f /x /home/app",
    ]);
    assert_eq!(listing, "1:2 /f\n100:100 /x\n100:100 /home/app\n");
    let again = s.ok(&["build", "--network", "none", "-t", "rl", &ctx_arg]);
    assert_eq!(
        again
            .lines()
            .filter(|l| l.starts_with("--> Using cache"))
            .count(),
        5,
        "a rootless rebuild is fully cached: {again}"
    );
}

/// `strata bench run` as a rootless user (issue 16): the drivers that work rootless are
/// measured (overlay with userxattr, fuse-overlay, vfs, with containers started), btrfs and
/// the cache dropping are skipped with why, and nothing is left: no scratch directory, no
/// runroot, no mount.
#[test]
fn privileged_rootless_bench_runs_the_rootless_drivers_and_leaves_nothing() {
    if !require_privileged(
        "rootless_bench",
        "runs strata bench as a rootless user (runuser, newuidmap)",
    ) {
        return;
    }
    let s = Session::new(USER, true);
    let out = s.path("work/out");
    let o = s.run(&[
        "bench",
        "run",
        "--profile",
        "quick",
        "--drivers",
        "overlay,fuse-overlay,vfs,btrfs",
        "--workloads",
        "empty,apply,create+mount,start,io,cri",
        "--cold",
        "--scratch",
        &s.path("work").to_string_lossy(),
        "-o",
        &out.to_string_lossy(),
    ]);
    assert!(
        o.status.success(),
        "rootless strata bench run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let file = strata_plugin_benchkit::results::ResultFile::read(&out.join("results.json"))
        .expect("a valid result file");
    for d in ["overlay", "fuse-overlay", "vfs"] {
        for w in [
            "apply",
            "create+mount",
            "start",
            "io-seq-write",
            "copy-up-small",
        ] {
            assert!(
                file.measurements.iter().any(|m| m.workload == w
                    && m.tool == "strata"
                    && m.driver.as_deref() == Some(d)),
                "no {w} on {d}; skipped: {:?}",
                file.skipped
            );
        }
    }
    let why = |what: &str| {
        file.skipped
            .iter()
            .find(|s| s.what == what)
            .map(|s| s.why.clone())
            .unwrap_or_else(|| panic!("{what} is not skipped: {:?}", file.skipped))
    };
    assert!(why("driver btrfs").contains("needs root"));
    assert!(why("cold caches").contains("drop_caches"));
    assert!(why("tool podman").contains("rootless"));
    assert!(why("workload cri").contains("as root"));
    let left: Vec<_> = std::fs::read_dir(s.path("work"))
        .expect("work")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "out")
        .collect();
    assert!(left.is_empty(), "the run left {left:?}");
    let runroots: Vec<_> = std::fs::read_dir(s.path("run"))
        .expect("run")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("strata-bench-"))
        .collect();
    assert!(runroots.is_empty(), "runroots left: {runroots:?}");
    assert!(s.mounts_left().is_empty(), "{:?}", s.mounts_left());
}
