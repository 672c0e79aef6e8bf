//! The run front end as a strata plugin: podman's command line over the container engine.
//! `strata run IMAGE CMD` pulls the image if needed (through the copy front end's code path),
//! turns podman's flags into a `ContainerConfig`, and has the engine
//! (`strata-engine-containers`, with `strata-engine-pods` for `--pod`) create and start the
//! container under `strata-monitor`; `ps`, `logs`, `exec`, `stop`, `rm` and friends read and
//! change containers through the same engine, so no daemon is needed.
//!
//! This crate is command-line code only: argument parsing (`commands/`), the terminal side of
//! attaching (`attach.rs`), pulling images (`images.rs`), and output. What containers are and
//! how they run lives in the engine crates, shared with the other front ends.

mod attach;
pub mod commands;
mod context;
mod errors;
mod images;

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
