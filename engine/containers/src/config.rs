//! What a container was created with: the flags of `strata create`/`run` (or another front
//! end's request), resolved against the image config, kept with the container in the store
//! (its metadata, under [`crate::METADATA_KEY`]).
//!
//! It is written once, at create, and never changes; the container's live state (pid,
//! exit code) lives in `state.rs`. Everything the OCI runtime spec needs can be regenerated
//! from this and the image.

use serde::{Deserialize, Serialize};

use crate::spec::{SeccompPolicy, Ulimit};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ContainerConfig {
    /// The image as the user named it, and its ID.
    pub image_name: String,
    pub image_id: String,
    /// The final argv (entrypoint + command, after `--entrypoint` and arguments).
    pub args: Vec<String>,
    /// `KEY=VALUE`, image environment first, then `--env-file`, then `-e`.
    pub env: Vec<String>,
    pub workdir: String,
    /// `-u` as given (`name`, `uid`, `uid:gid`, `name:group`); empty means the image's user.
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    /// `-i`: keep stdin open.
    pub stdin: bool,
    pub read_only: bool,
    pub mounts: Vec<MountSpec>,
    pub network: NetworkMode,
    /// `-p` mappings, as given (parsed again when the network is set up).
    pub publish: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub resources: Resources,
    /// `--userns` as given (see `crate::userns`); the map it led to is the store's record
    /// (`ContainerInfo::id_map`).
    pub userns: String,
    /// The OCI runtime's name (`crun`, `runc`) or path.
    pub runtime: String,
    /// `--rm`: remove the container when it exits.
    pub remove: bool,
    /// The pod this container belongs to, by ID.
    pub pod: Option<String>,
    /// Whether this is its pod's infra container (it owns the pod's namespaces).
    pub infra: bool,
    /// The signal `stop` sends first (the image's `StopSignal`, else SIGTERM).
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u64,
    /// The command line shown by `ps` (podman shows the user's command).
    pub command_line: String,
    pub labels: Vec<(String, String)>,
    /// `--security-opt` (seccomp, no-new-privileges, unmask).
    pub security: Security,
    /// `--ulimit`s, over the default rlimits.
    pub ulimits: Vec<Ulimit>,
    /// Made before the engine had security defaults (a record under the legacy key without
    /// `security`): it keeps running as it was made, with no seccomp filter, no default
    /// rlimits and no-new-privileges on. Worked out when the record is read; never stored.
    #[serde(skip)]
    pub before_security_defaults: bool,
    /// Runtime-spec settings beyond podman's everyday flags, which the CRI front end sets
    /// from a Kubernetes pod and container (all empty by default).
    pub linux: LinuxExtras,
    /// Where the monitor writes the container's log (CRI format); empty: `ctr.log` in the
    /// container's own directory. The CRI front end puts it under the pod's log directory.
    pub log_path: String,
}

/// Namespaces, kernel settings, devices and cgroup knobs a front end may ask for on top of
/// the defaults the engine derives from the rest of [`ContainerConfig`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LinuxExtras {
    /// The PID namespace: empty for a new one, `host`, or the path of one to join
    /// (`/proc/PID/ns/pid` of a pod's infra process or a target container).
    pub pid: String,
    /// The IPC namespace when the container is not joining a pod's: empty for a new one, or
    /// `host`.
    pub ipc: String,
    /// The UTS namespace when not joining a pod's: empty for a new one, or `host`.
    pub uts: String,
    /// Kernel parameters (`net.ipv4.ip_unprivileged_port_start`, `kernel.shm_rmid_forced`).
    pub sysctls: Vec<(String, String)>,
    /// Host devices made available in the container.
    pub devices: Vec<Device>,
    /// Supplementary groups added to the user's own.
    pub groups: Vec<u32>,
    /// Which `/etc/group` memberships of the user count: empty for podman's rule (only
    /// without an explicit group), `merge` (always; Kubernetes' default) or `strict` (never).
    pub groups_policy: String,
    /// The parent cgroup (cgroupfs path such as `/kubepods/pod<UID>`); empty: `/strata`.
    pub cgroup_parent: String,
    /// The OOM killer's score adjustment; a value below the caller's own is raised to it
    /// (lowering needs `CAP_SYS_RESOURCE`, which this host's callers may not have).
    pub oom_score_adj: Option<i32>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// Huge page limits: page size (`2MB`, `1GB`) and limit in bytes.
    pub hugepages: Vec<(String, u64)>,
    /// Replace the default masked and read-only paths when set.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// Annotations of the runtime spec.
    pub annotations: Vec<(String, String)>,
    /// An explicit user-namespace mapping (root only): a Kubernetes pod's, which the pod's
    /// containers share through its infra container.
    pub id_map: Option<strata_types::IdMap>,
}

/// A host device node to create in the container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub host_path: String,
    pub container_path: String,
    /// Cgroup permissions (`rwm` or a subset); empty means `rwm`.
    pub permissions: String,
}

