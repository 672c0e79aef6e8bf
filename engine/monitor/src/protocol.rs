//! The attach protocol spoken over `<state-dir>/attach`, and the exit status it carries.
//!
//! Every message is a frame: `[type: u8][len: u32 big-endian][payload: len bytes]`.
//!
//! | type | direction        | payload                                                   |
//! |------|------------------|-----------------------------------------------------------|
//! | 1    | monitor → client | container stdout bytes (a terminal's output is stdout)    |
//! | 2    | monitor → client | container stderr bytes                                    |
//! | 3    | monitor → client | [`ExitStatus`] as JSON; the last frame the monitor sends  |
//! | 16   | client → monitor | [`Hello`] as JSON; sent first                             |
//! | 17   | client → monitor | bytes for the container's stdin                           |
//! | 18   | client → monitor | close the container's stdin (ignored with a terminal)     |
//! | 19   | client → monitor | terminal size: rows u16 BE, cols u16 BE                   |
//! | 20   | client → monitor | "cleanup done": the client ran the cleanup itself         |
//!
//! A client gets output from the moment it connects (there is no history; read the log for
//! that). The monitor never blocks on a slow client: it buffers up to
//! [`CLIENT_BUFFER_LIMIT`] bytes per client and drops the client beyond that.
//! This module only encodes and decodes; the socket handling is in [`crate::attach`] and in
//! the monitor binary.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Frames larger than this are refused as corrupt.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// How many bytes of output the monitor queues for one client before dropping it.
pub const CLIENT_BUFFER_LIMIT: usize = 1024 * 1024;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 5;

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Monitor → client: container stdout.
    Stdout = 1,
    /// Monitor → client: container stderr.
    Stderr = 2,
    /// Monitor → client: the container exited; payload is [`ExitStatus`] JSON.
    Exit = 3,
    /// Client → monitor: [`Hello`] JSON.
    Hello = 16,
    /// Client → monitor: stdin bytes.
    Stdin = 17,
    /// Client → monitor: close stdin.
    StdinEof = 18,
    /// Client → monitor: terminal size (see [`encode_resize`]).
    Resize = 19,
    /// Client → monitor: the client ran the cleanup; the monitor skips its exit command.
    CleanupDone = 20,
    /// Client → monitor: close and reopen the log file (it was moved away: the CRI's
    /// `ReopenContainerLog` after the kubelet rotated it).
    ReopenLog = 21,
}

impl FrameType {
    /// The frame type for a type byte, `None` for an unknown byte.
    pub fn from_u8(byte: u8) -> Option<FrameType> {
        Some(match byte {
            1 => FrameType::Stdout,
            2 => FrameType::Stderr,
            3 => FrameType::Exit,
            16 => FrameType::Hello,
            17 => FrameType::Stdin,
            18 => FrameType::StdinEof,
            19 => FrameType::Resize,
            20 => FrameType::CleanupDone,
            21 => FrameType::ReopenLog,
            _ => return None,
        })
    }
}

/// The first frame a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hello {
    /// True when this client will run the container's cleanup itself (and acknowledges it with
    /// [`FrameType::CleanupDone`]); the monitor then waits for that instead of running its exit
    /// command.
    #[serde(default)]
    pub cleanup: bool,
}

/// How a container ended: the exit file's content and the exit frame's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code; `128 + signal` when a signal killed the container (137 for SIGKILL), as
    /// podman reports it.
    pub exit_code: i32,
    /// The signal that killed the container's init, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// When the monitor saw the exit, RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
    /// The same instant in nanoseconds since the Unix epoch.
    pub finished_at_unix_nanos: u64,
    /// Whether the kernel's OOM killer killed a process of the container's cgroup (read from
    /// the memory controller's `oom_kill` count when the container ended).
    #[serde(default)]
    pub oom_killed: bool,
}

/// The whole frame (header and payload) as bytes.
pub fn encode_frame(kind: FrameType, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.push(kind as u8);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Writes one frame with a single `write_all`.
pub fn write_frame(w: &mut impl Write, kind: FrameType, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "attach frame of {} bytes exceeds the {MAX_PAYLOAD}-byte limit",
                payload.len()
            ),
        ));
    }
    w.write_all(&encode_frame(kind, payload))
}

/// Reads one frame; `Ok(None)` on a clean end of stream (between frames).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameType, Vec<u8>)>> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match r.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (kind, len) = parse_header(&header)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

