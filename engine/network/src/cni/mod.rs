//! The CNI side of networking: the exec protocol (`exec`) and network configuration lists
//! (`list`), independent of which network Strata builds (see `bridge`) or reads from disk.

pub(crate) mod exec;
pub mod list;

pub use list::{NetworkList, RuntimeConfig, Skipped};
