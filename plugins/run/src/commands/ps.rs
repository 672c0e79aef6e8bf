//! `ps` and `inspect`: what podman shows, as a table or JSON.

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use strata_engine_containers::state::unix_now;
use strata_engine_containers::{Container, State, Status};

use crate::context::Ctx;
use crate::errors::kinded;

#[derive(Debug, Parser)]
#[command(name = "strata ps", about = "List containers (running ones unless -a)")]
pub struct PsCmd {
    /// Show all containers, not only running ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print only IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate IDs and commands
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "strata inspect",
    about = "Show containers or images in detail (JSON)"
)]
pub struct InspectCmd {
    /// What to inspect: container, image, or all (containers first)
    #[arg(short = 't', long = "type", default_value = "all")]
    pub kind: String,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// "5 seconds", "3 minutes", ... as podman writes durations.
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    let (n, unit) = match s {
        0 => return "Less than a second".into(),
        1..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86399 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

pub fn status_text(st: &State) -> String {
    let now = unix_now();
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", human(now - st.started_unix.unwrap_or(now))),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-1".into()),
            human(now - st.finished_unix.unwrap_or(now))
        ),
    }
}

fn ports(c: &Container<'_>) -> String {
    c.config.publish.join(", ")
}

fn json_of(c: &Container<'_>, st: &State, image_names: &str) -> serde_json::Value {
    json!({
        "Id": c.id(),
        "Names": [c.name()],
        "Image": image_names,
        "ImageID": c.config.image_id.trim_start_matches("sha256:"),
        "Command": c.config.args,
        "Created": c.record.created,
        "CreatedAt": st.started_at,
        "State": st.status.as_str(),
        "Status": status_text(st),
        "ExitCode": st.exit_code.unwrap_or(0),
        "Exited": st.status == Status::Exited,
        "ExitedAt": st.finished_unix,
        "StartedAt": st.started_unix,
        "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
        "Ports": c.config.publish,
        "Pod": c.config.pod.clone().unwrap_or_default(),
        "Labels": c.config.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "AutoRemove": c.config.remove,
    })
}

pub fn ps(host: &Host, cmd: PsCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let mut rows = Vec::new();
    for c in ctx.containers()? {
        let st = c.state()?;
        if cmd.all || st.status == Status::Running {
            rows.push((c, st));
        }
    }
    rows.sort_by_key(|(c, _)| std::cmp::Reverse(c.record.created));
    if cmd.quiet {
        for (c, _) in &rows {
            println!("{}", if cmd.no_trunc { c.id() } else { c.short_id() });
        }
        return Ok(Outcome::Ok);
    }
    match cmd.format.as_str() {
        "json" => {
            let v: Vec<_> = rows
                .iter()
                .map(|(c, st)| json_of(c, st, &c.config.image_name))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let now = unix_now();
            let mut table = vec![[
                "CONTAINER ID".to_owned(),
                "IMAGE".into(),
                "COMMAND".into(),
                "CREATED".into(),
                "STATUS".into(),
                "PORTS".into(),
                "NAMES".into(),
            ]];
            for (c, st) in &rows {
                let mut command = c.config.command_line.clone();
                if !cmd.no_trunc && command.chars().count() > 20 {
                    command = command.chars().take(17).collect::<String>() + "...";
                }
                table.push([
                    if cmd.no_trunc {
                        c.id().to_owned()
                    } else {
                        c.short_id().to_owned()
                    },
                    c.config.image_name.clone(),
                    command,
                    format!("{} ago", human(now - c.record.created)),
                    status_text(st),
                    ports(c),
                    c.name().to_owned(),
                ]);
            }
            print_table(&table);
        }
        other => {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!("unknown format {other:?}: use table or json"),
            ))
        }
    }
    Ok(Outcome::Ok)
}

