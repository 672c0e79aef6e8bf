//! Copying file trees between two open directories, one name at a time, never following a
//! symbolic link on either side (see `entry`): links are copied as links, and an existing
//! non-directory at the destination is replaced, never written through. Regular files,
//! directories, links, device nodes and FIFOs are copied with their permission bits
//! (setuid/setgid/sticky included) and times; sockets are skipped.
//!
//! What it does not do: keep hard links between copied files (each is copied on its own),
//! copy extended attributes, or copy atomically (a failure leaves what was copied so far).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};

use super::entry::{self, Meta};

/// Who owns what is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The source's owner and group.
    Keep,
    /// These IDs (a container's user, for `cp` into it).
    Set(u32, u32),
    /// Whoever runs the command (the files are not chowned).
    Caller,
}

impl Ownership {
    fn ids(self, m: &Meta) -> Option<(Uid, Gid)> {
        match self {
            Ownership::Keep => Some((m.uid, m.gid)),
            Ownership::Set(u, g) => Some((u, g)),
            Ownership::Caller => None,
        }
        .map(|(u, g)| (Uid::from_raw(u), Gid::from_raw(g)))
    }
}

/// Copies entry `name` of `src` to entry `dst_name` of `dst` (recursively for directories).
pub fn copy(
    src: BorrowedFd<'_>,
    name: &OsStr,
    dst: BorrowedFd<'_>,
    dst_name: &OsStr,
    owner: Ownership,
) -> Result<()> {
    let meta = entry::lstat(src, name)?
        .with_context(|| format!("{} does not exist", name.to_string_lossy()))?;
    if meta.kind == FileType::Directory {
        let from = entry::open_dir(src, name)?;
        return copy_dir(from.as_fd(), dst, dst_name, owner);
    }
    let existing = entry::lstat(dst, dst_name)?;
    match existing {
        Some(e) if e.kind == FileType::Directory => bail!(
            "cannot overwrite directory {} with non-directory {}",
            dst_name.to_string_lossy(),
            name.to_string_lossy()
        ),
        Some(_) => rustix::fs::unlinkat(dst, dst_name, AtFlags::empty())
            .with_context(|| format!("replace {}", dst_name.to_string_lossy()))?,
        None => {}
    }
    let what = || format!("create {}", dst_name.to_string_lossy());
    match meta.kind {
        FileType::RegularFile => {
            let mut from = entry::open_file(src, name)?;
            let to = rustix::fs::openat(
                dst,
                dst_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .with_context(what)?;
            let mut to = std::fs::File::from(to);
            std::io::copy(&mut from, &mut to)
                .with_context(|| format!("copy {}", name.to_string_lossy()))?;
            finish_fd(&to, &meta, owner)
        }
        FileType::Symlink => {
            let target = entry::read_link(src, name)?;
            rustix::fs::symlinkat(target.as_os_str(), dst, dst_name).with_context(what)?;
            finish_at(dst, dst_name, &meta, owner)
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
            // The mode is set at creation (umask cleared for the call): a later chmod by
            // name could follow a link a running container swapped in.
            let old = rustix::process::umask(Mode::empty());
            let made = rustix::fs::mknodat(
                dst,
                dst_name,
                meta.kind,
                Mode::from_raw_mode(meta.mode & 0o777),
                meta.rdev,
            );
            rustix::process::umask(old);
            made.with_context(what)?;
            finish_at(dst, dst_name, &meta, owner)
        }
        _ => {
            tracing::debug!(name = %name.to_string_lossy(), "skipping a socket");
            Ok(())
        }
    }
}

/// Copies the open directory `from` as entry `dst_name` of `dst` (merging into an existing
/// directory there).
pub fn copy_dir(
    from: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    dst_name: &OsStr,
    owner: Ownership,
) -> Result<()> {
    let meta: Meta = rustix::fs::fstat(from).context("stat directory")?.into();
    match entry::lstat(dst, dst_name)? {
        Some(e) if e.kind == FileType::Directory => {}
        Some(_) => bail!(
            "cannot overwrite non-directory {} with a directory",
            dst_name.to_string_lossy()
        ),
        None => rustix::fs::mkdirat(dst, dst_name, Mode::from_raw_mode(0o700))
            .with_context(|| format!("create directory {}", dst_name.to_string_lossy()))?,
    }
    let to = entry::open_dir(dst, dst_name)?;
    copy_contents(from, to.as_fd(), owner)?;
    finish_fd(&to, &meta, owner)
}

/// Copies every entry of the open directory `from` into the open directory `to`.
pub fn copy_contents(from: BorrowedFd<'_>, to: BorrowedFd<'_>, owner: Ownership) -> Result<()> {
    for name in entry::names(from)? {
        copy(from, &name, to, &name, owner)
            .with_context(|| format!("in {}", name.to_string_lossy()))?;
    }
    Ok(())
}

/// Owner, then mode (a chown clears setuid bits), then times (after the contents).
fn finish_fd(fd: impl AsFd, meta: &Meta, owner: Ownership) -> Result<()> {
    if let Some((u, g)) = owner.ids(meta) {
        rustix::fs::fchown(&fd, Some(u), Some(g)).context("set owner")?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode)).context("set mode")?;
    rustix::fs::futimens(&fd, &meta.timestamps()).context("set times")?;
    Ok(())
}

/// As [`finish_fd`] for entries that are not opened (links, devices, FIFOs), by name and
/// without following links; their mode was set when they were made.
fn finish_at(dir: BorrowedFd<'_>, name: &OsStr, meta: &Meta, owner: Ownership) -> Result<()> {
    if let Some((u, g)) = owner.ids(meta) {
        rustix::fs::chownat(dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .context("set owner")?;
    }
    rustix::fs::utimensat(dir, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
        .context("set times")?;
    Ok(())
}
