//! Re-creating a layer's exact uncompressed tar from its tar-split record and the extracted
//! tree (`export_tarsplit`).
//!
//! File contents are opened inside the source directory with in-root resolution and without
//! following the final component, and must be regular files of exactly the recorded size.
//! The output's digest and size are computed on the fly and checked against the END record.
//! It does not compress; wrap `out` in a [`crate::Compressor`] for that.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use rustix::fs::{FileType, OFlags};
use strata_types::Digest;

use crate::error::show;
use crate::hashing::HashPipe;
use crate::tarsplit::{Record, SplitReader};
use crate::tree::Root;
use crate::{ArchiveError, COPY_BUFFER};

/// Re-creates a layer's exact uncompressed tar from its tar-split record, reading file data
/// by path from `source` (the driver's `diff_dir`). Returns the digest and size of what was
/// written; it is also checked against the digest recorded when the layer was applied.
pub fn export_tarsplit(
    tarsplit: impl Read,
    source: &Path,
    out: impl Write,
) -> Result<(Digest, u64), ArchiveError> {
    let _span = tracing::debug_span!("export_tarsplit", source = %source.display()).entered();
    let root = Root::open(source).map_err(|e| ArchiveError::Open {
        path: source.to_owned(),
        source: e,
    })?;
    let mut reader = SplitReader::new(tarsplit)?;
    let mut out = HashWriter::new(BufWriter::with_capacity(COPY_BUFFER, out));
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match reader.next()? {
            Record::Segment(bytes) => out.write_all(bytes).map_err(write_err)?,
            Record::File { path, size } => copy_file(&root, path, size, &mut out, &mut buf)?,
            Record::End { size, digest } => {
                out.inner.flush().map_err(write_err)?;
                let (actual, written) = out.finish();
                if written != size {
                    return Err(ArchiveError::TarSplitCorrupt {
                        reason: format!("replay produced {written} bytes, the record says {size}"),
                    });
                }
                if actual != digest {
                    return Err(ArchiveError::DigestMismatch {
                        what: "exported layer digest",
                        expected: digest,
                        actual,
                    });
                }
                return Ok((actual, written));
            }
        }
    }
}

fn write_err(source: io::Error) -> ArchiveError {
    ArchiveError::Write { source }
}

fn copy_file<W: Write>(
    root: &Root,
    path: &[u8],
    size: u64,
    out: &mut HashWriter<W>,
    buf: &mut [u8],
) -> Result<(), ArchiveError> {
    let mismatch = |reason: String| ArchiveError::SourceMismatch {
        path: show(path),
        reason,
    };
    let fd = root
        .open_in(path, OFlags::RDONLY | OFlags::NOFOLLOW)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => mismatch("missing from the layer tree".into()),
            _ => ArchiveError::Source {
                path: show(path),
                source: e,
            },
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ArchiveError::Source {
        path: show(path),
        source: e.into(),
    })?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(mismatch("not a regular file".into()));
    }
    if st.st_size as u64 != size {
        return Err(mismatch(format!(
            "size is {} bytes, the record says {size}",
            st.st_size
        )));
    }
    let mut file = File::from(fd);
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return Err(mismatch("file shrank while being read".into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ArchiveError::Source {
                    path: show(path),
                    source: e,
                })
            }
        };
        out.write_all(&buf[..n]).map_err(write_err)?;
        left -= n as u64;
    }
    Ok(())
}

/// A writer that hashes and counts what passes through it.
#[derive(Debug)]
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    hasher: HashPipe,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: HashPipe::new(),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