pub fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn inspect_container(c: &Container<'_>) -> Result<serde_json::Value> {
    let st = c.state()?;
    let cfg = &c.config;
    Ok(json!({
        "Id": c.id(),
        "Name": c.name(),
        "Created": c.record.created,
        "Path": cfg.args.first(),
        "Args": cfg.args.get(1..).unwrap_or_default(),
        "State": {
            "Status": st.status.as_str(),
            "Running": st.status == Status::Running,
            "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
            "ConmonPid": st.monitor_pid.unwrap_or(0),
            "ExitCode": st.exit_code.unwrap_or(0),
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
            "Error": st.error.clone().unwrap_or_default(),
        },
        "Image": cfg.image_id,
        "ImageName": cfg.image_name,
        "Rootfs": "",
        "LogPath": c.paths.log(),
        "OCIRuntime": st.runtime.clone().unwrap_or_else(|| cfg.runtime.clone()),
        "HostnamePath": c.paths.dir.join("hostname"),
        "HostsPath": c.paths.dir.join("hosts"),
        "ResolvConfPath": c.paths.dir.join("resolv.conf"),
        "Mounts": cfg.mounts.iter().map(|m| json!({
            "Type": m.kind, "Source": m.source, "Destination": m.destination, "RW": !m.read_only,
        })).collect::<Vec<_>>(),
        "NetworkSettings": {
            "Mode": serde_json::to_value(&cfg.network)?,
            "SandboxKey": st.netns,
            "IPAddress": st.network.as_ref().and_then(|n| n.get("ip")).cloned().unwrap_or(json!("")),
            "Gateway": st.network.as_ref().and_then(|n| n.get("gateway")).cloned().unwrap_or(json!("")),
            "MacAddress": st.network.as_ref().and_then(|n| n.get("mac")).cloned().unwrap_or(json!("")),
            "Ports": cfg.publish,
        },
        "Config": {
            "Hostname": cfg.hostname,
            "User": cfg.user,
            "Env": cfg.env,
            "Cmd": cfg.args,
            "WorkingDir": cfg.workdir,
            "Tty": cfg.tty,
            "OpenStdin": cfg.stdin,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
            "Labels": cfg.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        },
        "HostConfig": {
            "AutoRemove": cfg.remove,
            "Privileged": cfg.privileged,
            "ReadonlyRootfs": cfg.read_only,
            "CapAdd": cfg.cap_add,
            "CapDrop": cfg.cap_drop,
            "Memory": cfg.resources.memory.unwrap_or(0),
            "NanoCpus": cfg.resources.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            "PidsLimit": cfg.resources.pids_limit.unwrap_or(0),
            "NetworkMode": serde_json::to_value(&cfg.network)?,
            "Runtime": cfg.runtime,
            "UsernsMode": cfg.userns,
            "SecurityOpt": security_opts(cfg),
            "Ulimits": cfg.ulimits.iter().map(|u| json!({
                "Name": u.name, "Soft": u.soft, "Hard": u.hard,
            })).collect::<Vec<_>>(),
            // podman's shape: "container:host:size" per range.
            "IDMappings": c.id_map().map(|m| {
                let show = |rs: &[strata_types::IdRange]| {
                    rs.iter()
                        .map(|r| format!("{}:{}:{}", r.inside, r.outside, r.count))
                        .collect::<Vec<_>>()
                };
                serde_json::json!({ "UidMap": show(&m.uids), "GidMap": show(&m.gids) })
            }),
        },
        "Pod": cfg.pod,
    }))
}

/// `--security-opt` values as podman's inspect lists them.
fn security_opts(cfg: &strata_engine_containers::ContainerConfig) -> Vec<String> {
    use strata_engine_containers::spec::SeccompPolicy;
    let mut out = Vec::new();
    match &cfg.security.seccomp {
        SeccompPolicy::Default => {}
        SeccompPolicy::Unconfined => out.push("seccomp=unconfined".to_owned()),
        SeccompPolicy::Profile(_) => out.push("seccomp=<profile>".to_owned()),
    }
    if cfg.security.no_new_privileges {
        out.push("no-new-privileges".to_owned());
    }
    if cfg.security.unmask_all {
        out.push("unmask=ALL".to_owned());
    } else if !cfg.security.unmask.is_empty() {
        out.push(format!("unmask={}", cfg.security.unmask.join(":")));
    }
    out
}

pub fn inspect(host: &Host, cmd: InspectCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let mut out = Vec::new();
    for name in &cmd.names {
        let as_container = if cmd.kind == "image" {
            None
        } else {
            ctx.container(name).ok()
        };
        if let Some(c) = as_container {
            out.push(inspect_container(&c)?);
            continue;
        }
        if cmd.kind != "container" {
            if let Some(img) = crate::images::find_local(&ctx, name)? {
                out.push(super::images::inspect_json(&img)?);
                continue;
            }
        }
        return Err(kinded(
            ErrorKind::NotFound,
            format!("no such object: {name}"),
        ));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(Outcome::Ok)
}
