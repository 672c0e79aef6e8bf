//! The two reader wrappers of the apply pipeline.
//!
//! - [`RawCounter`] sits under the decompressor: it counts (and, for compressed input, hashes)
//!   the raw input bytes, giving the blob digest.
//! - [`Tap`] sits between the decompressor and the tar parser: it counts and hashes every
//!   uncompressed byte (the diff ID), enforces the size limit as bytes flow, and, while its
//!   *capture* switch is on, keeps a copy of what passes through. `apply` turns capture off
//!   only while it copies a regular file's content, so the captured bytes are exactly the
//!   tar-split "segments" (headers, extension records, padding, end blocks, trailing bytes).
//!
//! This works because the `tar` crate never reads ahead: it reads exactly one 512-byte header
//! block at a time, extension data with `take(size)`, skips padding with a forward seek
//! (which the tap implements by reading, so padding is captured too), and hands out entry data
//! through `take(size)` over the same reader. (Checked against tar 0.4.46's `archive.rs`.)
//!
//! Neither wrapper decides anything about the tar format; they only observe.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Seek, SeekFrom};

use strata_types::Digest;

use crate::hashing::HashPipe;

/// Counters for the raw input, shared with [`RawCounter`] by reference.
#[derive(Debug, Default)]
pub(crate) struct RawStats {
    hasher: RefCell<Option<HashPipe>>,
    count: Cell<u64>,
    failed: Cell<bool>,
}

impl RawStats {
    /// `hash`: whether to hash the raw bytes (not needed when they equal the uncompressed ones).
    pub(crate) fn new(hash: bool) -> RawStats {
        RawStats {
            hasher: RefCell::new(hash.then(HashPipe::new)),
            ..RawStats::default()
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.get()
    }

    /// Whether the underlying reader returned an error.
    pub(crate) fn failed(&self) -> bool {
        self.failed.get()
    }

    /// The digest of the raw bytes, if they were hashed.
    pub(crate) fn finish(&self) -> Option<Digest> {
        self.hasher.borrow_mut().take().map(HashPipe::finish)
    }
}

/// Counts and hashes the raw input into a [`RawStats`].
pub(crate) struct RawCounter<'s, R> {
    inner: R,
    stats: &'s RawStats,
}

impl<'s, R: Read> RawCounter<'s, R> {
    pub(crate) fn new(inner: R, stats: &'s RawStats) -> Self {
        RawCounter { inner, stats }
    }
}

impl<R: Read> Read for RawCounter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.stats.failed.set(true);
            }
        })?;
        self.stats.count.set(self.stats.count.get() + n as u64);
        if let Some(h) = self.stats.hasher.borrow_mut().as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Why the tap itself failed a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TapFailure {
    /// The decompressor (or the raw reader below it) returned an error.
    Source,
    /// More uncompressed bytes than the limit.
    TooLarge,
    /// The tar parser read more than [`HEADER_BUDGET`] bytes of headers for one entry.
    HeaderTooLarge,
}

/// How many bytes of headers and extension records one entry may have (PAX records, GNU long
/// names, sparse maps). The tar crate keeps them in memory, so they must be bounded.
pub(crate) const HEADER_BUDGET: u64 = 16 << 20;

/// The uncompressed-stream observer. Shared by reference (`&Tap` implements `Read`) between
/// the tar parser and `apply`, which flips its switches between reads.
pub(crate) struct Tap<R> {
    inner: RefCell<R>,
    hasher: RefCell<Option<HashPipe>>,
    pos: Cell<u64>,
    limit: u64,
    capture: Cell<bool>,
    segment: RefCell<Vec<u8>>,
    /// Stream offset of `segment[0]`.
    seg_start: Cell<u64>,
    budget: Cell<Option<u64>>,
    eof: Cell<bool>,
    failure: Cell<Option<TapFailure>>,
}

