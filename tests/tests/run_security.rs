//! The security defaults every container gets, black-box on crun and runc: the default seccomp
//! profile (a syscall podman's profile refuses fails inside a default container and works
//! with `--security-opt seccomp=unconfined`), user profiles, `no-new-privileges`, rlimits,
//! masked and read-only paths, and the runtime spec compared with the one real podman writes
//! for the same container. The rootless side is in `rootless.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use strata_tests::containers::busybox_store;
use strata_tests::{fixtures, probe, require_privileged, Strata};

const RUNTIMES: &[&str] = &["crun", "runc"];

/// A busybox store with the probe image loaded as `probe`.
fn probe_store() -> Strata {
    let s = busybox_store();
    let layout = probe::probe_layout(&s.scratch().join("probe"));
    s.load(&layout.oci_ref(), &["--name", "probe"]);
    s
}

fn probe_run(s: &Strata, flags: &[&str], calls: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend(["probe", "/probe"]);
    args.extend_from_slice(calls);
    probe::results(&s.ok(args)).into_iter().collect()
}

#[test]
fn privileged_default_seccomp_blocks_what_podman_blocks_and_unconfined_allows_it() {
    if !require_privileged(
        "run_security::default_seccomp",
        "runs containers with crun and runc",
    ) {
        return;
    }
    let s = probe_store();
    let calls = ["add_key", "userfaultfd", "move_pages", "getpid"];
    for rt in RUNTIMES {
        let default = probe_run(&s, &["--runtime", rt], &calls);
        assert_eq!(
            default["add_key"], "errno=38",
            "{rt}: add_key is not in podman's profile: ENOSYS ({default:?})"
        );
        assert_eq!(
            default["userfaultfd"], "errno=1",
            "{rt}: EPERM ({default:?})"
        );
        assert_eq!(
            default["move_pages"], "errno=1",
            "{rt}: EPERM ({default:?})"
        );
        assert_eq!(default["getpid"], "ok", "{rt}: ({default:?})");
        for free in [
            &["--runtime", rt, "--security-opt", "seccomp=unconfined"][..],
            &["--runtime", rt, "--privileged"][..],
        ] {
            let got = probe_run(&s, free, &calls);
            for call in calls {
                assert_eq!(got[call], "ok", "{rt} {free:?}: {call} ({got:?})");
            }
        }
    }
}

#[test]
fn privileged_a_seccomp_profile_file_is_applied_and_a_broken_one_is_refused() {
    if !require_privileged("run_security::profile_file", "runs containers") {
        return;
    }
    let s = probe_store();
    let profile = s.scratch().join("profile.json");
    std::fs::write(
        &profile,
        serde_json::to_vec(&json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }]
        }))
        .expect("json"),
    )
    .expect("write the profile");
    let opt = format!("seccomp={}", profile.display());
    for rt in RUNTIMES {
        let got = probe_run(
            &s,
            &["--runtime", rt, "--security-opt", &opt],
            &["getpid", "add_key"],
        );
        assert_eq!(
            got["getpid"], "errno=13",
            "{rt}: the profile's rule ({got:?})"
        );
        assert_eq!(
            got["add_key"], "ok",
            "{rt}: the profile allows the rest ({got:?})"
        );
    }
    let broken = s.scratch().join("broken.json");
    std::fs::write(&broken, "{ \"defaultAction\": \"SCMP_ACT_MAYBE\" }").expect("write");
    let (code, err) = s.fail([
        "create",
        "--security-opt",
        &format!("seccomp={}", broken.display()),
        "busybox",
        "true",
    ]);
    assert_eq!(code, 5, "invalid argument: {err}");
    assert!(err.contains("unknown action"), "{err}");
    let (code, err) = s.fail([
        "create",
        "--security-opt",
        "seccomp=/no/such.json",
        "busybox",
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("/no/such.json") && err.contains("cannot read"),
        "{err}"
    );
    let (code, err) = s.fail(["create", "--security-opt", "apparmor=myprofile", "busybox"]);
    assert_eq!(code, 8, "unsupported: {err}");
    assert!(
        s.list("containers").is_empty(),
        "a refused create leaves nothing"
    );
}

