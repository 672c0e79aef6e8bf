use super::*;
use crate::config::{MountSpec, Resources};

fn user() -> ResolvedUser {
    ResolvedUser {
        uid: 33,
        gid: 33,
        additional_gids: vec![1000],
        member_gids: vec![1000],
        home: "/var/www".into(),
    }
}

fn config() -> ContainerConfig {
    ContainerConfig {
        args: vec!["sh".into(), "-c".into(), "true".into()],
        env: vec!["FOO=bar".into()],
        hostname: "abc123".into(),
        workdir: "/srv".into(),
        ..ContainerConfig::default()
    }
}

fn inputs<'a>(c: &'a ContainerConfig, u: &'a ResolvedUser) -> SpecInputs<'a> {
    SpecInputs {
        config: c,
        rootfs: Path::new("/run/strata/mounts/x"),
        user: u,
        cgroups_path: Some("/strata/x".into()),
        net: Ns::New,
        ipc: Ns::New,
        uts: Ns::New,
        cgroupns: false,
        userns: Ns::New,
        etc_files: vec![(
            "/etc/hosts".into(),
            PathBuf::from("/var/lib/strata/containers/x/hosts"),
        )],
        rootless: false,
        id_map: None,
        rlimits: security::rlimits(
            &HostLimits {
                nofile_hard: 20_000,
                nproc_hard: 96_367,
                can_raise: false,
            },
            &[],
        )
        .expect("rlimits"),
        host: seccomp::Host {
            arch: "amd64".into(),
            scmp_arch: "SCMP_ARCH_X86_64".into(),
            kernel: (6, 1, 0),
        },
        cap_bounding: u64::MAX,
    }
}

fn json(spec: &Spec) -> serde_json::Value {
    serde_json::to_value(spec).expect("spec serializes")
}

