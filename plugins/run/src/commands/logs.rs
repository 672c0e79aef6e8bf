//! `logs`: the container's output from its CRI-format log (`-f`, `--tail`, `--since`,
//! `--timestamps`), stdout records to our stdout and stderr records to our stderr.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use strata_engine_monitor::logfile::{join_partials, parse_line, read_log, LogRecord};
use strata_engine_monitor::Stream;
use strata_plugin_api::{Host, Outcome};

use strata_engine_containers::Status;

use crate::context::Ctx;
use crate::errors::kinded;

#[derive(Debug, Parser)]
#[command(name = "strata logs", about = "Show a container's output")]
pub struct LogsCmd {
    /// Keep following new output until the container stops
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only output since TIME: RFC 3339, unix seconds, or a duration like 10s, 5m, 2h
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Prefix each line with its timestamp
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub container: String,
}

/// Parses `--since` into unix nanoseconds.
pub fn parse_since(s: &str) -> Option<u64> {
    if let Some(t) = strata_engine_monitor::timestamp::parse_rfc3339(s) {
        return Some(t);
    }
    let now = strata_engine_monitor::timestamp::now_unix_nanos();
    let unit = |suffix: char, mult: u64| -> Option<u64> {
        let n: u64 = s.strip_suffix(suffix)?.parse().ok()?;
        Some(now.saturating_sub(n * mult * 1_000_000_000))
    };
    unit('s', 1)
        .or_else(|| unit('m', 60))
        .or_else(|| unit('h', 3600))
        .or_else(|| s.parse::<u64>().ok().map(|secs| secs * 1_000_000_000))
}

fn emit(r: &LogRecord, timestamps: bool) {
    let mut line = Vec::with_capacity(r.content.len() + 40);
    if timestamps {
        line.extend_from_slice(r.time.as_bytes());
        line.push(b' ');
    }
    line.extend_from_slice(&r.content);
    if !r.partial {
        line.push(b'\n');
    }
    let _ = match r.stream {
        Stream::Stdout => std::io::stdout().write_all(&line),
        Stream::Stderr => std::io::stderr().write_all(&line),
    };
}

pub fn logs(host: &Host, cmd: LogsCmd) -> Result<Outcome> {
    let ctx = Ctx::new(host)?;
    let c = ctx.container(&cmd.container)?;
    let since = match &cmd.since {
        Some(s) => Some(parse_since(s).ok_or_else(|| {
            kinded(
                strata_plugin_api::ErrorKind::InvalidArgument,
                format!("invalid --since {s:?}: use RFC 3339, unix seconds or a duration like 10m"),
            )
        })?),
        None => None,
    };
    let path = c.paths.log();
    let mut records = join_partials(
        read_log(&path)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("read {}", path.display()))?,
    );
    if let Some(t) = since {
        records.retain(|r| r.unix_nanos >= t);
    }
    if let Some(n) = cmd.tail {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    for r in &records {
        emit(r, cmd.timestamps);
    }
    let _ = std::io::stdout().flush();
    if !cmd.follow {
        return Ok(Outcome::Ok);
    }
    // Follow: read what gets appended (a rotation starts a new file: reopen it).
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) => return Ok(Outcome::Ok),
    };
    let mut pos = file.seek(SeekFrom::End(0))?;
    let mut pending = Vec::new();
    loop {
        // Checked before reading: output written before the exit is never missed.
        let stopped = c
            .state()
            .map(|s| s.status != Status::Running)
            .unwrap_or(true);
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        pos += buf.len() as u64;
        pending.extend_from_slice(&buf);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            if let Some(r) = parse_line(&line) {
                emit(&r, cmd.timestamps);
            }
        }
        let _ = std::io::stdout().flush();
        if buf.is_empty() {
            if stopped {
                return Ok(Outcome::Ok);
            }
            std::thread::sleep(Duration::from_millis(100));
            if std::fs::metadata(&path)
                .map(|m| m.len() < pos)
                .unwrap_or(false)
            {
                file = std::fs::File::open(&path)?;
                pos = 0;
            }
        }
    }
}
