//! The OCI runtime, driven through its standard command line (`run --detach` is run by the
//! monitor; `state`, `kill`, `delete` and `exec` from here). crun is the default, runc the
//! alternative; anything else that speaks the same CLI works when named by path.
//!
//! Each runtime keeps its state under `<runroot>/runtime/<name>` (its `--root`), apart from
//! podman's, so the two never see each other's containers.
//!
//! Rootless (in a user namespace), runtimes are told not to touch cgroups unless a cgroup v2
//! subtree is delegated to the user (`crate::cgroups`): crun with `--cgroup-manager disabled`
//! (`cgroupfs` when delegated), runc with `--rootless true` (its cgroup errors are then
//! ignored). Other runtimes get no extra flag. Without cgroups `kill --all` is not used (see
//! [`Runtime::kill`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{bail, Context, Result};
use serde::Deserialize;

/// The runtime used when neither `--runtime` nor the config file names one.
pub const DEFAULT_RUNTIME: &str = "crun";

#[derive(Debug, Clone)]
pub struct Runtime {
    /// `crun`, `runc`, or the file name of a runtime given by path.
    pub name: String,
    pub path: PathBuf,
    /// The runtime's `--root` (its state directory).
    pub root: PathBuf,
    /// Whether it runs in a user namespace (rootless mode).
    pub rootless: bool,
    /// Whether containers have cgroups (root, or rootless with a delegated v2 subtree).
    pub cgroups: bool,
}

/// What `runtime state` says.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeState {
    pub status: String,
}

const SEARCH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Runtime {
    /// Finds a runtime by name (in `$PATH` and the usual directories) or by path.
    pub fn find(name: &str, runroot: &Path) -> Result<Runtime> {
        let path = if name.contains('/') {
            PathBuf::from(name)
        } else {
            let path_var = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path_var)
                .chain(SEARCH.iter().map(PathBuf::from))
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .with_context(|| {
                    format!("OCI runtime {name:?} not found in $PATH; install it (apt-get install {name}) or pick another with --runtime")
                })?
        };
        if !path.is_file() {
            bail!("OCI runtime {} does not exist", path.display());
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_owned());
        let root = runroot.join("runtime").join(&name);
        let rootless = crate::rootless::in_user_namespace();
        Ok(Runtime {
            name,
            path,
            root,
            rootless,
            cgroups: !rootless || crate::cgroups::delegated().is_some(),
        })
    }

    /// The global arguments every invocation starts with.
    pub fn global_args(&self) -> Vec<String> {
        let mut args = vec!["--root".into(), self.root.display().to_string()];
        if self.rootless {
            match self.name.as_str() {
                "crun" if self.cgroups => args.push("--cgroup-manager=cgroupfs".into()),
                "crun" => args.push("--cgroup-manager=disabled".into()),
                "runc" => args.push("--rootless=true".into()),
                _ => {}
            }
        }
        args
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.args(self.global_args());
        c
    }

    fn run(&self, what: &str, args: &[&str]) -> Result<std::process::Output> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {} {what}", self.path.display()))?;
        Ok(out)
    }

    fn check(&self, what: &str, id: &str, out: std::process::Output) -> Result<()> {
        if out.status.success() {
            return Ok(());
        }
        bail!(
            "{} {what} {}: {}",
            self.name,
            short(id),
            explain(String::from_utf8_lossy(&out.stderr).trim())
        )
    }

    /// Sends `signal` (a name such as `TERM` or a number) to the container's init, or to all
    /// its processes with `all`. Rootless, `all` is dropped: without a cgroup the runtime
    /// cannot list the processes (runc fails, crun signals nobody), and every container has
    /// its own PID namespace, which ends with its init (so SIGKILL reaches them all anyway).
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let mut args = vec!["kill"];
        if all && self.cgroups {
            args.push("--all");
        }
        args.extend([id, signal]);
        let out = self.run("kill", &args)?;
        self.check("kill", id, out)
    }

    /// Deletes the runtime's record of the container; a missing one is fine.
    pub fn delete(&self, id: &str) -> Result<()> {
        let out = self.run("delete", &["delete", "--force", id])?;
        if out.status.success() || not_found(&out.stderr) {
            return Ok(());
        }
        self.check("delete", id, out)
    }

    /// The runtime's view of the container; `None` when it does not know it.
    pub fn state(&self, id: &str) -> Result<Option<RuntimeState>> {
        let out = self.run("state", &["state", id])?;
        if !out.status.success() {
            if not_found(&out.stderr) {
                return Ok(None);
            }
            return self.check("state", id, out).map(|()| None);
        }
        let s: RuntimeState = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("parse {} state of {}", self.name, short(id)))?;
        Ok(Some(s))
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn not_found(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr).to_ascii_lowercase();
    s.contains("does not exist") || s.contains("not found") || s.contains("no such file")
}

/// Adds what the user can do to runtime errors we know.
pub fn explain(message: &str) -> String {
    if message.contains("cgroups in hybrid mode not supported") {
        return format!(
            "{message}\n  crun cannot use this host's hybrid cgroup layout while a cgroup v1 controller is unmounted \
             (usually hugetlb): mount it with `mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`, \
             or use --runtime runc"
        );
    }
    message.to_owned()
}

/// Whether this host uses cgroup v2 only (then containers get a private cgroup namespace, as
/// in podman; on v1 and hybrid hosts they share the host's).
pub fn cgroup_v2_only() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup")
        .map(|s| s.f_type == 0x6367_7270)
        .unwrap_or(false)
}
