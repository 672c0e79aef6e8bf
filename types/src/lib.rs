//! The ground crate: the plain data every layer of Strata shares, so that no crate has to
//! depend on a crate above it to name a digest, a mount or an id map.
//!
//! - identifier newtypes ([`Digest`], [`LayerId`], [`ImageId`], [`ContainerId`]) and the small
//!   set of stable error kinds every error maps to ([`ErrorKind`]);
//! - what drivers describe and the mount crate performs ([`Mount`]), what a layer changed
//!   ([`Change`]) and how whiteouts are written ([`WhiteoutFormat`]);
//! - user-namespace id maps ([`IdMap`]) with the pure parsers of `/proc/PID/uid_map` and
//!   `/etc/subuid` text ([`idmap`]).
//!
//! - this machine's architecture in OCI's spelling ([`arch`]);
//! - RFC 3339 times ([`time`]).
//!
//! It is deliberately tiny and dependency-light, and does no I/O: callers read the files.

pub mod arch;
mod change;
mod digest;
pub mod idmap;
mod ids;
mod kind;
mod mounts;
pub mod time;
mod whiteout;

pub use change::{Change, ChangeKind};
pub use digest::{Digest, DigestError, Hasher};
pub use idmap::{IdMap, IdRange, SubIdRange};
pub use ids::{ContainerId, ImageId, LayerId};
pub use kind::{ErrorKind, HasKind};
pub use mounts::Mount;
pub use whiteout::WhiteoutFormat;
