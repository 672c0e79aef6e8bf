//! `strata`: the host binary. Today it carries the plumbing commands over the shared store
//! (`strata storage ...`); front ends (copy, build, run) arrive as plugins.
//!
//! Errors print as one line, `strata: error: ...`, and exit with a code derived from the
//! error's kind (see `strata_graph_types::ErrorKind::exit_code`).

mod config;
mod drivers;
mod output;
mod storage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strata_graph_types::HasKind;

/// Daemonless container tools over one shared, crash-safe image and container store.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: config::GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Low-level commands over the store (images, layers, containers, gc, fsck).
    #[command(subcommand)]
    Storage(storage::StorageCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_level.as_deref());
    let result = match cli.command {
        Command::Storage(cmd) => {
            config::Settings::resolve(&cli.global).and_then(|s| storage::run(&s, cmd))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: multi-line messages (e.g. TOML parse reports) are folded.
            let msg: Vec<String> = e
                .chain()
                .map(|c| {
                    c.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            eprintln!("strata: error: {}", dedup_chain(&msg));
            let code = e
                .chain()
                .find_map(|c| {
                    c.downcast_ref::<strata_graph_store::StoreError>()
                        .map(|s| s.kind().exit_code())
                })
                .unwrap_or(125);
            ExitCode::from(u8::try_from(code).unwrap_or(125))
        }
    }
}

/// Joins an error chain on one line, dropping links already contained in the previous one.
fn dedup_chain(msgs: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for m in msgs {
        if out.last().is_some_and(|prev| prev.contains(m.as_str())) {
            continue;
        }
        out.push(m);
    }
    out.join(": ")
}

fn init_logging(level: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.unwrap_or("warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
