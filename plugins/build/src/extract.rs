//! ADD's local archives: tar, plain or compressed with gzip, bzip2, xz or zstd (told apart
//! by their first bytes, as Docker does), extracted into a directory of the working
//! container, through `tree::Root` so no entry (`../`, absolute names, links planted by
//! earlier entries) can write outside the container's root.
//!
//! Owners, modes and times come from the archive (`--chown` overrides owners); a pax global
//! header is metadata, not a file; an entry whose type conflicts with what is there (a file
//! over a directory, a directory over a file) replaces it. gzip and zstd are decoded in
//! process (flate2, zstd); bzip2 and xz through Debian's `bzip2 -dc` and `xz -dc`, which is
//! what buildah's Go libraries cannot avoid either and saves two C-library bindings here.

use std::io::{BufReader, Read};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use crate::tree::{components, join, Root};

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Whether `head` (the first 512+ bytes) starts an archive ADD extracts.
pub fn detect(head: &[u8]) -> Option<Archive> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Archive::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(Archive::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Archive::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Archive::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Archive::Tar)
    } else {
        None
    }
}

/// The decompressed stream of an archive file.
fn open(file: std::fs::File, kind: Archive) -> Result<Box<dyn Read>> {
    Ok(match kind {
        Archive::Tar => Box::new(BufReader::new(file)),
        Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Archive::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
        Archive::Bzip2 | Archive::Xz => {
            let tool = if kind == Archive::Bzip2 {
                "bzip2"
            } else {
                "xz"
            };
            let child = Command::new(tool)
                .arg("-dc")
                .stdin(Stdio::from(file))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("run {tool} -dc (install {tool})"))?;
            Box::new(ChildReader { child })
        }
    })
}

