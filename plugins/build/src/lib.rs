//! The build front end (buildah's job) as a strata plugin: `strata build` turns a
//! Containerfile and a context into an image in the shared store, with podman build's flags.
//!
//! Where the work happens: the Containerfile parser and shell-word expansion
//! (`containerfile/`), the ignore file and source globs (`ignore.rs`), the context's sources
//! and their digests with a stat cache (`sources.rs`), files copied inside roots that cannot
//! be escaped (`tree.rs`, `extract.rs` for ADD's archives), the stages and their steps
//! (`stage.rs`, `instructions.rs`, `copy.rs`, `run_cmd.rs`), RUN steps through the container
//! engine (`run_step.rs`), images recorded in the store (`commit.rs`), and cache keys
//! (`cache.rs`) looked up in the store's build cache index (`store.cache_lookup`). Beside
//! `build`: buildah's working-container verbs (`builder.rs`) and manifest lists
//! (`manifest/`).
//!
//! What it deliberately does not do: run containers itself (the engine does, as for `strata
//! run`), or keep any state of its own beyond the stat cache and cache mounts under
//! `<store root>/build/`: steps and their cache entries are images and index rows in the store.

mod build;
mod builder;
mod cache;
mod commit;
mod config;
pub mod containerfile;
mod copy;
mod extract;
pub mod ignore;
mod instructions;
mod jobs;
mod manifest;
mod options;
mod progress;
mod remote;
mod run_cmd;
mod run_step;
mod sources;
mod squash;
mod stage;
mod tree;

use clap::Parser;
use strata_plugin_api::{export_plugin, Command, Host, Outcome};

/// Parses `args` as `strata NAME ...` with clap (help exits 0, a usage error 125, as podman)
/// and runs `f`; an error becomes one line and its kind's exit code.
fn command<T: Parser>(
    host: &Host,
    name: &str,
    args: &[String],
    f: fn(&Host, T) -> anyhow::Result<Outcome>,
) -> Outcome {
    let argv = std::iter::once(format!("strata {name}")).chain(args.iter().cloned());
    let cmd = match T::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Outcome::Exit(if e.use_stderr() { 125 } else { 0 });
        }
    };
    f(host, cmd).unwrap_or_else(|e| Outcome::Error {
        kind: strata_plugin_transfer::errors::kind_of(&e),
        message: format!("{e:#}"),
    })
}

fn run(host: &Host, name: &str, args: &[String]) -> Outcome {
    match name {
        "build" => command(host, name, args, build::build),
        "builder" => command(host, name, args, builder::run),
        "manifest" => command(host, name, args, manifest::run),
        other => Outcome::Error {
            kind: strata_plugin_api::ErrorKind::InvalidArgument,
            message: format!("the build plugin has no command {other}"),
        },
    }
}

export_plugin! {
    name: "build",
    version: env!("CARGO_PKG_VERSION"),
    commands: [
        Command { name: "build", about: "Build an image from a Containerfile" },
        Command { name: "manifest", about: "Create, annotate, inspect and push manifest lists" },
        Command { name: "builder", about: "Working containers for scripted builds (buildah's from, run, copy, config, commit)" },
    ],
    run: run,
}
