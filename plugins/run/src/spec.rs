//! The OCI runtime spec (`config.json`) of a container, generated with `oci-spec` from its
//! [`ContainerConfig`] as podman would: default capabilities, masked and read-only paths,
//! `/dev/shm`, the cgroup mount, namespaces (new, the host's, or a pod's by path), resource
//! limits, bind and tmpfs mounts, and the `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname` files the front end writes next to the bundle.
//!
//! It sets no rlimits (the process inherits the caller's): raising `RLIMIT_NOFILE` past the
//! hard limit, as podman's defaults do, fails on machines without `CAP_SYS_RESOURCE`.
//!
//! Rootless ([`SpecInputs::rootless`]) without a delegated cgroup v2 subtree (see
//! `crate::cgroups`): no `cgroupsPath` and no `linux.resources` (cgroup v1
//! cannot be delegated to a user), and `/sys/fs/cgroup` is the host's, bind-mounted, since a
//! user namespace cannot mount a cgroup v1 hierarchy (see `crate::rootless`).
//! There is no seccomp profile yet.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxIdMapping,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use strata_plugin_api::store::{IdMap, IdRange};

use crate::config::ContainerConfig;
use crate::user::ResolvedUser;

/// podman's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Every capability of Linux 6.x (for `--privileged` and `--cap-add ALL`).
const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Every capability, as the spec writes them (`CAP_...`).
pub fn all_capabilities() -> Vec<String> {
    ALL_CAPS.iter().map(|c| format!("CAP_{c}")).collect()
}

/// Where a namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// A new one, private to the container.
    New,
    /// The runtime's own (the host's): no entry in the spec.
    Host,
    /// An existing one, joined by path (a pod's infra process, a pinned network namespace).
    Path(PathBuf),
}

/// Everything besides the config that the spec depends on.
#[derive(Debug, Clone)]
pub struct SpecInputs<'a> {
    pub config: &'a ContainerConfig,
    pub rootfs: &'a Path,
    pub user: &'a ResolvedUser,
    /// `cgroupsPath`, e.g. `/strata/<id>`; `None` for a rootless container without a
    /// delegated cgroup v2 subtree (see `crate::cgroups`): no cgroup, no resource limits.
    pub cgroups_path: Option<String>,
    pub net: Ns,
    pub ipc: Ns,
    pub uts: Ns,
    /// Private cgroup namespace (cgroup v2 hosts; v1 hosts share the host's, as podman does).
    pub cgroupns: bool,
    /// Files the front end prepared, bind-mounted read-write: (destination, source).
    pub etc_files: Vec<(String, PathBuf)>,
    /// Rootless mode: the runtime runs as root of the user's user namespace, without cgroups.
    pub rootless: bool,
    /// The container's own user namespace map (`--userns auto|keep-id`), if any.
    pub id_map: Option<&'a IdMap>,
}

