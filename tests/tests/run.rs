//! The run front end, black-box: the real `strata` binary with the run plugin, real OCI
//! runtimes (crun and runc), real kernel namespaces, cgroups and overlay mounts, and the
//! busybox fixture image. Each behaviour runs on both runtimes.
//!
//! What a podman user checks: exit codes pass through, stdout and stderr stay apart, detached
//! containers keep running and log, `exec`/`logs`/`stop`/`kill`/`rm`/`ps` do what they say,
//! flags land inside the container, a TTY is a TTY, and `--rm` leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_tests::cli::mounts_below;
use strata_tests::containers::{busybox_store, wait_for};
use strata_tests::{fixtures, require_privileged, Strata};

const RUNTIMES: &[&str] = &["crun", "runc"];

fn run_ok(s: &Strata, args: &[&str]) -> String {
    s.ok(args)
}

fn ps_all(s: &Strata) -> Vec<Value> {
    let v = s.json(["ps", "-a", "--format", "json"]);
    v.as_array().expect("ps --format json is an array").clone()
}

fn state_of(s: &Strata, name: &str) -> Value {
    let v = s.json(["inspect", "--type", "container", name]);
    v[0]["State"].clone()
}

/// Processes whose command line mentions `needle` (monitors carry the store's paths).
fn processes_mentioning(needle: &Path) -> Vec<i32> {
    let needle = needle.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Asserts nothing of the store's containers is left: rows, mounts, runtime records, cgroups,
/// network namespaces, monitor processes.
fn assert_nothing_left(s: &Strata, runtime: &str, ids: &[String]) {
    assert!(ps_all(s).is_empty(), "ps -a still lists containers");
    assert!(
        s.list("containers").is_empty(),
        "the store still has containers"
    );
    assert!(
        mounts_below(&s.runroot).is_empty(),
        "mounts left: {:?}",
        mounts_below(&s.runroot)
    );
    let rt_root = s.runroot.join("runtime").join(runtime);
    let left: Vec<_> = std::fs::read_dir(&rt_root)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "runtime state left in {}: {left:?}",
        rt_root.display()
    );
    let netns = s.runroot.join("netns");
    let ns_left: Vec<_> = std::fs::read_dir(&netns)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(ns_left.is_empty(), "network namespaces left: {ns_left:?}");
    for id in ids {
        for ctrl in ["memory", "pids", "cpu"] {
            let p = PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/strata/{id}"));
            assert!(!p.exists(), "cgroup left: {}", p.display());
        }
    }
    wait_for("monitor processes to end", Duration::from_secs(10), || {
        processes_mentioning(&s.runroot).is_empty()
    });
}

