//! `apply`: one streaming pass from layer bytes to an extracted tree plus its tar-split record.
//!
//! ```text
//! input -> RawCounter (blob digest) -> BufReader -> gzip/zstd/plain -> Tap (diff ID, limit,
//!       capture) -> tar::Archive -> entries -> Extractor (filesystem) + SplitWriter (record)
//! ```
//!
//! For each entry: the PAX records are parsed from the captured extension headers (see
//! `pax`), the name is validated and normalised (see `paths`), whiteouts are routed to
//! `whiteout`, everything else to `extract`. A regular file's content is read with capture
//! off and recorded as a FILE record; every other byte ends up in SEGMENT records. After the
//! end-of-archive marker the rest of the stream is drained so both digests cover every byte.
//!
//! It does not retry, clean up a failed extraction (the caller discards the staging root), or
//! decide where layers live.

use std::io::{self, Read, Write};
use std::path::Path;

use tracing::debug;

use crate::error::show;
use crate::extract::Extractor;
use crate::pipeline::Source;
use crate::tap::{RawCounter, RawStats, Tap, TapFailure, HEADER_BUDGET};
use crate::tarsplit::SplitWriter;
use crate::{Applied, ApplyOptions, ArchiveError, Compression};

/// Captured bytes are handed to the tar-split writer once this many have accumulated.
const FLUSH_AT: usize = 1 << 20;

mod entry;

