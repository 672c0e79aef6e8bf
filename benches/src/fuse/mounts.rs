//! Mounting the three filesystems over the benchmark's layers, each with an empty upper and
//! work directory of its own, and undoing them: [`Mounted`] unmounts (retrying while busy,
//! detaching as a last resort), waits for the FUSE server process to exit (signalling it by
//! PID if it lingers) and removes its directories, when asked or when dropped.
//!
//! FUSE servers are found after mounting by their command line (their program and the mount
//! point), since both daemonise; the mount table's file system type is checked too, so a
//! measurement never runs on the wrong filesystem.
//!
//! What it deliberately does not do: use the mount crate (each filesystem is mounted from its
//! own command line, as a user would), or end any process it did not find serving its mounts.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::layer::sh;

/// How long a FUSE server may take to exit after its unmount.
const SERVER_EXIT: Duration = Duration::from_secs(10);

/// The filesystems measured, in the report's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kernel,
    FuseOverlayfs,
    Strata,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Kernel, Kind::FuseOverlayfs, Kind::Strata];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel overlay",
            Kind::FuseOverlayfs => "fuse-overlayfs",
            Kind::Strata => "strata-fuse-overlay",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::FuseOverlayfs => "fo",
            Kind::Strata => "strata",
        }
    }

    /// The type the mount table shows.
    fn fs_type(self) -> &'static str {
        match self {
            Kind::Kernel => "overlay",
            Kind::FuseOverlayfs => "fuse.fuse-overlayfs",
            Kind::Strata => "fuse.strata-overlay",
        }
    }

    /// The server's program name, for FUSE filesystems.
    fn server(self) -> Option<&'static str> {
        match self {
            Kind::Kernel => None,
            Kind::FuseOverlayfs => Some("fuse-overlayfs"),
            Kind::Strata => Some("strata-fuse-overlay"),
        }
    }
}

/// `fuse-overlayfs --version`'s first line.
pub fn fuse_overlayfs_version() -> Result<String> {
    let out = Command::new("fuse-overlayfs")
        .arg("--version")
        .output()
        .context("fuse-overlayfs not found (apt-get install fuse-overlayfs)")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(text
        .lines()
        .find(|l| l.starts_with("fuse-overlayfs"))
        .unwrap_or("fuse-overlayfs, version unknown")
        .replace(": version", "")
        .trim()
        .to_owned())
}

/// Mounts the layers; every mount lives in its own directory below `dir`.
#[derive(Debug)]
pub struct Mounter {
    dir: PathBuf,
    lowers: Vec<PathBuf>,
    strata: PathBuf,
    strata_options: String,
    log: PathBuf,
    next: Cell<usize>,
}

impl Mounter {
    pub fn new(
        dir: PathBuf,
        lowers: Vec<PathBuf>,
        strata: PathBuf,
        strata_options: String,
        log: PathBuf,
    ) -> Result<Mounter> {
        std::fs::create_dir_all(&dir)?;
        Ok(Mounter {
            dir,
            lowers,
            strata,
            strata_options,
            log,
            next: Cell::new(0),
        })
    }

    /// Mounts a fresh view of the layers with `kind`.
    pub fn mount(&self, kind: Kind) -> Result<Mounted> {
        let n = self.next.replace(self.next.get() + 1);
        let base = self.dir.join(format!("{}-{n}", kind.short()));
        let (upper, work, target) = (base.join("upper"), base.join("work"), base.join("mnt"));
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d)?;
        }
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        let mut options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            upper.display(),
            work.display()
        );
        // The guard exists before the mount, so that whatever fails below is undone.
        let mut mounted = Mounted {
            kind,
            target: target.clone(),
            base,
            servers: Vec::new(),
            done: false,
        };
        let mut cmd = match kind {
            Kind::Kernel => {
                let mut c = Command::new("mount");
                c.args(["-t", "overlay", "overlay", "-o"]);
                c
            }
            Kind::FuseOverlayfs => {
                let mut c = Command::new("fuse-overlayfs");
                c.arg("-o");
                c
            }
            Kind::Strata => {
                if !self.strata_options.is_empty() {
                    options = format!("{options},{}", self.strata_options);
                }
                let mut c = Command::new(&self.strata);
                c.env("STRATA_FUSE_OVERLAY", &self.strata)
                    .env("STRATA_FUSE_LOG", &self.log)
                    .arg("-o");
                c
            }
        };
        sh(cmd.arg(&options).arg(&target))
            .with_context(|| format!("mount {} at {}", kind.name(), target.display()))?;
        let fs_type = mounted_type(&target);
        if fs_type.as_deref() != Some(kind.fs_type()) {
            bail!(
                "{} at {} shows as {fs_type:?} in the mount table, not {}",
                kind.name(),
                target.display(),
                kind.fs_type()
            );
        }
        if let Some(program) = kind.server() {
            mounted.servers = servers(Some(program), &target);
            if mounted.servers.is_empty() {
                bail!(
                    "no {program} process serves {} after mounting",
                    target.display()
                );
            }
        }
        Ok(mounted)
    }

    /// Mounts or server processes still there below the mounts directory (each is a bug of
    /// the harness or of a filesystem); ends and unmounts them.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (point, _) in mount_table()
            .into_iter()
            .filter(|(p, _)| Path::new(p).starts_with(&self.dir))
        {
            found.push(format!("mount left behind at {point}; detached"));
            let _ = Command::new("umount").arg("-l").arg(&point).status();
        }
        for pid in servers(None, &self.dir) {
            found.push(format!("server process {pid} left behind; ended"));
            end(pid, &self.dir);
        }
        found
    }

    /// What the strata servers wrote to their log (warnings and errors), if anything.
    pub fn server_log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut out: Vec<String> = lines
            .iter()
            .take(20)
            .map(|l| format!("strata-fuse-overlay log: {l}"))
            .collect();
        if lines.len() > 20 {
            out.push(format!(
                "strata-fuse-overlay log: ... {} more lines",
                lines.len() - 20
            ));
        }
        out
    }
}

