//! `pod create|ps|start|stop|rm|inspect`: groups of containers sharing network, IPC and UTS
//! namespaces through an infra container (see `pods.rs`).

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;
use strata_plugin_api::{ErrorKind, Host, Outcome};

use strata_engine_containers::{NetworkMode, StartOptions, Status};
use strata_engine_pods::{self as pods, Pod, PodOptions};

use crate::context::Ctx;
use crate::errors::kinded;

#[derive(Debug, Parser)]
#[command(
    name = "strata pod",
    about = "Manage pods: containers sharing network, IPC and UTS namespaces"
)]
pub struct PodCmd {
    #[command(subcommand)]
    pub command: PodSub,
}

#[derive(Debug, Subcommand)]
pub enum PodSub {
    /// Create a pod (and its infra container)
    Create {
        /// Name of the pod (default: pod-<short id>)
        #[arg(long)]
        name: Option<String>,
        /// Host name of the pod's containers (default: the pod's name)
        #[arg(long)]
        hostname: Option<String>,
        /// Network: bridge (default), none or host
        #[arg(long, alias = "net", default_value = "bridge")]
        network: String,
        /// Publish a port of the pod: [[IP:][HOST-PORT]:]CONTAINER-PORT[/PROTOCOL]
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        /// Add a label KEY=VALUE
        #[arg(short = 'l', long = "label")]
        label: Vec<String>,
        /// OCI runtime of the infra container
        #[arg(long)]
        runtime: Option<String>,
    },
    /// List pods
    #[command(alias = "ls", alias = "list")]
    Ps {
        /// Output format: table or json
        #[arg(long, default_value = "table")]
        format: String,
        /// Print only IDs
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Start pods (the infra container, then the members)
    Start {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop pods (the members, then the infra container)
    Stop {
        /// Seconds to wait before killing
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods and their containers
    Rm {
        /// Stop running containers first
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Show pods in detail (JSON)
    Inspect {
        #[arg(required = true)]
        pods: Vec<String>,
    },
}

fn status_of(ctx: &Ctx<'_>, pod: &Pod) -> Result<(String, Vec<serde_json::Value>)> {
    let mut running = 0;
    let mut all = Vec::new();
    let members = pods::members(&ctx.engine, pod)?;
    for c in &members {
        let st = c.state()?;
        if st.status == Status::Running && c.id() != pod.infra {
            running += 1;
        }
        all.push(json!({ "Id": c.id(), "Name": c.name(), "State": st.status.as_str() }));
    }
    let others = members.len().saturating_sub(1);
    let status = match (running, others) {
        (_, 0) => {
            let infra_up = members
                .first()
                .map(|c| {
                    c.state()
                        .map(|s| s.status == Status::Running)
                        .unwrap_or(false)
                })
                .unwrap_or(false);
            if infra_up {
                "Running"
            } else {
                "Created"
            }
        }
        (0, _) => "Exited",
        (r, n) if r == n => "Running",
        _ => "Degraded",
    };
    Ok((status.into(), all))
}

pub fn pod(host: &Host, cmd: PodCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    match cmd.command {
        PodSub::Create {
            name,
            hostname,
            network,
            publish,
            label,
            runtime,
        } => {
            let network =
                NetworkMode::parse(&network).map_err(|e| kinded(ErrorKind::InvalidArgument, e))?;
            if matches!(network, NetworkMode::Container(_)) {
                return Err(kinded(
                    ErrorKind::InvalidArgument,
                    "a pod's network is bridge, none or host",
                ));
            }
            for p in &publish {
                strata_engine_network::parse_publish(p)
                    .map_err(|e| kinded(ErrorKind::InvalidArgument, e.to_string()))?;
            }
            let pod = pods::create(
                &ctx.engine,
                PodOptions {
                    name,
                    hostname,
                    network,
                    publish,
                    labels: label
                        .iter()
                        .map(|l| {
                            let (k, v) = l.split_once('=').unwrap_or((l, ""));
                            (k.to_owned(), v.to_owned())
                        })
                        .collect(),
                    runtime: runtime
                        .unwrap_or_else(strata_engine_containers::settings::default_runtime),
                    ..PodOptions::default()
                },
            )?;
            println!("{}", pod.id);
        }
        PodSub::Ps { format, quiet } => {
            let all = pods::pods(&ctx.engine)?;
            if quiet {
                for p in &all {
                    println!("{}", p.short_id());
                }
                return Ok(Outcome::Ok);
            }
            let mut rows = Vec::new();
            for p in &all {
                let (status, members) = status_of(&ctx, p)?;
                rows.push((p, status, members));
            }
            match format.as_str() {
                "json" => {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|(p, status, members)| {
                            json!({
                                "Id": p.id, "Name": p.name, "Status": status, "Created": p.created,
                                "InfraId": p.infra, "Containers": members,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                "table" => {
                    let now = strata_engine_containers::state::unix_now();
                    let mut table = vec![[
                        "POD ID".to_owned(),
                        "NAME".into(),
                        "STATUS".into(),
                        "CREATED".into(),
                        "INFRA ID".into(),
                        "# OF CONTAINERS".into(),
                    ]];
                    for (p, status, members) in &rows {
                        table.push([
                            p.short_id().to_owned(),
                            p.name.clone(),
                            status.clone(),
                            format!("{} ago", super::ps::human(now - p.created)),
                            p.infra[..12].to_owned(),
                            members.len().to_string(),
                        ]);
                    }
                    super::ps::print_table(&table);
                }
                other => {
                    return Err(kinded(
                        ErrorKind::InvalidArgument,
                        format!("unknown format {other:?}: use table or json"),
                    ))
                }
            }
        }
        PodSub::Start { pods: names } => {
            for name in &names {
                let p = pods::find(&ctx.engine, name)?;
                for c in pods::members(&ctx.engine, &p)? {
                    if c.state()?.status != Status::Running {
                        pods::start(&c, StartOptions::detached())?;
                    }
                }
                println!("{}", p.id);
            }
        }
        PodSub::Stop { time, pods: names } => {
            for name in &names {
                let p = pods::find(&ctx.engine, name)?;
                for c in pods::members(&ctx.engine, &p)?.iter().rev() {
                    c.stop(Duration::from_secs(time.unwrap_or(c.config.stop_timeout)))?;
                }
                println!("{}", p.id);
            }
        }
        PodSub::Rm { force, pods: names } => {
            for name in &names {
                let p = pods::find(&ctx.engine, name)?;
                // A Kubernetes pod sandbox (the CRI front end's record beside the pod)
                // belongs to the kubelet.
                let cri = ctx.engine.root().join("cri/sandboxes").join(&p.id);
                if !force && cri.join("sandbox.json").exists() {
                    return Err(crate::errors::kinded(
                        strata_plugin_api::ErrorKind::FailedPrecondition,
                        format!(
                            "pod {} is a Kubernetes pod sandbox of the CRI server; remove it through the kubelet, or use pod rm -f",
                            p.name
                        ),
                    ));
                }
                pods::remove(&ctx.engine, &p, force)?;
                println!("{}", p.id);
            }
        }
        PodSub::Inspect { pods: names } => {
            let mut out = Vec::new();
            for name in &names {
                let p = pods::find(&ctx.engine, name)?;
                let (status, members) = status_of(&ctx, &p)?;
                out.push(json!({
                    "Id": p.id, "Name": p.name, "Created": p.created, "State": status,
                    "Hostname": p.hostname, "InfraContainerID": p.infra,
                    "SharedNamespaces": ["net", "ipc", "uts"],
                    "Network": serde_json::to_value(&p.network)?, "Ports": p.publish,
                    "Labels": p.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "NumContainers": members.len(), "Containers": members,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(Outcome::Ok)
}