#[test]
fn privileged_run_rm_passes_the_exit_code_and_leaves_nothing() {
    if !require_privileged("run_rm_exit_code", "runs containers with crun and runc") {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
        let out = s.run([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{rt}: exit code; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "out\n",
            "{rt}: stdout"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("err\n"),
            "{rt}: stderr"
        );
        assert_nothing_left(&s, rt, &[]);
        // Ctrl-C (SIGINT to the CLI) reaches the container: its trap decides the exit code.
        let mut cli = s.spawn([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'echo caught; exit 42' INT; echo ready; while true; do sleep 0.1; done",
        ]);
        let mut stdout = cli.stdout.take().expect("stdout");
        let mut first = [0u8; 6];
        std::io::Read::read_exact(&mut stdout, &mut first).expect("ready line");
        assert_eq!(&first, b"ready\n");
        let pid = rustix::process::Pid::from_raw(cli.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
        let status = cli.wait().expect("wait for the CLI");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest");
        assert_eq!(
            status.code(),
            Some(42),
            "{rt}: the trap ran; output {rest:?}"
        );
        assert_eq!(rest, "caught\n");
        assert_nothing_left(&s, rt, &[]);
    }
    // A missing command is a clear error and leaves nothing either.
    let (code, err) = s.fail([
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "/no/such/program",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no/such/program") || err.contains("No such file"),
        "{err}"
    );
    assert_nothing_left(&s, "crun", &[]);
}

#[test]
fn privileged_detached_containers_log_exec_stop_and_remove() {
    if !require_privileged(
        "run_detached_lifecycle",
        "runs containers with crun and runc",
    ) {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
        let name = format!("web-{rt}");
        let id = run_ok(
            &s,
            &[
                "run",
                "-d",
                "--runtime",
                rt,
                "--network",
                "none",
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                "echo hello; echo oops >&2; exec sleep 1000",
            ],
        )
        .trim()
        .to_owned();
        assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
        let ps = ps_all(&s);
        let me = ps
            .iter()
            .find(|c| c["Names"][0] == name.as_str())
            .expect("listed");
        assert_eq!(me["State"], "running");
        assert!(me["Status"].as_str().expect("status").starts_with("Up"));
        wait_for("the log", Duration::from_secs(10), || {
            s.ok(["logs", &name]).contains("hello")
        });
        let out = s.run(["logs", &name]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
        // --tail counts lines of both streams, as podman does: the last one is stderr's.
        let tail = s.run(["logs", "--tail", "1", &name]);
        assert_eq!(String::from_utf8_lossy(&tail.stdout), "");
        assert_eq!(String::from_utf8_lossy(&tail.stderr), "oops\n");
        // exec: output, env, user, workdir and exit codes.
        assert_eq!(
            s.ok(["exec", &name, "cat", "/etc/hostname"]).trim(),
            &id[..12]
        );
        assert_eq!(
            s.ok(["exec", "-e", "FOO=bar", &name, "sh", "-c", "echo $FOO"]),
            "bar\n"
        );
        assert_eq!(
            s.ok([
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
        let out = s.run(["exec", &name, "sh", "-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7));
        // stop: sleep as PID 1 ignores SIGTERM, so -t 1 ends in SIGKILL.
        let t = Instant::now();
        s.ok(["stop", "-t", "1", &name]);
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "stop took {:?}",
            t.elapsed()
        );
        let st = state_of(&s, &name);
        assert_eq!(st["Status"], "exited");
        assert_eq!(st["ExitCode"], 137);
        assert!(
            mounts_below(&s.runroot).is_empty(),
            "a stopped container is unmounted"
        );
        // Logs survive the stop; the container restarts.
        assert!(s.ok(["logs", &name]).contains("hello"));
        s.ok(["start", &name]);
        assert_eq!(state_of(&s, &name)["Status"], "running");
        // kill and wait.
        s.ok(["kill", &name]);
        assert_eq!(s.ok(["wait", &name]).trim(), "137");
        let (code, err) = s.fail(["exec", &name, "true"]);
        assert_ne!(code, 0);
        assert!(err.contains("not running"), "{err}");
        s.ok(["rm", &name]);
        assert_nothing_left(&s, rt, &[id]);
    }
}

#[test]
fn privileged_rm_refuses_running_containers_without_force() {
    if !require_privileged("run_rm_force", "runs containers with crun") {
        return;
    }
    let s = busybox_store();
    let id = run_ok(
        &s,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "busy",
            "busybox",
            "sleep",
            "1000",
        ],
    )
    .trim()
    .to_owned();
    let (code, err) = s.fail(["rm", "busy"]);
    assert_eq!(code, 6, "failed precondition: {err}");
    assert!(err.contains("rm -f"), "{err}");
    s.ok(["rm", "-f", "busy"]);
    assert_nothing_left(&s, "crun", &[id]);
    let (code, _) = s.fail(["rm", "busy"]);
    assert_eq!(code, 3, "no such container");
    s.ok(["rm", "--ignore", "busy"]);
}

#[test]
fn privileged_flags_land_inside_the_container() {
    if !require_privileged("run_flags", "runs containers with crun and runc") {
        return;
    }
    let s = busybox_store();
    let host_dir = s.scratch().join("vol");
    std::fs::create_dir_all(&host_dir).expect("vol");
    std::fs::write(host_dir.join("x"), "from-host\n").expect("x");
    let env_file = s.scratch().join("env");
    std::fs::write(&env_file, "# comment\nB=two\n").expect("env file");
    let vol = format!("{}:/data:ro", host_dir.display());
    let script = "echo $A $B; id -u; id -g; pwd; cat /data/x; touch /data/y 2>/dev/null || echo ro-vol; \
                  touch /etc/z 2>/dev/null || echo ro-root; touch /tmp/ok && echo tmp-ok; hostname; \
                  cat /scratch/size 2>/dev/null; grep -c scratch /proc/mounts";
    for rt in RUNTIMES {
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "-e",
            "A=one",
            "--env-file",
            env_file.to_str().expect("utf8"),
            "-u",
            "1000:1001",
            "-w",
            "/tmp",
            "-v",
            &vol,
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
            out, "one two\n1000\n1001\n/tmp\nfrom-host\nro-vol\nro-root\ntmp-ok\nbox\n1\n",
            "{rt}"
        );
        assert!(!host_dir.join("y").exists());
    }
}

#[test]
fn privileged_resource_limits_are_visible_inside() {
    if !require_privileged(
        "run_resources",
        "runs containers with crun and runc in cgroups",
    ) {
        return;
    }
    let s = busybox_store();
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null \
                  || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max";
    for rt in RUNTIMES {
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "--memory",
            "64m",
            "--pids-limit",
            "42",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            script,
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{rt}: {out}");
        assert_eq!(lines[0], "67108864", "{rt}: memory limit");
        assert_eq!(lines[1], "42", "{rt}: pids limit");
        assert!(
            lines[2].starts_with("50000"),
            "{rt}: cpu quota {}",
            lines[2]
        );
    }
}

#[test]
fn privileged_tty_is_a_terminal() {
    if !require_privileged("run_tty", "runs containers with a pty") {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
        let (text, code) = in_pty(
            &s,
            &[
                "run",
                "--rm",
                "-t",
                "--runtime",
                rt,
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "tty; stty size; exit 4",
            ],
        );
        assert!(text.contains("/dev/pts/0"), "{rt}: tty output {text:?}");
        assert!(text.contains("33 101"), "{rt}: terminal size {text:?}");
        assert_eq!(code, Some(4), "{rt}: exit code through the pty; {text:?}");
        // exec -t gets a terminal of its own.
        let name = format!("tty-{rt}");
        s.ok([
            "run",
            "-d",
            "--runtime",
            rt,
            "--network",
            "none",
            "--name",
            &name,
            "busybox",
            "sleep",
            "1000",
        ]);
        let (text, code) = in_pty(&s, &["exec", "-it", &name, "sh", "-c", "tty; exit 5"]);
        assert!(text.contains("/dev/pts/"), "{rt}: exec tty output {text:?}");
        assert_eq!(code, Some(5), "{rt}: exec exit code; {text:?}");
        s.ok(["rm", "-f", &name]);
    }
    assert_nothing_left(&s, "crun", &[]);
}

/// Runs `strata ARGS` with a real pty as its terminal (`script`, sized 33x101), as a user's
/// terminal would be; returns what the terminal showed and the exit code.
fn in_pty(s: &Strata, args: &[&str]) -> (String, Option<i32>) {
    let cmd = s.command();
    let argv: Vec<String> = std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    let line = argv
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let envs: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                v?.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 33 cols 101; {line}"),
            "/dev/null",
        ])
        .envs(envs)
        .output()
        .expect("run script");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn privileged_killed_cli_and_killed_monitor_are_survivable() {
    if !require_privileged("run_kill_cli_monitor", "runs containers with crun") {
        return;
    }
    let s = busybox_store();
    // An attached run whose CLI is SIGKILLed: the container keeps running and stays manageable.
    let mut cli = s.spawn([
        "run",
        "--name",
        "att",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo up; exec sleep 1000",
    ]);
    wait_for(
        "the attached container to run",
        Duration::from_secs(20),
        || {
            ps_all(&s)
                .iter()
                .any(|c| c["Names"][0] == "att" && c["State"] == "running")
        },
    );
    cli.kill().expect("kill the CLI");
    let _ = cli.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(state_of(&s, "att")["Status"], "running");
    assert_eq!(s.ok(["exec", "att", "echo", "alive"]), "alive\n");
    s.ok(["stop", "-t", "0", "att"]);
    assert_eq!(state_of(&s, "att")["Status"], "exited");
    s.ok(["rm", "att"]);

    // A killed monitor: ps tells the truth (still running, monitor gone) and rm -f cleans.
    let id = run_ok(
        &s,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "mon",
            "busybox",
            "sleep",
            "1000",
        ],
    )
    .trim()
    .to_owned();
    let monitor = state_of(&s, "mon")["ConmonPid"]
        .as_i64()
        .expect("monitor pid");
    assert!(monitor > 0);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill monitor");
    wait_for("the monitor to die", Duration::from_secs(5), || {
        !Path::new(&format!("/proc/{monitor}")).exists()
            || std::fs::read_to_string(format!("/proc/{monitor}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    });
    let st = state_of(&s, "mon");
    assert_eq!(
        st["Status"], "running",
        "the container outlives its monitor"
    );
    assert!(
        st["Error"].as_str().expect("error").contains("monitor"),
        "{st}"
    );
    s.ok(["rm", "-f", "mon"]);
    assert_nothing_left(&s, "crun", &[id]);
}

/// The namespaces a container's process is in: `net:[...] ipc:[...] uts:[...]`.
fn namespaces(s: &Strata, args: &[&str]) -> String {
    let script = "for n in net ipc uts; do readlink /proc/self/ns/$n; done";
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["sh", "-c", script]);
    s.ok(a)
}

#[test]
fn privileged_pod_members_share_localhost_and_namespaces() {
    if !require_privileged("run_pod", "runs a pod with crun and runc") {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
        let pod = format!("pod-{rt}");
        let pod_id = s
            .ok(["pod", "create", "--name", &pod, "--runtime", rt])
            .trim()
            .to_owned();
        assert_eq!(pod_id.len(), 64);
        let srv = format!("srv-{rt}");
        s.ok(["run", "-d", "--runtime", rt, "--pod", &pod, "--name", &srv, "busybox", "sh", "-c",
            "mkdir -p /www && echo hello-from-$HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"]);
        // The second container reaches the first on localhost.
        let mut got = String::new();
        wait_for("the pod's web server", Duration::from_secs(10), || {
            let out = s.run([
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
        assert_eq!(
            got,
            format!("hello-from-{pod}\n"),
            "{rt}: the pod's host name is shared"
        );
        let a = namespaces(&s, &["exec", &srv]);
        let b = namespaces(
            &s,
            &["run", "--rm", "--runtime", rt, "--pod", &pod, "busybox"],
        );
        assert_eq!(a, b, "{rt}: net, ipc and uts are shared");
        let c = namespaces(
            &s,
            &[
                "run",
                "--rm",
                "--runtime",
                rt,
                "--network",
                "none",
                "busybox",
            ],
        );
        assert_ne!(a, c, "{rt}: a container outside the pod has its own");
        let pods = s.json(["pod", "ps", "--format", "json"]);
        let me = pods
            .as_array()
            .expect("array")
            .iter()
            .find(|p| p["Name"] == pod.as_str())
            .expect("listed")
            .clone();
        assert_eq!(me["Status"], "Running");
        assert_eq!(
            me["Containers"].as_array().expect("members").len(),
            2,
            "infra + server"
        );
        let (code, err) = s.fail(["pod", "rm", &pod]);
        assert_eq!(code, 6, "running containers: {err}");
        s.ok(["pod", "stop", "-t", "1", &pod]);
        assert_eq!(state_of(&s, &srv)["Status"], "exited");
        s.ok(["pod", "rm", &pod]);
        assert!(s
            .json(["pod", "ps", "--format", "json"])
            .as_array()
            .expect("array")
            .is_empty());
        assert_nothing_left(&s, rt, &[]);
    }
}

#[test]
fn privileged_bridge_network_publishes_ports_to_the_host() {
    if !require_privileged("run_bridge_publish", "runs bridged containers with CNI") {
        return;
    }
    let s = busybox_store();
    for (i, rt) in RUNTIMES.iter().enumerate() {
        let port = 18180 + i as u16;
        let name = format!("web-{rt}");
        let id = s.ok(["run", "-d", "--runtime", rt, "--name", &name, "-p", &format!("{port}:8080"), "busybox", "sh", "-c",
            "mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 8080 -h /www"]).trim().to_owned();
        let ip = s.json(["inspect", &name])[0]["NetworkSettings"]["IPAddress"]
            .as_str()
            .expect("ip")
            .to_owned();
        assert!(ip.starts_with("10."), "{rt}: a bridge address, got {ip:?}");
        let mut body = String::new();
        wait_for("the published port", Duration::from_secs(10), || {
            body = http_get(&format!("127.0.0.1:{port}"), "/index.html").unwrap_or_default();
            body.ends_with("published\n")
        });
        // The container's own address works from the host too, and it reaches its gateway.
        assert!(http_get(&format!("{ip}:8080"), "/index.html")
            .is_some_and(|b| b.ends_with("published\n")));
        let ps = ps_all(&s);
        assert!(ps
            .iter()
            .any(|c| c["Names"][0] == name.as_str()
                && c["Ports"][0] == format!("{port}:8080").as_str()));
        s.ok(["rm", "-f", &name]);
        assert!(
            http_get(&format!("127.0.0.1:{port}"), "/").is_none(),
            "{rt}: the port is closed after rm"
        );
        assert_nothing_left(&s, rt, &[id]);
    }
}

/// A minimal HTTP/1.0 GET; the whole response (headers and body), or None if nothing answers.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut c = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

#[test]
fn privileged_pull_resolves_short_names_runs_and_pushes() {
    if !require_privileged("run_pull_push", "runs pulled containers with crun") {
        return;
    }
    let reg =
        strata_tests::registry::Registry::start(strata_tests::registry::RegistryOptions::default());
    let host = reg.host();
    let seed = Strata::new("overlay");
    seed.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("{}:latest", fixtures::oci("busybox")),
        &format!("docker://{host}/busybox:latest"),
    ]);
    // registries.conf: short names search the test registry, which speaks plain HTTP.
    let conf = seed.scratch().join("registries.conf");
    std::fs::write(&conf, format!("unqualified-search-registries = [\"{host}\"]\n\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n")).expect("registries.conf");
    let s = Strata::new("overlay");
    let with_conf = |args: &[&str]| {
        let out = s
            .command()
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .args(args)
            .output()
            .expect("run strata");
        assert!(
            out.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = with_conf(&["pull", "-q", "busybox"]);
    assert_eq!(
        format!("sha256:{}", id.trim()),
        fixtures::config_digest("busybox", None),
        "pull prints the image ID"
    );
    let images = s.json(["images", "--format", "json"]);
    assert_eq!(
        images[0]["Names"][0],
        format!("{host}/busybox:latest").as_str(),
        "stored under its full name"
    );
    // The short name resolves locally, as in podman.
    assert_eq!(
        with_conf(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "short"
        ]),
        "short\n"
    );
    // A missing image is pulled by `run` (docker:// implied).
    let s2 = Strata::new("overlay");
    let out = s2
        .command()
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            &format!("{host}/busybox"),
            "echo",
            "pulled",
        ])
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pulled\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // push: to another repository of the registry; it is then pullable.
    with_conf(&["tag", "busybox", "mine"]);
    with_conf(&[
        "push",
        "-q",
        "--tls-verify=false",
        "mine",
        &format!("{host}/pushed/mine:1"),
    ]);
    let s3 = Strata::new("overlay");
    let id3 = s3.ok([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{host}/pushed/mine:1"),
    ]);
    assert_eq!(id3.trim(), id.trim(), "the pushed image has the same ID");
    let (code, err) = s3.fail([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{host}/nothing/here:1"),
    ]);
    assert_eq!(code, 3, "not found: {err}");
}
