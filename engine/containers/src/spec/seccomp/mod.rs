//! Seccomp: the filter a container's runtime installs before it runs the container's process.
//!
//! Every container gets [`DEFAULT_PROFILE`] (`default.toml`, equal in effect to podman's
//! default) unless it is `--privileged` or asks otherwise with `--security-opt
//! seccomp=unconfined|PROFILE.json`. Profiles are podman's and Docker's `seccomp.json` format:
//! a default action, an architecture map, and rules whose `includes`/`excludes` make them
//! depend on the container's capabilities, the host's architecture and kernel. [`resolve`]
//! turns a profile into the runtime spec's `linux.seccomp` for one container, keeping the
//! rules whose conditions hold, the way podman does when it writes a spec. A plain OCI
//! `linux.seccomp` object is a profile without conditions and reads the same way.
//!
//! The resolved filter goes into the spec; `bpf` compiles it once for crun, which otherwise
//! compiles it at every start (see there).
//!
//! What it deliberately does not do: `SCMP_ACT_NOTIFY` agents, or profiles named by path at
//! start time (a profile is read once, at create, and kept with the container, so a later
//! edit of the file does not change a container behind the user's back).

use std::collections::BTreeSet;

use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

pub mod bpf;

/// Reads `null` as the type's default (podman's files write `"args": null` and
/// `"caps": null`).
fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Strata's default profile (TOML; see the file for what it allows and refuses).
pub const DEFAULT_PROFILE: &str = include_str!("default.toml");

/// Which filter a container gets (`--security-opt seccomp=...`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompPolicy {
    /// [`DEFAULT_PROFILE`] (also what podman's `seccomp=default` names).
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile the user gave, as read at create (JSON).
    Profile(Value),
}

impl SeccompPolicy {
    /// Parses `--security-opt seccomp=VALUE`: `unconfined`, `default`, or a file, read now.
    pub fn from_option(value: &str) -> Result<SeccompPolicy> {
        match value {
            "unconfined" => Ok(SeccompPolicy::Unconfined),
            "default" | "" => Ok(SeccompPolicy::Default),
            path => {
                let text = std::fs::read(path).map_err(|e| {
                    Error::invalid(format!(
                        "--security-opt seccomp={path}: cannot read it: {e}"
                    ))
                })?;
                let v: Value = serde_json::from_slice(&text).map_err(|e| {
                    Error::invalid(format!(
                        "--security-opt seccomp={path}: not a JSON seccomp profile: {e}"
                    ))
                })?;
                let policy = SeccompPolicy::Profile(v);
                // Refuse a profile that cannot be used now, not at every start.
                policy
                    .filter(&BTreeSet::new(), &Host::current())
                    .map_err(|e| Error::invalid(format!("--security-opt seccomp={path}: {e}")))?;
                Ok(policy)
            }
        }
    }

    /// The spec's filter for a container with capabilities `caps` (bounding set, `CAP_...`
    /// names); `None` when unconfined.
    pub fn filter(&self, caps: &BTreeSet<String>, host: &Host) -> Result<Option<LinuxSeccomp>> {
        let profile = match self {
            SeccompPolicy::Unconfined => return Ok(None),
            SeccompPolicy::Default => Profile::from_toml(DEFAULT_PROFILE)?,
            SeccompPolicy::Profile(v) => Profile::from_value(v.clone())?,
        };
        resolve(&profile, caps, host).map(Some)
    }
}

/// A profile in podman's `seccomp.json` vocabulary (unknown fields, such as comments, are
/// ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Explicit architectures (Docker's older form, and OCI's).
    #[serde(default, deserialize_with = "nullable")]
    pub architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    pub flags: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    /// Docker's older single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub includes: Conditions,
    #[serde(default, deserialize_with = "nullable")]
    pub excludes: Conditions,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conditions {
    #[serde(default, deserialize_with = "nullable")]
    pub caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

impl Profile {
    pub fn from_toml(text: &str) -> Result<Profile> {
        toml::from_str(text).map_err(|e| Error::msg(format!("the seccomp profile: {e}")))
    }

    pub fn from_value(v: Value) -> Result<Profile> {
        serde_json::from_value(v).map_err(|e| Error::invalid(format!("not a seccomp profile: {e}")))
    }
}

/// What a profile's conditions are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Go's name of the architecture (`amd64`, `arm64`, ...), as profiles' `arches` use.
    pub arch: String,
    /// libseccomp's name of the native architecture (`SCMP_ARCH_X86_64`, ...).
    pub scmp_arch: String,
    /// The kernel's version (major, minor, patch).
    pub kernel: (u32, u32, u32),
}

