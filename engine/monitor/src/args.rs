//! The `strata-monitor` command line, as a struct both sides share: [`MonitorArgs::to_argv`]
//! builds it for [`crate::launch()`], [`MonitorArgs::parse`] reads it in the monitor.
//!
//! Every option is a `--flag value` pair except the `--terminal` and `--stdin` switches;
//! `--runtime-arg` and `--exit-command-arg` repeat. There is no `--help`: the monitor is
//! plumbing started by front ends, documented here.
//!
//! ```text
//! --id ID  --bundle DIR  --runtime PATH  [--runtime-arg ARG]...  --state-dir DIR
//! --log-path FILE  [--log-max-size BYTES]  [--terminal]  [--stdin]  [--sync-fd N]
//! [--exit-command PATH [--exit-command-arg ARG]...]  [--exit-delay-ms N]
//! ```

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

/// The default `--log-max-size`: 10 MiB.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;

/// The default `--exit-delay-ms`: one minute.
pub const DEFAULT_EXIT_DELAY: Duration = Duration::from_secs(60);

/// Everything a monitor needs to know about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArgs {
    /// The container ID, passed to the runtime.
    pub id: String,
    /// The OCI bundle directory (with `config.json`).
    pub bundle: PathBuf,
    /// The OCI runtime binary (crun or runc); a bare name is looked up in `PATH`.
    pub runtime: PathBuf,
    /// Global runtime arguments placed before the subcommand, e.g. `--root /run/strata/crun`.
    pub runtime_args: Vec<OsString>,
    /// The container's volatile state directory; it must exist.
    pub state_dir: PathBuf,
    /// The container log (CRI format).
    pub log_path: PathBuf,
    /// Rotate the log when it would exceed this many bytes; 0 never rotates.
    pub log_max_size: u64,
    /// Give the container a terminal (`process.terminal` must be true in the bundle).
    pub terminal: bool,
    /// Keep a stdin pipe (or the terminal's input) open for attach clients.
    pub stdin: bool,
    /// The program to run after the container exited, unless a cleanup client acknowledged.
    pub exit_command: Option<PathBuf>,
    /// Arguments for `exit_command`.
    pub exit_command_args: Vec<OsString>,
    /// How long to wait for a cleanup-owning attach client's acknowledgement.
    pub exit_delay: Duration,
    /// `--start`: create and start in one runtime call (`run --detach`) instead of `create`,
    /// leaving `start` to the caller. The caller must not miss output: it attaches first
    /// (see `attach_fd`) or only reads the log.
    pub start: bool,
    /// `--attach-fd N`: an inherited, already connected attach socket, served as the first
    /// client from before the container exists (see `launch::launch_attached`).
    pub attach_fd: Option<RawFd>,
}