fn caps(config: &ContainerConfig) -> Result<HashSet<Capability>> {
    let parse = |c: &str| -> Result<Capability> {
        let name = c.trim().to_ascii_uppercase();
        let name = name.strip_prefix("CAP_").unwrap_or(&name);
        Capability::from_str(name).with_context(|| format!("unknown capability {c:?}"))
    };
    let all = || ALL_CAPS.iter().filter_map(|c| Capability::from_str(c).ok());
    let mut set: HashSet<Capability> = if config.privileged {
        all().collect()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| parse(c))
            .collect::<Result<_>>()?
    };
    for c in &config.cap_drop {
        if c.eq_ignore_ascii_case("all") {
            set.clear();
        } else {
            set.remove(&parse(c)?);
        }
    }
    for c in &config.cap_add {
        if c.eq_ignore_ascii_case("all") {
            set.extend(all());
        } else {
            set.insert(parse(c)?);
        }
    }
    Ok(set)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn mounts(inp: &SpecInputs<'_>) -> Result<Vec<Mount>> {
    let c = inp.config;
    let sys_opts: &[&str] = if c.privileged {
        &["nosuid", "noexec", "nodev", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ];
    // sysfs belongs to the network namespace that mounts it, and a user namespace may mount it
    // only if it owns that network namespace: otherwise share the host's.
    let own_netns = inp.net == Ns::New;
    if inp.net == Ns::Host || (inp.id_map.is_some() && !own_netns) {
        m.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        m.push(mount("/sys", "sysfs", "sysfs", sys_opts)?);
    }
    // Neither a rootless runtime without a cgroup of its own nor a container's own user
    // namespace may mount cgroup v1.
    if (inp.rootless && inp.cgroups_path.is_none())
        || ((inp.rootless || inp.id_map.is_some()) && !crate::runtime::cgroup_v2_only())
    {
        m.push(mount(
            "/sys/fs/cgroup",
            "bind",
            "/sys/fs/cgroup",
            &["rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        m.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                if c.privileged { "rw" } else { "ro" },
            ],
        )?);
    }
    if c.read_only {
        // podman's --read-only-tmpfs (default true): writable scratch where programs expect it.
        for dest in ["/tmp", "/var/tmp", "/run"] {
            if !c.mounts.iter().any(|u| u.destination == dest) {
                m.push(mount(
                    dest,
                    "tmpfs",
                    "tmpfs",
                    &["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
                )?);
            }
        }
    }
    for (dest, src) in &inp.etc_files {
        if !c.mounts.iter().any(|u| &u.destination == dest) {
            let src = src.to_str().context("non-UTF-8 state path")?;
            m.push(mount(dest, "bind", src, &["rbind", "rprivate", "rw"])?);
        }
    }
    for u in &c.mounts {
        if !u.destination.starts_with('/') {
            bail!(
                "mount destination {:?} must be an absolute path",
                u.destination
            );
        }
        let mut opts: Vec<String> = Vec::new();
        match u.kind.as_str() {
            "bind" => {
                opts.extend(["rbind".into(), "rprivate".into()]);
                opts.push(if u.read_only { "ro" } else { "rw" }.into());
                opts.extend(u.options.iter().cloned());
                m.push(
                    MountBuilder::default()
                        .destination(&u.destination)
                        .typ("bind")
                        .source(&u.source)
                        .options(opts)
                        .build()?,
                );
            }
            "tmpfs" => {
                opts.extend(["nosuid".into(), "nodev".into()]);
                opts.push(if u.read_only { "ro" } else { "rw" }.into());
                opts.extend(u.options.iter().cloned());
                m.push(
                    MountBuilder::default()
                        .destination(&u.destination)
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(opts)
                        .build()?,
                );
            }
            other => bail!("unsupported mount type {other:?}: use bind or tmpfs"),
        }
    }
    Ok(m)
}

fn namespace(typ: LinuxNamespaceType, ns: &Ns) -> Result<Option<LinuxNamespace>> {
    Ok(match ns {
        Ns::Host => None,
        Ns::New => Some(LinuxNamespaceBuilder::default().typ(typ).build()?),
        Ns::Path(p) => Some(LinuxNamespaceBuilder::default().typ(typ).path(p).build()?),
    })
}

fn env(inp: &SpecInputs<'_>) -> Vec<String> {
    let c = inp.config;
    let mut env = c.env.clone();
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|e| e.split_once('=').is_some_and(|(n, _)| n == k))
    };
    if !has(&env, "PATH") {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if c.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", c.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", inp.user.home));
    }
    // podman marks its containers so programs can tell.
    if !has(&env, "container") {
        env.push("container=strata".into());
    }
    env
}

