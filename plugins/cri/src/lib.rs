//! The CRI front end (CRI-O's job) as a plugin: `strata cri serve` is a Kubernetes Container
//! Runtime Interface v1 server (gRPC on a unix socket) over the container engine and the
//! shared store, so images and containers of a Kubernetes node are the same ones `strata
//! images` and `strata ps` show.
//!
//! Where things are: the command line and configuration (`config.rs`), the gRPC server and
//! its socket (`server.rs`), the runtime service's pod sandboxes (`sandbox.rs`: the infra
//! container, the pod's network namespace and CNI network, DNS and hostname files), its
//! containers (`container.rs`: CRI configs turned into engine `ContainerConfig`s, status,
//! exec), resource use from cgroups (`stats.rs`), container events for the evented PLEG
//! (`events.rs`), the image service (`image.rs`), the streaming server for exec, attach and
//! port-forward (`stream/`), and the CRI's own records beside the
//! engine's (`records.rs`). Every RPC runs the engine's blocking calls on tokio's blocking
//! pool (`rpc.rs`: errors become gRPC status codes by their kind).

mod config;
mod container;
mod events;
mod image;
mod image_volume;
mod index;
mod log;
mod newer;
mod records;
mod rpc;
mod runtime;
mod sandbox;
mod server;
mod stats;
mod stream;

use clap::Parser;
use strata_plugin_api::{export_plugin, Command, Host, Outcome};

/// `strata cri ...`
#[derive(Debug, Parser)]
#[command(name = "strata cri", about = "The Kubernetes CRI server (CRI-O's job)")]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Serve the CRI v1 runtime and image services on a unix socket
    Serve(config::ServeArgs),
    /// Print the configuration `serve` would use (TOML)
    Config(config::ServeArgs),
}

fn run(host: &Host, name: &str, args: &[String]) -> Outcome {
    if name != "cri" {
        return Outcome::Error {
            kind: strata_plugin_api::ErrorKind::InvalidArgument,
            message: format!("the cri plugin has no command {name}"),
        };
    }
    let argv = std::iter::once("strata cri".to_owned()).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Outcome::Exit(if e.use_stderr() { 125 } else { 0 });
        }
    };
    let result = match cli.command {
        Sub::Serve(a) => config::CriConfig::load(&a).and_then(|c| server::serve(host, c)),
        Sub::Config(a) => config::CriConfig::load(&a).and_then(|c| {
            print!("{}", toml::to_string_pretty(&c)?);
            Ok(())
        }),
    };
    match result {
        Ok(()) => Outcome::Exit(0),
        Err(e) => Outcome::Error {
            kind: strata_plugin_transfer::errors::kind_of(&e),
            message: format!("{e:#}"),
        },
    }
}

export_plugin! {
    name: "cri",
    version: env!("CARGO_PKG_VERSION"),
    commands: [
        Command { name: "cri", about: "The Kubernetes CRI server: `strata cri serve` (CRI-O's job)" },
    ],
    run: run,
}
