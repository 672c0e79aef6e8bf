//! The one unsafe call of rootless mode: `unshare(2)` for the user and mount namespaces of the
//! pause process. rustix marks `unshare` unsafe because of `CLONE_FILES`; the wrapper only
//! passes the two flags below.
#![allow(unsafe_code)]

use rustix::thread::UnshareFlags;

/// The namespaces the pause process creates.
#[derive(Debug, Clone, Copy)]
pub enum NewNamespace {
    User,
    Mount,
}

/// Moves the calling (single-threaded) process into a new namespace of that kind.
pub fn unshare(ns: NewNamespace) -> std::io::Result<()> {
    let flags = match ns {
        NewNamespace::User => UnshareFlags::NEWUSER,
        NewNamespace::Mount => UnshareFlags::NEWNS,
    };
    // SAFETY: the unsafety of `unshare` is `CLONE_FILES` (descriptors opened by other threads
    // becoming invalid in this one). Only `CLONE_NEWUSER` or `CLONE_NEWNS` is passed, which
    // change namespaces and leave the descriptor table shared as it was.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}
