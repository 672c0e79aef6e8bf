//! `exec`: another process in a running container, run by `runtime exec` with a process
//! description derived from the container's own (same capabilities, environment, working
//! directory and seccomp profile) and changed as [`ExecOptions`] say.
//!
//! The engine prepares the runtime's command ([`Container::prepare_exec`]); the caller
//! chooses its stdio (the CLI hands over its terminal, the CRI pipes), runs it and reads its
//! exit code. It deliberately does not attach to or log the process: that is the caller's.

use std::process::Command;

use serde_json::{json, Value};

use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

/// What to run and how. Environment entries are `KEY=VALUE`, added to (and replacing keys
/// of) the container's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// `USER[:GROUP]` resolved in the container's files; `None` keeps the container's user.
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    /// `runtime exec --detach`: the runtime returns once the process runs.
    pub detach: bool,
    /// Every capability (`exec --privileged`).
    pub privileged: bool,
    /// Where the runtime writes the exec'd process's pid (`--pid-file`), so a caller can
    /// signal it (the CRI's ExecSync kills it at its timeout).
    pub pid_file: Option<std::path::PathBuf>,
}

/// A runtime command ready to run, with the process file it reads (kept until dropped).
#[derive(Debug)]
pub struct PreparedExec {
    pub command: Command,
    _process_file: tempfile::NamedTempFile,
}

impl Container<'_> {
    /// The OCI process `runtime exec` runs for `opts`.
    pub fn exec_process(&self, opts: &ExecOptions) -> Result<Value> {
        if opts.args.is_empty() {
            return Err(Error::invalid("exec needs a command"));
        }
        let spec: Value = serde_json::from_slice(
            &std::fs::read(self.paths.spec())
                .with_context(|| format!("read {}", self.paths.spec().display()))?,
        )
        .context("read the container's spec")?;
        let mut process = spec["process"].clone();
        process["args"] = json!(opts.args);
        process["terminal"] = json!(opts.tty);
        if let Some(env) = process["env"].as_array_mut() {
            for kv in &opts.env {
                let key = kv.split('=').next().unwrap_or_default().to_owned();
                env.retain(|x| x.as_str().and_then(|s| s.split('=').next()) != Some(key.as_str()));
                env.push(json!(kv));
            }
        }
        if let Some(w) = &opts.workdir {
            process["cwd"] = json!(w);
        }
        if let Some(u) = &opts.user {
            let rootfs = spec["root"]["path"].as_str().unwrap_or_default();
            let user = crate::user::resolve(std::path::Path::new(rootfs), u)?;
            process["user"] = json!({
                "uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids,
            });
        }
        if opts.privileged {
            let all: Vec<String> = crate::spec::all_capabilities();
            for set in ["bounding", "effective", "permitted"] {
                process["capabilities"][set] = json!(all);
            }
        }
        Ok(process)
    }

    /// The `runtime exec` command for `opts`; refused unless the container is running. Its
    /// stdin is the caller's to set (the CLI closes it without `-i`).
    pub fn prepare_exec(&self, opts: &ExecOptions) -> Result<PreparedExec> {
        let st = self.state()?;
        if st.status != Status::Running {
            return Err(Error::precondition(format!(
                "container {} is not running",
                self.name()
            )));
        }
        let rt = self.runtime(&st)?;
        let process = self.exec_process(opts)?;
        let file = tempfile::Builder::new()
            .prefix("exec-")
            .suffix(".json")
            .tempfile_in(&self.paths.run_dir)
            .context("write the exec process file")?;
        serde_json::to_writer(file.as_file(), &process)?;
        let mut command = rt.command();
        command.arg("exec").arg("--process").arg(file.path());
        if opts.tty {
            command.arg("--tty");
        }
        if opts.detach {
            command.arg("--detach");
        }
        if let Some(p) = &opts.pid_file {
            command.arg("--pid-file").arg(p);
        }
        command.arg(self.id());
        Ok(PreparedExec {
            command,
            _process_file: file,
        })
    }
}
