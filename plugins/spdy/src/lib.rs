//! SPDY/3.1 framing, as the Kubernetes streaming protocols use it (kubectl and the CRI
//! validation suite speak SPDY by default; Go's implementation is `moby/spdystream`). Written
//! here because no maintained Rust crate implements SPDY: the frames (data, SYN_STREAM,
//! SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and the header
//! blocks, compressed with one zlib stream per direction seeded with SPDY/3's dictionary.
//!
//! Flow control is not enforced (as spdystream, the other end here, does not enforce it):
//! WINDOW_UPDATE frames are read and ignored.

use std::io::{self, Read, Write};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

/// The largest frame payload accepted (SPDY's length field is 24 bits).
const MAX_FRAME: usize = 1 << 24;

/// The names of SPDY/3's header compression dictionary, each written as a 32-bit length
/// and the name, followed by [`DICTIONARY_TAIL`]; 1423 bytes in all (draft 3, 2.6.10.1).
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// SPDY/3's header compression dictionary.
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1423);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream: u32,
        associated: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last_stream: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    /// A control frame of a type this end does not use.
    Other(u16),
}

impl Frame {
    /// The value of header `name` (case-insensitive) of a frame with headers.
    pub fn header(&self, name: &str) -> Option<&str> {
        let hs = match self {
            Frame::SynStream { headers, .. }
            | Frame::SynReply { headers, .. }
            | Frame::Headers { headers, .. } => headers,
            _ => return None,
        };
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| bad("truncated SPDY frame"))
}

/// Reads frames from one direction of a connection (with its header decompressor).
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    inflate: Decompress,
    dict: Vec<u8>,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            inflate: Decompress::new(true),
            dict: dictionary(),
        }
    }

    /// The next frame; `None` at a clean end of the connection.
    pub fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.inner.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if len > MAX_FRAME {
            return Err(bad("SPDY frame too large"));
        }
        let mut body = vec![0u8; len];
        self.inner.read_exact(&mut body)?;
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream,
                fin,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(bad(format!("SPDY version {version}, not 3")));
        }
        let typ = u16::from_be_bytes([head[2], head[3]]);
        let stream = || u32_at(&body, 0).map(|s| s & 0x7fff_ffff);
        Ok(Some(match typ {
            SYN_STREAM => {
                let associated = u32_at(&body, 4)? & 0x7fff_ffff;
                let headers = self.headers(body.get(10..).unwrap_or_default())?;
                Frame::SynStream {
                    stream: stream()?,
                    associated,
                    fin,
                    headers,
                }
            }
            SYN_REPLY => Frame::SynReply {
                stream: stream()?,
                fin,
                headers: self.headers(body.get(4..).unwrap_or_default())?,
            },
            HEADERS => Frame::Headers {
                stream: stream()?,
                fin,
                headers: self.headers(body.get(4..).unwrap_or_default())?,
            },
            RST_STREAM => Frame::RstStream {
                stream: stream()?,
                status: u32_at(&body, 4)?,
            },
            SETTINGS => Frame::Settings,
            PING => Frame::Ping(u32_at(&body, 0)?),
            GOAWAY => Frame::GoAway {
                last_stream: stream()?,
                status: u32_at(&body, 4).unwrap_or(0),
            },
            WINDOW_UPDATE => Frame::WindowUpdate {
                stream: stream()?,
                delta: u32_at(&body, 4)? & 0x7fff_ffff,
            },
            other => Frame::Other(other),
        }))
    }

    fn headers(&mut self, compressed: &[u8]) -> io::Result<Vec<(String, String)>> {
        let raw = self.inflate(compressed)?;
        decode_headers(&raw)
    }

    fn inflate(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            let r = self
                .inflate
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
            match r {
                Ok(_) => {
                    let used = (self.inflate.total_in() - before) as usize;
                    pos += used;
                    if pos >= input.len() && out.capacity() > out.len() {
                        return Ok(out);
                    }
                    if used == 0 && out.capacity() > out.len() {
                        return Err(bad("SPDY header block does not inflate"));
                    }
                    if out.len() > MAX_FRAME {
                        return Err(bad("SPDY header block too large"));
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    pos += (self.inflate.total_in() - before) as usize;
                    self.inflate
                        .set_dictionary(&self.dict)
                        .map_err(|e| bad(format!("SPDY header dictionary: {e}")))?;
                }
                Err(e) => return Err(bad(format!("SPDY header block: {e}"))),
            }
        }
    }
}

/// The uncompressed header block: a count, then length-prefixed names and values.
pub fn decode_headers(raw: &[u8]) -> io::Result<Vec<(String, String)>> {
    let n = u32_at(raw, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let nl = u32_at(raw, at)? as usize;
        let name = raw
            .get(at + 4..at + 4 + nl)
            .ok_or_else(|| bad("truncated SPDY header name"))?;
        at += 4 + nl;
        let vl = u32_at(raw, at)? as usize;
        let value = raw
            .get(at + 4..at + 4 + vl)
            .ok_or_else(|| bad("truncated SPDY header value"))?;
        at += 4 + vl;
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        // Several values of one name are NUL-separated.
        for v in value.split(|b| *b == 0) {
            out.push((name.clone(), String::from_utf8_lossy(v).into_owned()));
        }
    }
    Ok(out)
}

pub fn encode_headers(headers: &[(String, String)]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
        raw.extend_from_slice(k.as_bytes());
        raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
        raw.extend_from_slice(v.as_bytes());
    }
    raw
}

