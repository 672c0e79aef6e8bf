//! `strata cri serve`'s settings: command-line flags over `/etc/strata/cri.toml` over
//! defaults (CRI-O's and containerd's knobs under their usual names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The configuration file read when `--config` is not given (missing is fine).
pub const DEFAULT_CONFIG: &str = "/etc/strata/cri.toml";

/// The default endpoint, as kubelet's `--container-runtime-endpoint` names it.
pub const DEFAULT_LISTEN: &str = "unix:///run/strata/cri.sock";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Where to listen (unix:///PATH or a plain socket path)
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Option<String>,
    /// The configuration file (default /etc/strata/cri.toml, if it exists)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level of the server's own log on stderr: error, warn, info or debug
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// cgroupfs or systemd
    #[arg(long, value_name = "DRIVER")]
    pub cgroup_driver: Option<String>,
    /// Directory of CNI configuration lists
    #[arg(long, value_name = "DIR")]
    pub cni_config_dir: Option<PathBuf>,
    /// Directory of CNI plugins (repeatable; searched in order)
    #[arg(long, value_name = "DIR")]
    pub cni_plugin_dir: Vec<PathBuf>,
    /// The address the streaming server (exec, attach, port-forward) listens on
    #[arg(long, value_name = "ADDR")]
    pub stream_address: Option<String>,
    /// Its port (0: a free one)
    #[arg(long, value_name = "PORT")]
    pub stream_port: Option<u16>,
}

/// One runtime handler (a `RuntimeClass`'s handler name maps to one of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeHandler {
    /// The OCI runtime: `crun`, `runc`, or a path to a runtime binary.
    pub runtime_path: String,
}

