//! `exec`: runs a process in a running container with `runtime exec` in the foreground (the
//! engine prepares the command, `Container::prepare_exec`); the runtime handles the terminal
//! with `-t`, and its exit code is the process's.

use std::process::Stdio;

use anyhow::{Context, Result};
use clap::Parser;
use strata_engine_containers::ExecOptions;
use strata_plugin_api::{Host, Outcome};

use crate::context::Ctx;

#[derive(Debug, Parser)]
#[command(name = "strata exec", about = "Run a process in a running container")]
pub struct ExecCmd {
    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set an environment variable KEY=VALUE
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// User (name or UID) and optional group
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Working directory
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Give the process extended privileges (all capabilities)
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn exec(host: &Host, cmd: ExecCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let c = ctx.container(&cmd.container)?;
    // A bare KEY takes its value from this environment, as podman does.
    let env = cmd
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some(_) => e.clone(),
            None => format!("{e}={}", std::env::var(e).unwrap_or_default()),
        })
        .collect();
    let opts = ExecOptions {
        args: cmd.command.clone(),
        env,
        user: cmd.user.clone(),
        workdir: cmd.workdir.clone(),
        tty: cmd.tty,
        detach: cmd.detach,
        privileged: cmd.privileged,
        pid_file: None,
    };
    let mut prepared = c.prepare_exec(&opts)?;
    if !cmd.interactive || cmd.detach {
        prepared.command.stdin(Stdio::null());
    }
    let status = prepared
        .command
        .status()
        .context("run the runtime's exec")?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(if code == 0 {
        Outcome::Ok
    } else {
        Outcome::Exit(code.clamp(0, 255) as u8)
    })
}