#[test]
fn privileged_no_new_privileges_masked_paths_and_rlimits() {
    if !require_privileged("run_security::nnp_masks_rlimits", "runs containers") {
        return;
    }
    let s = busybox_store();
    let hard = host_hard_limit("Max open files");
    let can_raise = has_cap_sys_resource();
    let expected_nofile = if can_raise {
        1_048_576
    } else {
        hard.min(1_048_576)
    };
    for rt in RUNTIMES {
        let sh = |flags: &[&str], script: &str| -> String {
            let mut args = vec!["run", "--rm", "--network", "none", "--runtime", rt];
            args.extend_from_slice(flags);
            args.extend(["busybox", "sh", "-c", script]);
            s.ok(args)
        };
        assert_eq!(
            sh(&[], "grep NoNewPrivs /proc/self/status").trim(),
            "NoNewPrivs:\t0",
            "{rt}: podman's default"
        );
        assert_eq!(
            sh(
                &["--security-opt", "no-new-privileges"],
                "grep NoNewPrivs /proc/self/status"
            )
            .trim(),
            "NoNewPrivs:\t1",
            "{rt}"
        );
        assert_eq!(
            sh(&[], "ulimit -n; ulimit -Hn")
                .split_whitespace()
                .collect::<Vec<_>>(),
            [expected_nofile.to_string(), expected_nofile.to_string()],
            "{rt}: podman's 1048576 where it can be set, else the host's hard limit"
        );
        assert_eq!(
            sh(&["--ulimit", "nofile=1024:2048"], "ulimit -n; ulimit -Hn")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["1024", "2048"],
            "{rt}: --ulimit"
        );
        // Masked files are /dev/null; read-only paths refuse writes.
        assert_eq!(
            sh(&[], "stat -c %F /proc/keys").trim(),
            "character special file",
            "{rt}: /proc/keys is masked"
        );
        let out = s.run([
            "run",
            "--rm",
            "--network",
            "none",
            "--runtime",
            rt,
            "busybox",
            "sh",
            "-c",
            "echo 1 > /proc/sysrq-trigger",
        ]);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{rt}: /proc/sysrq-trigger is read-only"
        );
        assert_ne!(
            sh(
                &["--security-opt", "unmask=/proc/keys"],
                "stat -c %F /proc/keys"
            )
            .trim(),
            "character special file",
            "{rt}: unmask"
        );
    }
    let (code, err) = s.fail(["create", "--ulimit", "nofile=10:5", "busybox"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("soft limit is above the hard one"), "{err}");
}

/// The hard limit `name` of this process (`/proc/self/limits`), `u64::MAX` for unlimited.
fn host_hard_limit(name: &str) -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .expect("the limit is listed");
    let hard = line[name.len()..].split_whitespace().nth(1).expect("hard");
    hard.parse().unwrap_or(u64::MAX)
}

fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff");
    u64::from_str_radix(eff.trim(), 16).expect("hex") & (1 << 24) != 0
}

