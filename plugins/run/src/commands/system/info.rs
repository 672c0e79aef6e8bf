//! `strata system info`: the host and the store as podman's `info` describes them (same
//! key names where podman has one), as JSON or as indented `key: value` lines.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;
use serde_json::{json, Value};

use strata_engine_containers::runtime::Runtime;
use strata_engine_containers::Status;

use crate::context::Ctx;
use crate::errors::call;

/// `v2` (unified only), `hybrid` (v1 controllers plus an empty v2 hierarchy at
/// `/sys/fs/cgroup/unified`) or `v1`.
pub fn cgroup_version(root: &Path) -> &'static str {
    let cgroup2 = |p: &Path| {
        rustix::fs::statfs(p)
            .ok()
            .is_some_and(|s| s.f_type == 0x6367_7270)
    };
    if cgroup2(root) {
        "v2"
    } else if cgroup2(&root.join("unified")) {
        "hybrid"
    } else {
        "v1"
    }
}

/// An OCI runtime's path and version, if it is installed.
fn runtime(name: &str, runroot: &Path) -> Option<Value> {
    let rt = Runtime::find(name, runroot).ok()?;
    let out = Command::new(&rt.path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    Some(json!({
        "name": rt.name,
        "path": rt.path,
        "version": first.rsplit(' ').next().unwrap_or_default(),
        "versionText": first,
    }))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn mem_total() -> u64 {
    read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn info(ctx: &Ctx<'_>) -> Result<Value> {
    let runroot = ctx.runroot();
    let runtimes: Vec<Value> = ["crun", "runc"]
        .iter()
        .filter_map(|n| runtime(n, &runroot))
        .collect();
    let default = strata_engine_containers::settings::default_runtime();
    let current = runtime(&default, &runroot).unwrap_or_else(|| json!({"name": default}));
    let cni = ctx.engine.bridge().clone();
    let cni_dir = cni.cni_path.iter().find(|d| d.join("bridge").is_file());
    let images = ctx.store.images().map_err(call)?.len();
    let all = ctx.store.containers().map_err(call)?.len();
    let mut running = 0;
    for c in ctx.containers()? {
        if c.state()?.status == Status::Running {
            running += 1;
        }
    }
    Ok(json!({
        "host": {
            "arch": crate::commands::archive::layer::architecture(),
            "os": "linux",
            "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
            "hostname": read_trimmed("/proc/sys/kernel/hostname"),
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "memTotal": mem_total(),
            "cgroupVersion": cgroup_version(Path::new("/sys/fs/cgroup")),
            "cgroupManager": "cgroupfs",
            "ociRuntime": current,
            "ociRuntimes": runtimes,
            "networkBackend": "cni",
            "cniPluginsDir": cni_dir,
            "cniSearchPath": cni.cni_path,
            "rootless": ctx.rootless(),
        },
        "store": {
            "graphRoot": ctx.info().root,
            "runRoot": ctx.info().runroot,
            "graphDriverName": ctx.info().driver,
            "imageStore": {"number": images},
            "containerStore": {"number": all, "running": running, "stopped": all - running.min(all), "paused": 0},
        },
        "version": {"Version": env!("CARGO_PKG_VERSION")},
    }))
}

/// Prints `v` as indented `key: value` lines (podman prints YAML).
pub fn print_text(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        print_text(v, indent + 1, out);
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", scalar(other))),
                }
            }
        }
        Value::Array(a) => {
            for v in a {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}-\n"));
                        print_text(v, indent + 1, out);
                    }
                    other => out.push_str(&format!("{pad}- {}\n", scalar(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_output_nests_objects_and_lists() {
        let mut s = String::new();
        print_text(
            &json!({"host": {"kernel": "6.1", "list": ["a", {"b": 1}]}, "n": null}),
            0,
            &mut s,
        );
        assert_eq!(
            s,
            "host:\n  kernel: 6.1\n  list:\n    - a\n    -\n      b: 1\nn: \n"
        );
    }

    #[test]
    fn a_directory_without_cgroup2_is_v1() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("unified")).unwrap();
        assert_eq!(cgroup_version(d.path()), "v1");
    }
}
