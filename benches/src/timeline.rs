//! A process timeline of one command, from the kernel's scheduler tracepoints recorded
//! system-wide by `perf` (fork, exec and exit of every process): when each program the command
//! starts begins, execs and ends, to show where a `strata run`'s wall time goes between
//! Strata's own work and the programs it waits for. Unlike strace it stops no process, so the
//! timings stay close to an untraced run.
//!
//! It records process events only: no CPU samples (for those, `perf record -g` by hand) and no
//! arguments (the kernel's exec event carries the file name only).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::layer::sh;

/// One process the command started (or the command itself).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// When it was forked (the command itself: exec'd), in ms from the command's exec.
    pub start_ms: f64,
    /// When it exec'd its program, if it did.
    pub exec_ms: Option<f64>,
    /// When its last thread exited.
    pub end_ms: Option<f64>,
    /// The program it exec'd, or `fork of <parent>` for a child that exec'd nothing.
    pub program: String,
    /// Its parent's program (empty for the command itself).
    pub parent: String,
}

/// `cmd` run under `program prefix_args... --`, with `cmd`'s arguments and environment.
pub fn under(program: &str, prefix_args: &[&OsStr], cmd: &Command) -> Command {
    let mut c = Command::new(program);
    c.args(prefix_args)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Whether `perf` is installed and works.
pub fn available() -> bool {
    Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Records `cmd` `samples` times (in `dir`) and returns the timeline of the run whose total
/// time is the median one.
pub fn record(dir: &Path, cmd: &Command, samples: usize) -> Result<Vec<Step>> {
    std::fs::create_dir_all(dir)?;
    let mut runs = Vec::new();
    for _ in 0..samples.max(1) {
        runs.push(record_once(dir, cmd)?);
    }
    runs.sort_by(|a, b| total(a).total_cmp(&total(b)));
    let _ = std::fs::remove_file(dir.join("perf.data"));
    Ok(runs.swap_remove(runs.len() / 2))
}

/// The command's own lifetime in a timeline.
pub fn total(steps: &[Step]) -> f64 {
    steps.first().and_then(|s| s.end_ms).unwrap_or(0.0)
}

fn record_once(dir: &Path, cmd: &Command) -> Result<Vec<Step>> {
    let data = dir.join("perf.data");
    let events = [
        "-e",
        "sched:sched_process_fork",
        "-e",
        "sched:sched_process_exec",
        "-e",
        "sched:sched_process_exit",
    ];
    let mut prefix: Vec<&OsStr> = vec![OsStr::new("record"), OsStr::new("-q"), OsStr::new("-a")];
    prefix.extend(events.iter().map(OsStr::new));
    prefix.extend([OsStr::new("-o"), data.as_os_str()]);
    let out = under("perf", &prefix, cmd)
        .stdin(Stdio::null())
        .output()
        .context("cannot run perf record")?;
    if !out.status.success() {
        bail!(
            "perf record of {cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let script = sh(Command::new("perf")
        .args(["script", "-F", "trace:pid,tid,time,event,trace", "-i"])
        .arg(&data))?;
    let program = cmd.get_program().to_string_lossy();
    let steps = parse(&script, &program);
    if steps.is_empty() {
        bail!("perf recorded no exec of {program}");
    }
    Ok(steps)
}

/// A process seen in the trace, keyed by its PID (thread group ID).
struct Proc {
    start: f64,
    exec: Option<f64>,
    end: Option<f64>,
    program: String,
    parent: u32,
}

/// Builds the timeline of the first exec of `program` and its descendants from `perf script`
/// lines such as `15274/15276 61395.714234: sched:sched_process_exit: comm=x pid=15276
/// prio=120 group_dead=false` (PID/TID, time, event, fields).
fn parse(script: &str, program: &str) -> Vec<Step> {
    let mut procs: BTreeMap<u32, Proc> = BTreeMap::new();
    // Forked by a traced process, not yet known to be a process rather than a thread.
    let mut pending: HashMap<u32, (f64, u32)> = HashMap::new();
    let mut t0 = None;
    for line in script.lines() {
        let mut it = line.split_whitespace();
        let (Some(ids), Some(time), Some(event)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Some((pid, tid)) = ids.split_once('/') else {
            continue;
        };
        let (Ok(pid), Ok(tid), Ok(t)) = (
            pid.parse::<u32>(),
            tid.parse::<u32>(),
            time.trim_end_matches(':').parse::<f64>(),
        ) else {
            continue;
        };
        let fields: HashMap<&str, &str> = it.filter_map(|kv| kv.split_once('=')).collect();
        let event = event.trim_end_matches(':');
        // An event of a pending child's own thread group proves it a process.
        if event != "sched:sched_process_exec" {
            if let Some((start, parent)) = pending.remove(&pid) {
                let parent_program = procs
                    .get(&parent)
                    .map(|p| p.program.clone())
                    .unwrap_or_default();
                procs.insert(
                    pid,
                    new_proc(start, None, format!("fork of {parent_program}"), parent),
                );
            }
        }
        match event {
            "sched:sched_process_exec" => {
                let file = fields.get("filename").copied().unwrap_or_default();
                if t0.is_none() && file == program {
                    t0 = Some(t);
                    procs.insert(pid, new_proc(t, Some(t), file.to_owned(), 0));
                } else if let Some((start, parent)) = pending.remove(&pid) {
                    procs.insert(pid, new_proc(start, Some(t), file.to_owned(), parent));
                } else if let Some(p) = procs.get_mut(&pid) {
                    // A forked child exec'ing late; a second exec (crun re-executing itself
                    // from a sealed copy) keeps the first name.
                    if p.exec.is_none() {
                        p.exec = Some(t);
                        p.program = file.to_owned();
                    }
                }
            }
            "sched:sched_process_fork" => {
                let child = fields.get("child_pid").and_then(|c| c.parse().ok());
                if let (Some(child), true) = (child, procs.contains_key(&pid)) {
                    pending.insert(child, (t, pid));
                }
            }
            "sched:sched_process_exit" => {
                if tid != pid {
                    pending.remove(&tid);
                }
                if fields.get("group_dead") == Some(&"true") {
                    if let Some(p) = procs.get_mut(&pid) {
                        p.end = Some(t);
                    }
                }
            }
            _ => {}
        }
    }
    let Some(t0) = t0 else {
        return Vec::new();
    };
    let ms = |t: f64| (t - t0) * 1e3;
    let mut steps: Vec<Step> = procs
        .values()
        .map(|p| Step {
            start_ms: ms(p.start),
            exec_ms: p.exec.map(ms),
            end_ms: p.end.map(ms),
            program: p.program.clone(),
            parent: procs
                .get(&p.parent)
                .map(|q| q.program.clone())
                .unwrap_or_default(),
        })
        .collect();
    steps.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    steps
}

fn new_proc(start: f64, exec: Option<f64>, program: String, parent: u32) -> Proc {
    Proc {
        start,
        exec,
        end: None,
        program,
        parent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_children_and_skips_threads() {
        let script = "\
1/1 10.000000: sched:sched_process_exec: filename=/usr/bin/other pid=1 old_pid=1
10/10 10.100000: sched:sched_process_exec: filename=/bin/strata pid=10 old_pid=10
10/10 10.101000: sched:sched_process_fork: comm=strata pid=10 child_comm=strata child_pid=11
10/11 10.102000: sched:sched_process_exit: comm=strata-netns pid=11 prio=120 group_dead=false
10/10 10.103000: sched:sched_process_fork: comm=strata pid=10 child_comm=strata child_pid=12
12/12 10.104000: sched:sched_process_exec: filename=/usr/bin/crun pid=12 old_pid=12
12/12 10.105000: sched:sched_process_exec: filename=/dev/fd/3 pid=12 old_pid=12
12/12 10.109000: sched:sched_process_exit: comm=crun pid=12 prio=120 group_dead=true
10/10 10.110000: sched:sched_process_fork: comm=strata pid=10 child_comm=strata child_pid=13
13/13 10.111000: sched:sched_process_exit: comm=strata pid=13 prio=120 group_dead=true
10/10 10.120000: sched:sched_process_exit: comm=strata pid=10 prio=120 group_dead=true
";
        let steps = parse(script, "/bin/strata");
        let names: Vec<&str> = steps.iter().map(|s| s.program.as_str()).collect();
        assert_eq!(
            names,
            ["/bin/strata", "/usr/bin/crun", "fork of /bin/strata"]
        );
        assert!((total(&steps) - 20.0).abs() < 1e-6);
        let crun = &steps[1];
        assert!((crun.start_ms - 3.0).abs() < 1e-6);
        assert!((crun.exec_ms.unwrap_or_default() - 4.0).abs() < 1e-6);
        assert!((crun.end_ms.unwrap_or_default() - 9.0).abs() < 1e-6);
        assert_eq!(crun.parent, "/bin/strata");
    }
}