impl<R: Read> Tap<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Tap {
            inner: RefCell::new(inner),
            hasher: RefCell::new(Some(HashPipe::new())),
            pos: Cell::new(0),
            limit,
            capture: Cell::new(true),
            segment: RefCell::new(Vec::with_capacity(64 << 10)),
            seg_start: Cell::new(0),
            budget: Cell::new(None),
            eof: Cell::new(false),
            failure: Cell::new(None),
        }
    }

    /// Uncompressed bytes read so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos.get()
    }

    pub(crate) fn failure(&self) -> Option<TapFailure> {
        self.failure.get()
    }

    /// Whether a read returned end-of-stream.
    pub(crate) fn eof(&self) -> bool {
        self.eof.get()
    }

    /// Turns capturing on or off. Turning it on starts the segment at the current offset.
    pub(crate) fn set_capture(&self, on: bool) {
        if on && !self.capture.get() {
            debug_assert!(self.segment.borrow().is_empty());
            self.seg_start.set(self.pos.get());
        }
        self.capture.set(on);
    }

    /// Limits how many bytes may be read until the next call (`None`: no limit).
    pub(crate) fn set_header_budget(&self, budget: Option<u64>) {
        self.budget.set(budget);
    }

    /// Bytes captured and not yet taken.
    pub(crate) fn captured_len(&self) -> usize {
        self.segment.borrow().len()
    }

    /// Hands the captured bytes to `f` and forgets them.
    pub(crate) fn take_captured<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        let mut seg = self.segment.borrow_mut();
        let out = f(&seg);
        self.seg_start.set(self.seg_start.get() + seg.len() as u64);
        seg.clear();
        out
    }

    /// Calls `f` with the captured bytes at stream offsets `from..to`, or returns `None` when
    /// they are not (all) in the capture buffer.
    pub(crate) fn captured<T>(&self, from: u64, to: u64, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let seg = self.segment.borrow();
        let start = self.seg_start.get();
        let end = start + seg.len() as u64;
        if from < start || to > end || from > to {
            return None;
        }
        Some(f(&seg[(from - start) as usize..(to - start) as usize]))
    }

    /// The diff ID of everything read so far (reading after this is not hashed).
    pub(crate) fn digest(&self) -> Digest {
        self.hasher
            .take()
            .map_or_else(|| HashPipe::new().finish(), HashPipe::finish)
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    fn fail(&self, why: TapFailure, msg: &'static str) -> io::Error {
        self.failure.set(Some(why));
        io::Error::other(msg)
    }
}

impl<R: Read> Read for &Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = self.failure.get() {
            // A failed stream stays failed (the tar crate may retry after an error).
            return Err(io::Error::other(format!(
                "layer stream already failed: {f:?}"
            )));
        }
        let n = match self.inner.borrow_mut().read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failure.set(Some(TapFailure::Source));
                return Err(e);
            }
        };
        if n == 0 {
            self.eof.set(true);
            return Ok(0);
        }
        let pos = self.pos.get() + n as u64;
        if pos > self.limit {
            return Err(self.fail(TapFailure::TooLarge, "uncompressed size limit exceeded"));
        }
        if let Some(left) = self.budget.get() {
            if n as u64 > left {
                return Err(self.fail(
                    TapFailure::HeaderTooLarge,
                    "tar extension headers exceed the size limit",
                ));
            }
            self.budget.set(Some(left - n as u64));
        }
        self.pos.set(pos);
        let data = &buf[..n];
        if let Some(h) = self.hasher.borrow_mut().as_mut() {
            h.update(data);
        }
        if self.capture.get() {
            self.segment.borrow_mut().extend_from_slice(data);
        }
        Ok(n)
    }
}

/// Forward "seeks" read and discard (through [`Read`], so the bytes are still counted, hashed
/// and captured). The tar crate skips padding with a seek when the reader can seek, instead of
/// zeroing a 32 KiB buffer for every entry.
impl<R: Read> Seek for &Tap<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Current(n) = pos else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the layer stream only skips forward",
            ));
        };
        let mut left = u64::try_from(n).map_err(|_| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "the layer stream only skips forward",
            )
        })?;
        let mut buf = [0u8; 512];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "unexpected EOF during skip",
                    ))
                }
                Ok(got) => left -= got as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.pos.get())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn captures_only_while_on_and_hashes_everything() {
        let data: Vec<u8> = (0..100u8).collect();
        let tap = Tap::new(&data[..], u64::MAX);
        let mut r = &tap;
        let mut buf = [0u8; 10];
        r.read_exact(&mut buf).unwrap();
        tap.take_captured(|s| assert_eq!(s, &data[..10]));
        tap.set_capture(false);
        r.read_exact(&mut buf).unwrap();
        tap.set_capture(true);
        r.read_exact(&mut buf).unwrap();
        assert_eq!(
            tap.captured(20, 30, |s| s.to_vec()),
            Some(data[20..30].to_vec())
        );
        assert_eq!(tap.captured(15, 30, |s| s.len()), None);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert!(tap.eof());
        assert_eq!(tap.digest(), Digest::of(&data));
    }

    #[test]
    fn enforces_limit() {
        let data = vec![0u8; 1000];
        let tap = Tap::new(&data[..], 999);
        let err = std::io::copy(&mut &tap, &mut std::io::sink()).unwrap_err();
        assert_eq!(tap.failure(), Some(TapFailure::TooLarge), "{err}");
    }
}