fn parse_header(header: &[u8; HEADER_LEN]) -> io::Result<(FrameType, usize)> {
    let kind = FrameType::from_u8(header[0]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown attach frame type {}", header[0]),
        )
    })?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
        ));
    }
    Ok((kind, len))
}

/// Reassembles frames from bytes arriving in arbitrary pieces (for non-blocking readers).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, an error for a corrupt
    /// stream (unknown type, oversized frame).
    pub fn next_frame(&mut self) -> io::Result<Option<(FrameType, Vec<u8>)>> {
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let (kind, len) = parse_header(header)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some((kind, payload)))
    }
}

/// The payload of a [`FrameType::Resize`] frame.
pub fn encode_resize(rows: u16, cols: u16) -> [u8; 4] {
    let [r0, r1] = rows.to_be_bytes();
    let [c0, c1] = cols.to_be_bytes();
    [r0, r1, c0, c1]
}

/// `(rows, cols)` from a [`FrameType::Resize`] payload.
pub fn decode_resize(payload: &[u8]) -> Option<(u16, u16)> {
    match payload {
        [r0, r1, c0, c1] => Some((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*c0, *c1]),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_a_byte_stream() {
        let exit = ExitStatus {
            exit_code: 137,
            signal: Some(9),
            finished_at: "2026-11-29T10:11:12.123456789Z".into(),
            finished_at_unix_nanos: 1,
            oom_killed: false,
        };
        let exit_json = serde_json::to_vec(&exit).expect("json");
        let mut wire = Vec::new();
        write_frame(&mut wire, FrameType::Stdout, b"hello\n").expect("write");
        write_frame(&mut wire, FrameType::Resize, &encode_resize(24, 80)).expect("write");
        write_frame(&mut wire, FrameType::StdinEof, b"").expect("write");
        write_frame(&mut wire, FrameType::Exit, &exit_json).expect("write");
        assert_eq!(
            &wire[..5],
            &[1, 0, 0, 0, 6],
            "type byte then big-endian length"
        );

        let mut r = wire.as_slice();
        let (t, p) = read_frame(&mut r).expect("read").expect("frame");
        assert_eq!((t, p.as_slice()), (FrameType::Stdout, &b"hello\n"[..]));
        let (t, p) = read_frame(&mut r).expect("read").expect("frame");
        assert_eq!(t, FrameType::Resize);
        assert_eq!(decode_resize(&p), Some((24, 80)));
        let (t, p) = read_frame(&mut r).expect("read").expect("frame");
        assert_eq!((t, p.len()), (FrameType::StdinEof, 0));
        let (t, p) = read_frame(&mut r).expect("read").expect("frame");
        assert_eq!(t, FrameType::Exit);
        let back: ExitStatus = serde_json::from_slice(&p).expect("exit json");
        assert_eq!(back, exit);
        assert!(read_frame(&mut r).expect("clean eof").is_none());
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        let wire = encode_frame(FrameType::Stderr, b"abcdef");
        let mut short = &wire[..wire.len() - 1];
        let err = read_frame(&mut short).expect_err("truncated payload");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut half_header = &wire[..3];
        assert_eq!(
            read_frame(&mut half_header)
                .expect_err("truncated header")
                .kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut unknown: &[u8] = &[42, 0, 0, 0, 0];
        assert_eq!(
            read_frame(&mut unknown).expect_err("unknown type").kind(),
            io::ErrorKind::InvalidData
        );
        let mut huge: &[u8] = &[1, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            read_frame(&mut huge).expect_err("oversized").kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn the_decoder_reassembles_frames_split_anywhere() {
        let mut wire = encode_frame(FrameType::Hello, br#"{"cleanup":true}"#);
        wire.extend(encode_frame(FrameType::Stdin, b"xyz"));
        wire.extend(encode_frame(FrameType::CleanupDone, b""));
        let mut decoder = FrameDecoder::default();
        let mut frames = Vec::new();
        for byte in &wire {
            decoder.push(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().expect("valid stream") {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 3);
        let hello: Hello = serde_json::from_slice(&frames[0].1).expect("hello json");
        assert!(hello.cleanup);
        assert_eq!(frames[1], (FrameType::Stdin, b"xyz".to_vec()));
        assert_eq!(frames[2], (FrameType::CleanupDone, Vec::new()));
    }
}
