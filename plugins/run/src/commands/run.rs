//! `create` and `run`: podman's flags turned into a [`ContainerConfig`], then create, start,
//! and (without `-d`) attach until the container exits with its exit code.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use strata_engine_containers::spec::Ulimit;
use strata_engine_containers::{
    userns, Container, ContainerConfig, MountSpec, NetworkMode, Resources, Security, StartOptions,
};

use crate::attach::{self, AttachOptions};
use crate::context::Ctx;
use crate::errors::kinded;
use crate::images::{self, PullPolicy, RegistryArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// Name of the container (default: its short ID)
    #[arg(long)]
    pub name: Option<String>,
    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set an environment variable: KEY=VALUE, or KEY to copy it from this environment
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount HOST-DIR:CONTAINER-DIR[:ro|rw]
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:OPTS]")]
    pub volume: Vec<String>,
    /// Mount: type=bind,source=DIR,destination=DIR[,ro] or type=tmpfs,destination=DIR[,tmpfs-size=SIZE]
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (name or UID) and optional group: USER[:GROUP]
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Override the image's entrypoint (a command, or a JSON array)
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Container host name (default: the short ID)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Mount the root filesystem read-only (with tmpfs on /tmp, /var/tmp and /run)
    #[arg(long)]
    pub read_only: bool,
    /// Network: bridge (the default for root), none (the default rootless), host, or container:NAME
    #[arg(long, alias = "net", value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a port: [[IP:][HOST-PORT]:]CONTAINER-PORT[/PROTOCOL]
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Add a capability (or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give the container all capabilities and devices access, no masked paths, no seccomp
    #[arg(long)]
    pub privileged: bool,
    /// Security options: seccomp=unconfined|PROFILE.json, no-new-privileges,
    /// unmask=ALL|PATH[:PATH...]
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Resource limits of the process: NAME=SOFT[:HARD] (nofile, nproc, core, ...)
    #[arg(long, value_name = "NAME=LIMIT")]
    pub ulimit: Vec<String>,
    /// Memory limit (bytes, or with b, k, m or g)
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPUs the container may use (e.g. 0.5)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Maximum number of processes (-1 for no limit)
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// User namespace: host (default), auto[:size=N] (a private block of ids from the
    /// "containers" ranges of /etc/subuid and /etc/subgid), keep-id
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,
    /// OCI runtime: crun (default), runc, or a path
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: Option<String>,
    /// Join this pod
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Pull policy: missing, always, never, newer
    #[arg(long, value_enum, default_value_t)]
    pub pull: PullPolicy,
    /// Signal that `stop` sends first (default: the image's, else SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before killing
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub stop_timeout: u64,
    /// Add a label KEY=VALUE
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Print no pull progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The image
    pub image: String,
    /// The command and its arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata create",
    about = "Create a container from an image without starting it"
)]
pub struct CreateCmd {
    #[command(flatten)]
    pub args: CreateArgs,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata run",
    about = "Run a command in a new container",
    long_about = "Run a command in a new container. Without -d, stays attached and exits with the container's exit code; signals are forwarded to it."
)]
pub struct RunCmd {
    /// Run in the background and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Forward signals to the container (default true)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub args: CreateArgs,
}

/// Parses podman's sizes: `64m`, `1g`, `512k`, `100b`, or bytes.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = match t.strip_suffix('b') {
        Some(rest) if !rest.is_empty() => rest,
        _ => t.as_str(),
    };
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size {s:?}: use a number with b, k, m or g"))?;
    if n <= 0.0 {
        bail!("invalid size {s:?}: must be positive");
    }
    Ok((n * mult as f64) as i64)
}

fn parse_volume(v: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => bail!("invalid volume {v:?}: use HOST-DIR:CONTAINER-DIR[:OPTIONS]"),
    };
    if !src.starts_with('/') {
        bail!(
            "invalid volume {v:?}: named volumes are not supported yet; give an absolute host path"
        );
    }
    let mut read_only = false;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" => {} // SELinux relabelling: no SELinux here
            other => options.push(other.to_owned()),
        }
    }
    Ok(MountSpec {
        kind: "bind".into(),
        source: src.into(),
        destination: dst.into(),
        read_only,
        options,
    })
}

