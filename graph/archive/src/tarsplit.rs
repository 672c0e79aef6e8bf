//! The tar-split record: everything needed to re-create a layer's uncompressed tar byte for
//! byte, except the contents of regular files, which are read back from the extracted tree.
//!
//! Format version 1. The record is a zstd stream whose decompressed content is:
//!
//! ```text
//! magic     "strata-tarsplit\n"          16 bytes
//! version   0x01                         1 byte
//! record*   one of:
//!   0x01 SEGMENT  len:uv  bytes[len]      raw tar bytes (headers, PAX/GNU extension
//!                                         records, padding, stored data of entries that are
//!                                         not plain regular files, end blocks, trailing
//!                                         bytes), emitted verbatim; len <= 64 MiB
//!   0x02 FILE     plen:uv path[plen] size:uv
//!                                         `size` bytes: the content of the regular file at
//!                                         `path` (normalised, relative to the layer root)
//!   0x00 END      size:uv dlen:uv digest[dlen]
//!                                         total tar size and its digest ("sha256:<hex>");
//!                                         nothing may follow
//! ```
//!
//! `uv` is an unsigned LEB128 varint. Sparse files' stored data is kept inline as SEGMENT
//! bytes. A record without END is truncated and refused.
//!
//! Limitation: the FILE content is whatever the tree holds at `path` at export time, so a
//! layer that writes the same path twice (or removes a file it wrote) cannot be re-exported;
//! the exporter's size and digest checks then fail instead of producing a different tar.
//!
//! This module only encodes and decodes records; `apply` decides what goes in them and
//! `export` replays them.

use std::io::{self, BufReader, Read, Write};

use strata_types::Digest;

use crate::ArchiveError;

const MAGIC: &[u8; 16] = b"strata-tarsplit\n";
const VERSION: u8 = 1;
const TAG_END: u8 = 0;
const TAG_SEGMENT: u8 = 1;
const TAG_FILE: u8 = 2;
/// Segments are written in pieces of at most this size.
const WRITE_SEGMENT_MAX: usize = 1 << 20;
/// Readers refuse larger segments (bounds memory for a corrupt record).
const READ_SEGMENT_MAX: u64 = 64 << 20;
const PATH_MAX: u64 = 64 << 10;
/// zstd level for the record: headers and padding compress very well even at level 1, and
/// the record is written on the extracting thread.
const LEVEL: i32 = 1;

/// Writes a tar-split record.
pub(crate) struct SplitWriter<W: Write> {
    enc: zstd::stream::write::Encoder<'static, W>,
    scratch: Vec<u8>,
}

impl<W: Write> SplitWriter<W> {
    pub(crate) fn new(out: W) -> io::Result<Self> {
        let mut enc = zstd::stream::write::Encoder::new(out, LEVEL)?;
        enc.write_all(MAGIC)?;
        enc.write_all(&[VERSION])?;
        Ok(SplitWriter {
            enc,
            scratch: Vec::with_capacity(64),
        })
    }

    /// Raw tar bytes to emit verbatim.
    pub(crate) fn segment(&mut self, bytes: &[u8]) -> io::Result<()> {
        for piece in bytes.chunks(WRITE_SEGMENT_MAX) {
            self.scratch.clear();
            self.scratch.push(TAG_SEGMENT);
            put_uv(&mut self.scratch, piece.len() as u64);
            self.enc.write_all(&self.scratch)?;
            self.enc.write_all(piece)?;
        }
        Ok(())
    }

    /// `size` bytes of the regular file at `path`.
    pub(crate) fn file(&mut self, path: &[u8], size: u64) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.push(TAG_FILE);
        put_uv(&mut self.scratch, path.len() as u64);
        self.scratch.extend_from_slice(path);
        put_uv(&mut self.scratch, size);
        self.enc.write_all(&self.scratch)
    }

    /// Writes END and the end of the zstd stream.
    pub(crate) fn finish(mut self, size: u64, digest: &Digest) -> io::Result<W> {
        self.scratch.clear();
        self.scratch.push(TAG_END);
        put_uv(&mut self.scratch, size);
        put_uv(&mut self.scratch, digest.as_str().len() as u64);
        self.scratch.extend_from_slice(digest.as_str().as_bytes());
        self.enc.write_all(&self.scratch)?;
        let mut out = self.enc.finish()?;
        out.flush()?;
        Ok(out)
    }
}

fn put_uv(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Segment(&'a [u8]),
    File { path: &'a [u8], size: u64 },
    End { size: u64, digest: Digest },
}

/// Reads a tar-split record.
pub(crate) struct SplitReader<R: Read> {
    r: BufReader<zstd::stream::read::Decoder<'static, BufReader<R>>>,
    buf: Vec<u8>,
}

fn corrupt(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::TarSplitCorrupt {
        reason: reason.into(),
    }
}

fn read_err(e: io::Error) -> ArchiveError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt("record ends early (truncated)")
    } else {
        corrupt(format!("cannot decode: {e}"))
    }
}