impl Default for RuntimeHandler {
    fn default() -> Self {
        RuntimeHandler {
            runtime_path: "crun".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriConfig {
    /// The gRPC endpoint (`unix:///run/strata/cri.sock`).
    pub listen: String,
    /// The socket's mode (octal text; 0660 as CRI-O).
    pub socket_mode: String,
    /// `cgroupfs` (cgroup paths as given) or `systemd` (kubelet's slice names, placed where
    /// systemd would put them).
    pub cgroup_driver: String,
    /// The handler used when a pod names none (`""`).
    pub default_runtime: String,
    /// Runtime handlers by name (`crun`, `runc` by default).
    pub runtimes: BTreeMap<String, RuntimeHandler>,
    /// The image of pod infra containers; empty: the catatonit pause image made locally
    /// (no pull), as `strata pod` does.
    pub pause_image: String,
    /// CNI configuration lists, kubelet-style: the first list by libcni's order is the pod
    /// network.
    pub cni_config_dir: PathBuf,
    pub cni_plugin_dirs: Vec<PathBuf>,
    /// The streaming server's address and port (0: a free port).
    pub stream_address: String,
    pub stream_port: u16,
    /// `error`, `warn`, `info` or `debug`.
    pub log_level: String,
    /// The largest gRPC message accepted (16 MiB, as the Go clients allow).
    pub max_message_size: usize,
}

impl Default for CriConfig {
    fn default() -> Self {
        let mut runtimes = BTreeMap::new();
        runtimes.insert(
            "crun".to_owned(),
            RuntimeHandler {
                runtime_path: "crun".into(),
            },
        );
        runtimes.insert(
            "runc".to_owned(),
            RuntimeHandler {
                runtime_path: "runc".into(),
            },
        );
        CriConfig {
            listen: DEFAULT_LISTEN.into(),
            socket_mode: "0660".into(),
            cgroup_driver: "cgroupfs".into(),
            default_runtime: "crun".into(),
            runtimes,
            pause_image: String::new(),
            cni_config_dir: "/etc/cni/net.d".into(),
            cni_plugin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            stream_address: "127.0.0.1".into(),
            stream_port: 0,
            log_level: "info".into(),
            max_message_size: 16 << 20,
        }
    }
}

impl CriConfig {
    /// Defaults, then the file (`--config`, else `/etc/strata/cri.toml` when it exists), then
    /// the flags; checked.
    pub fn load(a: &ServeArgs) -> Result<CriConfig> {
        let mut c = match &a.config {
            Some(p) => read(p)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read(Path::new(DEFAULT_CONFIG))?,
            None => CriConfig::default(),
        };
        if let Some(v) = &a.listen {
            c.listen = v.clone();
        }
        if let Some(v) = &a.log_level {
            c.log_level = v.clone();
        }
        if let Some(v) = &a.cgroup_driver {
            c.cgroup_driver = v.clone();
        }
        if let Some(v) = &a.cni_config_dir {
            c.cni_config_dir = v.clone();
        }
        if !a.cni_plugin_dir.is_empty() {
            c.cni_plugin_dirs = a.cni_plugin_dir.clone();
        }
        if let Some(v) = &a.stream_address {
            c.stream_address = v.clone();
        }
        if let Some(v) = a.stream_port {
            c.stream_port = v;
        }
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        self.socket_path()?;
        self.mode()?;
        if !matches!(self.cgroup_driver.as_str(), "cgroupfs" | "systemd") {
            bail!(
                "cgroup_driver {:?}: use cgroupfs or systemd",
                self.cgroup_driver
            );
        }
        if !matches!(
            self.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            bail!(
                "log_level {:?}: use error, warn, info or debug",
                self.log_level
            );
        }
        if !self.runtimes.contains_key(&self.default_runtime) {
            bail!(
                "default_runtime {:?} is not one of the runtimes ({})",
                self.default_runtime,
                self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if self.max_message_size < 4 << 20 {
            bail!("max_message_size must be at least 4 MiB");
        }
        Ok(())
    }

    /// The socket's path from `listen` (`unix:///run/strata/cri.sock` or a plain path).
    pub fn socket_path(&self) -> Result<PathBuf> {
        let p = self.listen.strip_prefix("unix://").unwrap_or(&self.listen);
        if !p.starts_with('/') {
            bail!(
                "listen {:?}: only unix sockets are served (unix:///PATH)",
                self.listen
            );
        }
        Ok(PathBuf::from(p))
    }

    pub fn mode(&self) -> Result<u32> {
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| format!("socket_mode {:?} is not an octal mode", self.socket_mode))
    }

    /// The runtime a pod's handler names (`""`: the default).
    pub fn runtime_for(&self, handler: &str) -> Result<String, String> {
        let name = if handler.is_empty() {
            self.default_runtime.as_str()
        } else {
            handler
        };
        self.runtimes
            .get(name)
            .map(|h| h.runtime_path.clone())
            .ok_or_else(|| {
                format!(
                    "no runtime handler {name:?} (configured: {})",
                    self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
    }
}

/// Whether an OCI runtime makes `rro` bind mounts recursively read-only (crun does, with
/// `mount_setattr`; runc only from 1.2, newer than Debian 12's 1.1).
pub fn supports_rro(runtime: &str) -> bool {
    Path::new(runtime).file_name().is_some_and(|n| n == "crun")
}

/// Whether pods run in user namespaces with this runtime here: crun joins the pod's user
/// namespace by path and idmaps as needed; runc 1.1 wants mappings even when joining.
pub fn supports_userns(runtime: &str) -> bool {
    supports_rro(runtime)
}

fn read(p: &Path) -> Result<CriConfig> {
    let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
    let mut c: CriConfig =
        toml::from_str(&text).with_context(|| format!("parse {}", p.display()))?;
    // Handlers a file adds come on top of crun and runc (as CRI-O's runtime tables do).
    for (name, h) in CriConfig::default().runtimes {
        c.runtimes.entry(name).or_insert(h);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_flags_override_defaults_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("cri.toml");
        std::fs::write(
            &f,
            "cgroup_driver = \"systemd\"\nlisten = \"/tmp/x.sock\"\n[runtimes.kata]\nruntime_path = \"/usr/bin/kata\"\n",
        )
        .expect("write");
        let a = ServeArgs {
            config: Some(f.clone()),
            listen: Some("unix:///run/y.sock".into()),
            ..ServeArgs::default()
        };
        let c = CriConfig::load(&a).expect("load");
        assert_eq!(c.cgroup_driver, "systemd");
        assert_eq!(c.socket_path().expect("path"), Path::new("/run/y.sock"));
        assert_eq!(c.runtime_for("kata").expect("kata"), "/usr/bin/kata");
        assert_eq!(c.runtime_for("").expect("default"), "crun");
        assert!(c.runtime_for("gvisor").is_err());
        assert_eq!(c.mode().expect("mode"), 0o660);
        std::fs::write(&f, "cgroup_driver = \"cgroupv3\"\n").expect("write");
        assert!(CriConfig::load(&a).is_err());
        std::fs::write(&f, "no_such_knob = 1\n").expect("write");
        let e = CriConfig::load(&a).expect_err("unknown key");
        assert!(format!("{e:#}").contains("no_such_knob"), "{e:#}");
        std::fs::write(&f, "").expect("write");
        let tcp = ServeArgs {
            listen: Some("tcp://127.0.0.1:1".into()),
            config: Some(f),
            ..ServeArgs::default()
        };
        let e = CriConfig::load(&tcp).expect_err("tcp");
        assert!(format!("{e:#}").contains("only unix sockets"), "{e:#}");
    }
}
