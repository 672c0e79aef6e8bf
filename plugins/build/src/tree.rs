//! Files inside a root that must not be escaped: the build context, a mounted stage or image
//! (COPY's sources) and a working container's mounted root (COPY's destination).
//!
//! Every path is resolved against a root directory descriptor with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and absolute symbolic links
//! stay inside the root, as they would inside the container: a context symlink to
//! `/etc/shadow` reads the context's own `etc/shadow`, never the host's. Below a source's top
//! path nothing is followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`): links are copied as links.
//! Destination directories are created one component at a time under a descriptor of their
//! resolved parent, so a link planted in the image cannot redirect a write out of the root.
//!
//! What it deliberately does not do: copy extended attributes (Docker's COPY does not), or
//! device nodes and sockets from a context (skipped with a warning; a stage's devices are
//! copied as device nodes).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;

/// A root directory (opened `O_PATH`) everything is resolved inside.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    pub display: String,
}

/// One entry found below a source, relative to the source's top.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rel: String,
    pub stat: Stat,
    pub link: Option<String>,
}

/// What a copy does with owners and modes.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown`: every copied file and created directory gets these ids. `None`: keep the
    /// source's owners (`keep_owners`) or make them 0:0 (the context's).
    pub owner: Option<(u32, u32)>,
    pub keep_owners: bool,
    /// `--chmod`.
    pub mode: Option<u32>,
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// `a/b` components of a root-relative path, `.` and empty parts dropped (`..` is resolved
/// by the kernel, in the root).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

impl Root {
    pub fn open(path: &std::path::Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", path.display()))?;
        Ok(Root {
            fd,
            display: path.display().to_string(),
        })
    }

    fn rel(path: &str) -> String {
        let c = components(path);
        if c.is_empty() {
            ".".into()
        } else {
            c.join("/")
        }
    }

    /// Opens `path` inside the root, following links inside it.
    pub fn open_in(&self, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        rustix::fs::openat2(
            &self.fd,
            Root::rel(path),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            in_root(),
        )
    }

    /// `stat` of `path` inside the root, following links inside it; `None` if missing.
    pub fn stat(&self, path: &str) -> Result<Option<Stat>> {
        match self.open_in(path, OFlags::PATH) {
            Ok(fd) => Ok(Some(rustix::fs::fstat(&fd)?)),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("stat {path} in {}", self.display)),
        }
    }

    /// Makes the directory `path` and its missing parents (mode 0755, `owner`); returns a
    /// descriptor of it. A non-directory in the way is an error naming it.
    pub fn mkdir_all(&self, path: &str, owner: (u32, u32)) -> Result<OwnedFd> {
        self.mkdir_all_in(path, owner, 0)
    }

    fn mkdir_all_in(&self, path: &str, owner: (u32, u32), depth: u32) -> Result<OwnedFd> {
        if depth > 40 {
            bail!("/{path}: too many levels of symbolic links");
        }
        let c = components(path);
        let mut dir = self
            .open_in(".", OFlags::RDONLY | OFlags::DIRECTORY)
            .with_context(|| format!("open {}", self.display))?;
        for i in 0..c.len() {
            let prefix = c[..=i].join("/");
            match self.open_in(&prefix, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(d) => dir = d,
                Err(Errno::NOENT) => {
                    // A dangling link in the way: make its target (inside the root), as
                    // the kernel would resolve it, then go on through the link.
                    if let Ok(target) = rustix::fs::readlinkat(&dir, c[i], Vec::new()) {
                        let target = target.to_string_lossy().into_owned();
                        let base = if target.starts_with('/') {
                            String::new()
                        } else {
                            c[..i].join("/")
                        };
                        let rest = c[i + 1..].join("/");
                        let resolved = join(&join(&base, &target), &rest);
                        self.mkdir_all_in(&resolved, owner, depth + 1)?;
                        return self
                            .open_in(path, OFlags::RDONLY | OFlags::DIRECTORY)
                            .with_context(|| format!("open /{path}"));
                    }
                    match rustix::fs::mkdirat(&dir, c[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("create directory /{prefix}"))
                        }
                    }
                    rustix::fs::chownat(
                        &dir,
                        c[i],
                        Some(Uid::from_raw(owner.0)),
                        Some(Gid::from_raw(owner.1)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .with_context(|| format!("chown /{prefix}"))?;
                    dir = self
                        .open_in(&prefix, OFlags::RDONLY | OFlags::DIRECTORY)
                        .with_context(|| format!("open /{prefix}"))?;
                }
                Err(Errno::NOTDIR) => bail!("/{prefix} exists and is not a directory"),
                Err(e) => return Err(e).with_context(|| format!("open /{prefix}")),
            }
        }
        Ok(dir)
    }

    /// Removes `path` if it is an empty regular file or an empty directory.
    pub fn remove_empty(&self, path: &str) -> Result<()> {
        let c = components(path);
        let Some((name, parent)) = c.split_last() else {
            return Ok(());
        };
        let Ok(dir) = self.open_in(&parent.join("/"), OFlags::PATH | OFlags::DIRECTORY) else {
            return Ok(());
        };
        match rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                match rustix::fs::unlinkat(&dir, *name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOTEMPTY) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("remove /{}", c.join("/"))),
                }
            }
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && st.st_size == 0 =>
            {
                rustix::fs::unlinkat(&dir, *name, AtFlags::empty())
                    .with_context(|| format!("remove /{}", c.join("/")))
            }
            _ => Ok(()),
        }
    }
}

