//! Digest-checking streams: [`VerifyingReader`] checks a blob's size and digest as it is read,
//! [`HashingWriter`] measures what is written.
//!
//! A mismatch surfaces as an `io::Error` from `read` (so whatever consumes the stream, a
//! destination or the store, aborts), and is also recorded in a shared [`Verdict`] so the
//! copy engine can report it as [`ImageError::DigestMismatch`] whatever the consumer made of
//! the I/O error. Nothing here retries or buffers.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use strata_types::{Digest, Hasher};

use crate::error::{ImageError, Result};

#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Pending,
    Verified,
    Mismatch {
        expected: String,
        actual: String,
    },
}

/// The outcome of a [`VerifyingReader`], shared with whoever created it.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    what: String,
    state: Arc<Mutex<State>>,
}

impl Verdict {
    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    fn get(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The mismatch the reader saw, if any.
    pub fn mismatch(&self) -> Option<ImageError> {
        match self.get() {
            State::Mismatch { expected, actual } => Some(ImageError::DigestMismatch {
                what: self.what.clone(),
                expected,
                actual,
            }),
            _ => None,
        }
    }

    /// `Ok` only if the whole stream was read and matched.
    pub fn check(&self) -> Result<()> {
        match self.get() {
            State::Verified => Ok(()),
            State::Pending => Err(ImageError::Invalid(format!(
                "{} was not read to its end by the destination",
                self.what
            ))),
            State::Mismatch { .. } => Err(self.mismatch().unwrap_or_else(|| {
                ImageError::Invalid(format!("{} failed verification", self.what))
            })),
        }
    }
}

/// Progress callback: called with the number of bytes each read returned.
pub type OnBytes = Box<dyn FnMut(u64) + Send>;

/// Reads a stream that must be exactly `size` bytes with digest `expected`.
pub struct VerifyingReader<R> {
    inner: R,
    expected: Digest,
    size: u64,
    read: u64,
    hasher: Option<Hasher>,
    verdict: Verdict,
    on_bytes: Option<OnBytes>,
}

impl<R> std::fmt::Debug for VerifyingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingReader")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`; `what` names the stream in errors (e.g. `layer sha256:...`).
    pub fn new(inner: R, expected: Digest, size: u64, what: impl Into<String>) -> Self {
        VerifyingReader {
            inner,
            expected,
            size,
            read: 0,
            hasher: Some(Hasher::new()),
            verdict: Verdict {
                what: what.into(),
                state: Arc::default(),
            },
            on_bytes: None,
        }
    }

    /// Calls `f` with the byte count of every read.
    pub fn with_progress(mut self, f: OnBytes) -> Self {
        self.on_bytes = Some(f);
        self
    }

    /// How many bytes were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The handle the outcome is recorded in.
    pub fn verdict(&self) -> Verdict {
        self.verdict.clone()
    }

    fn fail(&mut self, expected: String, actual: String) -> io::Error {
        self.hasher = None;
        self.verdict.set(State::Mismatch {
            expected: expected.clone(),
            actual: actual.clone(),
        });
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} digest mismatch: expected {expected}, got {actual}",
                self.verdict.what
            ),
        )
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let State::Mismatch { expected, actual } = self.verdict.get() {
            return Err(self.fail(expected, actual));
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.read += n as u64;
            if self.read > self.size {
                let (e, a) = (format!("{} bytes", self.size), "more bytes".to_owned());
                return Err(self.fail(e, a));
            }
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            // Verify as soon as the declared size is in: a destination that reads exactly
            // `size` bytes (an HTTP body with a Content-Length) never asks for the EOF, and
            // must see a mismatch on its last read, before it finishes the blob.
            if self.read == self.size {
                if let Some(h) = self.hasher.take() {
                    let actual = h.finish();
                    if actual != self.expected {
                        return Err(self.fail(self.expected.to_string(), actual.to_string()));
                    }
                    self.verdict.set(State::Verified);
                }
            }
            if let Some(f) = self.on_bytes.as_mut() {
                f(n as u64);
            }
        } else if !buf.is_empty() {
            if let Some(h) = self.hasher.take() {
                if self.read != self.size {
                    let (e, a) = (
                        format!("{} bytes", self.size),
                        format!("{} bytes", self.read),
                    );
                    return Err(self.fail(e, a));
                }
                let actual = h.finish();
                if actual != self.expected {
                    return Err(self.fail(self.expected.to_string(), actual.to_string()));
                }
                self.verdict.set(State::Verified);
            }
        }
        Ok(n)
    }
}

/// A writer that digests and counts what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
            written: 0,
        }
    }

    /// The digest and size of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.written, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that digests and counts what passes through it (no expected value).
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
            read: 0,
        }
    }

    /// The digest and size of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn accepts_the_right_bytes() {
        let data = b"layer bytes";
        let mut r = VerifyingReader::new(&data[..], Digest::of(data), data.len() as u64, "blob");
        assert_eq!(drain(&mut r).unwrap(), data);
        r.verdict().check().unwrap();
    }

    #[test]
    fn rejects_wrong_digest_size_and_short_reads() {
        let data = b"layer bytes";
        let mut r = VerifyingReader::new(&data[..], Digest::of(b"x"), data.len() as u64, "b");
        assert!(drain(&mut r).is_err());
        assert!(matches!(
            r.verdict().check(),
            Err(ImageError::DigestMismatch { .. })
        ));

        let mut long = VerifyingReader::new(&data[..], Digest::of(data), 3, "b");
        assert!(drain(&mut long).is_err());
        assert!(long.verdict().mismatch().is_some());

        let mut short = VerifyingReader::new(&data[..], Digest::of(data), 100, "b");
        assert!(drain(&mut short).is_err());

        let unread = VerifyingReader::new(&data[..], Digest::of(data), 11, "b");
        assert!(unread.verdict().check().is_err());
    }

    #[test]
    fn hashing_writer_measures() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (d, n, inner) = w.finish();
        assert_eq!((d, n, inner), (Digest::of(b"abc"), 3, b"abc".to_vec()));
    }
}
