//! The Strata plugin API: how a front end (copy, build, run, or a third party's) plugs into
//! the `strata` host. This is Strata's one public contract; it is small on purpose.
//!
//! A plugin is a `cdylib` that exports one C function, `strata_plugin_entry`, returning a
//! static [`abi::PluginEntry`]: the ABI major version and the table's size (checked by the
//! host before anything else is read), the plugin's name and version, the commands it adds,
//! and its `run` function. Use the [`export_plugin!`] macro rather than writing it by hand:
//!
//! ```no_run
//! use strata_plugin_api::{export_plugin, Command, Host, Outcome};
//!
//! fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
//!     host.info(&format!("hello from {command} with {args:?}"));
//!     Outcome::Ok
//! }
//!
//! export_plugin! {
//!     name: "hello",
//!     version: env!("CARGO_PKG_VERSION"),
//!     commands: [Command { name: "hello", about: "Say hello" }],
//!     run: run,
//! }
//! ```
//!
//! At run time the host hands the plugin a [`Host`]: logging into the host's one log
//! ([`Host::log`], or plain `tracing` macros, which [`export_plugin!`] routes to the host), and
//! typed calls into the host's one store handle ([`Host::store`]). Requests and replies cross
//! the boundary as versioned JSON; bulk data crosses as streams ([`stream`]), never as whole
//! buffers. Panics never cross it: every entry point catches them.
//!
//! What this crate deliberately does not do: parse the plugin's arguments (plugins bring their
//! own parser) or expose Strata's internal crates (plugins see only what [`store`] describes).

pub mod abi;
mod host;
mod logging;
pub mod store;
pub mod stream;

#[doc(hidden)]
pub use host::private as __private;
pub use host::{CallError, Host, LayerOpener, StoreClient};
pub use logging::HostSubscriber;

/// A command a plugin adds to `strata`.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// What users type after `strata` (e.g. `copy`).
    pub name: &'static str,
    /// One line for `strata --help`.
    pub about: &'static str,
}

/// How a plugin's command ended.
#[derive(Debug)]
pub enum Outcome {
    /// Success: the host exits 0.
    Ok,
    /// The command printed its own messages and wants this exit code.
    Exit(u8),
    /// A failure: the host prints `strata: error: MESSAGE` and exits with the kind's code.
    Error { kind: ErrorKind, message: String },
}

/// The stable error kinds that cross the ABI (and map to exit codes and gRPC codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum ErrorKind {
    NotFound = 3,
    AlreadyExists = 4,
    InvalidArgument = 5,
    FailedPrecondition = 6,
    Busy = 7,
    Unsupported = 8,
    Unavailable = 9,
    Corrupt = 10,
    Internal = 125,
}

impl ErrorKind {
    /// The process exit code for this kind (the same table the host uses).
    pub fn exit_code(self) -> u8 {
        self as u32 as u8
    }

    /// The kind for an exit code (unknown codes are `Internal`).
    pub fn from_code(code: u32) -> ErrorKind {
        match code {
            3 => ErrorKind::NotFound,
            4 => ErrorKind::AlreadyExists,
            5 => ErrorKind::InvalidArgument,
            6 => ErrorKind::FailedPrecondition,
            7 => ErrorKind::Busy,
            8 => ErrorKind::Unsupported,
            9 => ErrorKind::Unavailable,
            10 => ErrorKind::Corrupt,
            _ => ErrorKind::Internal,
        }
    }
}