fn cname(name: &CStr) -> Option<String> {
    let s = name.to_str().ok()?;
    (s != "." && s != "..").then(|| s.to_owned())
}

/// Every entry below the source `top` (the top itself first, as rel ""), depth first in name
/// order; `skip(rel_to_root)` leaves paths out (the ignore file). `top_rel` is the top's path
/// relative to the root, for `skip`.
pub fn walk(
    root: &Root,
    top: &str,
    skip: &dyn Fn(&str, bool) -> bool,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let st = root
        .stat(top)?
        .with_context(|| format!("{top}: no such file or directory"))?;
    out.push(Entry {
        rel: String::new(),
        stat: st,
        link: None,
    });
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let fd = root
            .open_in(top, OFlags::RDONLY | OFlags::DIRECTORY)
            .with_context(|| format!("open {top}"))?;
        walk_dir(&fd, top, "", skip, out)?;
    }
    Ok(())
}

fn walk_dir(
    dir: &OwnedFd,
    top: &str,
    rel: &str,
    skip: &dyn Fn(&str, bool) -> bool,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let mut names: Vec<String> = Dir::read_from(dir)
        .with_context(|| format!("read directory {top}/{rel}"))?
        .filter_map(|e| e.ok().and_then(|e| cname(e.file_name())))
        .collect();
    names.sort();
    for name in names {
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let full = join(top, &child);
        let st = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat {full}"))?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if skip(&full, is_dir) {
            if is_dir {
                // An exception below may bring some of it back: skip() said no to the dir
                // itself, its children are asked one by one.
                if let Ok(fd) = rustix::fs::openat(
                    dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    let before = out.len();
                    walk_dir(&fd, top, &child, skip, out)?;
                    if out.len() > before {
                        out.insert(
                            before,
                            Entry {
                                rel: child,
                                stat: st,
                                link: None,
                            },
                        );
                    }
                }
            }
            continue;
        }
        let link = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            let t = rustix::fs::readlinkat(dir, name.as_str(), Vec::new())
                .with_context(|| format!("read link {full}"))?;
            Some(t.to_string_lossy().into_owned())
        } else {
            None
        };
        out.push(Entry {
            rel: child.clone(),
            stat: st,
            link,
        });
        if is_dir {
            let fd = rustix::fs::openat(
                dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("open {full}"))?;
            walk_dir(&fd, top, &child, skip, out)?;
        }
    }
    Ok(())
}

/// `a` + `/` + `b`, without doubled or leading slashes for empty parts.
pub fn join(a: &str, b: &str) -> String {
    match (components(a).join("/"), b.trim_matches('/')) {
        (a, "") => a,
        (a, b) if a.is_empty() => b.to_owned(),
        (a, b) => format!("{a}/{b}"),
    }
}

fn ts(sec: i64, nsec: u64) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    }
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: ts(st.st_atime, st.st_atime_nsec),
        last_modification: ts(st.st_mtime, st.st_mtime_nsec),
    }
}

/// Removes whatever is at `name` in `dir` (a directory only if `dirs_too`); missing is fine.
fn clear(dir: &OwnedFd, name: &str, full: &str) -> Result<()> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("stat {full}")),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            bail!("cannot replace directory {full} with a file")
        }
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .with_context(|| format!("remove {full}")),
    }
}

