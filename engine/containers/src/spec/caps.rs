//! Capabilities: podman's default set, every capability of the kernel, and the set a
//! container gets from `--cap-add`, `--cap-drop` and `--privileged`.

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::Capability;

use crate::config::ContainerConfig;
use crate::error::{Error, Result};

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

/// Every capability of Linux 6.x, in the kernel's numbering (`ALL_CAPS[n]` is capability
/// `n`); `--privileged` and `--cap-add ALL` take those the caller's bounding set holds.
pub const ALL_CAPS: &[&str] = &[
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

/// The capability bounding set of this process (`CapBnd` of `/proc/self/status`): what a
/// container it starts can have at most. podman's `--privileged` gives exactly these.
pub fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// The names of the capabilities in `bounding` (`SYS_ADMIN`, ...).
fn in_set(bounding: u64) -> impl Iterator<Item = &'static str> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(move |(n, _)| bounding & (1u64 << n) != 0)
        .map(|(_, c)| *c)
}

/// Every capability this process could give a container, as the spec writes them
/// (`CAP_...`), for `exec --privileged`.
pub fn all_capabilities() -> Vec<String> {
    in_set(bounding_set()).map(|c| format!("CAP_{c}")).collect()
}

/// The container's capability set; "all" is what `bounding` holds.
pub(crate) fn caps(config: &ContainerConfig, bounding: u64) -> Result<HashSet<Capability>> {
    let parse = |c: &str| -> Result<Capability> {
        let name = c.trim().to_ascii_uppercase();
        let name = name.strip_prefix("CAP_").unwrap_or(&name);
        Capability::from_str(name).map_err(|_| Error::invalid(format!("unknown capability {c:?}")))
    };
    let all = || in_set(bounding).filter_map(|c| Capability::from_str(c).ok());
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
