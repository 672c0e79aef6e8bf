//! Booting the guest and following its serial console: the qemu command line, the console
//! stream (echoed line by line as it arrives), the markers init prints, and the timeout.
//!
//! Markers carry the run's nonce, so a command printing `STRATA-VM-EXIT-...` cannot fake
//! its result: `STRATA-VM-READY-<nonce> <uptime>` (the command starts now),
//! `STRATA-VM-EXIT-<nonce> <status>` and `STRATA-VM-ERROR-<nonce> <message>` (init failed).
//! qemu is killed by its PID on timeout and whenever this module returns early; it never
//! outlives the call. It does not retry a failed boot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::kernel::Kernel;
use super::GuestExit;
use crate::process::describe;

/// How long qemu gets to exit after the guest printed its exit marker.
const POWEROFF_GRACE: Duration = Duration::from_secs(30);
/// How much of the kernel's console a failure shows.
const KERNEL_LOG_TAIL: usize = 60;

/// Everything one boot needs.
#[derive(Debug)]
pub struct Machine<'a> {
    pub kernel: &'a Kernel,
    pub initramfs: &'a Path,
    pub scratch_disk: &'a Path,
    /// The run directory (canonical host path), passed to init on the kernel command line.
    pub run_dir: &'a Path,
    pub nonce: &'a str,
    /// Read-write 9p shares: mount tag and host path.
    pub shares: &'a [(String, PathBuf)],
    pub memory_mib: u32,
    pub cpus: u32,
    pub timeout: Duration,
}

impl Machine<'_> {
    /// Where the kernel's serial console is written.
    fn serial_log(&self) -> PathBuf {
        self.run_dir.join("serial.log")
    }

    fn command(&self) -> Result<Command> {
        let run_dir = self
            .run_dir
            .to_str()
            .filter(|s| !s.contains(char::is_whitespace) && !s.contains('"'))
            .with_context(|| {
                format!(
                    "the run directory {} cannot go on a kernel command line (whitespace or \
                     quotes); set STRATA_VM_CACHE to a plain path",
                    self.run_dir.display()
                )
            })?;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max"])
            .args([
                "-smp",
                &self.cpus.to_string(),
                "-m",
                &self.memory_mib.to_string(),
            ])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-monitor", "none", "-no-reboot"])
            // The kernel's console: the emulated UART (about 60 KB/s under TCG), into a file
            // shown when something fails.
            .arg("-serial")
            .arg(format!("file:{}", drive_path(&self.serial_log())?))
            // init's and the command's console: virtio, on qemu's stdout.
            .args([
                "-device",
                "virtio-serial-pci",
                "-chardev",
                "stdio,id=out,signal=off",
            ])
            .args(["-device", "virtconsole,chardev=out"])
            .arg("-kernel")
            .arg(&self.kernel.image)
            .arg("-initrd")
            .arg(self.initramfs)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 quiet mitigations=off strata_run={run_dir} \
                 strata_nonce={}",
                self.nonce
            ))
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,cache=unsafe",
                drive_path(self.scratch_disk)?
            ))
            .args(["-device", "virtio-rng-pci"])
            .args([
                "-virtfs",
                "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            ]);
        for (tag, path) in self.shares {
            cmd.arg("-virtfs").arg(format!(
                "local,path={},mount_tag={tag},security_model=none,multidevs=remap",
                drive_path(path)?
            ));
        }
        Ok(cmd)
    }
}

/// A path inside a qemu option string, where `,` would start the next option.
fn drive_path(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    Ok(s.replace(',', ",,"))
}

/// What one console line means.
#[derive(Debug, PartialEq)]
enum Event<'a> {
    /// The command starts; the guest's uptime in seconds.
    Ready(f64),
    Exit(i32),
    Error(&'a str),
    Output,
}

fn classify<'a>(line: &'a str, nonce: &str) -> Event<'a> {
    let marker = |word: &str| {
        let tag = format!("STRATA-VM-{word}-{nonce}");
        line.find(&tag).map(|at| line[at + tag.len()..].trim())
    };
    if let Some(rest) = marker("READY") {
        return Event::Ready(rest.parse().unwrap_or(0.0));
    }
    if let Some(code) = marker("EXIT").and_then(|rest| rest.parse().ok()) {
        return Event::Exit(code);
    }
    if let Some(message) = marker("ERROR") {
        return Event::Error(message);
    }
    Event::Output
}

