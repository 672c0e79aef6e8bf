//! A container's live state, the files that hold it, and how its truth is worked out.
//!
//! ```text
//! <store root>/containers/<id>/    (persistent; made and removed by the store)
//! ├── config.json                  the OCI bundle's spec (rootfs is the store's mount point)
//! ├── state.json                   State, format 1, replaced atomically
//! ├── lock                         flock held by whoever changes the state
//! ├── ctr.log (+ ctr.log.1)        the container's output, CRI log format (strata-monitor)
//! └── hosts, hostname, resolv.conf bind-mounted into the container
//! <runroot>/containers/<id>/       (volatile; gone after a reboot)
//! ├── attach                       the monitor's socket
//! ├── monitor.pid, pid             the monitor's and the container's pids
//! └── exit                         written by the monitor when the container ends
//! ```
//!
//! `state.json` says what the front end last did. The monitor's exit file and the liveness of
//! the monitor process (pid and start time) say what happened since: [`State::refresh`]
//! folds them in, so `ps` is truthful after a killed CLI, a killed monitor or a reboot.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created in the store, never started (or cleaned up after a failed start).
    #[default]
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    /// The monitor's start time (clock ticks since boot, /proc/PID/stat field 22), so a
    /// recycled pid is not mistaken for it.
    pub monitor_start: Option<u64>,
    /// The runtime that runs it (name), for `stop`/`kill` after the config changed.
    pub runtime: Option<String>,
    /// RFC 3339 times and unix seconds.
    pub started_at: Option<String>,
    pub started_unix: Option<i64>,
    pub finished_at: Option<String>,
    pub finished_unix: Option<i64>,
    pub exit_code: Option<i32>,
    /// Why the exit code is unknown, or what went wrong (shown by `inspect`).
    pub error: Option<String>,
    /// The pinned network namespace, if the container has its own.
    pub netns: Option<String>,
    /// The bridge attachment (address, gateway), if any.
    pub network: Option<serde_json::Value>,
    /// Set once the runtime record, network and mount are gone after an exit.
    pub cleaned: bool,
}

/// The paths of one container's files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    pub run_dir: PathBuf,
}

impl Paths {
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("ctr.log")
    }
    pub fn spec(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}

/// An exclusive lock on one container's state, released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

pub fn lock(paths: &Paths) -> Result<Lock> {
    Ok(Lock {
        _file: lock_file(&paths.lock())?,
    })
}

/// Opens (creating it if needed) and exclusively `flock`s `path`; the lock goes with the file.
/// The kernel releases it when its holder dies, so a killed process never leaves it held.
pub fn lock_file(path: &std::path::Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("lock {}", path.display()))?;
    Ok(file)
}

impl State {
    pub fn load(paths: &Paths) -> Result<State> {
        match std::fs::read(paths.state()) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("parse {}", paths.state().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("read {}", paths.state().display())),
        }
    }

    /// Replaces the state file atomically (a crash leaves the old or the new one).
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let tmp = paths
            .dir
            .join(format!(".state.json.{}.tmp", std::process::id()));
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(self)?)?;
        std::fs::rename(&tmp, paths.state())
            .with_context(|| format!("replace {}", paths.state().display()))?;
        Ok(())
    }

    /// Folds in what happened since the state was saved; returns whether it changed. The
    /// runtime's `state` is asked only when the monitor is gone without an exit file.
    pub fn refresh(&mut self, paths: &Paths, runtime_alive: impl FnOnce() -> Option<bool>) -> bool {
        if self.status != Status::Running {
            return false;
        }
        if let Ok(Some(exit)) = strata_engine_monitor::exitfile::read_exit(&paths.run_dir) {
            self.status = Status::Exited;
            self.exit_code = Some(exit.exit_code);
            self.finished_at = Some(exit.finished_at.clone());
            self.finished_unix = Some((exit.finished_at_unix_nanos / 1_000_000_000) as i64);
            return true;
        }
        if self.monitor_alive() {
            return false;
        }
        // The monitor is gone and left no exit file: killed, or the machine rebooted.
        match runtime_alive() {
            Some(true) => {
                if self.error.is_none() {
                    self.error = Some("the monitor process is gone; output is no longer logged and the exit code will be unknown".into());
                    return true;
                }
                false
            }
            _ => {
                self.status = Status::Exited;
                self.exit_code = None;
                self.error = Some(
                    "the monitor process ended before the container; its exit code is unknown"
                        .into(),
                );
                let now = now();
                self.finished_at = Some(now.0);
                self.finished_unix = Some(now.1);
                true
            }
        }
    }

    pub fn monitor_alive(&self) -> bool {
        match (self.monitor_pid, self.monitor_start) {
            (Some(pid), Some(start)) => process_start(pid) == Some(start),
            _ => false,
        }
    }
}

/// A process's start time (field 22 of /proc/PID/stat), or `None` if it is gone (zombies
/// count as gone).
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Now, as RFC 3339 (UTC, nanoseconds) and unix seconds.
pub fn now() -> (String, i64) {
    (
        strata_engine_monitor::timestamp::timestamp_now(),
        unix_now(),
    )
}

/// Now, in unix seconds (what records and listings compare ages with).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_found_and_dead_pids_are_not() {
        let me = std::process::id() as i32;
        assert!(process_start(me).is_some());
        assert_eq!(process_start(i32::MAX), None);
    }

    #[test]
    fn a_running_state_without_monitor_or_exit_file_becomes_exited() {
        let d = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            dir: d.path().join("d"),
            run_dir: d.path().join("r"),
        };
        std::fs::create_dir_all(&paths.dir).expect("dir");
        std::fs::create_dir_all(&paths.run_dir).expect("run dir");
        let mut s = State {
            status: Status::Running,
            monitor_pid: Some(i32::MAX),
            monitor_start: Some(1),
            ..State::default()
        };
        assert!(s.refresh(&paths, || Some(false)));
        assert_eq!(s.status, Status::Exited);
        assert_eq!(s.exit_code, None);
        assert!(s.error.as_deref().is_some_and(|e| e.contains("monitor")));
        s.save(&paths).expect("save");
        assert_eq!(State::load(&paths).expect("load").status, Status::Exited);
    }

    #[test]
    fn a_container_that_outlived_its_monitor_stays_running() {
        let d = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            dir: d.path().to_owned(),
            run_dir: d.path().to_owned(),
        };
        let mut s = State {
            status: Status::Running,
            ..State::default()
        };
        assert!(s.refresh(&paths, || Some(true)));
        assert_eq!(s.status, Status::Running);
        assert!(s.error.is_some());
    }
}