/// A decompressor's stdout; its exit status is checked at the end of the stream.
struct ChildReader {
    child: std::process::Child,
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.child.stdout.as_mut() {
            Some(o) => o.read(buf)?,
            None => 0,
        };
        if n == 0 {
            self.child.stdout = None;
            let st = self.child.wait()?;
            if !st.success() {
                return Err(std::io::Error::other(format!("decompression failed: {st}")));
            }
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes `name` in `dir` and everything below it.
pub fn remove_all(dir: &OwnedFd, name: &str) -> Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let names: Vec<String> = rustix::fs::Dir::read_from(&sub)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
            .filter(|n| n != "." && n != "..")
            .collect();
        for n in names {
            remove_all(&sub, &n)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Extracts the archive `file` into `dest` (a directory path in `root`); returns the number
/// of entries written.
pub fn extract(
    file: std::fs::File,
    kind: Archive,
    root: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<usize> {
    unpack(open(file, kind)?, root, dest, owner, false)
}

/// Unpacks a tar stream into `dest` in `root`. With `whiteouts`, the stream is an OCI layer:
/// `.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory (what the layer hides
/// below it), instead of being written as files (ADD writes them as they are, as Docker).
pub fn unpack(
    reader: impl Read,
    root: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
    whiteouts: bool,
) -> Result<usize> {
    let mut ar = tar::Archive::new(reader);
    let mut n = 0;
    let mut dirs: Vec<(String, u64)> = Vec::new();
    for entry in ar.entries().context("read the archive")? {
        let mut e = entry.context("read the archive")?;
        let h = e.header().clone();
        let ty = h.entry_type();
        if matches!(
            ty,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) {
            continue;
        }
        let raw = e
            .path()
            .context("an archive entry's name")?
            .to_string_lossy()
            .into_owned();
        let rel = components(&raw).join("/");
        if rel.is_empty() {
            continue;
        }
        let target = join(dest, &rel);
        let c = components(&target);
        let Some((name, parent)) = c.split_last() else {
            continue;
        };
        let full = format!("/{target}");
        let (uid, gid) =
            owner.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        let mtime = h.mtime().unwrap_or(0) as i64;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
        };
        let pdir = root.mkdir_all(&parent.join("/"), (0, 0))?;
        if whiteouts {
            if *name == ".wh..wh..opq" {
                let names: Vec<String> = rustix::fs::Dir::read_from(&pdir)?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
                    .filter(|n| n != "." && n != "..")
                    .collect();
                for n in names {
                    remove_all(&pdir, &n)
                        .with_context(|| format!("empty /{}", parent.join("/")))?;
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                remove_all(&pdir, hidden)
                    .with_context(|| format!("remove /{}/{hidden}", parent.join("/")))?;
                continue;
            }
        }
        let existing = rustix::fs::statat(&pdir, *name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir =
            |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        // A non-directory entry replaces whatever is there (a type conflict included).
        let replaces = matches!(
            ty,
            tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Symlink
                | tar::EntryType::Link
                | tar::EntryType::Char
                | tar::EntryType::Block
                | tar::EntryType::Fifo
        );
        if replaces && existing.is_some() {
            remove_all(&pdir, name)?;
        }
        match ty {
            tar::EntryType::Directory => {
                match existing {
                    Some(st) if is_dir(&st) => {}
                    Some(_) => {
                        rustix::fs::unlinkat(&pdir, *name, AtFlags::empty())?;
                        rustix::fs::mkdirat(&pdir, *name, mode)?;
                    }
                    None => rustix::fs::mkdirat(&pdir, *name, mode)
                        .with_context(|| format!("create directory {full}"))?,
                }
                rustix::fs::chownat(&pdir, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::chmodat(&pdir, *name, mode, AtFlags::empty())?;
                dirs.push((target.clone(), mtime as u64));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
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
                let mut f = std::fs::File::from(fd);
                std::io::copy(&mut e, &mut f).with_context(|| format!("write {full}"))?;
                rustix::fs::fchown(&f, uid, gid)?;
                rustix::fs::fchmod(&f, mode)?;
                rustix::fs::futimens(&f, &times)?;
            }
            tar::EntryType::Symlink => {
                let link = e
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(link.as_str(), &pdir, *name)
                    .with_context(|| format!("create link {full}"))?;
                rustix::fs::chownat(&pdir, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::utimensat(&pdir, *name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            tar::EntryType::Link => {
                let link = e
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let lc = components(&join(dest, &components(&link).join("/")))
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>();
                let Some((lname, lparent)) = lc.split_last() else {
                    bail!("{full}: a hard link without a target");
                };
                let ldir = root
                    .open_in(&lparent.join("/"), OFlags::PATH | OFlags::DIRECTORY)
                    .with_context(|| {
                        format!("{full}: hard link target {link} is not in the archive")
                    })?;
                rustix::fs::linkat(&ldir, lname.as_str(), &pdir, *name, AtFlags::empty())
                    .with_context(|| format!("link {full} to {link}"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let kind = match ty {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                if let Err(err) = rustix::fs::mknodat(&pdir, *name, kind, mode, dev) {
                    tracing::warn!("skipping {full}: cannot create it here ({err})");
                    continue;
                }
                rustix::fs::chownat(&pdir, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            other => {
                tracing::warn!("skipping {full}: unsupported archive entry type {other:?}");
                continue;
            }
        }
        n += 1;
    }
    for (path, mtime) in dirs.iter().rev() {
        if let Ok(fd) = root.open_in(path, OFlags::RDONLY | OFlags::DIRECTORY) {
            let t = Timespec {
                tv_sec: *mtime as i64,
                tv_nsec: 0,
            };
            let _ = rustix::fs::futimens(
                &fd,
                &Timestamps {
                    last_access: t,
                    last_modification: t,
                },
            );
        }
    }
    Ok(n)
}

/// Whether a 512-byte block is a tar header: its checksum (the sum of its bytes with the
/// checksum field read as spaces) matches the octal number in that field. Old v7 tars have no
/// `ustar` magic, so this is how Docker's archive detection knows them too.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block[..512].iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

/// What ADD does with a local file: extract it when it is a tar, plain or compressed (the
/// decompressed stream must start with a tar header: a gzipped text file is copied as it is,
/// as Docker does). The file is rewound.
pub fn sniff(file: &mut std::fs::File) -> Result<Option<Archive>> {
    use std::io::Seek;
    let head = head(file)?;
    let kind = match detect(&head) {
        Some(k) => k,
        None if is_tar_header(&head) => Archive::Tar,
        None => return Ok(None),
    };
    if kind == Archive::Tar {
        return Ok(Some(kind));
    }
    let mut block = Vec::with_capacity(512);
    let ok = open(file.try_clone()?, kind)
        .and_then(|r| Ok(r.take(512).read_to_end(&mut block)?))
        .is_ok();
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok((ok && is_tar_header(&block)).then_some(kind))
}

/// The first bytes of a file, to detect an archive.
pub fn head(file: &mut std::fs::File) -> Result<Vec<u8>> {
    use std::io::Seek;
    let mut buf = vec![0u8; 512];
    let mut got = 0;
    while got < buf.len() {
        let n = file.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_told_apart_by_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]), Some(Archive::Gzip));
        assert_eq!(detect(b"BZh91AY"), Some(Archive::Bzip2));
        assert_eq!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Some(Archive::Xz)
        );
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Archive::Zstd));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect(&t), Some(Archive::Tar));
        assert_eq!(detect(b"just text"), None);
    }

    #[test]
    fn hostile_archive_entries_stay_inside() {
        let out = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        // A link to the victim, then a file through it.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "evil", victim.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "evil/pwned", &b"bad"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        // tar::Builder refuses `..` itself: write the name into the header by hand.
        h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
        h.set_cksum();
        b.append(&h, &b"bad"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let path = out.path().join("a.tar");
        std::fs::write(&path, &data).unwrap();
        let rootdir = out.path().join("root");
        std::fs::create_dir(&rootdir).unwrap();
        let root = Root::open(&rootdir).unwrap();
        extract(
            std::fs::File::open(&path).unwrap(),
            Archive::Tar,
            &root,
            "dst",
            None,
        )
        .unwrap();
        assert!(
            !victim.path().join("pwned").exists(),
            "wrote through a link out of the root"
        );
        assert!(!out.path().join("escape").exists(), "wrote above the root");
        let inside = rootdir
            .join(victim.path().strip_prefix("/").unwrap())
            .join("pwned");
        assert_eq!(std::fs::read(inside).unwrap(), b"bad");
    }
}