/// A malformed monitor command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("unknown monitor option {0:?}")]
    Unknown(OsString),
    #[error("monitor option {0} needs a value")]
    MissingValue(&'static str),
    #[error("monitor option {flag} wants a number, not {value:?}")]
    NotANumber { flag: &'static str, value: OsString },
    #[error("monitor option {0} is required")]
    Required(&'static str),
}

impl strata_types::HasKind for ArgsError {
    fn kind(&self) -> strata_types::ErrorKind {
        strata_types::ErrorKind::InvalidArgument
    }
}

impl MonitorArgs {
    /// Arguments with the defaults for everything optional (no terminal, no stdin, no exit
    /// command, 10 MiB log limit, one-minute exit delay).
    pub fn new(
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        runtime: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        log_path: impl Into<PathBuf>,
    ) -> MonitorArgs {
        MonitorArgs {
            id: id.into(),
            bundle: bundle.into(),
            runtime: runtime.into(),
            runtime_args: Vec::new(),
            state_dir: state_dir.into(),
            log_path: log_path.into(),
            log_max_size: DEFAULT_LOG_MAX_SIZE,
            terminal: false,
            stdin: false,
            exit_command: None,
            exit_command_args: Vec::new(),
            exit_delay: DEFAULT_EXIT_DELAY,
            start: false,
            attach_fd: None,
        }
    }

    /// The command line for these arguments (without the program name), with `--sync-fd`
    /// when given.
    pub fn to_argv(&self, sync_fd: Option<RawFd>) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        let mut pair = |flag: &str, value: &OsStr| {
            argv.push(flag.into());
            argv.push(value.to_owned());
        };
        pair("--id", OsStr::new(&self.id));
        pair("--bundle", self.bundle.as_os_str());
        pair("--runtime", self.runtime.as_os_str());
        for arg in &self.runtime_args {
            pair("--runtime-arg", arg);
        }
        pair("--state-dir", self.state_dir.as_os_str());
        pair("--log-path", self.log_path.as_os_str());
        pair("--log-max-size", OsStr::new(&self.log_max_size.to_string()));
        if let Some(fd) = sync_fd {
            pair("--sync-fd", OsStr::new(&fd.to_string()));
        }
        if let Some(cmd) = &self.exit_command {
            pair("--exit-command", cmd.as_os_str());
        }
        for arg in &self.exit_command_args {
            pair("--exit-command-arg", arg);
        }
        pair(
            "--exit-delay-ms",
            OsStr::new(&self.exit_delay.as_millis().to_string()),
        );
        if let Some(fd) = self.attach_fd {
            pair("--attach-fd", OsStr::new(&fd.to_string()));
        }
        if self.terminal {
            argv.push("--terminal".into());
        }
        if self.stdin {
            argv.push("--stdin".into());
        }
        if self.start {
            argv.push("--start".into());
        }
        argv
    }

    /// Parses a command line (without the program name) into the arguments and the
    /// `--sync-fd`, if any.
    pub fn parse(
        argv: impl IntoIterator<Item = OsString>,
    ) -> Result<(MonitorArgs, Option<RawFd>), ArgsError> {
        let mut args = MonitorArgs::new("", "", "", "", "");
        let (mut id, mut bundle, mut runtime, mut state_dir, mut log_path) =
            (None, None, None, None, None);
        let mut sync_fd = None;
        let mut argv = argv.into_iter();
        while let Some(flag) = argv.next() {
            let mut value = |name: &'static str| argv.next().ok_or(ArgsError::MissingValue(name));
            match flag.to_str() {
                Some("--terminal") => args.terminal = true,
                Some("--stdin") => args.stdin = true,
                Some("--start") => args.start = true,
                Some("--attach-fd") => {
                    args.attach_fd = Some(number("--attach-fd", value("--attach-fd")?)?);
                }
                Some("--id") => id = Some(value("--id")?.to_string_lossy().into_owned()),
                Some("--bundle") => bundle = Some(PathBuf::from(value("--bundle")?)),
                Some("--runtime") => runtime = Some(PathBuf::from(value("--runtime")?)),
                Some("--runtime-arg") => args.runtime_args.push(value("--runtime-arg")?),
                Some("--state-dir") => state_dir = Some(PathBuf::from(value("--state-dir")?)),
                Some("--log-path") => log_path = Some(PathBuf::from(value("--log-path")?)),
                Some("--log-max-size") => {
                    args.log_max_size = number("--log-max-size", value("--log-max-size")?)?;
                }
                Some("--sync-fd") => sync_fd = Some(number("--sync-fd", value("--sync-fd")?)?),
                Some("--exit-command") => {
                    args.exit_command = Some(PathBuf::from(value("--exit-command")?));
                }
                Some("--exit-command-arg") => {
                    args.exit_command_args.push(value("--exit-command-arg")?);
                }
                Some("--exit-delay-ms") => {
                    let ms = number("--exit-delay-ms", value("--exit-delay-ms")?)?;
                    args.exit_delay = Duration::from_millis(ms);
                }
                _ => return Err(ArgsError::Unknown(flag)),
            }
        }
        args.id = id.ok_or(ArgsError::Required("--id"))?;
        args.bundle = bundle.ok_or(ArgsError::Required("--bundle"))?;
        args.runtime = runtime.ok_or(ArgsError::Required("--runtime"))?;
        args.state_dir = state_dir.ok_or(ArgsError::Required("--state-dir"))?;
        args.log_path = log_path.ok_or(ArgsError::Required("--log-path"))?;
        Ok((args, sync_fd))
    }
}

fn number<T: std::str::FromStr>(flag: &'static str, value: OsString) -> Result<T, ArgsError> {
    value
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or(ArgsError::NotANumber { flag, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(items: &[&str]) -> Vec<OsString> {
        items.iter().map(OsString::from).collect()
    }

    #[test]
    fn argv_round_trips() {
        let mut args = MonitorArgs::new("c1", "/b", "crun", "/run/s", "/var/log/c1.log");
        args.runtime_args = os(&["--root", "/run/strata/crun"]);
        args.log_max_size = 0;
        args.terminal = true;
        args.stdin = true;
        args.exit_command = Some("/usr/bin/strata".into());
        args.exit_command_args = os(&["container", "cleanup", "--id=c1"]);
        args.exit_delay = Duration::from_millis(1500);
        let (back, fd) = MonitorArgs::parse(args.to_argv(Some(7))).expect("parse");
        assert_eq!(back, args);
        assert_eq!(fd, Some(7));

        let plain = MonitorArgs::new("c2", "/b", "runc", "/s", "/l");
        assert_eq!(
            MonitorArgs::parse(plain.to_argv(None)).expect("parse"),
            (plain, None)
        );
    }

    #[test]
    fn rejects_bad_command_lines() {
        let base = ["--id", "c", "--bundle", "/b", "--runtime", "crun"];
        assert_eq!(
            MonitorArgs::parse(os(&base)),
            Err(ArgsError::Required("--state-dir"))
        );
        assert_eq!(
            MonitorArgs::parse(os(&["--id"])),
            Err(ArgsError::MissingValue("--id"))
        );
        assert_eq!(
            MonitorArgs::parse(os(&["--bogus"])),
            Err(ArgsError::Unknown("--bogus".into()))
        );
        assert_eq!(
            MonitorArgs::parse(os(&["--sync-fd", "three"])),
            Err(ArgsError::NotANumber {
                flag: "--sync-fd",
                value: "three".into()
            })
        );
    }
}