/// Per syscall, the rules that name it (action, errno, args), whatever their grouping.
fn seccomp_effect(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in spec["linux"]["seccomp"]["syscalls"]
        .as_array()
        .expect("syscalls")
    {
        let args = s
            .get("args")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| {
                        json!({
                            "index": x["index"], "value": x["value"],
                            "valueTwo": x.get("valueTwo").cloned().unwrap_or(json!(0)),
                            "op": x["op"],
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let rule = format!(
            "{} errno={} args={}",
            s["action"],
            s.get("errnoRet").cloned().unwrap_or(Value::Null),
            json!(args)
        );
        for n in s["names"].as_array().expect("names") {
            out.entry(n.as_str().expect("name").to_owned())
                .or_default()
                .insert(rule.clone());
        }
    }
    out
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The spec podman writes for `podman create FLAGS busybox true` (then `podman init`), in a
/// store of its own.
fn podman_spec(dir: &Path, flags: &[&str]) -> Value {
    let root = dir.join("podman-root");
    let runroot = dir.join("podman-run");
    let podman = |args: &[&str]| -> String {
        let out = Command::new("podman")
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args(args)
            .output()
            .expect("run podman (installed by cargo xtask setup)");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    podman(&[
        "pull",
        "-q",
        &format!("oci:{}:latest", fixtures::layout_dir("busybox").display()),
    ]);
    let mut create = vec!["create", "--network", "none", "--name", "cmp"];
    create.extend_from_slice(flags);
    create.extend(["busybox", "true"]);
    let id = podman(&create);
    podman(&["init", "cmp"]);
    let path: PathBuf = root
        .join("overlay-containers")
        .join(&id)
        .join("userdata/config.json");
    let spec: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("podman's config.json")).expect("json");
    podman(&["rm", "-f", "cmp"]);
    let _ = Command::new("podman")
        .arg("--root")
        .arg(&root)
        .arg("--runroot")
        .arg(&runroot)
        .args(["system", "reset", "-f"])
        .output();
    spec
}

#[test]
fn privileged_the_spec_has_podmans_security_defaults() {
    if !require_privileged(
        "run_security::spec_like_podman",
        "runs podman and strata side by side",
    ) {
        return;
    }
    let s = busybox_store();
    // podman's own rlimits cannot be set without CAP_SYS_RESOURCE: give both the same.
    let flags = [
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];
    let theirs = podman_spec(&s.scratch(), &flags);
    let mut create = vec!["create", "--network", "none", "--name", "cmp"];
    create.extend_from_slice(&flags);
    create.extend(["busybox", "true"]);
    s.ok(create);
    s.ok(["start", "cmp"]);
    let hosts = s.json(["inspect", "--type", "container", "cmp"])[0]["HostsPath"]
        .as_str()
        .expect("HostsPath")
        .to_owned();
    let dir = Path::new(&hosts)
        .parent()
        .expect("the container's directory");
    let ours: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("our config.json"))
            .expect("json");
    s.ok(["rm", "-f", "cmp"]);

    let (a, b) = (seccomp_effect(&ours), seccomp_effect(&theirs));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for n in names {
        assert_eq!(
            a.get(n),
            b.get(n),
            "seccomp rules for {n} differ from podman's"
        );
    }
    for key in ["defaultAction", "defaultErrnoRet", "architectures"] {
        assert_eq!(
            ours["linux"]["seccomp"][key], theirs["linux"]["seccomp"][key],
            "seccomp {key}"
        );
    }
    for key in ["maskedPaths", "readonlyPaths"] {
        assert_eq!(
            strings(&ours["linux"][key]),
            strings(&theirs["linux"][key]),
            "{key}"
        );
    }
    assert_eq!(
        ours["process"]["noNewPrivileges"]
            .as_bool()
            .unwrap_or(false),
        theirs["process"]["noNewPrivileges"]
            .as_bool()
            .unwrap_or(false),
        "noNewPrivileges"
    );
    assert_eq!(
        strings(&ours["process"]["capabilities"]["bounding"]),
        strings(&theirs["process"]["capabilities"]["bounding"]),
        "capabilities"
    );
    let rlimits = |spec: &Value| -> BTreeSet<String> {
        spec["process"]["rlimits"]
            .as_array()
            .map(|a| a.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(rlimits(&ours), rlimits(&theirs), "rlimits");
}

#[test]
fn privileged_crun_gets_the_filter_crun_would_compile_and_it_is_kept() {
    if !require_privileged(
        "run_security::seccomp_bpf_cache",
        "runs containers with crun",
    ) {
        return;
    }
    let s = busybox_store();
    let cache = s.runroot.join("seccomp");
    let programs = || -> Vec<PathBuf> {
        std::fs::read_dir(&cache)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let run_true = [
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        "crun",
        "busybox",
        "true",
    ];
    s.ok(run_true);
    let first = programs();
    assert_eq!(first.len(), 1, "one compiled program: {first:?}");
    let written = std::fs::metadata(&first[0])
        .expect("stat")
        .modified()
        .expect("mtime");
    s.ok(run_true);
    assert_eq!(programs(), first, "the second start reuses it");
    assert_eq!(
        std::fs::metadata(&first[0])
            .expect("stat")
            .modified()
            .expect("mtime"),
        written,
        "not compiled again"
    );
    // The program is byte for byte what crun compiles from the spec's linux.seccomp.
    s.ok([
        "run",
        "-d",
        "--name",
        "cmp",
        "--network",
        "none",
        "--runtime",
        "crun",
        "busybox",
        "sleep",
        "60",
    ]);
    let hosts = s.json(["inspect", "--type", "container", "cmp"])[0]["HostsPath"]
        .as_str()
        .expect("HostsPath")
        .to_owned();
    let dir = Path::new(&hosts).parent().expect("dir");
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config.json"))
            .expect("json");
    let ours = std::fs::read(&first[0]).expect("our program");
    use base64::Engine as _;
    let annotated = base64::engine::general_purpose::STANDARD
        .decode(
            spec["annotations"]["run.oci.seccomp_bpf_data"]
                .as_str()
                .expect("the annotation"),
        )
        .expect("base64");
    assert_eq!(annotated, ours, "the spec carries the kept program");
    spec["annotations"]
        .as_object_mut()
        .expect("annotations")
        .remove("run.oci.seccomp_bpf_data");
    spec["linux"]
        .as_object_mut()
        .expect("linux")
        .remove("cgroupsPath");
    let bundle = s.scratch().join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle");
    std::fs::write(bundle.join("config.json"), spec.to_string()).expect("write");
    let root = s.scratch().join("crun-root");
    // The created container keeps crun's stdio: none of ours, or waiting for its output
    // would wait for the container.
    let crun = |args: &[&str]| {
        Command::new("crun")
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run crun")
    };
    let status = crun(&[
        "create",
        "--bundle",
        bundle.to_str().expect("utf-8"),
        "cmpx",
    ]);
    assert!(status.success(), "crun create: {status}");
    let theirs = std::fs::read(root.join("cmpx/seccomp.bpf")).expect("crun's seccomp.bpf");
    let _ = crun(&["delete", "--force", "cmpx"]);
    s.ok(["rm", "-f", "cmp"]);
    assert_eq!(ours.len(), theirs.len(), "program sizes");
    assert!(ours == theirs, "the kept program differs from crun's");
}
