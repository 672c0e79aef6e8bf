//! The copy front end as a strata plugin: skopeo's job. `strata copy SRC DST` moves an image
//! between any two of `docker://`, `oci:`, `oci-archive:`, `docker-archive:`, `dir:` and
//! `store:` (Strata's own store, reached through the host); `inspect-remote`, `list-tags`,
//! `delete`, `sync`, `login` and `logout` work on registries.
//!
//! The transports and the copy engine live in `strata-graph-image` and
//! `strata-graph-registry`; this crate parses arguments, opens the two ends, draws progress and
//! prints results.

mod commands;
mod ends;
mod remote;

use strata_plugin_transfer::progress;

use strata_plugin_api::{export_plugin, Command, Host, Outcome};

fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
    commands::run(host, command, args)
}

export_plugin! {
    name: "copy",
    version: env!("CARGO_PKG_VERSION"),
    commands: [
        Command { name: "copy", about: "Copy an image between registries, layouts, archives and the store" },
        Command { name: "inspect-remote", about: "Show an image's manifest, config and tags without pulling it" },
        Command { name: "list-tags", about: "List a repository's tags" },
        Command { name: "delete", about: "Delete an image from a registry" },
        Command { name: "sync", about: "Copy every tag of a repository" },
        Command { name: "login", about: "Log in to a registry (stores credentials, mode 0600)" },
        Command { name: "logout", about: "Remove stored registry credentials" },
    ],
    run: run,
}