/// `--security-opt`: what confines the container besides its capabilities.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Security {
    /// `seccomp=unconfined|default|PROFILE` (`--privileged` turns it off too).
    pub seccomp: SeccompPolicy,
    /// `no-new-privileges`: setuid binaries and file capabilities give nothing (podman's
    /// default is off).
    pub no_new_privileges: bool,
    /// `unmask=ALL`: no masked or read-only paths.
    pub unmask_all: bool,
    /// `unmask=PATH[:PATH...]`: these paths are neither masked nor read-only.
    pub unmask: Vec<String>,
}

impl Security {
    /// Applies one `--security-opt` value (podman's spellings; `seccomp=` reads the profile
    /// file now).
    pub fn apply(&mut self, opt: &str) -> crate::error::Result<()> {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt, ""));
        match key {
            "seccomp" => self.seccomp = SeccompPolicy::from_option(value)?,
            "no-new-privileges" => {
                self.no_new_privileges = match value {
                    "" | "true" => true,
                    "false" => false,
                    other => {
                        return Err(crate::error::Error::invalid(format!(
                            "--security-opt no-new-privileges={other}: use true or false"
                        )))
                    }
                }
            }
            "unmask" if value == "ALL" => self.unmask_all = true,
            "unmask" => self.unmask.extend(
                value
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            ),
            "label" | "apparmor" if value == "disable" || value == "unconfined" => {
                // No SELinux or AppArmor here: nothing to turn off.
            }
            _ => {
                return Err(crate::error::Error::unsupported(format!(
                    "--security-opt {opt}: supported are seccomp=unconfined|PROFILE.json, \
                     no-new-privileges[=true|false], unmask=ALL|PATH[:PATH...], \
                     label=disable, apparmor=unconfined"
                )))
            }
        }
        Ok(())
    }
}

/// A bind or tmpfs mount into the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountSpec {
    /// `bind` or `tmpfs`.
    pub kind: String,
    /// The host path (bind); empty for tmpfs.
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// Extra mount options (`size=64m`, `mode=1777`, `nosuid`, ...).
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A private network namespace with a bridge, an address and NAT (podman's default).
    #[default]
    Bridge,
    /// A private network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// A private network namespace connected through slirp4netns, user-mode networking that
    /// needs no root (podman's rootless default): 10.0.2.100, outbound NAT, `-p` forwarded.
    Slirp4netns,
    /// The network namespace of another container or pod (`container:NAME`).
    Container(String),
    /// A network namespace set up by someone else, by path (podman's `ns:PATH`): the CRI
    /// front end's pod namespaces, attached to the pod's CNI network by the CRI front end.
    Path(String),
}

impl NetworkMode {
    pub fn parse(s: &str) -> Result<NetworkMode, String> {
        match s {
            "bridge" | "" => Ok(NetworkMode::Bridge),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            "slirp4netns" => Ok(NetworkMode::Slirp4netns),
            other if other.starts_with("slirp4netns:") => Err(format!(
                "{other:?}: slirp4netns options are not supported; use plain slirp4netns"
            )),
            other if other.starts_with("ns:") => match &other[3..] {
                p if p.starts_with('/') => Ok(NetworkMode::Path(p.to_owned())),
                _ => Err(format!("{other:?}: ns: takes an absolute path")),
            },
            other => match other.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Ok(NetworkMode::Container(c.to_owned())),
                _ => Err(format!(
                    "unknown network mode {other:?}: use bridge, slirp4netns, none, host or \
                     container:NAME"
                )),
            },
        }
    }
}

/// Resource limits (`--memory`, `--cpus`, `--pids-limit`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_options_parse_like_podman() {
        let mut s = Security::default();
        assert_eq!(s.seccomp, SeccompPolicy::Default);
        assert!(!s.no_new_privileges, "podman's default");
        s.apply("seccomp=unconfined").expect("unconfined");
        s.apply("no-new-privileges").expect("nnp");
        s.apply("unmask=/proc/kcore:/proc/keys").expect("unmask");
        assert_eq!(s.seccomp, SeccompPolicy::Unconfined);
        assert!(s.no_new_privileges);
        assert_eq!(s.unmask, ["/proc/kcore", "/proc/keys"]);
        s.apply("no-new-privileges=false").expect("nnp off");
        assert!(!s.no_new_privileges);
        s.apply("unmask=ALL").expect("all");
        assert!(s.unmask_all);
        assert!(s.apply("seccomp=/no/such/file.json").is_err());
        assert!(s.apply("label=type:spc_t").is_err());
        assert!(s.apply("bogus").is_err());
    }

    #[test]
    fn network_modes_parse_like_podman() {
        assert_eq!(NetworkMode::parse("none"), Ok(NetworkMode::None));
        assert_eq!(NetworkMode::parse("host"), Ok(NetworkMode::Host));
        assert_eq!(NetworkMode::parse("bridge"), Ok(NetworkMode::Bridge));
        assert_eq!(
            NetworkMode::parse("container:web"),
            Ok(NetworkMode::Container("web".into()))
        );
        assert_eq!(
            NetworkMode::parse("slirp4netns"),
            Ok(NetworkMode::Slirp4netns)
        );
        assert!(NetworkMode::parse("slirp4netns:port_handler=slirp4netns").is_err());
        assert!(NetworkMode::parse("slirp").is_err());
        assert!(NetworkMode::parse("container:").is_err());
    }
}
