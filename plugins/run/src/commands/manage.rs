//! `start`, `stop`, `kill`, `restart`, `wait`, `rm` and `container cleanup`.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use strata_engine_containers::{Container, StartOptions, Status};

use crate::context::Ctx;
use crate::errors::{is_not_found, kind_of, kinded};

#[derive(Debug, Parser)]
#[command(name = "strata start", about = "Start one or more containers")]
pub struct StartCmd {
    /// Attach to the container's output (and exit with its exit code)
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Forward stdin (with -a)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata stop",
    about = "Stop running containers (stop signal, then SIGKILL)"
)]
pub struct StopCmd {
    /// Seconds to wait before killing (default: the container's --stop-timeout)
    #[arg(short = 't', long = "time", alias = "timeout", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Stop every running container
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Ignore containers that do not exist
    #[arg(short = 'i', long)]
    pub ignore: bool,
    pub containers: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(name = "strata kill", about = "Send a signal to running containers")]
pub struct KillCmd {
    /// Signal to send (name or number)
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(name = "strata restart", about = "Stop and start containers again")]
pub struct RestartCmd {
    /// Seconds to wait before killing
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata wait",
    about = "Wait for containers to exit and print their exit codes"
)]
pub struct WaitCmd {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(name = "strata rm", about = "Remove containers")]
pub struct RmCmd {
    /// Kill running containers first
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove every container
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Ignore containers that do not exist
    #[arg(short = 'i', long)]
    pub ignore: bool,
    pub containers: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata container cleanup",
    about = "Release what an exited container holds (run by its monitor)"
)]
pub struct CleanupCmd {
    pub container: String,
}

pub fn start(host: &Host, cmd: StartCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    if cmd.attach {
        if cmd.containers.len() != 1 {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                "start -a takes one container",
            ));
        }
        let c = ctx.container(&cmd.containers[0])?;
        let client =
            strata_engine_pods::start(&c, super::run::attached(&c))?.expect("attach was asked for");
        let code = super::run::attach_and_finish(&c, client, true)?;
        return Ok(Outcome::Exit(code));
    }
    for name in &cmd.containers {
        let c = ctx.container(name)?;
        match strata_engine_pods::start(&c, StartOptions::detached()).map_err(anyhow::Error::from) {
            Ok(_) => println!("{name}"),
            // podman: starting a running container is not an error.
            Err(e)
                if kind_of(&e) == ErrorKind::FailedPrecondition
                    && e.to_string().contains("already running") =>
            {
                println!("{name}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Outcome::Ok)
}

fn targets(ctx: &Ctx<'_>, names: &[String], all: bool, running_only: bool) -> Result<Vec<String>> {
    if !all {
        if names.is_empty() {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                "name at least one container, or use --all",
            ));
        }
        return Ok(names.to_vec());
    }
    let mut out = Vec::new();
    for c in ctx.containers()? {
        if !running_only || c.state()?.status == Status::Running {
            out.push(c.name().to_owned());
        }
    }
    Ok(out)
}

/// Runs `f` on each container; with `ignore`, missing ones are skipped. Errors are printed
/// per container and the last one decides the outcome, as podman does.
fn each(
    ctx: &Ctx<'_>,
    names: &[String],
    ignore: bool,
    mut f: impl FnMut(&Container<'_>) -> Result<()>,
) -> Result<Outcome> {
    let mut last = None;
    for name in names {
        // `--ignore` is about containers that do not exist, not about failures of the verb.
        let result = match ctx.container(name) {
            Err(e) if ignore && is_not_found(&e) => continue,
            found => found.and_then(|c| f(&c)),
        };
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("strata: error: {name}: {e:#}");
                last = Some(kind_of(&e));
            }
        }
    }
    Ok(match last {
        None => Outcome::Ok,
        Some(k) => Outcome::Exit(k.exit_code()),
    })
}

pub fn stop(host: &Host, cmd: StopCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let names = targets(&ctx, &cmd.containers, cmd.all, true)?;
    each(&ctx, &names, cmd.ignore, |c| {
        Ok(c.stop(Duration::from_secs(
            cmd.time.unwrap_or(c.config.stop_timeout),
        ))?)
    })
}

pub fn kill(host: &Host, cmd: KillCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    each(&ctx, &cmd.containers, false, |c| Ok(c.kill(&cmd.signal)?))
}

pub fn restart(host: &Host, cmd: RestartCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    each(&ctx, &cmd.containers, false, |c| {
        c.stop(Duration::from_secs(
            cmd.time.unwrap_or(c.config.stop_timeout),
        ))?;
        strata_engine_pods::start(c, StartOptions::detached())?;
        Ok(())
    })
}

pub fn wait(host: &Host, cmd: WaitCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    for name in &cmd.containers {
        let c = ctx.container(name)?;
        let st = c.wait(None)?;
        let code = st.and_then(|s| s.exit_code).unwrap_or(-1);
        println!("{code}");
    }
    Ok(Outcome::Ok)
}

pub fn rm(host: &Host, cmd: RmCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let names = targets(&ctx, &cmd.containers, cmd.all, false)?;
    each(&ctx, &names, cmd.ignore, |c| {
        if !cmd.force {
            refuse_cri(c)?;
        }
        Ok(c.remove(cmd.force)?)
    })
}

/// The CRI front end's containers belong to the kubelet: removing one behind its back is
/// refused unless forced (`rm -f`), as CRI-O's containers are in podman.
fn refuse_cri(c: &strata_engine_containers::Container<'_>) -> Result<()> {
    if let Some(rec) = c.record.metadata.get("cri") {
        let pod = rec.get("sandbox").and_then(|s| s.as_str()).unwrap_or("?");
        return Err(crate::errors::kinded(
            strata_plugin_api::ErrorKind::FailedPrecondition,
            format!(
                "container {} is managed by the Kubernetes CRI server (pod sandbox {}); remove it through the kubelet, or use rm -f",
                c.name(),
                &pod[..pod.len().min(12)]
            ),
        ));
    }
    Ok(())
}

pub fn cleanup(host: &Host, cmd: CleanupCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    match ctx.container(&cmd.container) {
        Ok(c) => c.cleanup()?,
        // Already removed (by an attached `run --rm`): nothing left to do.
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(Outcome::Ok)
}
