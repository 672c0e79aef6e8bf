//! Per-entry handling of the apply run: reading an entry's PAX records and metadata,
//! validating its name, and routing it to `whiteout` or `extract`; regular files' content is
//! read with capture off and recorded as a tar-split FILE record.
//!
//! It does not touch the filesystem itself (`extract` and `whiteout` do) nor decide anything
//! about the stream as a whole (the parent module does).

use std::io::{self, Read, Write};

use rustix::fs::{self, FileType};
use tar::EntryType;

use super::{align512, Flushing, Run};
use crate::error::show;
use crate::extract::{CopyError, Extractor, Fail, FileData, Meta};
use crate::paths;
use crate::pax::{self, Pax, Time};
use crate::sparse::{self, PaxSparse};
use crate::tap::Tap;
use crate::whiteout::{self, Marker};
use crate::ArchiveError;

/// What an entry is, after looking at its type and name.
enum Kind {
    Skip,
    File(Option<PaxSparse>),
    GnuSparse,
    Dir,
    Symlink,
    Hardlink,
    Node(FileType),
}

impl<T: Read, W: Write> Run<'_, T, W> {
    pub(super) fn entry(
        &mut self,
        ex: &mut Extractor,
        entry: &mut tar::Entry<'_, &Tap<T>>,
    ) -> Result<(), ArchiveError> {
        let header_pos = entry.raw_header_position();
        let pax = match self
            .tap
            .captured(align512(self.prev_end), header_pos, pax::region_pax)
        {
            Some(Ok(pax)) => pax,
            Some(Err(reason)) => {
                return Err(ArchiveError::Malformed {
                    at: self.header_location(),
                    reason,
                })
            }
            None => {
                return Err(ArchiveError::Malformed {
                    at: self.header_location(),
                    reason: "extension headers are not where the tar parser found them".into(),
                })
            }
        };
        let header = entry.header().clone();
        let typeflag = header.as_bytes()[156];
        let mut raw_path = match pax.as_ref().and_then(|p| p.get_nonempty("path")) {
            Some(p) => p.to_vec(),
            None => entry.path_bytes().into_owned(),
        };
        let pax_sparse = match pax.as_ref().map(sparse::pax_sparse).transpose() {
            Ok(sp) => sp.flatten(),
            Err(reason) => return Err(self.refuse(&raw_path, reason)),
        };
        if let Some(name) = pax_sparse.as_ref().and_then(|sp| sp.name.clone()) {
            raw_path = name;
        }
        match &mut self.last {
            Some(last) => {
                last.clear();
                last.extend_from_slice(&raw_path);
            }
            None => self.last = Some(raw_path.clone()),
        }
        let label: &[u8] = &raw_path;
        let path = paths::normalize(&raw_path).map_err(|r| self.refuse(&raw_path, r))?;

        let kind = match header.entry_type() {
            EntryType::XGlobalHeader => Kind::Skip,
            EntryType::Regular if typeflag == 0 && raw_path.ends_with(b"/") => Kind::Dir,
            EntryType::Regular | EntryType::Continuous => Kind::File(pax_sparse),
            EntryType::GNUSparse => Kind::GnuSparse,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::Hardlink,
            EntryType::Char => Kind::Node(FileType::CharacterDevice),
            EntryType::Block => Kind::Node(FileType::BlockDevice),
            EntryType::Fifo => Kind::Node(FileType::Fifo),
            _ => {
                return Err(ArchiveError::UnsupportedEntry {
                    entry: show(label),
                    kind: format!("{:?}", char::from(typeflag)),
                })
            }
        };
        if matches!(kind, Kind::Skip) {
            return self.drain(entry, label);
        }
        // The tar crate positions the stream with its own reading of the PAX size, which gives
        // up on records it cannot parse; refuse rather than extract a misaligned stream.
        let pax_size = pax.as_ref().map(|p| p.get_u64("size")).transpose();
        match pax_size.map(Option::flatten) {
            Ok(Some(size)) if !matches!(kind, Kind::GnuSparse) && size != entry.size() => {
                return Err(ArchiveError::Malformed {
                    at: format!("in entry {:?}", show(label)),
                    reason: format!(
                        "PAX size {size} disagrees with the size the tar parser used ({})",
                        entry.size()
                    ),
                })
            }
            Err(reason) => {
                return Err(ArchiveError::Malformed {
                    at: format!("in entry {:?}", show(label)),
                    reason,
                })
            }
            _ => {}
        }
        let meta = self.meta(&header, pax.as_ref(), label)?;
        if path.is_empty() && !matches!(kind, Kind::Dir) {
            return Err(self.refuse(&raw_path, "entry would replace the layer root"));
        }
        let (dir, base) = paths::split(&path);
        if let Some(m) = whiteout::marker(base) {
            self.drain(entry, label)?;
            return match m {
                Marker::Whiteout(name) => ex.whiteout(&raw_path, dir, name, &meta),
                Marker::Opaque => ex.opaque(&raw_path, dir),
                Marker::Ignored => Ok(()),
            };
        }

        let link = match pax.as_ref().and_then(|p| p.get_nonempty("linkpath")) {
            Some(l) => Some(l.to_vec()),
            None => entry.link_name_bytes().map(|l| l.into_owned()),
        };
        match kind {
            Kind::Skip => Ok(()),
            Kind::Dir => {
                ex.directory(&path, &meta)?;
                self.drain(entry, label)
            }
            Kind::File(sp) => self.regular(ex, entry, &path, &meta, sp),
            Kind::GnuSparse => {
                self.check_logical_size(entry.size(), label)?;
                let t = ex.target(&path)?;
                let size = entry.size();
                let mut content = Flushing::new(entry, self.tap, &mut self.split);
                let res = ex.regular(&t, &meta, &mut content, size, FileData::GnuSparse);
                let split_err = content.split_err.take();
                self.copy_result(res, split_err, label)
            }
            Kind::Symlink => {
                let target = link
                    .filter(|l| !l.is_empty() && !l.contains(&0))
                    .ok_or_else(|| self.refuse(&raw_path, "symlink without a valid target"))?;
                let t = ex.target(&path)?;
                ex.symlink(&t, &target, &meta)?;
                self.drain(entry, label)
            }
            Kind::Hardlink => {
                let target = link.unwrap_or_default();
                let target = paths::normalize(&target).map_err(|r| {
                    self.refuse(
                        &raw_path,
                        format!("hardlink target {:?}: {r}", show(&target)),
                    )
                })?;
                let t = ex.target(&path)?;
                ex.hardlink(&t, &target)?;
                self.drain(entry, label)
            }
            Kind::Node(ft) => {
                let dev = if ft == FileType::Fifo {
                    0
                } else {
                    let bad = |e: io::Error| ArchiveError::Malformed {
                        at: format!("in entry {:?}", show(label)),
                        reason: e.to_string(),
                    };
                    let major = header.device_major().map_err(bad)?.unwrap_or(0);
                    let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
                    fs::makedev(major, minor)
                };
                let t = ex.target(&path)?;
                ex.node(&t, ft, dev, &meta)?;
                self.drain(entry, label)
            }
        }
    }

    /// A regular file: plain content is recorded as a FILE record and read with capture off;
    /// PAX-sparse content stays inline.
    fn regular(
        &mut self,
        ex: &mut Extractor,
        entry: &mut tar::Entry<'_, &Tap<T>>,
        path: &[u8],
        meta: &Meta,
        sparse: Option<PaxSparse>,
    ) -> Result<(), ArchiveError> {
        let label = path;
        let size = entry.size();
        let t = ex.target(path)?;
        if let Some(sp) = &sparse {
            self.check_logical_size(sp.real_size, label)?;
            let mut content = Flushing::new(entry, self.tap, &mut self.split);
            let res = ex.regular(&t, meta, &mut content, size, FileData::PaxSparse(sp));
            let split_err = content.split_err.take();
            return self.copy_result(res, split_err, label);
        }
        if size == 0 {
            let res = ex.regular(&t, meta, &mut io::empty(), 0, FileData::Plain);
            return self.copy_result(res, None, label);
        }
        self.flush()?;
        self.split
            .file(path, size)
            .map_err(|source| ArchiveError::TarSplitWrite { source })?;
        self.tap.set_capture(false);
        let res = ex.regular(&t, meta, entry, size, FileData::Plain);
        self.tap.set_capture(true);
        self.copy_result(res, None, label)
    }

    fn check_logical_size(&self, size: u64, label: &[u8]) -> Result<(), ArchiveError> {
        if size > self.opts.max_uncompressed {
            return Err(ArchiveError::TooLarge {
                limit: self.opts.max_uncompressed,
                at: format!("in sparse entry {:?} of {size} bytes", show(label)),
            });
        }
        Ok(())
    }

    fn copy_result(
        &self,
        res: Result<(), Fail>,
        split_err: Option<io::Error>,
        label: &[u8],
    ) -> Result<(), ArchiveError> {
        if let Some(source) = split_err {
            return Err(ArchiveError::TarSplitWrite { source });
        }
        let at = || format!("in entry {:?}", show(label));
        match res {
            Ok(()) => Ok(()),
            Err(Fail::Archive(e)) => Err(e),
            Err(Fail::Copy(CopyError::Write(e))) => {
                Err(crate::extract::extract_err(label, "write file data", e))
            }
            Err(Fail::Copy(CopyError::Format(reason))) => {
                Err(ArchiveError::Malformed { at: at(), reason })
            }
            Err(Fail::Copy(CopyError::Stream(e))) => Err(self.stream_err(e, at())),
            Err(Fail::Copy(CopyError::Truncated)) => Err(self.stream_err(
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ends in the middle of the entry (truncated)",
                ),
                at(),
            )),
        }
    }

    /// Reads (and captures) whatever data an entry has that is not extracted as file content.
    fn drain(
        &mut self,
        entry: &mut tar::Entry<'_, &Tap<T>>,
        label: &[u8],
    ) -> Result<(), ArchiveError> {
        let size = entry.size();
        if size == 0 {
            return Ok(());
        }
        let mut content = Flushing::new(entry, self.tap, &mut self.split);
        let res = io::copy(&mut content, &mut io::sink());
        let split_err = content.split_err.take();
        let res = match res {
            Ok(n) if n == size => Ok(()),
            Ok(_) => Err(Fail::Copy(CopyError::Truncated)),
            Err(e) => Err(Fail::Copy(CopyError::Stream(e))),
        };
        self.copy_result(res, split_err, label)
    }

    /// Entry metadata from the header and PAX records.
    fn meta(
        &self,
        header: &tar::Header,
        pax: Option<&Pax>,
        label: &[u8],
    ) -> Result<Meta, ArchiveError> {
        let bad = |reason: String| ArchiveError::Malformed {
            at: format!("in entry {:?}", show(label)),
            reason,
        };
        let pax_u64 = |key: &str| pax.map(|p| p.get_u64(key)).transpose().map(Option::flatten);
        let pax_time = |key: &str| {
            pax.map(|p| p.get_time(key))
                .transpose()
                .map(Option::flatten)
        };
        let id = |key: &str, from_header: io::Result<u64>| -> Result<u32, ArchiveError> {
            let v = match pax_u64(key).map_err(&bad)? {
                Some(v) => v,
                None => from_header.map_err(|e| bad(e.to_string()))?,
            };
            u32::try_from(v).map_err(|_| bad(format!("{key} {v} is out of range")))
        };
        let uid = id("uid", header.uid())?;
        let gid = id("gid", header.gid())?;
        let mode = header.mode().map_err(|e| bad(e.to_string()))? & 0o7777;
        let mtime = match pax_time("mtime").map_err(&bad)? {
            Some(t) => t,
            None => Time {
                secs: header
                    .mtime()
                    .ok()
                    .and_then(|m| i64::try_from(m).ok())
                    .ok_or_else(|| bad("bad mtime".into()))?,
                nanos: 0,
            },
        };
        let gnu_atime = header
            .as_gnu()
            .and_then(|g| g.atime().ok())
            .filter(|&a| a != 0)
            .and_then(|a| i64::try_from(a).ok())
            .map(|secs| Time { secs, nanos: 0 });
        // As containers/storage does: an access time older than the modification time (or
        // none) becomes the modification time.
        let atime = pax_time("atime")
            .map_err(&bad)?
            .or(gnu_atime)
            .filter(|a| *a >= mtime)
            .unwrap_or(mtime);
        let xattrs = pax
            .map(|p| {
                p.xattrs()
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            atime,
            xattrs,
        })
    }
}
