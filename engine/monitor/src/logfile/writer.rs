//! Writes container output as CRI log records and rotates the file at its size limit.
//!
//! Output is never held back waiting for a newline: each chunk read from the container is
//! written at once, its unfinished last line as a `P` record. Each chunk becomes one `write(2)`
//! to an append-only file (two around a rotation), so a reader sees whole records except
//! while one is being written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{rotated_path, Stream, MAX_RECORD_CONTENT};
use crate::timestamp;

/// Appends records to a container log, rotating it at a size limit.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

impl LogWriter {
    /// Opens (creating, mode 0600) the log at `path` for appending. `max_size` is the size the
    /// file may not exceed before it is rotated; 0 never rotates. A single record larger than
    /// the limit still goes into a fresh file of its own.
    pub fn open(path: &Path, max_size: u64) -> io::Result<LogWriter> {
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|e| with_path(e, "reading the size of", path))?
            .len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
        })
    }

    /// Closes the file and opens the path again (creating it): after a log rotator moved it.
    pub fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        self.size = file
            .metadata()
            .map_err(|e| with_path(e, "reading the size of", &self.path))?
            .len();
        self.file = file;
        Ok(())
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs `data` from `stream`, stamped with the current time.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.write_at(stream, data, timestamp::now_unix_nanos())
    }

    /// Logs `data` from `stream`, stamped with `unix_nanos`.
    pub fn write_at(&mut self, stream: Stream, data: &[u8], unix_nanos: u64) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let time = timestamp::format_rfc3339_nanos(unix_nanos);
        let mut out = Vec::with_capacity(data.len() + 64);
        for (content, partial) in split_records(data) {
            let record_len = (time.len() + stream.as_str().len() + content.len() + 5) as u64;
            let pending = self.size + out.len() as u64;
            if self.max_size > 0 && pending > 0 && pending + record_len > self.max_size {
                self.append(&out)?;
                out.clear();
                self.rotate()?;
            }
            out.extend_from_slice(time.as_bytes());
            out.push(b' ');
            out.extend_from_slice(stream.as_str().as_bytes());
            out.extend_from_slice(if partial { b" P " } else { b" F " });
            out.extend_from_slice(content);
            out.push(b'\n');
        }
        self.append(&out)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(bytes)
            .map_err(|e| with_path(e, "writing", &self.path))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Renames the log to `<path>.1` and starts a new, empty one.
    fn rotate(&mut self) -> io::Result<()> {
        let rotated = rotated_path(&self.path);
        std::fs::rename(&self.path, &rotated).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "rotating container log {} to {}: {e}",
                    self.path.display(),
                    rotated.display()
                ),
            )
        })?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| with_path(e, "opening", path))
}

fn with_path(e: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{doing} container log {}: {e}", path.display()),
    )
}

/// Splits a chunk into record contents: `(content, partial)` pairs, full lines without their
/// newline, pieces of at most [`MAX_RECORD_CONTENT`] bytes.
fn split_records(mut data: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let newline = data
            .iter()
            .take(MAX_RECORD_CONTENT + 1)
            .position(|&b| b == b'\n');
        match newline {
            Some(end) => {
                let (line, rest) = data.split_at(end);
                data = &rest[1..];
                Some((line, false))
            }
            None => {
                let (piece, rest) = data.split_at(data.len().min(MAX_RECORD_CONTENT));
                data = rest;
                Some((piece, true))
            }
        }
    })
}
