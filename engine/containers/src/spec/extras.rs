//! The spec settings of [`LinuxExtras`]: what a Kubernetes pod and container ask for beyond
//! podman's everyday flags (devices, sysctls, CPU shares and sets, huge pages, OOM score,
//! replaced masked and read-only paths). Applied on top of what `generate` derived.

use std::collections::HashMap;

use oci_spec::runtime::{
    Linux, LinuxCpuBuilder, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxResourcesBuilder,
};

use crate::config::{ContainerConfig, Device, LinuxExtras};
use crate::error::{bail, Context, Result};

/// The score to ask for: never below the caller's own, which only `CAP_SYS_RESOURCE` may
/// lower (containerd's `restrict_oom_score_adj`); the pod still starts.
pub(super) fn oom_score_adj(wanted: i32) -> i32 {
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    wanted.clamp(own, 1000)
}

/// Adds CPU, huge page and device-cgroup settings to the resources `generate` built.
pub(super) fn resources(
    c: &ContainerConfig,
    mut r: LinuxResourcesBuilder,
) -> Result<LinuxResourcesBuilder> {
    let x: &LinuxExtras = &c.linux;
    let cpu_set = x.cpu_shares.is_some()
        || x.cpu_quota.is_some()
        || x.cpu_period.is_some()
        || !x.cpuset_cpus.is_empty()
        || !x.cpuset_mems.is_empty();
    if cpu_set {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(cpus) = c.resources.cpus {
            cpu = cpu
                .period(100_000u64)
                .quota((cpus * 100_000.0).round() as i64);
        }
        if let Some(s) = x.cpu_shares.filter(|s| *s > 0) {
            cpu = cpu.shares(s);
        }
        if let Some(q) = x.cpu_quota.filter(|q| *q != 0) {
            cpu = cpu.quota(q);
        }
        if let Some(p) = x.cpu_period.filter(|p| *p > 0) {
            cpu = cpu.period(p);
        }
        if !x.cpuset_cpus.is_empty() {
            cpu = cpu.cpus(x.cpuset_cpus.clone());
        }
        if !x.cpuset_mems.is_empty() {
            cpu = cpu.mems(x.cpuset_mems.clone());
        }
        r = r.cpu(cpu.build()?);
    }
    if !x.hugepages.is_empty() {
        let limits = x
            .hugepages
            .iter()
            .map(|(size, limit)| {
                Ok(LinuxHugepageLimitBuilder::default()
                    .page_size(size.clone())
                    .limit(i64::try_from(*limit).unwrap_or(i64::MAX))
                    .build()?)
            })
            .collect::<Result<Vec<_>>>()?;
        r = r.hugepage_limits(limits);
    }
    if !x.devices.is_empty() && !c.privileged {
        let mut rules = vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?];
        for d in &x.devices {
            let node = node(d)?;
            rules.push(
                LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .typ(node.typ)
                    .major(node.major)
                    .minor(node.minor)
                    .access(if d.permissions.is_empty() {
                        "rwm".to_owned()
                    } else {
                        d.permissions.clone()
                    })
                    .build()?,
            );
        }
        r = r.devices(rules);
    }
    Ok(r)
}

struct Node {
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: u32,
}

fn node(d: &Device) -> Result<Node> {
    let st = rustix::fs::stat(d.host_path.as_str())
        .map_err(std::io::Error::from)
        .with_context(|| format!("device {}", d.host_path))?;
    let kind = st.st_mode & libc_mode::S_IFMT;
    let typ = match kind {
        libc_mode::S_IFCHR => LinuxDeviceType::C,
        libc_mode::S_IFBLK => LinuxDeviceType::B,
        _ => bail!("{} is not a device node", d.host_path),
    };
    Ok(Node {
        typ,
        major: i64::from(rustix::fs::major(st.st_rdev)),
        minor: i64::from(rustix::fs::minor(st.st_rdev)),
        mode: st.st_mode & 0o7777,
    })
}

/// File type bits of `st_mode` (the kernel's values; rustix's `FileType` wants a raw mode).
mod libc_mode {
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFBLK: u32 = 0o060000;
}

/// Adds devices and sysctls, and replaces the masked and read-only paths when asked.
pub(super) fn linux(c: &ContainerConfig, linux: &mut Linux) -> Result<()> {
    let x = &c.linux;
    if !x.devices.is_empty() {
        let mut devices = linux.devices().clone().unwrap_or_default();
        for d in &x.devices {
            let n = node(d)?;
            let path = if d.container_path.is_empty() {
                &d.host_path
            } else {
                &d.container_path
            };
            devices.push(
                LinuxDeviceBuilder::default()
                    .path(path)
                    .typ(n.typ)
                    .major(n.major)
                    .minor(n.minor)
                    .file_mode(n.mode)
                    .uid(0u32)
                    .gid(0u32)
                    .build()?,
            );
        }
        linux.set_devices(Some(devices));
    }
    // Mounts that propagate need the container's root to propagate too: `rshared` for
    // bidirectional ones, `rslave` for host-to-container ones (the runtime's default root
    // propagation makes them private copies otherwise).
    let has = |o: &str| c.mounts.iter().any(|m| m.options.iter().any(|x| x == o));
    if has("rshared") || has("shared") {
        linux.set_rootfs_propagation(Some("rshared".into()));
    } else if has("rslave") || has("slave") {
        linux.set_rootfs_propagation(Some("rslave".into()));
    }
    if !x.sysctls.is_empty() {
        let map: HashMap<String, String> = x.sysctls.iter().cloned().collect();
        linux.set_sysctl(Some(map));
    }
    if !c.privileged {
        if let Some(m) = &x.masked_paths {
            linux.set_masked_paths(Some(m.clone()));
        }
        if let Some(r) = &x.readonly_paths {
            linux.set_readonly_paths(Some(r.clone()));
        }
    }
    Ok(())
}