/// Streams `input` (uncompressed, gzip or zstd; detected from the bytes) into the directory
/// `root` in one pass: hashes the raw and the uncompressed bytes, extracts, and writes the
/// tar-split record (everything needed to re-create the exact tar stream, minus file data) to
/// `tarsplit`. Hostile entries are rejected with an error naming the entry. On error the caller
/// discards `root` (it is a staging area), so partial extraction is fine.
pub fn apply(
    input: impl Read,
    root: &Path,
    tarsplit: impl Write,
    opts: &ApplyOptions,
) -> Result<Applied, ArchiveError> {
    let _span = tracing::debug_span!("apply", root = %root.display()).entered();
    let mut input = input;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut input, &mut magic).map_err(|source| ArchiveError::Read {
        at: "at the start of the stream".into(),
        source,
    })?;
    let compression = Compression::detect(&magic[..n]);
    // For plain tars the raw bytes are the uncompressed bytes: hash them once.
    let raw_stats = RawStats::new(compression != Compression::None);
    let raw = RawCounter::new((&magic[..n]).chain(input), &raw_stats);
    let source = Source::new(raw, compression).map_err(|source| ArchiveError::Decompress {
        compression,
        at: "at the start of the stream".into(),
        source,
    })?;
    let tap = Tap::new(source, opts.max_uncompressed);
    let split =
        SplitWriter::new(tarsplit).map_err(|source| ArchiveError::TarSplitWrite { source })?;
    let mut ex = Extractor::new(root, opts)?;
    let mut run = Run {
        tap: &tap,
        split,
        opts,
        compression,
        raw: &raw_stats,
        prev_end: 0,
        last: None,
        entries: 0,
    };
    run.entries(&mut ex)?;
    run.end_of_archive()?;
    ex.finish()?;
    let Run { split, entries, .. } = run;

    let uncompressed_size = tap.pos();
    let diff_id = tap.digest();
    tap.into_inner()
        .drain_raw()
        .map_err(|source| ArchiveError::Read {
            at: "after the end of the layer".into(),
            source,
        })?;
    let blob_digest = raw_stats.finish().unwrap_or_else(|| diff_id.clone());
    split
        .finish(uncompressed_size, &diff_id)
        .map_err(|source| ArchiveError::TarSplitWrite { source })?;

    if let Some(expected) = &opts.expected_blob_digest {
        if *expected != blob_digest {
            return Err(ArchiveError::DigestMismatch {
                what: "layer blob digest",
                expected: expected.clone(),
                actual: blob_digest,
            });
        }
    }
    if let Some(expected) = &opts.expected_diff_id {
        if *expected != diff_id {
            return Err(ArchiveError::DigestMismatch {
                what: "layer diff ID",
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    debug!(%diff_id, entries, uncompressed_size, ?compression, "layer applied");
    Ok(Applied {
        diff_id,
        blob_digest,
        blob_size: raw_stats.count(),
        uncompressed_size,
        compression,
        entries,
    })
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn align512(x: u64) -> u64 {
    x.div_ceil(512) * 512
}

/// The state of one apply run.
struct Run<'a, T: Read, W: Write> {
    tap: &'a Tap<T>,
    split: SplitWriter<W>,
    opts: &'a ApplyOptions,
    compression: Compression,
    raw: &'a RawStats,
    /// Stream offset where the previous entry's data ended.
    prev_end: u64,
    /// Name of the entry being (or last) processed, for messages.
    last: Option<Vec<u8>>,
    entries: u64,
}

impl<'a, T: Read, W: Write> Run<'a, T, W> {
    fn entries(&mut self, ex: &mut Extractor) -> Result<(), ArchiveError> {
        let mut archive = tar::Archive::new(self.tap);
        let mut iter = archive
            .entries_with_seek()
            .map_err(|e| self.stream_err(e, self.after()))?;
        loop {
            self.tap.set_header_budget(Some(HEADER_BUDGET));
            let next = iter.next();
            self.tap.set_header_budget(None);
            let mut entry = match next {
                None => return Ok(()),
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(self.stream_err(e, self.header_location())),
            };
            self.entries += 1;
            self.entry(ex, &mut entry)?;
            self.prev_end = self.tap.pos();
            if self.tap.captured_len() >= FLUSH_AT {
                self.flush()?;
            }
        }
    }

    /// After the tar end: the first end block was read by the tar crate; check the second one
    /// (a lone zero block at the very end is accepted, as Go's reader does) and drain the rest.
    fn end_of_archive(&mut self) -> Result<(), ArchiveError> {
        let at = || "at the end of the archive".to_string();
        if self.tap.eof() {
            return Err(ArchiveError::Malformed {
                at: self.after(),
                reason: "stream ends without an end-of-archive marker (truncated)".into(),
            });
        }
        let mut block = [0u8; 512];
        let got = read_up_to(&mut self.tap, &mut block).map_err(|e| self.stream_err(e, at()))?;
        if got != 0 && got < 512 {
            return Err(ArchiveError::Malformed {
                at: at(),
                reason: "stream ends in the middle of the end-of-archive marker (truncated)".into(),
            });
        }
        if block.iter().any(|&b| b != 0) {
            return Err(ArchiveError::Malformed {
                at: at(),
                reason: "a zero block is followed by a non-zero block".into(),
            });
        }
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match (&mut self.tap).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    if self.tap.captured_len() >= FLUSH_AT {
                        self.flush()?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_err(e, at())),
            }
        }
        self.flush()
    }

    /// Hands captured bytes to the tar-split writer.
    fn flush(&mut self) -> Result<(), ArchiveError> {
        let split = &mut self.split;
        self.tap
            .take_captured(|seg| {
                if seg.is_empty() {
                    Ok(())
                } else {
                    split.segment(seg)
                }
            })
            .map_err(|source| ArchiveError::TarSplitWrite { source })
    }

    fn refuse(&self, raw_path: &[u8], reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Refused {
            entry: show(raw_path),
            reason: reason.into(),
        }
    }

    /// Turns a read failure into the right error, using what the tap saw.
    fn stream_err(&self, e: io::Error, at: String) -> ArchiveError {
        match self.tap.failure() {
            Some(TapFailure::TooLarge) => ArchiveError::TooLarge {
                limit: self.opts.max_uncompressed,
                at,
            },
            Some(TapFailure::HeaderTooLarge) => ArchiveError::Malformed {
                at,
                reason: format!("extension headers exceed {HEADER_BUDGET} bytes"),
            },
            Some(TapFailure::Source)
                if self.raw.failed() || self.compression == Compression::None =>
            {
                ArchiveError::Read { at, source: e }
            }
            Some(TapFailure::Source) => ArchiveError::Decompress {
                compression: self.compression,
                at,
                source: e,
            },
            None => ArchiveError::Malformed {
                at,
                reason: e.to_string(),
            },
        }
    }

    fn after(&self) -> String {
        match &self.last {
            Some(l) => format!("after entry {:?} (offset {})", show(l), self.prev_end),
            None => "at the start of the stream".into(),
        }
    }

    /// [`Self::after`], plus the name field of the header being parsed when it is readable.
    fn header_location(&self) -> String {
        let start = align512(self.prev_end);
        let pos = self.tap.pos();
        let name = (pos > start)
            .then(|| start + (pos - 1 - start) / 512 * 512)
            .and_then(|block| {
                self.tap.captured(block, pos.min(block + 512), |b| {
                    // A complete block must look like a ustar/GNU header to be named.
                    if b.len() == 512 && &b[257..262] != b"ustar" {
                        return None;
                    }
                    let b = &b[..b.len().min(100)];
                    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
                    (!b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' '))
                        .then(|| show(b))
                })
            })
            .flatten();
        match name {
            Some(n) => format!("{}, at header {n:?}", self.after()),
            None => self.after(),
        }
    }
}

/// Reads entry data with capture on, handing captured bytes to the tar-split writer as they
/// accumulate (so large inline data never piles up in memory).
struct Flushing<'e, 't, R, T: Read, W: Write> {
    inner: R,
    tap: &'t Tap<T>,
    split: &'e mut SplitWriter<W>,
    split_err: Option<io::Error>,
}

impl<'e, 't, R: Read, T: Read, W: Write> Flushing<'e, 't, R, T, W> {
    fn new(inner: R, tap: &'t Tap<T>, split: &'e mut SplitWriter<W>) -> Self {
        Flushing {
            inner,
            tap,
            split,
            split_err: None,
        }
    }
}

impl<R: Read, T: Read, W: Write> Read for Flushing<'_, '_, R, T, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.tap.captured_len() >= FLUSH_AT {
            let split = &mut *self.split;
            if let Err(e) = self.tap.take_captured(|seg| split.segment(seg)) {
                let msg = e.to_string();
                self.split_err = Some(e);
                return Err(io::Error::other(msg));
            }
        }
        Ok(n)
    }
}
