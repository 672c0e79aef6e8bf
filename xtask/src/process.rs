//! Running external programs: every command is echoed before it runs, and a failure (cannot
//! start, non-zero exit) becomes an error naming the command line.
//!
//! It does not retry, time out or interpret output; callers decide what output means.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The command line as a user would type it (program and arguments, space separated).
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    eprintln!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` with stdout captured (stderr inherited, stdin closed); fails unless it exits 0.
/// Returns stdout with trailing whitespace removed.
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    eprintln!("$ {line}");
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !out.status.success() {
        bail!("`{line}` failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// `cargo` as invoked us (`$CARGO`), run in the workspace root.
pub fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// Whether this process runs as root (effective UID 0), read from `/proc/self/status`.
pub fn is_root() -> Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("/proc/self/status has no Uid line")?;
    Ok(euid == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_joins_program_and_arguments() {
        let mut cmd = Command::new("cargo");
        cmd.args(["clippy", "--workspace", "--", "-D", "warnings"]);
        assert_eq!(describe(&cmd), "cargo clippy --workspace -- -D warnings");
    }

    #[test]
    fn failing_command_is_an_error_naming_it() {
        let err = run(Command::new("false").arg("--flag")).expect_err("false exits 1");
        assert!(err.to_string().contains("`false --flag` failed"), "{err}");
    }

    #[test]
    fn output_returns_trimmed_stdout() {
        let out = output(Command::new("echo").args(["hello", "world"])).expect("echo runs");
        assert_eq!(out, "hello world");
    }
}
