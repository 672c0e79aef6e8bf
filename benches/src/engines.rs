//! The three ways of running a container that the run benchmarks compare, each in its own
//! directory on the scratch filesystem and each loading the same busybox OCI layout offline:
//!
//! - [`Strata`]: `strata run` and friends (crun under `strata-monitor`), its own store;
//! - [`Podman`]: podman with its own store and settings (crun under conmon);
//! - [`Bundle`]: a bare `crun run` of a prepared bundle (the busybox rootfs mounted from the
//!   Strata store, a `crun spec` config running `true`): the floor, with no image store, no
//!   monitor and no network setup.
//!
//! Each is torn down on drop: containers removed, mounts below its directory unmounted, the
//! directory deleted. Nothing here touches the machine's default stores (`/var/lib/containers`,
//! `/run/libpod`, `/etc/containers/networks`); it measures nothing itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::layer::sh;
use crate::storage::{fresh, unmount_below};

/// Deletes a benchmark directory: whatever is still mounted below it first.
fn remove(dir: &Path) {
    unmount_below(dir);
    let _ = Command::new("rm").arg("-rf").arg(dir).status();
}

/// The last non-empty line of a command's output (the ID `load`/`pull` print last).
fn last_line(out: &str) -> String {
    out.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// A Strata store with the busybox image tagged `busybox`.
#[derive(Debug)]
pub struct Strata {
    bin: PathBuf,
    dir: PathBuf,
    /// The image's ID (hex, no algorithm prefix).
    pub image_id: String,
}

impl Strata {
    pub fn setup(bin: &Path, dir: PathBuf, layout: &Path) -> Result<Strata> {
        fresh(&dir)?;
        let mut s = Strata {
            bin: bin.to_owned(),
            dir,
            image_id: String::new(),
        };
        let out = sh(&mut s.cmd(&[
            "storage",
            "load",
            &format!("oci:{}:latest", layout.display()),
        ]))
        .context("load the busybox image into the Strata store")?;
        let id = last_line(&out);
        s.image_id = id.strip_prefix("sha256:").unwrap_or(&id).to_owned();
        sh(&mut s.cmd(&["tag", &s.image_id, "busybox"]))?;
        Ok(s)
    }

    /// `strata` on this store with `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--driver", "overlay"])
            .args(args)
            // crun is the run plugin's default; named so that a run.toml or an exported
            // STRATA_RUNTIME on the machine cannot swap the runtime under the comparison.
            .env("STRATA_RUNTIME", "crun")
            .env_remove("STRATA_CONFIG");
        c
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        let _ = sh(&mut self.cmd(&["rm", "--all", "--force"]));
        remove(&self.dir);
    }
}

/// podman's settings for the benchmark, read instead of the machine's files (`CONTAINERS_CONF`
/// replaces them; podman's built-in defaults fill the rest).
const CONTAINERS_CONF: &str = r#"[containers]
# podman 4.3 asks the runtime to raise RLIMIT_NOFILE (then RLIMIT_NPROC) to 1048576 in root
# containers; this machine lacks CAP_SYS_RESOURCE, so crun fails with "setrlimit
# `RLIMIT_NOFILE`: Operation not permitted". `--ulimit host` does not help in 4.3 (the same
# error); an empty default list leaves containers the limits they inherit, which works.
default_ulimits = []

[engine]
# No systemd or journald here: podman falls back to the `file` backend, which appends a JSON
# line per event (create, init, start, died, remove) that Strata has no counterpart of.
events_logger = "none"
cgroup_manager = "cgroupfs"
runtime = "crun"
"#;

/// The cgroups podman's cgroupfs manager creates on first use and leaves behind:
/// `libpod_parent` (conmon's `conmon` below it) in every hierarchy.
fn libpod_cgroups() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("libpod_parent"))
        .filter(|p| p.is_dir())
        .collect()
}

/// A podman store of its own with the busybox image tagged `busybox`.
#[derive(Debug)]
pub struct Podman {
    dir: PathBuf,
    /// Whether podman's cgroups were there before (then they are not ours to remove).
    cgroups_existed: bool,
}

