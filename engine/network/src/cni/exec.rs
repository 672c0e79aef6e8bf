//! The CNI exec protocol (spec 1.0.0), written by hand because there is no well-kept Rust CNI
//! client crate and the protocol is small: a plugin is an executable found on the CNI path; it
//! runs with the `CNI_*` environment variables and its network configuration as JSON on stdin,
//! and prints its result (ADD) or a CNI error object (`code`, `msg`, `details`) as JSON on
//! stdout, exiting non-zero on failure.
//!
//! What it deliberately does not do: CHECK, GC and STATUS (spec 1.1), version negotiation (we
//! speak 1.0.0, which every plugin of containernetworking-plugins 1.x accepts; Debian 12 ships
//! 1.1.1, whose `firewall` speaks only 0.4.0 and 1.0.0), building or reading configurations
//! (`list` does), or timeouts (plugins wait on the xtables lock, and a killed plugin would
//! leave half-made rules).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use crate::{NetworkError, PluginFailure};

/// The CNI operations Strata performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Del,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
        }
    }
}

/// The parameters every plugin of one operation receives in its environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Invocation<'a> {
    pub container_id: &'a str,
    /// `None` passes an empty `CNI_NETNS`, which the spec allows for DEL when the namespace
    /// is gone: plugins then release what lives outside it (addresses, host rules).
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub cni_path: &'a [PathBuf],
    /// `CNI_ARGS` pairs (`K8S_POD_NAMESPACE`, ...); `IgnoreUnknown=1` is added when any are
    /// given, so plugins that know none of them still run.
    pub args: &'a [(String, String)],
}

/// The CNI error object a failing plugin prints.
#[derive(Debug, Deserialize)]
struct CniError {
    code: Option<u32>,
    msg: Option<String>,
    details: Option<String>,
}

/// Finds the executable for plugin `name` on the CNI path.
pub(crate) fn find_plugin(cni_path: &[PathBuf], name: &str) -> Result<PathBuf, NetworkError> {
    cni_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| NetworkError::PluginNotFound {
            plugin: name.into(),
            search_path: join_paths(cni_path),
        })
}

/// ADD: runs the plugin named by `config["type"]` and returns its result object.
pub(crate) fn add(inv: &Invocation<'_>, config: &Value) -> Result<Value, NetworkError> {
    let plugin = plugin_name(config);
    let stdout = run(Op::Add, inv, config)?;
    let result: Value = serde_json::from_slice(&stdout).map_err(|e| NetworkError::BadResult {
        plugin: plugin.into(),
        reason: format!("stdout is not JSON ({e})"),
    })?;
    if !result.is_object() {
        return Err(NetworkError::BadResult {
            plugin: plugin.into(),
            reason: "stdout is not a JSON object".into(),
        });
    }
    Ok(result)
}

/// DEL: runs the plugin named by `config["type"]`.
pub(crate) fn del(inv: &Invocation<'_>, config: &Value) -> Result<(), NetworkError> {
    run(Op::Del, inv, config).map(drop)
}

fn plugin_name(config: &Value) -> &str {
    config["type"].as_str().unwrap_or_default()
}

/// Runs the plugin with `config` on stdin; returns its stdout when it succeeds.
fn run(op: Op, inv: &Invocation<'_>, config: &Value) -> Result<Vec<u8>, NetworkError> {
    let plugin = plugin_name(config);
    let exe = find_plugin(inv.cni_path, plugin)?;
    let _span = tracing::debug_span!(
        "cni",
        plugin,
        op = op.as_str(),
        container = inv.container_id
    )
    .entered();
    let stdin = config.to_string();
    let mut cmd = Command::new(&exe);
    match cni_args(inv.args) {
        args if args.is_empty() => cmd.env_remove("CNI_ARGS"),
        args => cmd.env("CNI_ARGS", args),
    };
    let mut child = cmd
        .env("CNI_COMMAND", op.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env(
            "CNI_NETNS",
            inv.netns.map(Path::as_os_str).unwrap_or_default(),
        )
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", join_paths(inv.cni_path))
        .env("PATH", path_with_sbin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NetworkError::io("run CNI plugin", &exe))?;
    // Configurations are a few KiB, far below the pipe buffer, and plugins read all of stdin
    // before they write: writing before reading the output cannot deadlock. A plugin that
    // exits without reading (EPIPE) is still waited for, and its own error wins.
    let written = match child.stdin.take() {
        Some(mut pipe) => pipe.write_all(stdin.as_bytes()),
        None => Ok(()),
    };
    let out = child
        .wait_with_output()
        .map_err(NetworkError::io("wait for CNI plugin", &exe))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        tracing::debug!(stderr = %stderr.trim(), "plugin stderr");
    }
    if !out.status.success() {
        let err: Option<CniError> = serde_json::from_slice(&out.stdout).ok();
        let (code, msg, details) = match err {
            Some(e) => (e.code, e.msg, e.details),
            None => (None, None, None),
        };
        let fallback = || match stderr.trim() {
            "" => String::from_utf8_lossy(&out.stdout).trim().to_string(),
            s => s.to_string(),
        };
        return Err(NetworkError::Plugin(Box::new(PluginFailure {
            plugin: plugin.into(),
            command: op.as_str(),
            container: inv.container_id.into(),
            code,
            msg: msg.filter(|m| !m.is_empty()).unwrap_or_else(fallback),
            details,
            status: out.status.to_string(),
        })));
    }
    written.map_err(NetworkError::io(
        "write the configuration to CNI plugin",
        &exe,
    ))?;
    Ok(out.stdout)
}

/// `CNI_ARGS`: `IgnoreUnknown=1;K=V;...`, or empty without arguments.
fn cni_args(args: &[(String, String)]) -> String {
    if args.is_empty() {
        return String::new();
    }
    std::iter::once("IgnoreUnknown=1".to_owned())
        .chain(args.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(";")
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The caller's `PATH` with the sbin directories added: the plugins run `iptables`, which
/// lives in `/usr/sbin`, absent from many non-login `PATH`s.
pub(crate) fn path_with_sbin() -> OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(d.into());
        }
    }
    std::env::join_paths(dirs).unwrap_or(current)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn a_missing_plugin_lists_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = vec![dir.path().join("a"), dir.path().join("b")];
        let e = find_plugin(&path, "bridge").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "CNI plugin `bridge` not found in {}/a:{}/b; install containernetworking-plugins",
                dir.path().display(),
                dir.path().display()
            )
        );
    }

    #[test]
    fn the_first_directory_holding_the_plugin_wins() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a", "b"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("b/bridge"), "").unwrap();
        let path = vec![dir.path().join("a"), dir.path().join("b")];
        assert_eq!(
            find_plugin(&path, "bridge").unwrap(),
            dir.path().join("b/bridge")
        );
    }

    #[test]
    fn cni_args_tell_plugins_to_ignore_what_they_do_not_know() {
        assert_eq!(cni_args(&[]), "");
        let args = [
            ("K8S_POD_NAMESPACE".to_owned(), "default".to_owned()),
            ("K8S_POD_NAME".to_owned(), "web".to_owned()),
        ];
        assert_eq!(
            cni_args(&args),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
        );
    }

    #[test]
    fn plugins_find_iptables_in_sbin() {
        let path = path_with_sbin();
        assert!(std::env::split_paths(&path).any(|d| d == Path::new("/usr/sbin")));
    }
}
