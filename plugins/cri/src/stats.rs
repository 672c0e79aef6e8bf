//! Resource use from the kernel's cgroup files (v1 and v2): CPU time, memory (working set =
//! usage minus inactive file pages, as cAdvisor and the kubelet count it), and for pods the
//! network counters of the pod's interface (`/proc/<infra pid>/net/dev`).

use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use strata_engine_containers::{Container, Status};

use crate::server::Cri;

use crate::records::now_nanos;

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_field(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A cgroup's CPU nanoseconds and memory (usage, working set, rss, page faults).
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub cpu_nanos: u64,
    pub memory: u64,
    pub working_set: u64,
    pub rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The usage of the cgroup at `path` (a `cgroupsPath` such as `/strata/<id>`).
pub fn usage(path: &str) -> Option<Usage> {
    let rel = path.trim_start_matches('/');
    if v2() {
        let dir = PathBuf::from("/sys/fs/cgroup").join(rel);
        let cpu = stat_field(&dir.join("cpu.stat"), "usage_usec")? * 1000;
        let memory = read_u64(&dir.join("memory.current")).unwrap_or(0);
        let ms = dir.join("memory.stat");
        let inactive = stat_field(&ms, "inactive_file").unwrap_or(0);
        return Some(Usage {
            cpu_nanos: cpu,
            memory,
            working_set: memory.saturating_sub(inactive),
            rss: stat_field(&ms, "anon").unwrap_or(0),
            page_faults: stat_field(&ms, "pgfault").unwrap_or(0),
            major_page_faults: stat_field(&ms, "pgmajfault").unwrap_or(0),
        });
    }
    let cpu = ["cpu,cpuacct", "cpuacct"].iter().find_map(|c| {
        read_u64(
            &PathBuf::from("/sys/fs/cgroup")
                .join(c)
                .join(rel)
                .join("cpuacct.usage"),
        )
    })?;
    let mem = PathBuf::from("/sys/fs/cgroup/memory").join(rel);
    let memory = read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0);
    let ms = mem.join("memory.stat");
    let inactive = stat_field(&ms, "total_inactive_file").unwrap_or(0);
    Some(Usage {
        cpu_nanos: cpu,
        memory,
        working_set: memory.saturating_sub(inactive),
        rss: stat_field(&ms, "total_rss").unwrap_or(0),
        page_faults: stat_field(&ms, "total_pgfault").unwrap_or(0),
        major_page_faults: stat_field(&ms, "total_pgmajfault").unwrap_or(0),
    })
}

pub fn cgroup_of(c: &Container<'_>) -> String {
    strata_engine_containers::cgroups::path(&c.config.linux.cgroup_parent, c.id())
}

fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

/// A running container's usage (zero for one that is not running: its cgroup is going).
fn running_usage(c: &Container<'_>) -> Usage {
    let running = c
        .state()
        .map(|s| s.status == Status::Running)
        .unwrap_or(false);
    if running { usage(&cgroup_of(c)) } else { None }.unwrap_or_default()
}

pub fn container_stats(
    cri: &Cri,
    c: &Container<'_>,
    rec: &crate::records::ContainerRecord,
) -> cri::ContainerStats {
    stats_of(cri, c, rec, &running_usage(c))
}

fn stats_of(
    cri: &Cri,
    c: &Container<'_>,
    rec: &crate::records::ContainerRecord,
    u: &Usage,
) -> cri::ContainerStats {
    let ts = now_nanos();
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: c.id().to_owned(),
            metadata: rec.config.metadata.clone(),
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
        }),
        cpu: Some(cri::CpuUsage {
            timestamp: ts,
            usage_core_nano_seconds: value(u.cpu_nanos),
            usage_nano_cores: None,
        }),
        memory: Some(cri::MemoryUsage {
            timestamp: ts,
            working_set_bytes: value(u.working_set),
            available_bytes: None,
            usage_bytes: value(u.memory),
            rss_bytes: value(u.rss),
            page_faults: value(u.page_faults),
            major_page_faults: value(u.major_page_faults),
        }),
        writable_layer: Some(cri::FilesystemUsage {
            timestamp: ts,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: cri.root.display().to_string(),
            }),
            used_bytes: None,
            inodes_used: None,
        }),
        swap: None,
    }
}

/// Bytes and errors received and sent on the pod's interfaces (`/proc/PID/net/dev`).
fn network(pid: i32) -> Option<cri::NetworkUsage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut ifaces = Vec::new();
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 11 {
            continue;
        }
        ifaces.push(cri::NetworkInterfaceUsage {
            name: name.to_owned(),
            rx_bytes: value(f[0]),
            rx_errors: value(f[2]),
            tx_bytes: value(f[8]),
            tx_errors: value(f[10]),
        });
    }
    let default = ifaces
        .iter()
        .find(|i| i.name == "eth0")
        .cloned()
        .or_else(|| ifaces.first().cloned());
    Some(cri::NetworkUsage {
        timestamp: now_nanos(),
        default_interface: default,
        interfaces: ifaces,
    })
}

pub fn sandbox_stats(
    cri: &Cri,
    s: &crate::records::Sandbox,
) -> anyhow::Result<cri::PodSandboxStats> {
    let ts = now_nanos();
    let mut containers = Vec::new();
    let mut total = Usage::default();
    for e in cri.index.all(cri)? {
        let (c, rec) = (&e.c, &e.rec);
        if rec.sandbox != s.id {
            continue;
        }
        // Each cgroup is read once, for the container's stats and the pod's sums.
        let u = running_usage(c);
        total.cpu_nanos += u.cpu_nanos;
        total.memory += u.memory;
        total.working_set += u.working_set;
        total.rss += u.rss;
        containers.push(stats_of(cri, c, rec, &u));
    }
    let pid = crate::sandbox::infra_pid(cri, s);
    let p = crate::sandbox::to_cri(cri, s);
    Ok(cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: s.id.clone(),
            metadata: p.metadata,
            labels: p.labels,
            annotations: p.annotations,
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: Some(cri::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: value(total.cpu_nanos),
                usage_nano_cores: None,
            }),
            memory: Some(cri::MemoryUsage {
                timestamp: ts,
                working_set_bytes: value(total.working_set),
                available_bytes: None,
                usage_bytes: value(total.memory),
                rss_bytes: value(total.rss),
                page_faults: None,
                major_page_faults: None,
            }),
            network: pid.and_then(network),
            process: pid.map(|_| cri::ProcessUsage {
                timestamp: ts,
                process_count: value(containers.len() as u64 + 1),
            }),
            containers,
        }),
        windows: None,
    })
}
