//! The VM test tier: runs a command of the host inside a throwaway qemu guest that boots
//! Debian's stock kernel, for what the host kernel cannot do (pure cgroup v2, device-mapper).
//! `cargo xtask vm -- <command> [args...]` from the shell; [`GuestCommand`] from other xtask
//! code (the test runner's VM tier, `vmtier.rs`).
//!
//! # Design
//!
//! - **Software emulation (TCG).** The CI and development machines are Firecracker VMs whose
//!   KVM cannot boot a stock kernel, so qemu emulates: `-accel tcg,thread=multi` (one host
//!   thread per vCPU), `-cpu max`, 2 vCPUs and 4 GiB by default, no display (`-display none`
//!   rather than `-nographic`, so no monitor shares the console). Slow, but a real kernel.
//!   qemu boots the kernel's uncompressed ELF through its PVH entry (`vmlinux.rs`), which
//!   saves the 6-8 s the bzImage spends decompressing itself under TCG.
//! - **The host's own root as the guest's root.** Host-built test binaries, the toolchain,
//!   crun, runc, dmsetup and iptables are all used from the host: qemu exports `/` read-only
//!   over virtio-9p and the guest mounts an overlay on it (lower: the 9p root; upper: an ext4
//!   scratch disk, a sparse file made per run), then chroots into it. Paths therefore resolve
//!   as on the host, the guest may write anywhere, and nothing reaches the host. The upper
//!   layer is a real disk rather than tmpfs so that big test data does not eat guest memory,
//!   and `/tmp` is a plain ext4 directory of that disk (not the host's `/tmp`, not an
//!   overlay) so tests can put overlay upper layers and user xattrs there. Host directories
//!   given to [`GuestCommand::share_rw`] are mounted read-write over the overlay at the same
//!   path, for results that must reach the host (privileged-test markers, logs).
//! - **A tiny initramfs.** busybox (static, from the host), the init script (`init.sh`),
//!   `/dev/console` and the kernel modules of [`initramfs::REQUIRED_MODULES`] and
//!   [`initramfs::OPTIONAL_MODULES`] with their dependencies; the cached kernel's whole module
//!   tree is mounted at `/lib/modules/<release>` once the host root is up, so `modprobe` and
//!   the kernel's module autoloading find any module (busybox's modprobe stands in when the
//!   host, whose kernel is monolithic, has no kmod).
//! - **The guest environment.** proc, sysfs, devtmpfs, devpts, `/dev/shm`, mqueue, tmpfs
//!   `/run`, `/tmp` on the scratch disk; **cgroup2 alone at `/sys/fs/cgroup`** with cpu,
//!   memory, pids and io enabled for children (cpuset, hugetlb, rdma, misc too); loopback up,
//!   no network device. The command runs as root, chrooted, in the host's working directory,
//!   with only the environment it is given ([`GuestCommand::env`]; PATH, HOME=/root, USER).
//! - **The result.** init and the command write to a virtio console on qemu's stdout, read
//!   line by line and passed on as lines arrive; the kernel's own console is the emulated
//!   UART (60 KB/s under TCG, too slow for test output) into a file, shown when something
//!   fails. init's marker line carries the exit status (`qemu.rs`). A run without it (panic,
//!   init failure, timeout) is an error; qemu is killed by PID on timeout or early return.
//!
//! # Cache (format 1)
//!
//! ```text
//! $STRATA_VM_CACHE, default <target>/vm/
//! ├── kernel/
//! │   ├── .package                 which image package linux-image-amd64 meant, per apt lists
//! │   └── <release>/               the unpacked linux-image package (never installed)
//! │       ├── boot/vmlinuz-<release>, vmlinux-<release> (its ELF payload, what qemu boots)
//! │       └── lib/modules/<release>/   with modules.dep/alias/symbols from busybox depmod
//! ├── initramfs/<release>-<hash>.cpio   newc, uncompressed; rebuilt when an input changes
//! └── runs/<pid>-<nonce>/          one per running guest, removed afterwards
//!     ├── disk.img                 sparse scratch disk (ext4): overlay upper/work, /tmp
//!     ├── serial.log               the kernel's console
//!     ├── run.conf                 settings init reads
//!     └── cmd.sh                   the command with its cwd and environment
//! ```
//!
//! # Limits
//!
//! The guest kernel is Debian 12's 6.1: no overlay `lowerdir+` (6.8), so code relying on it
//! fails there. The command sees the host's files as they were when it opened them (9p with
//! `cache=loose`), and host container stores' whiteouts (0/0 character devices) would read as
//! whiteouts through the guest's overlay. If xtask itself is killed (SIGKILL), qemu runs on
//! until the guest's watchdog powers it off (timeout + 60 s); the run directory is swept by
//! the next run.
//!
//! It deliberately does not boot the host's kernel, install any kernel package, give the
//! guest a network device, or run anything in the guest but the one command.

mod cli;
mod cpio;
mod guest;
mod initramfs;
mod kernel;
mod packages;
mod qemu;
mod rundir;
mod vmlinux;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::Workspace;

