//! The run front end as a strata plugin: podman's job. `strata run IMAGE CMD` pulls the
//! image if needed (through the copy front end's code path), creates a container in the
//! store, writes an OCI runtime spec, and starts it on an OCI runtime (crun by default, runc
//! with `--runtime`) under `strata-monitor`, which outlives the CLI, keeps the log and
//! records the exit. `ps`, `logs`, `exec`, `stop`, `rm` and friends work from the files the
//! container leaves (see `state.rs`), so no daemon is needed.
//!
//! What is here: containers, `none`/`host`/`bridge`/`container:` networks (CNI plugins) with
//! `-p`, pods (an infra container sharing net, IPC and UTS), images (`pull`, `push`, `images`,
//! `rmi`, `tag`, `save`, `load`, `import`), container filesystems (`cp`, `diff`, `commit`,
//! `export`), `system df|prune|info`, and rootless mode (see ARCHITECTURE.md). Not yet:
//! named volumes, `--userns` modes other than the default, seccomp.

mod attach;
mod cgroups;
pub mod commands;
pub mod config;
mod context;
mod errors;
mod images;
pub mod network;
mod pods;
mod rootless;
mod runtime;
mod settings;
pub mod spec;
mod start;
mod state;
mod stop;
pub mod user;
pub mod userns;
mod userns_root;

use strata_plugin_api::{export_plugin, Command, Host, Outcome};

fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
    commands::run(host, command, args)
}

export_plugin! {
    name: "run",
    version: env!("CARGO_PKG_VERSION"),
    commands: [
        Command { name: "run", about: "Run a command in a new container" },
        Command { name: "create", about: "Create a container without starting it" },
        Command { name: "start", about: "Start containers" },
        Command { name: "stop", about: "Stop running containers" },
        Command { name: "kill", about: "Send a signal to running containers" },
        Command { name: "restart", about: "Restart containers" },
        Command { name: "wait", about: "Wait for containers to exit" },
        Command { name: "rm", about: "Remove containers" },
        Command { name: "ps", about: "List containers" },
        Command { name: "exec", about: "Run a process in a running container" },
        Command { name: "logs", about: "Show a container's output" },
        Command { name: "inspect", about: "Show containers or images in detail" },
        Command { name: "pull", about: "Pull an image from a registry" },
        Command { name: "push", about: "Push an image to a registry" },
        Command { name: "images", about: "List images" },
        Command { name: "rmi", about: "Remove images" },
        Command { name: "tag", about: "Add names to an image" },
        Command { name: "pod", about: "Manage pods (containers sharing network, IPC and UTS)" },
        Command { name: "save", about: "Save an image to a docker-archive or oci-archive file" },
        Command { name: "load", about: "Load images from a docker-archive or oci-archive file" },
        Command { name: "export", about: "Export a container's root filesystem as a tar archive" },
        Command { name: "import", about: "Make an image of a root filesystem tarball" },
        Command { name: "diff", about: "List the files a container added, changed or deleted" },
        Command { name: "commit", about: "Make an image of a container's changes" },
        Command { name: "cp", about: "Copy files between a container and the host" },
        Command { name: "system", about: "Disk usage, prune, and system information" },
        Command { name: "container", about: "Manage containers (podman's long forms, and cleanup)" },
    ],
    run: run,
}
