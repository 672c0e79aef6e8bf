//! `strata cp`: copying between a container's root filesystem and the host, with docker's
//! and podman's path rules:
//!
//! - `SRC` a file: to `DST` if `DST` is not a directory (its parent must exist), else into
//!   `DST/`; a `DST` ending in `/` must be an existing directory.
//! - `SRC` a directory: becomes `DST` if `DST` does not exist, else is copied into
//!   `DST/NAME`; `SRC/.` copies the directory's contents into `DST`.
//! - The last component of `SRC` is not followed if it is a link (the link is copied).
//!
//! Paths inside the container are resolved with `openat2(RESOLVE_IN_ROOT)` on the container's
//! root, so `..` and absolute links stay inside it: with `/escape -> /` in the container,
//! `CONTAINER:/escape/etc/shadow` is the container's `/etc/shadow`, never the host's. From
//! there on every step is one name relative to an open directory (see `copy`). Relative
//! container paths are taken from the container's `/`.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, CWD};
use strata_plugin_api::ErrorKind;

use super::copy::{self, Ownership};
use super::entry;
use crate::errors::kinded;

/// One side of the copy: the host, or a container's root (an open directory).
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub root: Option<BorrowedFd<'a>>,
}

impl Side<'_> {
    /// Opens directory `path` (following links, inside the root for a container).
    fn open_dir(&self, path: &Path) -> rustix::io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        match self.root {
            Some(r) => rustix::fs::openat2(
                r,
                path,
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ),
            None => rustix::fs::openat(CWD, path, flags, Mode::empty()),
        }
    }

    fn describe(&self, path: &Path) -> String {
        match self.root {
            Some(_) => format!("{} in the container", path.display()),
            None => path.display().to_string(),
        }
    }
}

/// What to copy.
enum Source {
    /// Entry `name` of `parent`, as it is (a link stays a link).
    Entry { parent: OwnedFd, name: OsString },
    /// A directory reached through its path: its contents, to go under `name` or (`None`,
    /// for `DIR/.`) straight into the destination.
    Dir {
        dir: OwnedFd,
        name: Option<OsString>,
    },
}

/// Splits a path into its parent and last name; `None` when it names no entry of its own
/// (`/`, `dir/.`, `..`), which means "this directory's contents".
fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    match path.components().next_back() {
        Some(Component::Normal(name)) => Some((path.parent().unwrap_or(Path::new("")), name)),
        _ => None,
    }
}

fn ends_with_slash(p: &str) -> bool {
    p.ends_with('/') && p != "/"
}

fn ends_with_dot(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

fn not_found(what: String) -> anyhow::Error {
    kinded(ErrorKind::NotFound, what)
}

fn resolve_source(side: Side<'_>, raw: &str) -> Result<Source> {
    let path = Path::new(raw);
    let missing = |e: rustix::io::Errno| {
        not_found(format!(
            "{}: {}",
            side.describe(path),
            std::io::Error::from(e)
        ))
    };
    match split(path) {
        Some((parent, name)) if !ends_with_dot(raw) && !ends_with_slash(raw) => {
            let parent = side.open_dir(parent).map_err(missing)?;
            if entry::lstat(&parent, name)?.is_none() {
                bail!(not_found(format!(
                    "{}: no such file or directory",
                    side.describe(path)
                )));
            }
            Ok(Source::Entry {
                parent,
                name: name.to_owned(),
            })
        }
        found => {
            let dir = side.open_dir(path).map_err(missing)?;
            let name = match found {
                Some((_, n)) if !ends_with_dot(raw) => Some(n.to_owned()),
                _ => None,
            };
            Ok(Source::Dir { dir, name })
        }
    }
}

/// Copies `src` (on side `from`) to `dst` (on side `to`).
pub fn copy(from: Side<'_>, src: &str, to: Side<'_>, dst: &str, owner: Ownership) -> Result<()> {
    let source = resolve_source(from, src)?;
    let src_is_dir = match &source {
        Source::Dir { .. } => true,
        Source::Entry { parent, name } => {
            entry::lstat(parent, name)?.is_some_and(|m| m.kind == FileType::Directory)
        }
    };
    let dst_path = Path::new(dst);
    let copy_into = |dir: BorrowedFd<'_>| -> Result<()> {
        match &source {
            Source::Entry { parent, name } => copy::copy(parent.as_fd(), name, dir, name, owner),
            Source::Dir {
                dir: d,
                name: Some(n),
            } => copy::copy_dir(d.as_fd(), dir, n, owner),
            Source::Dir { dir: d, name: None } => copy::copy_contents(d.as_fd(), dir, owner),
        }
    };
    match to.open_dir(dst_path) {
        Ok(dir) => copy_into(dir.as_fd()),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => {
            if ends_with_slash(dst) || ends_with_dot(dst) {
                bail!(not_found(format!(
                    "{}: no such directory",
                    to.describe(dst_path)
                )));
            }
            let (parent, name) = split(dst_path)
                .with_context(|| format!("{}: not a place to copy to", to.describe(dst_path)))?;
            let parent = to.open_dir(parent).map_err(|e| {
                not_found(format!(
                    "{}: {}",
                    to.describe(parent),
                    std::io::Error::from(e)
                ))
            })?;
            if src_is_dir
                && entry::lstat(&parent, name)?.is_some_and(|m| m.kind != FileType::Directory)
            {
                bail!(kinded(
                    ErrorKind::InvalidArgument,
                    format!(
                        "cannot copy a directory to {}, which is not a directory",
                        to.describe(dst_path)
                    )
                ));
            }
            match &source {
                Source::Entry { parent: p, name: n } => {
                    copy::copy(p.as_fd(), n, parent.as_fd(), name, owner)
                }
                Source::Dir { dir, .. } => copy::copy_dir(dir.as_fd(), parent.as_fd(), name, owner),
            }
        }
        Err(e) => Err(e).with_context(|| format!("open {}", to.describe(dst_path))),
    }
}
