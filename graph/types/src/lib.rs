//! Identifier newtypes (`Digest`, `LayerId`, `ImageId`, `ContainerId`) and the small set of
//! stable error kinds that every Strata error maps to.
//!
//! This crate is deliberately tiny and dependency-light: every other crate depends on it.
//! It does no I/O.

mod digest;
mod ids;
mod kind;

pub use digest::{Digest, DigestError, Hasher};
pub use ids::{ContainerId, ImageId, LayerId};
pub use kind::{ErrorKind, HasKind};
