//! `cargo xtask vm -- <command> [args...]`: the command line around [`GuestCommand`]. It
//! hands the host's STRATA_*, RUST_* and CARGO_* variables (not cargo's per-package ones) and
//! any `--env` to the command, prints timings to stderr and exits with the command's status.
//!
//! It adds no behaviour of its own beyond argument handling.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{GuestCommand, DEFAULT_TIMEOUT};
use crate::Workspace;

/// `cargo xtask vm` arguments.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Seconds before the guest is killed.
    #[arg(long, env = "STRATA_VM_TIMEOUT", default_value_t = DEFAULT_TIMEOUT.as_secs())]
    timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 4096)]
    memory_mib: u32,
    /// Guest vCPUs.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Environment for the command: NAME=VALUE, or NAME for the host's value. STRATA_*,
    /// RUST_* and CARGO_* variables of the host (but not cargo's per-package ones) pass anyway.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Working directory of the command (default: the current one).
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Host directory to share read-write at the same path (repeatable).
    #[arg(long = "share-rw", value_name = "DIR")]
    share_rw: Vec<PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `cargo xtask vm -- <command>`: runs it in a guest and exits with its status.
pub fn run_cli(ws: &Workspace, args: VmArgs) -> Result<()> {
    let mut command = GuestCommand::new(args.command)
        .timeout(Duration::from_secs(args.timeout))
        .memory_mib(args.memory_mib)
        .cpus(args.cpus);
    for (name, value) in std::env::vars().filter(|(n, _)| passes_through(n)) {
        command = command.env(name, value);
    }
    for spec in args.env {
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => {
                let value = std::env::var(&spec)
                    .with_context(|| format!("--env {spec}: the host has no {spec} to pass"))?;
                (spec, value)
            }
        };
        command = command.env(name, value);
    }
    if let Some(dir) = args.cwd {
        command = command.cwd(dir);
    }
    for dir in args.share_rw {
        command = command.share_rw(dir);
    }
    let mut stdout = std::io::stdout();
    let exit = command.run(ws, &mut |line| {
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    })?;
    eprintln!(
        "xtask: guest: command started {:.1}s after qemu (kernel uptime {:.1}s), ran {:.1}s; \
         total {:.1}s; exit status {}",
        exit.boot.as_secs_f64(),
        exit.guest_uptime_at_start.as_secs_f64(),
        exit.command.as_secs_f64(),
        exit.total.as_secs_f64(),
        exit.code
    );
    if !exit.success() {
        // Everything is cleaned up by now (the guest's run directory went with `run`).
        std::process::exit(exit.code.clamp(1, 255));
    }
    Ok(())
}

/// Host variables the CLI hands to the guest command unasked.
fn passes_through(name: &str) -> bool {
    // What cargo sets for the package it runs (xtask itself), wrong for any other program.
    const CARGO_PER_PACKAGE: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
    ];
    (name.starts_with("STRATA_") || name.starts_with("RUST_") || name.starts_with("CARGO_"))
        && !CARGO_PER_PACKAGE.iter().any(|p| name.starts_with(p))
        && name != "STRATA_VM_TIMEOUT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_per_package_variables_stay_on_the_host() {
        assert!(passes_through("STRATA_FIXTURES"));
        assert!(passes_through("CARGO_TARGET_DIR"));
        assert!(passes_through("RUST_BACKTRACE"));
        assert!(!passes_through("CARGO_MANIFEST_DIR"));
        assert!(!passes_through("CARGO_PKG_NAME"));
        assert!(!passes_through("HOME"));
    }
}
