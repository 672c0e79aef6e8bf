//! What the system says about mounts and processes: the mount table
//! (`/proc/self/mountinfo`) and the processes of ours (FUSE servers, pjdfstest) working below
//! a directory, found by their command lines, and ending them by PID.
//!
//! It ends no process but those: a FUSE server or pjdfstest with an argument below the given
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::mounts::Kind;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug)]
pub struct MountEntry {
    pub point: PathBuf,
    /// `major:minor`.
    pub device: String,
    pub fs_type: String,
}

pub fn mount_table() -> Vec<MountEntry> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(parse_mountinfo).collect()
}

fn parse_mountinfo(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let device = fields.nth(2)?.to_owned();
    let point = unescape_octal(fields.nth(1)?);
    let (_, after) = line.split_once(" - ")?;
    Some(MountEntry {
        point: PathBuf::from(point),
        device,
        fs_type: after.split(' ').next()?.to_owned(),
    })
}

/// Mountinfo's escapes (`\040` for a space).
fn unescape_octal(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
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

/// The suite's program: an earlier run's copy may still be working below the scratch
/// directory.
const SUITE: &str = "pjdfstest";

/// Whether `args` is `program` (or, given none, any FUSE server of ours or the suite) with an
/// argument at or below `path` (its mount point, or the directory it tests).
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
            .chain([SUITE])
            .any(|p| name == p),
    };
    is_server && args[1..].iter().any(|a| Path::new(a).starts_with(path))
}

/// Processes of `program` (or, given none, of any server of ours or the suite) working at or
/// below `path`.
pub fn servers(program: Option<&str>, path: &Path) -> Vec<u32> {
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
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !cmdline(pid).is_empty() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Ends process `pid` (TERM, then KILL), as long as it still is one of ours below `path`.
pub fn end(pid: u32, path: &Path) {
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
    fn mountinfo_lines_give_point_device_and_type() {
        let line =
            "50 43 0:43 / /tmp/a\\040b/mnt rw,relatime - fuse.strata-overlay strata-overlay rw";
        let m = parse_mountinfo(line).expect("valid line");
        assert_eq!(m.point, Path::new("/tmp/a b/mnt"));
        assert_eq!(m.device, "0:43");
        assert_eq!(m.fs_type, "fuse.strata-overlay");
    }

    #[test]
    fn servers_are_recognised_by_program_and_mount_point() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let scratch = Path::new("/w/target/pjdfstest/scratch");
        let strata = args(&[
            "/w/target/release/strata-fuse-overlay",
            "--fd",
            "3",
            "-o",
            "lowerdir=/x",
            "/w/target/pjdfstest/scratch/strata",
        ]);
        assert!(serves(&strata, Some("strata-fuse-overlay"), scratch));
        assert!(serves(&strata, None, scratch));
        assert!(!serves(&strata, Some("fuse-overlayfs"), scratch));
        assert!(!serves(&strata, None, Path::new("/elsewhere")));
        let shell = args(&["/bin/sh", "/w/target/pjdfstest/scratch/strata"]);
        assert!(!serves(&shell, None, scratch));
        let suite = args(&["/t/bin/pjdfstest", "-p", "/w/target/pjdfstest/scratch/fo/t"]);
        assert!(
            serves(&suite, None, scratch),
            "an earlier run's suite is ours to end"
        );
        assert!(!serves(&suite, Some("fuse-overlayfs"), scratch));
    }
}