/// Generates the spec.
pub fn generate(inp: &SpecInputs<'_>) -> Result<Spec> {
    let c = inp.config;
    if c.args.is_empty() {
        bail!("no command given and the image has no Entrypoint or Cmd");
    }
    let caps = caps(c)?;
    let caps_spec = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let user = UserBuilder::default()
        .uid(inp.user.uid)
        .gid(inp.user.gid)
        .additional_gids(inp.user.additional_gids.clone())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(c.tty)
        .user(user)
        .args(c.args.clone())
        .env(env(inp))
        .cwd(if c.workdir.is_empty() {
            "/"
        } else {
            &c.workdir
        })
        .capabilities(caps_spec)
        .no_new_privileges(!c.privileged)
        .build()?;
    let mut process = process;
    process.set_rlimits(None);
    let mut resources =
        LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(c.privileged)
            .access("rwm")
            .build()?]);
    if let Some(limit) = c.resources.memory {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()?,
        );
    }
    if let Some(cpus) = c.resources.cpus {
        let period: u64 = 100_000;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((cpus * period as f64).round() as i64)
                .build()?,
        );
    }
    if let Some(limit) = c.resources.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    let mut namespaces = vec![
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .build()?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Mount)
            .build()?,
    ];
    namespaces.extend(namespace(LinuxNamespaceType::Network, &inp.net)?);
    namespaces.extend(namespace(LinuxNamespaceType::Ipc, &inp.ipc)?);
    namespaces.extend(namespace(LinuxNamespaceType::Uts, &inp.uts)?);
    if inp.cgroupns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Cgroup)
                .build()?,
        );
    }
    if inp.id_map.is_some() {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()?,
        );
    }
    let mut linux = LinuxBuilder::default().namespaces(namespaces);
    if let Some(map) = inp.id_map {
        let ranges = |rs: &[IdRange]| -> Result<Vec<LinuxIdMapping>> {
            rs.iter()
                .map(|r| {
                    Ok(LinuxIdMappingBuilder::default()
                        .container_id(r.inside)
                        .host_id(r.outside)
                        .size(r.count)
                        .build()?)
                })
                .collect()
        };
        linux = linux
            .uid_mappings(ranges(&map.uids)?)
            .gid_mappings(ranges(&map.gids)?);
    }
    match &inp.cgroups_path {
        None => {
            let r = &c.resources;
            if r.memory.is_some() || r.cpus.is_some() || r.pids_limit.is_some() {
                bail!("resource limits need cgroup v2 delegation or root");
            }
        }
        Some(path) => {
            linux = linux
                .resources(resources.build()?)
                .cgroups_path(PathBuf::from(path));
        }
    }
    if !c.privileged {
        linux = linux
            .masked_paths(
                [
                    "/proc/acpi",
                    "/proc/kcore",
                    "/proc/keys",
                    "/proc/latency_stats",
                    "/proc/timer_list",
                    "/proc/timer_stats",
                    "/proc/sched_debug",
                    "/proc/scsi",
                    "/sys/firmware",
                    "/sys/fs/selinux",
                    "/sys/dev/block",
                ]
                .map(String::from)
                .to_vec(),
            )
            .readonly_paths(
                [
                    "/proc/asound",
                    "/proc/bus",
                    "/proc/fs",
                    "/proc/irq",
                    "/proc/sys",
                    "/proc/sysrq-trigger",
                ]
                .map(String::from)
                .to_vec(),
            );
    }
    let mut spec = Spec::default();
    spec.set_version("1.0.2".into())
        .set_process(Some(process))
        .set_root(Some(
            RootBuilder::default()
                .path(inp.rootfs)
                .readonly(c.read_only)
                .build()?,
        ))
        .set_hostname(if inp.uts == Ns::New {
            Some(c.hostname.clone())
        } else {
            None
        })
        .set_mounts(Some(mounts(inp)?))
        .set_annotations(None)
        .set_linux(Some({
            let mut linux = linux.build()?;
            if inp.cgroups_path.is_none() {
                // The builder's default is an empty device list, which still asks for cgroups.
                linux.set_resources(None);
            }
            linux
        }));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MountSpec, Resources};

    fn user() -> ResolvedUser {
        ResolvedUser {
            uid: 33,
            gid: 33,
            additional_gids: vec![1000],
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
            etc_files: vec![(
                "/etc/hosts".into(),
                PathBuf::from("/var/lib/strata/containers/x/hosts"),
            )],
            rootless: false,
            id_map: None,
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
        assert!(
            v["process"].get("rlimits").is_none(),
            "no rlimits: {}",
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
    fn an_empty_command_is_refused() {
        let (mut c, u) = (config(), user());
        c.args.clear();
        assert!(generate(&inputs(&c, &u)).is_err());
    }
}