pub use cli::{run_cli, VmArgs};

/// How long a guest may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);
/// The PATH a command gets when the host has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Size of the sparse scratch disk; only what the guest writes takes space.
const DISK_BYTES: u64 = 64 << 30;
/// The guest watchdog fires this long after the host's timeout would have.
const WATCHDOG_SLACK: Duration = Duration::from_secs(60);

/// How a command in the guest ended, and how long things took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuestExit {
    /// The command's exit status (128 + N when signal N killed it, as a shell reports it).
    pub code: i32,
    /// From starting qemu to the command starting.
    pub boot: Duration,
    /// The guest kernel's uptime when the command started.
    pub guest_uptime_at_start: Duration,
    /// The command alone.
    pub command: Duration,
    /// From starting qemu until it exited.
    pub total: Duration,
}

impl GuestExit {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A command to run in a fresh guest (builder). By default it runs in the host's current
/// directory with PATH (the host's), HOME=/root and nothing else in its environment.
#[derive(Debug, Clone)]
pub struct GuestCommand {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    shares: Vec<PathBuf>,
    memory_mib: u32,
    cpus: u32,
}

impl GuestCommand {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> GuestCommand {
        let path = std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        GuestCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            env: vec![
                ("PATH".to_owned(), path),
                ("HOME".to_owned(), "/root".to_owned()),
                ("USER".to_owned(), "root".to_owned()),
            ],
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            shares: Vec::new(),
            memory_mib: 4096,
            cpus: 2,
        }
    }

    /// Sets an environment variable (replacing an earlier value of the same name).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> GuestCommand {
        let name = name.into();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }

    /// The working directory (default: the current directory of this process).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> GuestCommand {
        self.cwd = Some(dir.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> GuestCommand {
        self.timeout = timeout;
        self
    }

    /// Shares the host directory `dir` read-write at the same path: what the command writes
    /// there reaches the host (everywhere else, writes stay in the guest).
    pub fn share_rw(mut self, dir: impl Into<PathBuf>) -> GuestCommand {
        self.shares.push(dir.into());
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> GuestCommand {
        self.memory_mib = mib;
        self
    }

    pub fn cpus(mut self, cpus: u32) -> GuestCommand {
        self.cpus = cpus;
        self
    }

    /// Boots a guest, runs the command and returns how it ended. Console lines of the
    /// command go to `on_line` as they arrive; boot messages go to stderr. An error means the
    /// command's status is unknown (no kernel, boot failure, timeout).
    pub fn run(&self, ws: &Workspace, on_line: &mut dyn FnMut(&str)) -> Result<GuestExit> {
        packages::ensure()?;
        let cache = cache_dir(ws)?;
        let kernel = kernel::ensure(&cache)?;
        let initramfs = initramfs::ensure(&cache, &kernel)?;
        let cwd = match &self.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        let modules_tree = std::fs::canonicalize(&kernel.modules)
            .with_context(|| format!("cannot resolve {}", kernel.modules.display()))?;
        let shares = self
            .shares
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let dir = std::fs::canonicalize(dir)
                    .with_context(|| format!("cannot share {}", dir.display()))?;
                Ok((format!("rw{i}"), dir))
            })
            .collect::<Result<Vec<_>>>()?;

        let nonce = nonce();
        let run_dir = rundir::RunDir::create(&cache, &nonce)?;
        let disk = run_dir.scratch_disk(DISK_BYTES)?;
        guest::write_run_files(
            run_dir.path(),
            &guest::RunConf {
                watchdog_secs: (self.timeout + WATCHDOG_SLACK).as_secs(),
                modules_tree: &modules_tree,
                shares: &shares,
            },
            &guest::CmdScript {
                argv: &self.argv,
                cwd: &cwd,
                env: &self.env,
            },
        )?;
        qemu::boot(
            &qemu::Machine {
                kernel: &kernel,
                initramfs: &initramfs,
                scratch_disk: &disk,
                run_dir: run_dir.path(),
                nonce: &nonce,
                shares: &shares,
                memory_mib: self.memory_mib,
                cpus: self.cpus,
                timeout: self.timeout,
            },
            on_line,
        )
    }
}

/// `$STRATA_VM_CACHE` or `<target>/vm`, created and made absolute.
fn cache_dir(ws: &Workspace) -> Result<PathBuf> {
    let dir = std::env::var_os("STRATA_VM_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.target.join("vm"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// A per-run token for the console markers (unique enough: time and PID).
fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    format!("{:08x}{:x}", nanos, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_replaces_earlier_values() {
        let cmd = GuestCommand::new(["true"])
            .env("HOME", "/tmp")
            .env("A", "1");
        assert_eq!(
            cmd.env.iter().filter(|(n, _)| n == "HOME").count(),
            1,
            "{:?}",
            cmd.env
        );
        assert!(cmd.env.contains(&("HOME".to_owned(), "/tmp".to_owned())));
        assert!(cmd.env.iter().any(|(n, _)| n == "PATH"));
    }
}
