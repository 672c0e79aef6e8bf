//! The security defaults every container gets, as podman gives them: masked and read-only
//! paths under `/proc` and `/sys`, resource limits (rlimits), and `--security-opt`.
//!
//! Rlimits: podman sets `RLIMIT_NOFILE` to 1048576 and `RLIMIT_NPROC` to 4194304 (soft and
//! hard) for root, which the runtime can only do with `CAP_SYS_RESOURCE` in the initial user
//! namespace (raising a hard limit); where that is missing (rootless, or a root without the
//! capability, as on this project's machines) podman fails or, rootless, falls back to the
//! caller's limits. Strata takes podman's value where it can be set, and otherwise the
//! highest it can set, the caller's hard limit, for both soft and hard (a soft limit may
//! always be raised to the hard one). `--ulimit` overrides either.

use oci_spec::runtime::{PosixRlimit, PosixRlimitBuilder, PosixRlimitType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// podman's masked paths: empty (files) or an empty read-only tmpfs (directories) in the
/// container, hiding host information and controls.
pub const MASKED_PATHS: &[&str] = &[
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
];

/// podman's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// podman's defaults for open files and processes.
pub const DEFAULT_NOFILE: u64 = 1_048_576;
pub const DEFAULT_NPROC: u64 = 4_194_304;

/// One `--ulimit NAME=SOFT[:HARD]` (podman's names: `nofile`, `nproc`, `core`, ...; `-1` for
/// unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// The kernel's name (`RLIMIT_NOFILE`).
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

const ULIMITS: &[(&str, PosixRlimitType)] = &[
    ("as", PosixRlimitType::RlimitAs),
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

impl Ulimit {
    /// Parses podman's `--ulimit` value.
    pub fn parse(value: &str) -> Result<Ulimit> {
        let bad = |why: &str| Error::invalid(format!("invalid --ulimit {value:?}: {why}"));
        let (name, limits) = value
            .split_once('=')
            .ok_or_else(|| bad("use NAME=SOFT[:HARD], e.g. nofile=1024:2048"))?;
        let kind = ULIMITS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                bad(&format!(
                    "unknown limit {name:?} (one of {})",
                    ULIMITS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let number = |s: &str| -> Result<u64> {
            match s {
                "-1" | "unlimited" => Ok(u64::MAX),
                n => n
                    .parse()
                    .map_err(|_| bad(&format!("{n:?} is not a number"))),
            }
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((s, h)) => (number(s)?, number(h)?),
            None => {
                let n = number(limits)?;
                (n, n)
            }
        };
        if soft > hard {
            return Err(bad("the soft limit is above the hard one"));
        }
        Ok(Ulimit {
            name: kind.to_string(),
            soft,
            hard,
        })
    }
}

/// The host's view for the default rlimits: the caller's hard limits and whether they may be
/// raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    pub nofile_hard: u64,
    pub nproc_hard: u64,
    /// `CAP_SYS_RESOURCE` in the initial user namespace (root outside rootless mode).
    pub can_raise: bool,
}

impl HostLimits {
    pub fn current(rootless: bool) -> HostLimits {
        use rustix::process::{getrlimit, Resource};
        let hard = |r| getrlimit(r).maximum.unwrap_or(u64::MAX);
        HostLimits {
            nofile_hard: hard(Resource::Nofile),
            nproc_hard: hard(Resource::Nproc),
            can_raise: !rootless && has_sys_resource(),
        }
    }
}

/// Whether this process's effective capabilities include `CAP_SYS_RESOURCE` (bit 24).
fn has_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// The container's rlimits: podman's `nofile` and `nproc` defaults within what the host
/// allows, then the user's `--ulimit`s.
pub fn rlimits(host: &HostLimits, ulimits: &[Ulimit]) -> Result<Vec<PosixRlimit>> {
    let cap = |want: u64, hard: u64| if host.can_raise { want } else { want.min(hard) };
    let mut out: Vec<(String, u64, u64)> = vec![
        (
            PosixRlimitType::RlimitNofile.to_string(),
            cap(DEFAULT_NOFILE, host.nofile_hard),
            cap(DEFAULT_NOFILE, host.nofile_hard),
        ),
        (
            PosixRlimitType::RlimitNproc.to_string(),
            cap(DEFAULT_NPROC, host.nproc_hard),
            cap(DEFAULT_NPROC, host.nproc_hard),
        ),
    ];
    for u in ulimits {
        out.retain(|(n, _, _)| *n != u.name);
        out.push((u.name.clone(), u.soft, u.hard));
    }
    out.into_iter()
        .map(|(name, soft, hard)| {
            let typ = ULIMITS
                .iter()
                .map(|(_, k)| *k)
                .find(|k| k.to_string() == name)
                .ok_or_else(|| Error::invalid(format!("unknown rlimit {name}")))?;
            Ok(PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft)
                .hard(hard)
                .build()?)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(r: &[PosixRlimit]) -> Vec<(String, u64, u64)> {
        r.iter()
            .map(|l| (l.typ().to_string(), l.soft(), l.hard()))
            .collect()
    }

    #[test]
    fn podmans_defaults_where_they_can_be_set_and_the_hosts_limits_where_not() {
        let free = HostLimits {
            nofile_hard: 20_000,
            nproc_hard: 96_367,
            can_raise: true,
        };
        assert_eq!(
            pairs(&rlimits(&free, &[]).unwrap()),
            [
                ("RLIMIT_NOFILE".into(), DEFAULT_NOFILE, DEFAULT_NOFILE),
                ("RLIMIT_NPROC".into(), DEFAULT_NPROC, DEFAULT_NPROC)
            ]
        );
        let held = HostLimits {
            can_raise: false,
            ..free
        };
        assert_eq!(
            pairs(&rlimits(&held, &[]).unwrap()),
            [
                ("RLIMIT_NOFILE".into(), 20_000, 20_000),
                ("RLIMIT_NPROC".into(), 96_367, 96_367)
            ]
        );
        let high = HostLimits {
            nofile_hard: u64::MAX,
            nproc_hard: u64::MAX,
            can_raise: false,
        };
        assert_eq!(
            pairs(&rlimits(&high, &[]).unwrap())[0],
            ("RLIMIT_NOFILE".into(), DEFAULT_NOFILE, DEFAULT_NOFILE),
            "never above podman's value"
        );
    }

    #[test]
    fn ulimits_parse_like_podman_and_override_the_defaults() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!(
            (u.name.as_str(), u.soft, u.hard),
            ("RLIMIT_NOFILE", 1024, 2048)
        );
        let core = Ulimit::parse("core=-1").unwrap();
        assert_eq!((core.soft, core.hard), (u64::MAX, u64::MAX));
        for bad in ["nofile", "bogus=1", "nofile=x", "nofile=10:5"] {
            assert!(Ulimit::parse(bad).is_err(), "{bad}");
        }
        let host = HostLimits {
            nofile_hard: 20_000,
            nproc_hard: 100,
            can_raise: false,
        };
        let r = pairs(&rlimits(&host, &[u, core]).unwrap());
        assert_eq!(
            r,
            [
                ("RLIMIT_NPROC".into(), 100, 100),
                ("RLIMIT_NOFILE".into(), 1024, 2048),
                ("RLIMIT_CORE".into(), u64::MAX, u64::MAX)
            ]
        );
    }
}