fn parse_mount(m: &str) -> Result<MountSpec> {
    let mut spec = MountSpec {
        kind: String::new(),
        source: String::new(),
        destination: String::new(),
        read_only: false,
        options: Vec::new(),
    };
    for kv in m.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => spec.kind = v.to_owned(),
            "source" | "src" => spec.source = v.to_owned(),
            "destination" | "dst" | "target" => spec.destination = v.to_owned(),
            "ro" | "readonly" => spec.read_only = v.is_empty() || v == "true",
            "rw" => spec.read_only = false,
            "tmpfs-size" => spec.options.push(format!("size={v}")),
            "tmpfs-mode" => spec.options.push(format!("mode={v}")),
            "bind-propagation" | "relabel" | "z" | "Z" => {}
            other => bail!("invalid --mount {m:?}: unknown option {other:?}"),
        }
    }
    match spec.kind.as_str() {
        "bind" if spec.source.starts_with('/') => {}
        "bind" => bail!("invalid --mount {m:?}: bind mounts need an absolute source="),
        "tmpfs" => {}
        "" => bail!("invalid --mount {m:?}: type= is required (bind or tmpfs)"),
        other => bail!("invalid --mount {m:?}: type {other:?} is not supported (bind or tmpfs)"),
    }
    if spec.destination.is_empty() {
        bail!("invalid --mount {m:?}: destination= is required");
    }
    Ok(spec)
}

fn env_file(p: &PathBuf) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("read env file {}", p.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match l.split_once('=') {
            Some(_) => Some(l.to_owned()),
            None => std::env::var(l).ok().map(|v| format!("{l}={v}")),
        })
        .collect())
}

/// Sets `KEY=VALUE` in `env`, replacing an earlier value of the same key.
fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or_default().to_owned();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

/// Builds the container config from the flags and the image.
pub fn build_config(ctx: &Ctx<'_>, a: &CreateArgs) -> Result<ContainerConfig> {
    let image = images::for_run(ctx, &a.image, a.pull, &a.registry, a.quiet)?;
    let d = images::defaults(&image)?;
    let entrypoint = match &a.entrypoint {
        None => d.entrypoint.clone(),
        Some(e) if e.trim_start().starts_with('[') => {
            serde_json::from_str(e).with_context(|| format!("invalid --entrypoint JSON {e:?}"))?
        }
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
    };
    // podman: an --entrypoint override drops the image's Cmd.
    let cmd = if !a.command.is_empty() {
        a.command.clone()
    } else if a.entrypoint.is_some() {
        Vec::new()
    } else {
        d.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let mut env = Vec::new();
    for e in d.env {
        set_env(&mut env, e);
    }
    for f in &a.env_file {
        for e in env_file(f)? {
            set_env(&mut env, e);
        }
    }
    for e in &a.env {
        match e.split_once('=') {
            Some(_) => set_env(&mut env, e.clone()),
            None => {
                if let Ok(v) = std::env::var(e) {
                    set_env(&mut env, format!("{e}={v}"));
                }
            }
        }
    }
    let mut mounts = a
        .volume
        .iter()
        .map(|v| parse_volume(v))
        .collect::<Result<Vec<_>>>()?;
    for m in &a.mount {
        mounts.push(parse_mount(m)?);
    }
    // podman's defaults: a bridge for root; slirp4netns for rootless containers, which cannot
    // have a bridge (see rootless.rs), or `none` where slirp4netns cannot open /dev/net/tun.
    let network = match &a.network {
        Some(n) => NetworkMode::parse(n).map_err(|e| kinded(ErrorKind::InvalidArgument, e))?,
        None if ctx.rootless() => strata_engine_containers::rootless::default_network(),
        None => NetworkMode::Bridge,
    };
    if ctx.rootless() && network == NetworkMode::Bridge {
        bail!(kinded(
            ErrorKind::Unsupported,
            "--network bridge needs root (veth pairs, iptables); rootless containers use \
             slirp4netns (the default), none or host"
        ));
    }
    if !a.publish.is_empty() && !matches!(network, NetworkMode::Bridge | NetworkMode::Slirp4netns) {
        bail!(kinded(
            ErrorKind::InvalidArgument,
            "-p/--publish needs --network bridge or slirp4netns"
        ));
    }
    for p in &a.publish {
        strata_engine_network::parse_publish(p)
            .map_err(|e| kinded(ErrorKind::InvalidArgument, e.to_string()))?;
    }
    let userns = userns::parse(a.userns.as_deref().unwrap_or(""), ctx.rootless())?;
    if userns != userns::Mode::Host && a.pod.is_some() {
        bail!(kinded(
            ErrorKind::Unsupported,
            "--userns with --pod: a pod's members share its infra container's namespaces, and \
             pods with their own user namespace are not supported yet"
        ));
    }
    let runtime = match &a.runtime {
        Some(r) => r.clone(),
        None => strata_engine_containers::settings::default_runtime(),
    };
    let mut security = Security::default();
    for opt in &a.security_opt {
        security.apply(opt)?;
    }
    let ulimits = a
        .ulimit
        .iter()
        .map(|u| Ulimit::parse(u))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ContainerConfig {
        image_name: a.image.clone(),
        image_id: image.id.clone(),
        command_line: args.join(" "),
        args,
        env,
        workdir: a.workdir.clone().unwrap_or(d.workdir),
        user: a.user.clone().unwrap_or(d.user),
        hostname: a.hostname.clone().unwrap_or_default(),
        tty: a.tty,
        stdin: a.interactive,
        read_only: a.read_only,
        mounts,
        network,
        publish: a.publish.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        resources: Resources {
            memory: a.memory.as_deref().map(parse_size).transpose()?,
            cpus: a.cpus,
            pids_limit: a.pids_limit,
        },
        userns: a.userns.clone().unwrap_or_default(),
        runtime,
        remove: a.rm,
        pod: a.pod.clone(),
        infra: false,
        stop_signal: a
            .stop_signal
            .clone()
            .unwrap_or(if d.stop_signal.is_empty() {
                "SIGTERM".into()
            } else {
                d.stop_signal
            }),
        stop_timeout: a.stop_timeout,
        labels: a
            .label
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        security,
        ulimits,
        ..ContainerConfig::default()
    })
}