/// Kills qemu (by PID) unless it already exited; always reaps it.
#[derive(Debug)]
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Boots `machine` and follows its console: lines before the command starts go to stderr,
/// the command's lines to `on_line`. Returns the command's exit status and timings. When
/// the command's status is unknown, the end of the kernel's console goes to stderr.
pub fn boot(machine: &Machine<'_>, on_line: &mut dyn FnMut(&str)) -> Result<GuestExit> {
    let result = follow(machine, on_line);
    if result.is_ok() {
        return result;
    }
    let log = std::fs::read_to_string(machine.serial_log()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    eprintln!("xtask: the guest kernel's console (last {KERNEL_LOG_TAIL} lines):");
    for l in &lines[lines.len().saturating_sub(KERNEL_LOG_TAIL)..] {
        eprintln!("  {l}");
    }
    // init failed before its output moved to the virtio console.
    let early = lines.iter().find_map(|l| match classify(l, machine.nonce) {
        Event::Error(message) => Some(message.to_owned()),
        _ => None,
    });
    match early {
        Some(message) => bail!("the guest could not run the command: {message}"),
        None => result,
    }
}

fn follow(machine: &Machine<'_>, on_line: &mut dyn FnMut(&str)) -> Result<GuestExit> {
    let mut cmd = machine.command()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let line = describe(&cmd);
    eprintln!("$ {line}");
    let started = Instant::now();
    let mut qemu = Qemu(
        cmd.spawn()
            .with_context(|| format!("cannot start `{line}` (is qemu-system-x86 installed?)"))?,
    );
    let pid = qemu.0.id();
    let stdout = qemu.0.stdout.take().context("qemu's stdout is piped")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        for raw in BufReader::new(stdout).split(b'\n') {
            let Ok(raw) = raw else { break };
            if tx.send(raw).is_err() {
                break;
            }
        }
    });

    let mut deadline = started + machine.timeout;
    let mut ready: Option<(Instant, f64)> = None;
    let mut exit: Option<(Instant, i32)> = None;
    let mut error: Option<String> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(raw) => {
                let text = String::from_utf8_lossy(&raw);
                let text = text.strip_suffix('\r').unwrap_or(&text);
                match classify(text, machine.nonce) {
                    Event::Ready(uptime) => ready = Some((Instant::now(), uptime)),
                    Event::Exit(code) => {
                        exit = Some((Instant::now(), code));
                        deadline = Instant::now() + POWEROFF_GRACE;
                    }
                    Event::Error(message) => error = Some(message.to_owned()),
                    Event::Output if ready.is_some() && exit.is_none() => on_line(text),
                    Event::Output => eprintln!("{text}"),
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if exit.is_some() {
                    eprintln!(
                        "xtask: warning: the guest did not power off; killing qemu (pid {pid})"
                    );
                    break;
                }
                drop(qemu); // kills it
                let _ = reader.join();
                bail!(
                    "the guest timed out after {}s{}; killed qemu (pid {pid})",
                    machine.timeout.as_secs(),
                    if ready.is_some() {
                        " while running the command"
                    } else {
                        " while booting"
                    }
                );
            }
        }
    }
    // qemu closes its stdout a moment before it exits.
    let status = wait_briefly(&mut qemu.0, Duration::from_secs(5));
    drop(qemu);
    let _ = reader.join();
    let total = started.elapsed();
    if let Some(message) = error {
        bail!("the guest could not run the command: {message}");
    }
    let Some((ready_at, uptime)) = ready else {
        bail!(
            "the guest stopped before it could run the command (qemu {})",
            status.map_or("was killed".to_owned(), |s| s.to_string())
        );
    };
    let Some((exit_at, code)) = exit else {
        bail!(
            "the guest stopped without reporting the command's exit status (qemu {}): did the \
             command crash the kernel or power the guest off?",
            status.map_or("was killed".to_owned(), |s| s.to_string())
        );
    };
    Ok(GuestExit {
        code,
        boot: ready_at - started,
        guest_uptime_at_start: Duration::from_secs_f64(uptime.max(0.0)),
        command: exit_at - ready_at,
        total,
    })
}

/// The child's exit status if it exits within `limit`.
fn wait_briefly(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_need_the_nonce() {
        assert_eq!(classify("STRATA-VM-EXIT-abc 3", "abc"), Event::Exit(3));
        assert_eq!(classify("STRATA-VM-EXIT-xyz 0", "abc"), Event::Output);
        assert_eq!(
            classify("STRATA-VM-READY-abc 2.51", "abc"),
            Event::Ready(2.51)
        );
        assert_eq!(
            classify("STRATA-VM-ERROR-abc cannot mount cgroup2", "abc"),
            Event::Error("cannot mount cgroup2")
        );
        assert_eq!(classify("test foo ... ok", "abc"), Event::Output);
    }

    #[test]
    fn markers_are_found_after_kernel_noise_on_the_same_line() {
        assert_eq!(
            classify("[   3.1] virtio_blk: ...STRATA-VM-EXIT-abc 101", "abc"),
            Event::Exit(101)
        );
    }

    #[test]
    fn commas_in_paths_are_escaped_for_qemu() {
        assert_eq!(
            drive_path(Path::new("/a,b/disk.img")).expect("utf-8"),
            "/a,,b/disk.img"
        );
    }
}
