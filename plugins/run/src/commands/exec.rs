//! `exec`: runs a process in a running container with `runtime exec` in the foreground; the
//! runtime handles the terminal with `-t`, and its exit code is the process's.

use std::process::Stdio;

use anyhow::{Context, Result};
use clap::Parser;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use crate::context::Ctx;
use crate::errors::kinded;
use crate::state::Status;
use crate::stop;

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
    let st = stop::current_state(&ctx, &c)?;
    if st.status != Status::Running {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("container {} is not running", c.info.name),
        ));
    }
    let rt = stop::runtime_of(&ctx, &c, &st)?;
    // The container's own process description is the base: same capabilities, env, cwd.
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(c.paths.spec())?)
        .context("read the container's spec")?;
    let mut process = spec["process"].clone();
    process["args"] = serde_json::json!(cmd.command);
    process["terminal"] = serde_json::json!(cmd.tty);
    if let Some(env) = process["env"].as_array_mut() {
        for e in &cmd.env {
            let kv = match e.split_once('=') {
                Some(_) => e.clone(),
                None => format!("{e}={}", std::env::var(e).unwrap_or_default()),
            };
            let key = kv.split('=').next().unwrap_or_default().to_owned();
            env.retain(|x| x.as_str().and_then(|s| s.split('=').next()) != Some(key.as_str()));
            env.push(serde_json::json!(kv));
        }
    }
    if let Some(w) = &cmd.workdir {
        process["cwd"] = serde_json::json!(w);
    }
    if let Some(u) = &cmd.user {
        let rootfs = spec["root"]["path"].as_str().unwrap_or_default();
        let user = crate::user::resolve(std::path::Path::new(rootfs), u)?;
        process["user"] = serde_json::json!({
            "uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids,
        });
    }
    if cmd.privileged {
        let all: Vec<String> = crate::spec::all_capabilities();
        for set in ["bounding", "effective", "permitted"] {
            process["capabilities"][set] = serde_json::json!(all);
        }
    }
    let file = tempfile::Builder::new()
        .prefix("exec-")
        .suffix(".json")
        .tempfile_in(&c.paths.run_dir)
        .context("write the exec process file")?;
    serde_json::to_writer(file.as_file(), &process)?;
    let mut command = rt.command();
    command.arg("exec").arg("--process").arg(file.path());
    if cmd.tty {
        command.arg("--tty");
    }
    if cmd.detach {
        command.arg("--detach");
    }
    command.arg(c.id());
    if !cmd.interactive || cmd.detach {
        command.stdin(Stdio::null());
    }
    let status = command
        .status()
        .with_context(|| format!("run {} exec", rt.name))?;
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