impl Drop for Mounter {
    fn drop(&mut self) {
        for p in self.leftovers() {
            eprintln!("fuse: {p}");
        }
    }
}

/// One mounted view; undone by [`Mounted::unmount`] or when dropped.
#[derive(Debug)]
pub struct Mounted {
    pub kind: Kind,
    pub target: PathBuf,
    base: PathBuf,
    servers: Vec<u32>,
    done: bool,
}

impl Mounted {
    /// Unmounts, waits for the server to exit and removes the directories.
    pub fn unmount(mut self) -> Result<()> {
        self.done = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while mounted_type(&self.target).is_some() {
            match sh(Command::new("umount").arg(&self.target)) {
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => {
                    problems.push(format!("{e:#}; detached it"));
                    let _ = Command::new("umount").arg("-l").arg(&self.target).status();
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        for &pid in &self.servers {
            if !wait_gone(pid, SERVER_EXIT) {
                problems.push(format!(
                    "server {pid} still running {SERVER_EXIT:?} after the unmount; ended it"
                ));
                end(pid, &self.target);
            }
        }
        if self.base.exists() {
            sh(Command::new("rm").arg("-rf").arg(&self.base))?;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(
                "unmounting {} at {}: {}",
                self.kind.name(),
                self.target.display(),
                problems.join("; ")
            )
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.teardown() {
                eprintln!("fuse: {e:#}");
            }
        }
    }
}

/// Writes dirty pages back, then drops the page cache, dentries and inodes.
pub fn drop_caches() -> Result<()> {
    sh(&mut Command::new("sync"))?;
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").context("write /proc/sys/vm/drop_caches")
}

/// (mount point, file system type) of every mount.
fn mount_table() -> Vec<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let (_, after) = l.split_once(" - ")?;
            Some((point.to_owned(), after.split(' ').next()?.to_owned()))
        })
        .collect()
}

/// The type of the topmost mount at `target`, if something is mounted there.
fn mounted_type(target: &Path) -> Option<String> {
    let t = target.to_string_lossy();
    mount_table()
        .into_iter()
        .rev()
        .find(|(p, _)| *p == t)
        .map(|(_, ty)| ty)
}

/// The command line of process `pid` (empty when it is gone or a zombie).
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Whether `args` is a FUSE server (`program`, or either) with an argument at or below `path`.
fn serves(args: &[String], program: Option<&str>, path: &Path) -> bool {
    let Some(name) = args.first().and_then(|a| Path::new(a).file_name()) else {
        return false;
    };
    let name = name.to_string_lossy();
    let is_server = match program {
        Some(p) => name == p,
        None => Kind::ALL
            .iter()
            .filter_map(|k| k.server())
            .any(|p| name == p),
    };
    is_server && args[1..].iter().any(|a| Path::new(a).starts_with(path))
}

/// Processes of FUSE servers (of `program`, or any of ours) serving at or below `path`.
fn servers(program: Option<&str>, path: &Path) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && serves(&cmdline(pid), program, path))
        .collect()
}

/// Waits until process `pid` has exited; false if it is still there after `limit`.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cmdline(pid).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ends server `pid` (TERM, then KILL), as long as it still is a server below `path`.
fn end(pid: u32, path: &Path) {
    for signal in ["-TERM", "-KILL"] {
        if !serves(&cmdline(pid), None, path) {
            return;
        }
        let _ = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status();
        if wait_gone(pid, Duration::from_secs(3)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_recognised_by_program_and_mount_point() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mnt = Path::new("/s/fuse/mounts/strata-3/mnt");
        let strata = args(&[
            "/w/target/release/strata-fuse-overlay",
            "--fd",
            "3",
            "-o",
            "lowerdir=/s/l1",
            "/s/fuse/mounts/strata-3/mnt",
        ]);
        assert!(serves(&strata, Some("strata-fuse-overlay"), mnt));
        assert!(serves(&strata, None, Path::new("/s/fuse/mounts")));
        assert!(!serves(&strata, Some("fuse-overlayfs"), mnt));
        assert!(!serves(
            &strata,
            None,
            Path::new("/s/fuse/mounts/strata-30")
        ));
        let other = args(&["/usr/bin/vim", "/s/fuse/mounts/strata-3/mnt"]);
        assert!(!serves(&other, None, mnt));
    }
}