/// Copies the walked `entries` of `src` (below `src_top`) to `dst_path` in `dst`: a directory
/// top's contents go into `dst_path` (created); a file top becomes `dst_path` itself.
/// Returns the number of files copied.
pub fn copy_entries(
    src: &Root,
    src_top: &str,
    entries: &[Entry],
    dst: &Root,
    dst_path: &str,
    opts: &CopyOptions,
    parent_owner: (u32, u32),
) -> Result<usize> {
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut dirs: Vec<(String, Stat)> = Vec::new();
    let mut copied = 0;
    let owner_of = |st: &Stat| -> (u32, u32) {
        match opts.owner {
            Some(o) => o,
            None if opts.keep_owners => (st.st_uid, st.st_gid),
            None => (0, 0),
        }
    };
    for e in entries {
        let target = join(dst_path, &e.rel);
        let c = components(&target);
        let Some((name, parent)) = c.split_last() else {
            // The destination is the root itself: only a directory can go there.
            if FileType::from_raw_mode(e.stat.st_mode) != FileType::Directory {
                bail!("cannot copy a file over the root directory");
            }
            continue;
        };
        let pdir = dst.mkdir_all(&parent.join("/"), opts.owner.unwrap_or(parent_owner))?;
        let full = format!("/{target}");
        let ft = FileType::from_raw_mode(e.stat.st_mode);
        let mode = Mode::from_raw_mode(match opts.mode {
            Some(m) => m,
            None => e.stat.st_mode & 0o7777,
        });
        let (uid, gid) = owner_of(&e.stat);
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match ft {
            FileType::Directory if e.rel.is_empty() => {
                // A directory source's contents go into the destination, which keeps its
                // mode and owner if it exists and is made 0755 otherwise (Docker).
                dst.mkdir_all(&target, opts.owner.unwrap_or(parent_owner))?;
            }
            FileType::Directory => {
                match rustix::fs::statat(&pdir, *name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        rustix::fs::unlinkat(&pdir, *name, AtFlags::empty())
                            .with_context(|| format!("remove {full}"))?;
                        rustix::fs::mkdirat(&pdir, *name, mode)
                            .with_context(|| format!("create directory {full}"))?;
                    }
                    Err(Errno::NOENT) => rustix::fs::mkdirat(&pdir, *name, mode)
                        .with_context(|| format!("create directory {full}"))?,
                    Err(e) => return Err(e).with_context(|| format!("stat {full}")),
                }
                let fd = rustix::fs::openat(
                    &pdir,
                    *name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("open {full}"))?;
                rustix::fs::fchown(&fd, uid, gid).with_context(|| format!("chown {full}"))?;
                rustix::fs::fchmod(&fd, mode).with_context(|| format!("chmod {full}"))?;
                if let Ok(from) = src.open_in(
                    &join(src_top, &e.rel),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                ) {
                    copy_xattrs(&from, &fd, &full);
                }
                dirs.push((target.clone(), e.stat));
            }
            FileType::RegularFile => {
                clear(&pdir, name, &full)?;
                let key = (e.stat.st_dev, e.stat.st_ino);
                if e.stat.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        let first_dir = dst.mkdir_all(
                            &components(first)[..components(first).len() - 1].join("/"),
                            parent_owner,
                        )?;
                        let first_name = components(first).last().copied().unwrap_or_default();
                        rustix::fs::linkat(&first_dir, first_name, &pdir, *name, AtFlags::empty())
                            .with_context(|| format!("link {full} to /{first}"))?;
                        continue;
                    }
                    links.insert(key, target.clone());
                }
                // The top itself may be reached through links (followed inside the root).
                let follow = if e.rel.is_empty() {
                    OFlags::empty()
                } else {
                    OFlags::NOFOLLOW
                };
                let from = src
                    .open_in(&join(src_top, &e.rel), OFlags::RDONLY | follow)
                    .with_context(|| {
                        format!("open {} in {}", join(src_top, &e.rel), src.display)
                    })?;
                let to = rustix::fs::openat(
                    &pdir,
                    *name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .with_context(|| format!("create {full}"))?;
                let mut from = std::fs::File::from(from);
                let mut to = std::fs::File::from(to);
                std::io::copy(&mut from, &mut to).with_context(|| format!("write {full}"))?;
                copy_xattrs(&from, &to, &full);
                rustix::fs::fchown(&to, uid, gid).with_context(|| format!("chown {full}"))?;
                rustix::fs::fchmod(&to, mode).with_context(|| format!("chmod {full}"))?;
                rustix::fs::futimens(&to, &times(&e.stat))
                    .with_context(|| format!("set times of {full}"))?;
                copied += 1;
            }
            FileType::Symlink => {
                clear(&pdir, name, &full)?;
                let link = match &e.link {
                    Some(l) => l.clone(),
                    // The top itself was reached through links: copy what it resolved to.
                    None => bail!("{full}: a symbolic link without its target"),
                };
                rustix::fs::symlinkat(link.as_str(), &pdir, *name)
                    .with_context(|| format!("create link {full}"))?;
                rustix::fs::chownat(&pdir, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .with_context(|| format!("chown {full}"))?;
                rustix::fs::utimensat(&pdir, *name, &times(&e.stat), AtFlags::SYMLINK_NOFOLLOW)
                    .with_context(|| format!("set times of {full}"))?;
                copied += 1;
            }
            // Fifos and sockets from anywhere (buildah copies them); device nodes only from
            // an image (a context's devices are the host's).
            FileType::Fifo
            | FileType::Socket
            | FileType::CharacterDevice
            | FileType::BlockDevice
                if opts.keep_owners || matches!(ft, FileType::Fifo | FileType::Socket) =>
            {
                clear(&pdir, name, &full)?;
                rustix::fs::mknodat(&pdir, *name, ft, mode, e.stat.st_rdev)
                    .with_context(|| format!("create {full}"))?;
                rustix::fs::chownat(&pdir, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .with_context(|| format!("chown {full}"))?;
                copied += 1;
            }
            _ => {
                tracing::warn!("skipping {}: not a file, directory or link", e.rel);
            }
        }
    }
    // Directory times last, after their contents stopped changing them.
    for (path, st) in dirs.iter().rev() {
        if let Ok(fd) = dst.open_in(path, OFlags::RDONLY | OFlags::DIRECTORY) {
            let _ = rustix::fs::futimens(fd.as_fd(), &times(st));
        }
    }
    Ok(copied)
}