/// Writes frames in one direction (with its header compressor). Callers serialise writes.
#[derive(Debug)]
pub struct Writer<W> {
    inner: W,
    deflate: Compress,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Writer<W> {
        let mut deflate = Compress::new(Compression::default(), true);
        let _ = deflate.set_dictionary(&dictionary());
        Writer { inner, deflate }
    }

    fn compress(&mut self, headers: &[(String, String)]) -> io::Result<Vec<u8>> {
        let raw = encode_headers(headers);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            out.reserve(raw.len() + 64);
            let before = self.deflate.total_in();
            let st = self
                .deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| bad(format!("compress SPDY headers: {e}")))?;
            pos += (self.deflate.total_in() - before) as usize;
            if pos >= raw.len() && (out.capacity() > out.len() || st == Status::BufError) {
                return Ok(out);
            }
        }
    }

    fn control(&mut self, typ: u16, flags: u8, body: &[u8]) -> io::Result<()> {
        let mut f = Vec::with_capacity(8 + body.len());
        f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        f.extend_from_slice(&typ.to_be_bytes());
        f.push(flags);
        f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        f.extend_from_slice(body);
        self.inner.write_all(&f)?;
        self.inner.flush()
    }

    /// Writes `data` on `stream` (split into frames of at most 32 KiB), FIN on the last.
    pub fn data(&mut self, stream: u32, data: &[u8], fin: bool) -> io::Result<()> {
        let mut chunks: Vec<&[u8]> = data.chunks(32 * 1024).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        for (i, c) in chunks.into_iter().enumerate() {
            let mut f = Vec::with_capacity(8 + c.len());
            f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
            f.push(if fin && i == last { FLAG_FIN } else { 0 });
            f.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            f.extend_from_slice(c);
            self.inner.write_all(&f)?;
        }
        self.inner.flush()
    }

    pub fn syn_stream(
        &mut self,
        stream: u32,
        headers: &[(String, String)],
        fin: bool,
    ) -> io::Result<()> {
        let block = self.compress(headers)?;
        let mut body = Vec::with_capacity(10 + block.len());
        body.extend_from_slice(&stream.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&block);
        self.control(SYN_STREAM, if fin { FLAG_FIN } else { 0 }, &body)
    }

    pub fn syn_reply(
        &mut self,
        stream: u32,
        headers: &[(String, String)],
        fin: bool,
    ) -> io::Result<()> {
        let block = self.compress(headers)?;
        let mut body = Vec::with_capacity(4 + block.len());
        body.extend_from_slice(&stream.to_be_bytes());
        body.extend_from_slice(&block);
        self.control(SYN_REPLY, if fin { FLAG_FIN } else { 0 }, &body)
    }

    pub fn rst_stream(&mut self, stream: u32, status: u32) -> io::Result<()> {
        let mut body = stream.to_be_bytes().to_vec();
        body.extend_from_slice(&status.to_be_bytes());
        self.control(RST_STREAM, 0, &body)
    }

    pub fn ping(&mut self, id: u32) -> io::Result<()> {
        self.control(PING, 0, &id.to_be_bytes())
    }

    pub fn goaway(&mut self, last_stream: u32) -> io::Result<()> {
        let mut body = last_stream.to_be_bytes().to_vec();
        body.extend_from_slice(&0u32.to_be_bytes());
        self.control(GOAWAY, 0, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib's Adler-32 of the dictionary, which a peer's stream names (FDICT).
        let (mut a, mut b) = (1u32, 0u32);
        for x in &d {
            a = (a + u32::from(*x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 3_821_447_106);
    }

    #[test]
    fn frames_round_trip_with_compressed_headers_across_frames() {
        let mut wire = Vec::new();
        {
            let mut w = Writer::new(&mut wire);
            let h = vec![
                ("streamType".to_owned(), "stdout".to_owned()),
                ("port".to_owned(), "8080".to_owned()),
            ];
            w.syn_stream(1, &h, false).expect("syn");
            w.syn_stream(3, &h, false)
                .expect("syn again: the zlib stream continues");
            w.data(1, b"hello", true).expect("data");
            w.syn_reply(2, &[], false).expect("reply");
            w.ping(7).expect("ping");
            w.goaway(3).expect("goaway");
        }
        let mut r = Reader::new(&wire[..]);
        let f = r.read_frame().expect("read").expect("frame");
        assert_eq!(f.header("streamtype"), Some("stdout"));
        assert!(matches!(
            f,
            Frame::SynStream {
                stream: 1,
                fin: false,
                ..
            }
        ));
        let f = r.read_frame().expect("read").expect("frame");
        assert_eq!(f.header("port"), Some("8080"));
        assert_eq!(
            r.read_frame().expect("read"),
            Some(Frame::Data {
                stream: 1,
                fin: true,
                data: b"hello".to_vec()
            })
        );
        assert!(matches!(
            r.read_frame().expect("read"),
            Some(Frame::SynReply { stream: 2, .. })
        ));
        assert_eq!(r.read_frame().expect("read"), Some(Frame::Ping(7)));
        assert!(matches!(
            r.read_frame().expect("read"),
            Some(Frame::GoAway { last_stream: 3, .. })
        ));
        assert_eq!(r.read_frame().expect("read"), None);
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        for wire in [
            vec![0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0],
            vec![0x80, 2, 0, 1, 0, 0, 0, 0],
            vec![
                0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
            ],
            vec![0, 0, 0, 1, 0, 0, 0, 9, 1],
        ] {
            let mut r = Reader::new(&wire[..]);
            assert!(r.read_frame().is_err(), "{wire:?}");
        }
        assert!(decode_headers(&[0, 0, 0, 5, 0, 0, 0, 200]).is_err());
    }
}
