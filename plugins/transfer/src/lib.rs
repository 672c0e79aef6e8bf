//! What front-end plugins share to move images: opening ends by name (`docker://` with the
//! user's TLS and credential options, `store:` through the host, and every local transport),
//! the store as a copy source and destination, progress bars, image name resolution and
//! pulls (`images`), and errors that keep their kind (`errors`).
//!
//! The copy front end (skopeo's job) and the run front end (podman's `pull`/`push`) both copy
//! through these ends and `strata-graph-image`'s engine, so a pull is one code path. This
//! crate is a library, never a plugin: a shared object exports one plugin entry, so code two
//! plugins share lives here rather than in either of them.

pub mod ends;
pub mod errors;
pub mod images;
pub mod progress;
pub mod store;