impl Podman {
    pub fn setup(dir: PathBuf, layout: &Path) -> Result<Podman> {
        fresh(&dir)?;
        for d in ["tmp", "networks"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        std::fs::write(dir.join("containers.conf"), CONTAINERS_CONF)?;
        let p = Podman {
            dir,
            cgroups_existed: !libpod_cgroups().is_empty(),
        };
        let out = sh(&mut p.cmd(&[
            "pull",
            "--quiet",
            &format!("oci:{}:latest", layout.display()),
        ]))
        .context("load the busybox image into podman's store")?;
        sh(&mut p.cmd(&["tag", &last_line(&out), "busybox"]))?;
        Ok(p)
    }

    /// `podman` on this store with `args`. The flags repeat the config file's choices so that
    /// the command line alone says what is compared.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--network-config-dir")
            .arg(self.dir.join("networks"))
            .args([
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "--runtime",
                "crun",
            ])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        c
    }

    /// `podman info`'s answer for a Go template, e.g. `{{.Host.NetworkBackend}}`.
    pub fn info(&self, template: &str) -> String {
        sh(&mut self.cmd(&["info", "--format", template]))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|e| format!("unknown ({e:#})"))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = sh(&mut self.cmd(&["rm", "--all", "--force"]));
        remove(&self.dir);
        if !self.cgroups_existed {
            // rmdir only succeeds on cgroups without processes or children.
            for p in libpod_cgroups() {
                let _ = std::fs::remove_dir(p.join("conmon"));
                let _ = std::fs::remove_dir(&p);
            }
        }
    }
}

/// The Strata container whose mounted rootfs the bare bundle uses.
const BUNDLE_CONTAINER: &str = "bench-bundle";

/// A crun bundle: busybox's rootfs (a Strata container's overlay mount, the same kind of
/// rootfs `strata run` gives crun) and `crun spec`'s config, edited to run `true` without a
/// terminal. Each run needs a container ID of its own.
#[derive(Debug)]
pub struct Bundle<'s> {
    strata: &'s Strata,
    dir: PathBuf,
}

impl<'s> Bundle<'s> {
    pub fn setup(strata: &'s Strata, dir: PathBuf) -> Result<Bundle<'s>> {
        fresh(&dir)?;
        let b = Bundle { strata, dir };
        sh(&mut strata.cmd(&[
            "storage",
            "create",
            &strata.image_id,
            "--name",
            BUNDLE_CONTAINER,
        ]))?;
        let rootfs = last_line(&sh(&mut strata.cmd(&[
            "storage",
            "mount",
            BUNDLE_CONTAINER,
        ]))?);
        let bundle = b.bundle();
        std::fs::create_dir_all(&bundle)?;
        sh(Command::new("crun").arg("spec").current_dir(&bundle))?;
        let config = bundle.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)
            .with_context(|| format!("parse {}", config.display()))?;
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(["true"]);
        spec["root"]["path"] = rootfs.into();
        std::fs::write(&config, serde_json::to_vec_pretty(&spec)?)?;
        Ok(b)
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `crun run` of the bundle as container `id`.
    pub fn run(&self, id: &str) -> Command {
        let mut c = Command::new("crun");
        c.arg("--root")
            .arg(self.state())
            .arg("run")
            .arg("--bundle")
            .arg(self.bundle())
            .arg(id);
        c
    }
}

impl Drop for Bundle<'_> {
    fn drop(&mut self) {
        // `crun run` deletes its container when it exits; a failed run may leave one behind.
        let listed = sh(Command::new("crun")
            .arg("--root")
            .arg(self.state())
            .args(["list", "--quiet"]))
        .unwrap_or_default();
        for id in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = Command::new("crun")
                .arg("--root")
                .arg(self.state())
                .args(["delete", "--force", id])
                .status();
        }
        let _ = sh(&mut self.strata.cmd(&["storage", "rm", BUNDLE_CONTAINER]));
        remove(&self.dir);
    }
}
