//! The monitor's debug trail, `<state-dir>/monitor.log`: one timestamped line per event.
//!
//! The monitor's own stdio is `/dev/null`, so this file is where its decisions and failures
//! after startup (client drops, log write errors, the exit command's status) can be read. It is
//! best effort: if it cannot be opened or written, the monitor carries on silently.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::{statedir, timestamp};

/// The open trail file, if it could be opened.
#[derive(Debug)]
pub struct Trail {
    file: Option<File>,
}

impl Trail {
    /// Opens (appending) `<state_dir>/monitor.log`.
    pub fn open(state_dir: &Path) -> Trail {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(statedir::path(state_dir, statedir::MONITOR_LOG))
            .ok();
        Trail { file }
    }

    /// Appends one line.
    pub fn note(&self, message: impl Display) {
        if let Some(mut file) = self.file.as_ref() {
            let line = format!("{} {message}\n", timestamp::timestamp_now());
            let _ = file.write_all(line.as_bytes());
        }
    }
}