/// Creates the container (its hostname defaults to the short ID, see `Container`).
pub fn create_container<'c>(ctx: &'c Ctx<'_>, a: &CreateArgs) -> Result<Container<'c>> {
    let mut config = build_config(ctx, a)?;
    if let Some(pod) = &a.pod {
        strata_engine_pods::join(&ctx.engine, pod, &mut config)?;
    }
    Ok(ctx.engine.create(a.name.clone(), config, None)?)
}

pub fn create(host: &Host, cmd: CreateCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let c = create_container(&ctx, &cmd.args)?;
    println!("{}", c.id());
    Ok(Outcome::Ok)
}

pub fn run(host: &Host, cmd: RunCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let c = create_container(&ctx, &cmd.args)?;
    if cmd.detach {
        if let Err(e) = strata_engine_pods::start(&c, StartOptions::detached()) {
            if c.config.remove {
                let _ = c.remove(true);
            }
            return Err(e.into());
        }
        println!("{}", c.id());
        return Ok(Outcome::Ok);
    }
    let client = match strata_engine_pods::start(&c, attached(&c)) {
        Ok(client) => client.expect("attach was asked for"),
        Err(e) => {
            if c.config.remove {
                let _ = c.remove(true);
            }
            return Err(e.into());
        }
    };
    let code = attach_and_finish(&c, client, cmd.sig_proxy)?;
    Ok(Outcome::Exit(code))
}

/// Start options for a caller that stays attached (and cleans up after the exit): with `-t`,
/// the container's terminal starts with the size of ours.
pub fn attached(c: &Container<'_>) -> StartOptions {
    let mut opts = StartOptions::attached(true);
    if c.config.tty {
        opts.console_size = attach::window_size();
    }
    opts
}

/// Streams a started container until it ends, cleans up (removing it with `--rm`), tells
/// the monitor, and returns the exit code to exit with.
pub fn attach_and_finish(
    c: &Container<'_>,
    client: strata_engine_monitor::attach::AttachClient,
    sig_proxy: bool,
) -> Result<u8> {
    let signaller = c.signaller()?;
    let opts = AttachOptions {
        tty: c.config.tty,
        stdin: c.config.stdin,
        sig_proxy,
    };
    let (status, client) = attach::attach(client, opts, move |sig| {
        let _ = signaller.send(&attach::signal_name(sig));
    })?;
    let code = match &status {
        Some(s) => s.exit_code,
        None => c.wait(None)?.and_then(|s| s.exit_code).unwrap_or(125),
    };
    c.cleanup()?;
    attach::ack(client);
    Ok(code.clamp(0, 255) as u8)
}
