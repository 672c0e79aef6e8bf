//! Errors with a kind: what crosses back to the host as an exit code (the helpers every
//! front end shares, `strata_plugin_transfer::errors`).

pub use strata_plugin_transfer::errors::{call, is_not_found, kind_of, kinded};
