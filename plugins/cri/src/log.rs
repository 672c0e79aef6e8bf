//! The server's own log on stderr: one line per event, `time level message`, at the
//! configured level. (The host's `tracing` log stays for library internals, at the level of
//! `strata --log-level`.)

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(2);

/// Sets the level: `error` 0, `warn` 1, `info` 2, `debug`/`trace` 3.
pub fn set_level(level: &str) {
    let n = match level {
        "error" => 0,
        "warn" => 1,
        "info" => 2,
        _ => 3,
    };
    LEVEL.store(n, Ordering::Relaxed);
}

fn emit(n: u8, tag: &str, msg: std::fmt::Arguments<'_>) {
    if n <= LEVEL.load(Ordering::Relaxed) {
        let now = strata_engine_monitor::timestamp::timestamp_now();
        eprintln!("{now} {tag} {msg}");
    }
}

pub fn error(msg: std::fmt::Arguments<'_>) {
    emit(0, "ERROR", msg);
}

pub fn warn(msg: std::fmt::Arguments<'_>) {
    emit(1, "WARN", msg);
}

pub fn info(msg: std::fmt::Arguments<'_>) {
    emit(2, "INFO", msg);
}

pub fn debug(msg: std::fmt::Arguments<'_>) {
    emit(3, "DEBUG", msg);
}
