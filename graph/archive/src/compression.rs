//! Layer compression: detection from magic bytes, the streaming decoder used by `apply`, and
//! the [`Compressor`] writer used when pushing layers.
//!
//! Only gzip (possibly multi-member) and zstd (possibly multi-frame) are recognised; anything
//! else is taken to be a plain tar and left to the tar parser to judge.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

use crate::ArchiveError;

/// Compression of a layer stream, detected from magic bytes on apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// gzip level used for pushing (the level podman and skopeo use).
const GZIP_LEVEL: u32 = 6;
/// zstd level used for pushing (zstd's own default).
const ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// Classifies a stream from its first (up to four) bytes.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// A reader of the uncompressed tar in `input` (plain, gzip or zstd, detected from its first
/// bytes), with the compression it found: for callers that need the tar itself (to hash it
/// before extraction), not `apply`.
pub fn decompressing<'a, B: BufRead + Send + 'a>(
    mut input: B,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let c = Compression::detect(input.fill_buf()?);
    let d: Box<dyn Read + Send + 'a> = Box::new(Decoder::new(input, c)?);
    Ok((c, d))
}

/// The decompressing reader `apply` pulls the tar through.
pub(crate) enum Decoder<B: BufRead> {
    Plain(B),
    Gzip(Box<flate2::bufread::MultiGzDecoder<B>>),
    Zstd(zstd::stream::read::Decoder<'static, B>),
}

impl<B: BufRead> Decoder<B> {
    pub(crate) fn new(input: B, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Decoder::Plain(input),
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input)))
            }
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }

    /// The compressed input, to drain whatever follows the compressed data.
    pub(crate) fn into_input(self) -> B {
        match self {
            Decoder::Plain(b) => b,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<B: BufRead> Read for Decoder<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// A writer that compresses what is written to it. [`Compressor::finish`] must be called to
/// write the end of the compressed stream.
pub struct Compressor<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> fmt::Debug for Compressor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.inner {
            Inner::None(_) => Compression::None,
            Inner::Gzip(_) => Compression::Gzip,
            Inner::Zstd(_) => Compression::Zstd,
        };
        f.debug_struct("Compressor")
            .field("compression", &c)
            .finish()
    }
}

/// Wraps `out` in a compressor for `c` (`None` passes bytes through unchanged).
pub fn compressor<W: Write>(out: W, c: Compression) -> Result<Compressor<W>, ArchiveError> {
    let inner = match c {
        Compression::None => Inner::None(out),
        Compression::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::new(GZIP_LEVEL),
        )),
        Compression::Zstd => Inner::Zstd(
            zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
                .map_err(|source| ArchiveError::Write { source })?,
        ),
    };
    Ok(Compressor { inner })
}

impl<W: Write> Compressor<W> {
    /// Writes the end of the compressed stream, flushes, and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        let mut w = match self.inner {
            Inner::None(w) => w,
            Inner::Gzip(e) => e.finish()?,
            Inner::Zstd(e) => e.finish()?,
        };
        w.flush()?;
        Ok(w)
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::None(w) => w.write(buf),
            Inner::Gzip(w) => w.write(buf),
            Inner::Zstd(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.write_all(buf),
            Inner::Gzip(w) => w.write_all(buf),
            Inner::Zstd(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.flush(),
            Inner::Gzip(w) => w.flush(),
            Inner::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detects_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"abc"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }

    #[test]
    fn compressors_round_trip() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut w = compressor(Vec::new(), c).unwrap();
            w.write_all(&data).unwrap();
            let out = w.finish().unwrap();
            assert_eq!(Compression::detect(&out), c);
            let mut back = Vec::new();
            Decoder::new(&out[..], c)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c}");
        }
    }
}
