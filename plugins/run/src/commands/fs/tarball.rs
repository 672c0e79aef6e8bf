//! Writing a directory tree as a tar stream (`strata export`), walked through directory file
//! descriptors without following links (see `entry`), in sorted order. Entries keep their
//! mode, owner, group and modification time; hard links within the tree become tar hard
//! links; device nodes and FIFOs are recorded; sockets are skipped.
//!
//! A file that changes size while it is read (a running container writing it) is cut or
//! zero-padded to the size its header announced, so the stream stays a valid tar.
//!
//! What it does not do: extended attributes (security.capability, ACLs) and sparse files.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::FileType;
use tar::{EntryType, Header};

use super::entry::{self, Meta};

/// Writes the tree under the open directory `root` to `out` as an uncompressed tar.
pub fn write_tree(root: BorrowedFd<'_>, out: impl Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let mut links = HashMap::new();
    walk(&mut b, root, Path::new(""), &mut links)?;
    b.into_inner()
        .context("finish the tar stream")?
        .flush()
        .context("write the tar stream")?;
    Ok(())
}

fn header(m: &Meta, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(m.mode);
    h.set_uid(u64::from(m.uid));
    h.set_gid(u64::from(m.gid));
    h.set_mtime(m.mtime.0.max(0) as u64);
    h.set_size(0);
    h
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    for name in entry::names(dir)? {
        let path = rel.join(&name);
        let Some(m) = entry::lstat(dir, &name)? else {
            continue; // removed meanwhile
        };
        add(b, dir, &name, &path, &m, links)
            .with_context(|| format!("add /{} to the archive", path.display()))?;
    }
    Ok(())
}

fn add<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    m: &Meta,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    match m.kind {
        FileType::Directory => {
            let mut h = header(m, EntryType::Directory);
            b.append_data(&mut h, path, std::io::empty())?;
            let sub = entry::open_dir(dir, name)?;
            walk(b, sub.as_fd(), path, links)
        }
        FileType::RegularFile => {
            if m.nlink > 1 {
                if let Some(first) = links.get(&(m.dev, m.ino)) {
                    let mut h = header(m, EntryType::Link);
                    b.append_link(&mut h, path, first)?;
                    return Ok(());
                }
                links.insert((m.dev, m.ino), path.to_path_buf());
            }
            let file = entry::open_file(dir, name)?;
            let mut h = header(m, EntryType::Regular);
            h.set_size(m.size);
            // Exactly the announced size, whatever happens to the file meanwhile.
            let data = file.take(m.size).chain(std::io::repeat(0)).take(m.size);
            b.append_data(&mut h, path, data)?;
            Ok(())
        }
        FileType::Symlink => {
            let target = entry::read_link(dir, name)?;
            let mut h = header(m, EntryType::Symlink);
            b.append_link(&mut h, path, Path::new(&target))?;
            Ok(())
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
            let kind = match m.kind {
                FileType::CharacterDevice => EntryType::Char,
                FileType::BlockDevice => EntryType::Block,
                _ => EntryType::Fifo,
            };
            let mut h = header(m, kind);
            if kind != EntryType::Fifo {
                h.set_device_major(rustix::fs::major(m.rdev))?;
                h.set_device_minor(rustix::fs::minor(m.rdev))?;
            }
            b.append_data(&mut h, path, std::io::empty())?;
            Ok(())
        }
        _ => Ok(()),
    }
}
