//! Layer compression: detection from magic bytes and streaming (de)compression.
//!
//! Only the formats OCI images use are known: gzip (read as multi-member, like `gzip -d`)
//! and zstd. bzip2/xz layers (legal in Docker's old format) are deliberately not supported:
//! they are passed through as opaque data.

use std::io::{self, Cursor, Read, Write};

/// How a blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Detects the compression from a blob's first bytes (at least 4 for zstd).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The name skopeo uses (`gzip`, `zstd`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Reads the first bytes of `reader` to detect its compression, and returns a reader that
/// still yields the whole stream (the peeked bytes first).
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(Compression, impl Read)> {
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::detect(&head[..filled]);
    Ok((
        compression,
        Cursor::new(head).take(filled as u64).chain(reader),
    ))
}

/// A reader of the uncompressed content of `reader`, whatever its compression (detected
/// from magic bytes). Also returns the compression found.
pub fn decompressed<'a, R: Read + Send + 'a>(
    reader: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let (compression, reader) = sniff(reader)?;
    let out: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    };
    Ok((compression, out))
}

/// Compresses all of `src` into `dst` with `compression` (gzip level 6, zstd level 3, the
/// defaults of containers/image), finishing the stream. Returns `dst`.
pub fn compress_into<W: Write>(
    compression: Compression,
    src: &mut dyn Read,
    mut dst: W,
) -> io::Result<W> {
    match compression {
        Compression::None => {
            io::copy(src, &mut dst)?;
            Ok(dst)
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(dst, flate2::Compression::default());
            io::copy(src, &mut enc)?;
            enc.finish()
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(dst, 3)?;
            io::copy(src, &mut enc)?;
            enc.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_format_and_detects_it() {
        let data = b"hello layer ".repeat(1000);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let packed = compress_into(c, &mut &data[..], Vec::new()).unwrap();
            assert_eq!(Compression::detect(&packed), c);
            let (found, mut r) = decompressed(&packed[..]).unwrap();
            assert_eq!(found, c);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn sniffing_short_streams_keeps_every_byte() {
        for data in [&b""[..], b"a", b"abc", b"abcdefgh"] {
            let (c, mut r) = sniff(data).unwrap();
            assert_eq!(c, Compression::None);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }
}