#[test]
fn process_user_env_and_cwd_come_from_the_config() {
    let (c, u) = (config(), user());
    let v = json(&generate(&inputs(&c, &u)).expect("spec"));
    assert_eq!(
        v["process"]["args"],
        serde_json::json!(["sh", "-c", "true"])
    );
    assert_eq!(v["process"]["cwd"], "/srv");
    assert_eq!(v["process"]["user"]["uid"], 33);
    assert_eq!(
        v["process"]["user"]["additionalGids"],
        serde_json::json!([1000])
    );
    let env: Vec<String> = serde_json::from_value(v["process"]["env"].clone()).expect("env");
    assert!(env.contains(&"FOO=bar".to_owned()));
    assert!(env.contains(&"HOME=/var/www".to_owned()));
    assert!(env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(v["hostname"], "abc123");
    assert_eq!(v["root"]["path"], "/run/strata/mounts/x");
    assert_eq!(v["linux"]["cgroupsPath"], "/strata/x");
}

#[test]
fn capabilities_follow_podman_defaults_and_flags() {
    let (mut c, u) = (config(), user());
    c.cap_add = vec!["net_admin".into()];
    c.cap_drop = vec!["CAP_CHOWN".into()];
    let v = json(&generate(&inputs(&c, &u)).expect("spec"));
    let bounding: Vec<String> =
        serde_json::from_value(v["process"]["capabilities"]["bounding"].clone()).expect("caps");
    assert!(bounding.contains(&"CAP_NET_ADMIN".to_owned()));
    assert!(bounding.contains(&"CAP_KILL".to_owned()));
    assert!(!bounding.contains(&"CAP_CHOWN".to_owned()));
    assert!(!bounding.contains(&"CAP_SYS_ADMIN".to_owned()));
    // Nothing beyond the bounding set may be inheritable or ambient (capset fails).
    assert_eq!(
        v["process"]["capabilities"]["ambient"],
        serde_json::json!([])
    );
    assert_eq!(
        v["process"]["capabilities"]["inheritable"],
        serde_json::json!([])
    );
    // The rlimits computed from the host's limits (see `security`), never raised past them.
    assert_eq!(
        v["process"]["rlimits"],
        serde_json::json!([
            { "type": "RLIMIT_NOFILE", "hard": 20_000, "soft": 20_000 },
            { "type": "RLIMIT_NPROC", "hard": 96_367, "soft": 96_367 },
        ]),
        "{}",
        v["process"]
    );
    c.cap_add = vec!["NOT_A_CAP".into()];
    let e = generate(&inputs(&c, &u)).expect_err("unknown cap");
    assert!(e.to_string().contains("NOT_A_CAP"), "{e}");
}

#[test]
fn resources_mounts_and_read_only_land_in_the_spec() {
    let (mut c, u) = (config(), user());
    c.resources = Resources {
        memory: Some(64 << 20),
        cpus: Some(0.5),
        pids_limit: Some(42),
    };
    c.read_only = true;
    c.mounts = vec![
        MountSpec {
            kind: "bind".into(),
            source: "/srv/data".into(),
            destination: "/data".into(),
            read_only: true,
            options: vec![],
        },
        MountSpec {
            kind: "tmpfs".into(),
            source: String::new(),
            destination: "/scratch".into(),
            read_only: false,
            options: vec!["size=1m".into()],
        },
    ];
    let v = json(&generate(&inputs(&c, &u)).expect("spec"));
    let r = &v["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["pids"]["limit"], 42);
    assert_eq!(v["root"]["readonly"], true);
    let mounts = v["mounts"].as_array().expect("mounts");
    let find = |d: &str| mounts.iter().find(|m| m["destination"] == d).cloned();
    let data = find("/data").expect("/data mount");
    assert_eq!(data["source"], "/srv/data");
    assert!(data["options"]
        .as_array()
        .expect("opts")
        .contains(&"ro".into()));
    assert_eq!(find("/scratch").expect("/scratch")["type"], "tmpfs");
    assert_eq!(find("/tmp").expect("read-only tmpfs /tmp")["type"], "tmpfs");
    assert_eq!(find("/etc/hosts").expect("hosts")["type"], "bind");
}

#[test]
fn host_and_joined_namespaces() {
    let (c, u) = (config(), user());
    let mut i = inputs(&c, &u);
    i.net = Ns::Host;
    i.ipc = Ns::Path("/proc/42/ns/ipc".into());
    let v = json(&generate(&i).expect("spec"));
    let ns = v["linux"]["namespaces"].as_array().expect("namespaces");
    assert!(!ns.iter().any(|n| n["type"] == "network"));
    let ipc = ns.iter().find(|n| n["type"] == "ipc").expect("ipc");
    assert_eq!(ipc["path"], "/proc/42/ns/ipc");
    let mounts = v["mounts"].as_array().expect("mounts");
    let sys = mounts
        .iter()
        .find(|m| m["destination"] == "/sys")
        .expect("/sys");
    assert_eq!(sys["type"], "bind");
}

#[test]
fn rootless_specs_have_no_cgroups_and_bind_the_hosts_cgroup_tree() {
    let (mut c, u) = (config(), user());
    let mut i = inputs(&c, &u);
    i.rootless = true;
    i.cgroups_path = None;
    let v = json(&generate(&i).expect("spec"));
    assert!(v["linux"].get("cgroupsPath").is_none(), "{}", v["linux"]);
    assert!(v["linux"].get("resources").is_none(), "{}", v["linux"]);
    let mounts = v["mounts"].as_array().expect("mounts");
    let cg = mounts
        .iter()
        .find(|m| m["destination"] == "/sys/fs/cgroup")
        .expect("/sys/fs/cgroup");
    assert_eq!(cg["type"], "bind");
    assert_eq!(cg["source"], "/sys/fs/cgroup");
    assert!(cg["options"]
        .as_array()
        .expect("opts")
        .contains(&"ro".into()));
    c.resources.memory = Some(1 << 20);
    let mut i = inputs(&c, &u);
    i.rootless = true;
    i.cgroups_path = None;
    let e = generate(&i).expect_err("limits");
    assert!(
        e.to_string().contains("cgroup v2 delegation or root"),
        "{e}"
    );
}

#[test]
fn the_default_seccomp_profile_masks_and_no_new_privileges_land_in_the_spec() {
    let (mut c, u) = (config(), user());
    let v = json(&generate(&inputs(&c, &u)).expect("spec"));
    let seccomp = &v["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(seccomp["defaultErrnoRet"], 38);
    assert!(seccomp["syscalls"].as_array().expect("rules").len() > 10);
    assert_eq!(v["process"]["noNewPrivileges"], false, "podman's default");
    let masked = v["linux"]["maskedPaths"].as_array().expect("masked");
    assert!(masked.contains(&"/proc/kcore".into()));
    c.security.apply("seccomp=unconfined").expect("unconfined");
    c.security.apply("no-new-privileges").expect("nnp");
    c.security.apply("unmask=/proc/kcore").expect("unmask");
    let v = json(&generate(&inputs(&c, &u)).expect("spec"));
    assert!(v["linux"].get("seccomp").is_none(), "{}", v["linux"]);
    assert_eq!(v["process"]["noNewPrivileges"], true);
    let masked = v["linux"]["maskedPaths"].as_array().expect("masked");
    assert!(!masked.contains(&"/proc/kcore".into()));
    assert!(masked.contains(&"/proc/keys".into()));
    let mut p = config();
    p.privileged = true;
    let v = json(&generate(&inputs(&p, &u)).expect("spec"));
    assert!(
        v["linux"].get("seccomp").is_none(),
        "--privileged has no filter"
    );
    assert!(v["linux"].get("maskedPaths").is_none());
}

#[test]
fn privileged_gets_the_callers_bounding_set() {
    let (mut c, u) = (config(), user());
    c.privileged = true;
    let mut i = inputs(&c, &u);
    // Everything but CAP_SYS_RESOURCE (24), as on a host that withholds it.
    i.cap_bounding = !(1 << 24) & ((1 << 41) - 1);
    let v = json(&generate(&i).expect("spec"));
    let bounding: Vec<String> =
        serde_json::from_value(v["process"]["capabilities"]["bounding"].clone()).expect("caps");
    assert_eq!(bounding.len(), ALL_CAPS.len() - 1, "{bounding:?}");
    assert!(bounding.contains(&"CAP_SYS_ADMIN".to_owned()));
    assert!(!bounding.contains(&"CAP_SYS_RESOURCE".to_owned()));
}

#[test]
fn an_empty_command_is_refused() {
    let (mut c, u) = (config(), user());
    c.args.clear();
    assert!(generate(&inputs(&c, &u)).is_err());
}
