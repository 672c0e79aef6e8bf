//! The container log in the Kubernetes CRI format: its [`LogWriter`] (used by the monitor) and
//! its readers (used by `logs` in the front ends).
//!
//! One record per line: `<timestamp> <stream> <tag> <content>\n`, where the timestamp is
//! RFC 3339 with nanoseconds in UTC (see [`crate::timestamp`]), the stream is `stdout` or
//! `stderr` and the tag is `F` for a full line (content without its newline) or `P` for a
//! partial one (the output stopped without a newline, or a line longer than
//! [`MAX_RECORD_CONTENT`] was split). Example:
//!
//! ```text
//! 2026-11-29T10:11:12.123456789Z stdout F hello
//! 2026-11-29T10:11:12.123456789Z stderr P no newline yet
//! ```
//!
//! When the file would outgrow its size limit it is renamed to `<log-path>.1` (replacing an
//! older one) and a new file is started, so at most two files exist. The readers return records
//! as written; [`join_partials`] glues partial records back into lines. This module does not
//! follow a growing log (`logs -f`); a front end polls or re-reads.

mod writer;

use std::io;
use std::path::{Path, PathBuf};

pub use writer::LogWriter;

/// The timestamp format of the log, re-exported for readers (`--since`, `--until`).
pub use crate::timestamp::{format_rfc3339_nanos, parse_rfc3339, timestamp_now};

use crate::timestamp;

/// Content bytes per record; longer lines are split into partial records.
pub const MAX_RECORD_CONTENT: usize = 16 * 1024;

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output (and a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in the log: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn from_bytes(b: &[u8]) -> Option<Stream> {
        match b {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The timestamp as written.
    pub time: String,
    /// The timestamp in nanoseconds since the Unix epoch.
    pub unix_nanos: u64,
    /// The stream the content came from.
    pub stream: Stream,
    /// True for a `P` record (the line continues in a later record of the same stream).
    pub partial: bool,
    /// The content, without the newline of a full line.
    pub content: Vec<u8>,
}

/// Parses one record; the line may still end in `\n`. `None` if it is not a CRI record.
pub fn parse_line(line: &[u8]) -> Option<LogRecord> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let unix_nanos = timestamp::parse_rfc3339(time)?;
    let stream = Stream::from_bytes(fields.next()?)?;
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = fields.next().unwrap_or_default().to_vec();
    Some(LogRecord {
        time: time.to_owned(),
        unix_nanos,
        stream,
        partial,
        content,
    })
}

/// `<log-path>.1`, where a rotated log goes.
pub fn rotated_path(log_path: &Path) -> PathBuf {
    let mut name = log_path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// All records of a container log, oldest first: `<log-path>.1` (if present), then
/// `<log-path>`. Lines that are not CRI records are skipped, and so is a last line without its
/// newline (a record being written right now). `NotFound` if neither file exists.
pub fn read_log(log_path: &Path) -> io::Result<Vec<LogRecord>> {
    let mut records = Vec::new();
    let mut found = false;
    for path in [rotated_path(log_path), log_path.to_path_buf()] {
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("reading container log {}: {e}", path.display()),
                ))
            }
        };
        found = true;
        let complete = match data.iter().rposition(|&b| b == b'\n') {
            Some(last) => &data[..=last],
            None => &[][..],
        };
        records.extend(
            complete
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .filter_map(parse_line),
        );
    }
    if !found {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("container log {} does not exist", log_path.display()),
        ));
    }
    Ok(records)
}

/// Joins each run of partial records with the record completing it (the next full record of
/// the same stream) into one full record carrying the first piece's timestamp. A joined line is
/// placed where its last piece was; a line still unfinished at the end stays partial.
pub fn join_partials(records: Vec<LogRecord>) -> Vec<LogRecord> {
    let mut out = Vec::with_capacity(records.len());
    let mut pending: [Option<LogRecord>; 2] = [None, None];
    for record in records {
        let slot = &mut pending[record.stream as usize];
        let joined = match slot.take() {
            Some(mut head) => {
                head.content.extend_from_slice(&record.content);
                head.partial = record.partial;
                head
            }
            None => record,
        };
        if joined.partial {
            *slot = Some(joined);
        } else {
            out.push(joined);
        }
    }
    let [a, b] = pending;
    let mut rest: Vec<LogRecord> = a.into_iter().chain(b).collect();
    rest.sort_by_key(|r| r.unix_nanos);
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests;
