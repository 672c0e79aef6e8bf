//! Strata's FUSE overlay filesystem, served by `strata-fuse-overlay`.
//!
//! It gives the overlay driver's layer directories (same whiteouts, same opaque markers, same
//! upper directory format) overlay semantics without kernel overlayfs: for rootless hosts where
//! kernel overlay in a user namespace is unusable, and for containers whose user-namespace map
//! differs from the image's owners, which it shifts itself (`uidmapping`/`gidmapping`) so the
//! image is never chowned or copied. `squash_to_*` shows every file as one owner for users
//! with a single id.
//!
//! - `options`: the `-o` option string.
//! - `ids`: owner translation. `attr`: attributes as shown.
//! - `layers`: lookups through the stack, whiteouts, opaque directories, merged listings.
//! - `tree`: the inode table (stable inode numbers, hardlinks as one node).
//! - `fs`: the operations, independent of the FUSE library. `copyup`: copy-up, whiteouts,
//!   renames.
//! - `serve`: the only module that knows `fuser` (threads, caching, passthrough).
//!
//! What it deliberately does not do: redirects or metacopy files in the upper layer (the OCI
//! diff of the upper directory must stay self-contained; see `copyup`), NFS export, or locking
//! itself (the kernel keeps POSIX and BSD locks for the mount).

pub mod attr;
pub mod copyup;
pub mod fs;
pub mod ids;
pub mod layers;
pub mod options;
pub mod serve;
pub mod tree;

pub use fs::Fs;
pub use options::Options;
