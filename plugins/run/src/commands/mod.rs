//! The plugin's commands: clap parsing with podman's flag names, and dispatch.

use clap::Parser;
use strata_plugin_api::{Host, Outcome};

pub mod archive;
pub mod exec;
pub mod fs;
pub mod images;
pub mod logs;
pub mod manage;
pub mod pod;
pub mod ps;
pub mod run;
pub mod system;

/// The commands `strata container SUB` accepts besides `cleanup`, `ls` and `list`.
const CONTAINER_COMMANDS: &[&str] = &[
    "run", "create", "start", "stop", "kill", "restart", "wait", "rm", "ps", "exec", "logs",
    "inspect", "diff", "commit", "cp", "export",
];

/// Parses with clap; help and usage errors are printed here (help exits 0, errors 125 as
/// in podman).
fn parse<T: Parser>(name: &str, args: &[String]) -> Result<T, Outcome> {
    let argv = std::iter::once(format!("strata {name}")).chain(args.iter().cloned());
    T::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        Outcome::Exit(if e.use_stderr() { 125 } else { 0 })
    })
}

fn dispatch(
    host: &Host,
    command: &str,
    args: &[String],
) -> Result<anyhow::Result<Outcome>, Outcome> {
    Ok(match command {
        "run" => run::run(host, parse(command, args)?),
        "create" => run::create(host, parse(command, args)?),
        "start" => manage::start(host, parse(command, args)?),
        "stop" => manage::stop(host, parse(command, args)?),
        "kill" => manage::kill(host, parse(command, args)?),
        "restart" => manage::restart(host, parse(command, args)?),
        "wait" => manage::wait(host, parse(command, args)?),
        "rm" => manage::rm(host, parse(command, args)?),
        "ps" => ps::ps(host, parse(command, args)?),
        "exec" => exec::exec(host, parse(command, args)?),
        "logs" => logs::logs(host, parse(command, args)?),
        "inspect" => ps::inspect(host, parse(command, args)?),
        "pull" => images::pull(host, parse(command, args)?),
        "push" => images::push(host, parse(command, args)?),
        "images" => images::images(host, parse(command, args)?),
        "rmi" => images::rmi(host, parse(command, args)?),
        "tag" => images::tag(host, parse(command, args)?),
        "pod" => pod::pod(host, parse(command, args)?),
        "save" => archive::save(host, parse(command, args)?),
        "load" => archive::load(host, parse(command, args)?),
        "export" => archive::export(host, parse(command, args)?),
        "import" => archive::import(host, parse(command, args)?),
        "diff" => fs::diff(host, parse(command, args)?),
        "commit" => fs::commit(host, parse(command, args)?),
        "cp" => fs::cp(host, parse(command, args)?),
        "system" => system::system(host, parse(command, args)?),
        "container" => return container(host, args),
        other => {
            return Err(Outcome::Error {
                kind: strata_plugin_api::ErrorKind::InvalidArgument,
                message: format!("the run plugin has no command {other}"),
            })
        }
    })
}

/// `strata container SUB ...`: podman's long forms (`container ls`, `container rm`, ...) and
/// `container cleanup`, which monitors run when a container ends.
fn container(host: &Host, args: &[String]) -> Result<anyhow::Result<Outcome>, Outcome> {
    let Some((sub, rest)) = args.split_first() else {
        eprintln!("usage: strata container COMMAND [ARGS]  (cleanup, ls, list, or any container command: run, rm, ...)");
        return Err(Outcome::Exit(125));
    };
    match sub.as_str() {
        "cleanup" => Ok(manage::cleanup(host, parse("container cleanup", rest)?)),
        "ls" | "list" => dispatch(host, "ps", rest),
        "container" => Err(Outcome::Exit(125)),
        other if CONTAINER_COMMANDS.contains(&other) => dispatch(host, other, rest),
        other => {
            eprintln!("strata: error: unknown container command {other:?}");
            Err(Outcome::Exit(125))
        }
    }
}

/// Runs one command; errors become one line and their kind's exit code.
pub fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
    match dispatch(host, command, args) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Error {
            kind: crate::errors::kind_of(&e),
            message: format!("{e:#}"),
        },
        Err(outcome) => outcome,
    }
}