impl<R: Read> SplitReader<R> {
    pub(crate) fn new(input: R) -> Result<Self, ArchiveError> {
        let dec = zstd::stream::read::Decoder::new(input).map_err(read_err)?;
        let mut r = BufReader::with_capacity(256 << 10, dec);
        let mut head = [0u8; 17];
        r.read_exact(&mut head).map_err(read_err)?;
        if &head[..16] != MAGIC {
            return Err(corrupt("not a strata tar-split record"));
        }
        if head[16] != VERSION {
            return Err(corrupt(format!(
                "unsupported tar-split format version {} (this build reads {VERSION})",
                head[16]
            )));
        }
        Ok(SplitReader { r, buf: Vec::new() })
    }

    fn byte(&mut self) -> Result<u8, ArchiveError> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b).map_err(read_err)?;
        Ok(b[0])
    }

    fn uv(&mut self) -> Result<u64, ArchiveError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn bytes(&mut self, len: u64, max: u64) -> Result<(), ArchiveError> {
        if len > max {
            return Err(corrupt(format!("field of {len} bytes exceeds {max}")));
        }
        self.buf.resize(len as usize, 0);
        self.r.read_exact(&mut self.buf).map_err(read_err)
    }

    /// The next record.
    pub(crate) fn next(&mut self) -> Result<Record<'_>, ArchiveError> {
        match self.byte()? {
            TAG_SEGMENT => {
                let len = self.uv()?;
                self.bytes(len, READ_SEGMENT_MAX)?;
                Ok(Record::Segment(&self.buf))
            }
            TAG_FILE => {
                let plen = self.uv()?;
                self.bytes(plen, PATH_MAX)?;
                let size = self.uv()?;
                Ok(Record::File {
                    path: &self.buf,
                    size,
                })
            }
            TAG_END => {
                let size = self.uv()?;
                let dlen = self.uv()?;
                self.bytes(dlen, 128)?;
                let digest = std::str::from_utf8(&self.buf)
                    .ok()
                    .and_then(|s| Digest::parse(s).ok())
                    .ok_or_else(|| corrupt("bad digest in END record"))?;
                let mut rest = [0u8; 1];
                if self.r.read(&mut rest).map_err(read_err)? != 0 {
                    return Err(corrupt("data after the END record"));
                }
                Ok(Record::End { size, digest })
            }
            t => Err(corrupt(format!("unknown record tag {t}"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = SplitWriter::new(Vec::new()).unwrap();
        let big = vec![7u8; WRITE_SEGMENT_MAX + 10];
        w.segment(b"header").unwrap();
        w.file(b"a/b", 300).unwrap();
        w.segment(&big).unwrap();
        let d = Digest::of(b"x");
        let out = w.finish(12345, &d).unwrap();

        let mut r = SplitReader::new(&out[..]).unwrap();
        assert_eq!(r.next().unwrap(), Record::Segment(b"header"));
        assert_eq!(
            r.next().unwrap(),
            Record::File {
                path: b"a/b",
                size: 300
            }
        );
        assert_eq!(
            r.next().unwrap(),
            Record::Segment(&big[..WRITE_SEGMENT_MAX])
        );
        assert_eq!(
            r.next().unwrap(),
            Record::Segment(&big[WRITE_SEGMENT_MAX..])
        );
        assert_eq!(
            r.next().unwrap(),
            Record::End {
                size: 12345,
                digest: d
            }
        );
    }

    #[test]
    fn refuses_garbage_and_truncation() {
        assert!(SplitReader::new(&b"not zstd at all"[..]).is_err());
        let mut w = SplitWriter::new(Vec::new()).unwrap();
        w.segment(&[1; 1000]).unwrap();
        // Never finished: the zstd stream (and the record) is cut short.
        let mut enc = w.enc;
        enc.flush().unwrap();
        let partial = enc.get_ref().clone();
        let mut r = SplitReader::new(&partial[..]).unwrap();
        assert!(matches!(r.next(), Ok(Record::Segment(_))));
        assert!(r.next().is_err());
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_uv(&mut b, v);
            let mut w = SplitWriter::new(Vec::new()).unwrap();
            w.file(b"p", v).unwrap();
            let out = w.finish(0, &Digest::of(b"")).unwrap();
            let mut r = SplitReader::new(&out[..]).unwrap();
            assert_eq!(
                r.next().unwrap(),
                Record::File {
                    path: b"p",
                    size: v
                }
            );
        }
    }
}
