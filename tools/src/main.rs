//! `strata`: the host binary. Today it carries the plumbing commands over the shared store
//! (`strata storage ...`); front ends (copy, build, run) arrive as plugins.
//!
//! Errors print as one line, `strata: error: ...`, and exit with a code derived from the
//! error's kind (see `strata_types::ErrorKind::exit_code`).
//!
//! A non-root user's commands first move into the user's rootless namespaces
//! ([`rootless::enter`]), right after plugin discovery (whose ownership checks must see the
//! host's uids) and before anything could start a thread; `plugins`, `help` and a bare
//! `--help`/`--version` never do.

mod config;
mod drivers;
mod output;
mod plugins;
mod rootless;
mod storage;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
use strata_types::HasKind;

/// Daemonless container tools over one shared, crash-safe image and container store.
///
/// Front ends (copy, build, run) are plugins: see `strata plugins`.
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
    /// List the plugins found, loaded or refused (and why), and the commands they add.
    Plugins {
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Run a command (default: $SHELL) inside the rootless user and mount namespaces, where
    /// the store's files show with their container owners (podman unshare).
    Unshare {
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
}

/// The id under which a plugin command's arguments are collected.
const PLUGIN_ARGS: &str = "args";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == rootless::PAUSE_COMMAND) {
        return rootless::pause_main(&args);
    }
    let first = first_command(&args);
    // Plain `storage` commands never pay for loading plugins.
    let found = match &first {
        Some(c) if plugins::BUILTIN_COMMANDS.contains(&c.as_str()) => None,
        _ => Some(plugins::Plugins::discover()),
    };
    if needs_namespace(first.as_deref()) {
        if let Err(e) = rootless::enter() {
            return report(&e);
        }
    }
    let mut cmd = Cli::command();
    if let Some(found) = &found {
        for p in &found.loaded {
            for c in &p.commands {
                cmd = cmd.subcommand(
                    clap::Command::new(c.name.clone())
                        .about(format!("{} [plugin {}]", c.about, p.name))
                        .disable_help_flag(true)
                        .disable_version_flag(true)
                        .arg(
                            Arg::new(PLUGIN_ARGS)
                                .num_args(0..)
                                .trailing_var_arg(true)
                                .allow_hyphen_values(true)
                                .value_parser(clap::value_parser!(String)),
                        ),
                );
            }
        }
        cmd = cmd.allow_external_subcommands(true);
    }
    let mut matches = cmd.get_matches_from(args);
    let plugin_call = match (matches.subcommand_name(), &found) {
        (Some(name), Some(_)) if !plugins::BUILTIN_COMMANDS.contains(&name) => {
            matches.remove_subcommand()
        }
        _ => None,
    };
    let global = match config::GlobalArgs::from_arg_matches(&matches) {
        Ok(g) => g,
        Err(e) => e.exit(),
    };
    init_logging(global.log_level.as_deref());
    let result = match (plugin_call, found) {
        (Some((name, mut sub)), Some(found)) => {
            let rest: Vec<String> = match sub.try_remove_many::<String>(PLUGIN_ARGS) {
                Ok(v) => v.map(|v| v.collect()).unwrap_or_default(),
                // An unknown command (allow_external_subcommands) collects its arguments
                // under the empty id, as OS strings.
                Err(_) => sub
                    .try_remove_many::<OsString>("")
                    .ok()
                    .flatten()
                    .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default(),
            };
            return run_plugin(&global, &found, &name, &rest);
        }
        (_, found) => match Cli::from_arg_matches(&matches) {
            Ok(cli) => match cli.command {
                Command::Storage(cmd) => {
                    config::Settings::resolve(&global).and_then(|s| storage::run(&s, cmd))
                }
                Command::Plugins { format } => {
                    list_plugins(&found.unwrap_or_else(plugins::Plugins::discover), format)
                }
                Command::Unshare { command } => rootless::unshare(&command),
            },
            Err(e) => e.exit(),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &anyhow::Error) -> ExitCode {
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

fn run_plugin(
    global: &config::GlobalArgs,
    found: &plugins::Plugins,
    command: &str,
    args: &[String],
) -> ExitCode {
    let Some(plugin) = found.owner(command) else {
        eprintln!("strata: error: {}", found.missing(command));
        return ExitCode::from(2);
    };
    let settings = match config::Settings::resolve(global) {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    let code = plugins::run_command(&settings, plugin, command, args);
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}

fn list_plugins(found: &plugins::Plugins, format: output::Format) -> anyhow::Result<()> {
    match format {
        output::Format::Json => println!("{}", serde_json::to_string_pretty(found)?),
        output::Format::Table => {
            let mut rows = Vec::new();
            for p in &found.loaded {
                let cmds: Vec<&str> = p.commands.iter().map(|c| c.name.as_str()).collect();
                rows.push(vec![
                    p.name.clone(),
                    p.version.clone(),
                    "loaded".into(),
                    cmds.join(","),
                    p.path.display().to_string(),
                ]);
            }
            for r in &found.refused {
                rows.push(vec![
                    "-".into(),
                    "-".into(),
                    format!("refused: {}", r.reason),
                    "-".into(),
                    r.path.display().to_string(),
                ]);
            }
            output::print(
                output::Format::Table,
                &["NAME", "VERSION", "STATUS", "COMMANDS", "PATH"],
                rows,
                &[] as &[()],
            )?;
            let dirs: Vec<String> = found
                .search_path
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            println!("search path: {}", dirs.join(":"));
        }
    }
    Ok(())
}

/// Whether the command works on the store (or is `unshare`), so a rootless user must run it
/// inside the namespaces. Listing plugins and help do not; an unknown command does, which
/// costs at worst an unneeded join.
fn needs_namespace(command: Option<&str>) -> bool {
    !matches!(command, None | Some("plugins" | "help"))
}

/// The first argument that is not a global option (or its value): the command's name.
fn first_command(args: &[OsString]) -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "--root",
        "--runroot",
        "--driver",
        "--storage-opt",
        "--config",
        "--log-level",
        "--max-layer-size",
    ];
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if WITH_VALUE.contains(&a.as_ref()) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a.into_owned());
        }
    }
    None
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