/// Copies the extended attributes of `from` to `to` (COPY keeps them, as buildah and
/// BuildKit do). One that cannot be set here (a `trusted.` attribute rootless, an unknown
/// namespace) is left out with a warning: the file itself is what matters.
fn copy_xattrs(from: &impl AsFd, to: &impl AsFd, full: &str) {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(from, &mut names[..]) {
        Ok(n) => n,
        Err(Errno::RANGE) => {
            names = vec![0u8; 65536];
            match rustix::fs::flistxattr(from, &mut names[..]) {
                Ok(n) => n,
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        let Ok(len) = rustix::fs::fgetxattr(from, name.as_c_str(), &mut value[..]) else {
            continue;
        };
        if let Err(e) = rustix::fs::fsetxattr(
            to,
            name.as_c_str(),
            &value[..len],
            rustix::fs::XattrFlags::empty(),
        ) {
            tracing::warn!("{full}: cannot keep extended attribute {name:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_components() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("/x/", "a/b"), "x/a/b");
        assert_eq!(join("x", ""), "x");
        assert_eq!(components("/./a//b/"), vec!["a", "b"]);
    }

    #[test]
    fn copies_stay_inside_both_roots() {
        let ctx = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        std::fs::write(ctx.path().join("secret"), "context file").unwrap();
        // A context link that climbs out reads the context's own file.
        std::os::unix::fs::symlink("../../../../../../secret", ctx.path().join("up")).unwrap();
        // A destination link planted in the "image" pointing out of it.
        std::os::unix::fs::symlink(outside.path(), out.path().join("escape")).unwrap();
        let src = Root::open(ctx.path()).unwrap();
        let dst = Root::open(out.path()).unwrap();
        let mut entries = Vec::new();
        walk(&src, "up", &|_, _| false, &mut entries).unwrap();
        let opts = CopyOptions {
            keep_owners: true,
            ..CopyOptions::default()
        };
        copy_entries(&src, "up", &entries, &dst, "escape/copied", &opts, (0, 0)).unwrap();
        assert_eq!(
            std::fs::read_to_string(
                out.path()
                    .join(outside.path().strip_prefix("/").unwrap())
                    .join("copied")
            )
            .unwrap(),
            "context file"
        );
        assert!(
            !outside.path().join("copied").exists(),
            "wrote outside the root"
        );
    }
}