impl Host {
    pub fn current() -> Host {
        let (arch, scmp) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "x86" => ("x86", "SCMP_ARCH_X86"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "arm" => ("arm", "SCMP_ARCH_ARM"),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "powerpc64" => ("ppc64", "SCMP_ARCH_PPC64"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            "mips64" => ("mips64", "SCMP_ARCH_MIPS64"),
            other => (other, ""),
        };
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Host {
            arch: arch.into(),
            scmp_arch: scmp.into(),
            kernel: kernel_version(&release).unwrap_or((0, 0, 0)),
        }
    }
}

/// `6.1.0-13-amd64` → (6, 1, 0); `6.18` → (6, 18, 0).
fn kernel_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// The profile's filter for one container: the rules whose conditions hold for `caps` (the
/// container's bounding set) and `host`, in the profile's order.
pub fn resolve(profile: &Profile, caps: &BTreeSet<String>, host: &Host) -> Result<LinuxSeccomp> {
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(Error::invalid(
            "the seccomp profile has both architectures and archMap; use one",
        ));
    }
    check_errno(&profile.default_action, profile.default_errno_ret)?;
    let mut syscalls = Vec::new();
    for rule in &profile.syscalls {
        if !applies(rule, caps, host)? {
            continue;
        }
        check_errno(&rule.action, rule.errno_ret)?;
        let mut names = rule.names.clone();
        names.extend(rule.name.clone());
        if names.is_empty() {
            continue;
        }
        let mut s = json!({ "names": names, "action": rule.action });
        if let Some(e) = rule.errno_ret {
            s["errnoRet"] = e.into();
        }
        if !rule.args.is_empty() {
            s["args"] = serde_json::to_value(&rule.args)?;
        }
        syscalls.push(s);
    }
    let architectures: Vec<String> = if !profile.architectures.is_empty() {
        profile.architectures.clone()
    } else {
        profile
            .arch_map
            .iter()
            .find(|m| m.architecture == host.scmp_arch)
            .map(|m| {
                std::iter::once(m.architecture.clone())
                    .chain(m.sub_architectures.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = json!({ "defaultAction": profile.default_action, "syscalls": syscalls });
    if let Some(e) = profile.default_errno_ret {
        out["defaultErrnoRet"] = e.into();
    }
    if !architectures.is_empty() {
        out["architectures"] = architectures.into();
    }
    if !profile.flags.is_empty() {
        out["flags"] = profile.flags.clone().into();
    }
    serde_json::from_value(out).map_err(|e| {
        Error::invalid(format!(
            "the seccomp profile names an unknown action, architecture, operator or flag ({e})"
        ))
    })
}

/// An errno goes only with the actions that return one (as crun and runc check).
fn check_errno(action: &str, errno: Option<u32>) -> Result<()> {
    if errno.is_some() && !matches!(action, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") {
        return Err(Error::invalid(format!(
            "the seccomp profile gives an errno to action {action}, which returns none"
        )));
    }
    Ok(())
}

fn min_kernel(min: &str) -> Result<(u32, u32, u32)> {
    kernel_version(min)
        .ok_or_else(|| Error::invalid(format!("minKernel {min:?} is not a kernel version")))
}

fn applies(rule: &Rule, caps: &BTreeSet<String>, host: &Host) -> Result<bool> {
    let inc = &rule.includes;
    let exc = &rule.excludes;
    if !inc.caps.iter().all(|c| caps.contains(c)) || exc.caps.iter().any(|c| caps.contains(c)) {
        return Ok(false);
    }
    if (!inc.arches.is_empty() && !inc.arches.contains(&host.arch))
        || exc.arches.contains(&host.arch)
    {
        return Ok(false);
    }
    if let Some(min) = &inc.min_kernel {
        if host.kernel < min_kernel(min)? {
            return Ok(false);
        }
    }
    if let Some(min) = &exc.min_kernel {
        if host.kernel >= min_kernel(min)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
