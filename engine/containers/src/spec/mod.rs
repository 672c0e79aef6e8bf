//! The OCI runtime spec (`config.json`) of a container, generated with `oci-spec` from its
//! [`ContainerConfig`] as podman would: default capabilities (`caps`), masked and read-only
//! paths, rlimits and `--security-opt` (`security`), the default seccomp profile
//! (`seccomp`), `/dev/shm`, the cgroup mount (`mounts`), namespaces (new, the host's, or
//! joined by path), resource limits, bind and tmpfs mounts, and the `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` files the engine writes next to the bundle.
//!
//! Generation is a pure function of [`SpecInputs`]: everything read from the host (its
//! limits, architecture and kernel, the user's terminal) is read by the caller and passed in.
//!
//! Rootless ([`SpecInputs::rootless`]) without a delegated cgroup v2 subtree (see
//! `crate::cgroups`): no `cgroupsPath` and no `linux.resources` (cgroup v1
//! cannot be delegated to a user), and `/sys/fs/cgroup` is the host's, bind-mounted, since a
//! user namespace cannot mount a cgroup v1 hierarchy (see `crate::rootless`).

mod caps;
mod extras;
mod mounts;
pub mod seccomp;
pub mod security;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, PosixRlimit, ProcessBuilder, RootBuilder, Spec,
    UserBuilder,
};
use strata_types::{IdMap, IdRange};

use crate::config::ContainerConfig;
use crate::error::{bail, Result};
use crate::user::ResolvedUser;
pub use caps::{all_capabilities, bounding_set, ALL_CAPS, DEFAULT_CAPS};
use mounts::mounts;
pub use seccomp::{SeccompPolicy, DEFAULT_PROFILE};
pub use security::{HostLimits, Ulimit, MASKED_PATHS, READONLY_PATHS};

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
    /// With an id map: a new user namespace with its mappings, or one to join (whose
    /// mappings are already set).
    pub userns: Ns,
    /// Files the front end prepared, bind-mounted read-write: (destination, source).
    pub etc_files: Vec<(String, PathBuf)>,
    /// Rootless mode: the runtime runs as root of the user's user namespace, without cgroups.
    pub rootless: bool,
    /// The container's own user namespace map (`--userns auto|keep-id`), if any.
    pub id_map: Option<&'a IdMap>,
    /// The process's rlimits (see `security::rlimits`).
    pub rlimits: Vec<PosixRlimit>,
    /// What seccomp profiles' conditions are checked against.
    pub host: seccomp::Host,
    /// The caller's capability bounding set (`caps::bounding_set`): `--privileged` and
    /// `--cap-add ALL` give these.
    pub cap_bounding: u64,
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
    let caps = caps::caps(c, inp.cap_bounding)?;
    let caps_spec = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let mut gids = match c.linux.groups_policy.as_str() {
        "merge" => inp.user.member_gids.clone(),
        "strict" => Vec::new(),
        _ => inp.user.additional_gids.clone(),
    };
    for g in &c.linux.groups {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    let user = UserBuilder::default()
        .uid(inp.user.uid)
        .gid(inp.user.gid)
        .additional_gids(gids)
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
        .no_new_privileges(c.security.no_new_privileges)
        .build()?;
    let mut process = process;
    process.set_rlimits((!inp.rlimits.is_empty()).then(|| inp.rlimits.clone()));
    process.set_oom_score_adj(c.linux.oom_score_adj.map(extras::oom_score_adj));
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
    let resources = extras::resources(c, resources)?;
    let pid = match c.linux.pid.as_str() {
        "" => Ns::New,
        "host" => Ns::Host,
        path => Ns::Path(path.into()),
    };
    let mut namespaces: Vec<LinuxNamespace> = namespace(LinuxNamespaceType::Pid, &pid)?
        .into_iter()
        .collect();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Mount)
            .build()?,
    );
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
        namespaces.extend(namespace(LinuxNamespaceType::User, &inp.userns)?);
    }
    let mut linux = LinuxBuilder::default().namespaces(namespaces);
    if let (Some(map), Ns::New) = (inp.id_map, &inp.userns) {
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
        let unmasked =
            |p: &str| !c.security.unmask_all && !c.security.unmask.iter().any(|u| u == p);
        linux = linux
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .filter(|p| unmasked(p))
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .filter(|p| unmasked(p))
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            );
    }
    let seccomp = if c.privileged && !matches!(c.security.seccomp, SeccompPolicy::Profile(_)) {
        None // podman: --privileged turns the default filter off, not one the user gave
    } else {
        let names: BTreeSet<String> = caps.iter().map(|cap| format!("CAP_{cap}")).collect();
        c.security.seccomp.filter(&names, &inp.host)?
    };
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
            if c.privileged {
                // The builder starts from oci-spec's defaults, which mask paths: podman's
                // --privileged masks none.
                linux.set_masked_paths(None);
                linux.set_readonly_paths(None);
            }
            linux.set_seccomp(seccomp);
            extras::linux(c, &mut linux)?;
            linux
        }));
    if !c.linux.annotations.is_empty() {
        spec.set_annotations(Some(c.linux.annotations.iter().cloned().collect()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests;
