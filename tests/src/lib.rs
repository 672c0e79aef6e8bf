//! Test support shared by every crate's tests: the privileged-tier gate and its run markers,
//! and the black-box CLI harness with its helpers (fixture lookup, hand-made OCI layouts and
//! tars, directory-tree comparison).
//!
//! Privileged tests (real mounts, FUSE, btrfs, user namespaces, runtimes) call
//! [`require_privileged`] first. It never lets a test pass by skipping:
//! - when the run was explicitly told to leave privileged tests out (`STRATA_SKIP_PRIVILEGED=1`),
//!   it returns `false` and the test returns early, printing that it was left out;
//! - otherwise, if the process is not root, it panics with a message saying what is needed;
//! - otherwise it writes a marker file named after the test into `$STRATA_PRIVILEGED_MARKERS`
//!   (default `<target>/privileged-markers`), so CI can prove the privileged tier really ran.
//!
//! The CLI tests themselves live in `tests/tests/*.rs`.

pub mod buildah;
pub mod cli;
pub mod containerd;
pub mod containers;
pub mod cri;
pub mod fixtures;
pub mod layout;
mod privileged;
pub mod probe;
pub mod registry;
pub mod streaming;
pub mod tarball;
pub mod tree;
pub mod users;

pub use cli::Strata;
pub use layout::{Compression, LayerSpec, Layout, LayoutBuilder};
pub use privileged::{markers_dir, require_kernel, require_privileged, KernelFeature};
pub use tarball::{EntrySpec, EntryType, TarBuilder};
