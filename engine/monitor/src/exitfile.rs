//! `<state-dir>/exit`: how the container ended, as [`ExitStatus`] JSON.
//!
//! The monitor writes it once, atomically (`exit.tmp`, fsync, rename), after the container's
//! init has been reaped and its output drained; front ends read it. The file's presence means
//! "exited". This module does not wait for the file to appear; a front end that wants to wait
//! attaches (the exit frame) or polls.

use std::io::{self, Write};
use std::path::Path;

use crate::protocol::ExitStatus;
use crate::statedir;

/// The exit status recorded in `state_dir`, `None` while the container has not exited.
pub fn read_exit(state_dir: &Path) -> io::Result<Option<ExitStatus>> {
    let path = statedir::path(state_dir, statedir::EXIT_FILE);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading exit file {}: {e}", path.display()),
            ))
        }
    };
    serde_json::from_slice(&data).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("exit file {} is corrupt: {e}", path.display()),
        )
    })
}

/// Records `status` in `state_dir` atomically, replacing an earlier record.
pub fn write_exit(state_dir: &Path, status: &ExitStatus) -> io::Result<()> {
    let tmp = statedir::path(state_dir, statedir::EXIT_FILE_TMP);
    let path = statedir::path(state_dir, statedir::EXIT_FILE);
    let context = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("writing exit file {}: {e}", path.display()),
        )
    };
    let mut json = serde_json::to_vec(status).map_err(io::Error::other)?;
    json.push(b'\n');
    let mut file = std::fs::File::create(&tmp).map_err(context)?;
    file.write_all(&json).map_err(context)?;
    file.sync_all().map_err(context)?;
    std::fs::rename(&tmp, &path).map_err(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_file_round_trips_and_is_absent_before_exit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_exit(tmp.path()).expect("read"), None);
        let status = ExitStatus {
            exit_code: 3,
            signal: None,
            finished_at: "2026-11-29T10:11:12.000000000Z".into(),
            finished_at_unix_nanos: 1_795_947_072_000_000_000,
            oom_killed: false,
        };
        write_exit(tmp.path(), &status).expect("write");
        assert_eq!(read_exit(tmp.path()).expect("read"), Some(status));
        assert!(!tmp.path().join(statedir::EXIT_FILE_TMP).exists());
        let text = std::fs::read_to_string(tmp.path().join("exit")).expect("raw");
        assert!(text.contains(r#""exit_code":3"#), "{text}");
    }

    #[test]
    fn a_corrupt_exit_file_is_invalid_data() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("exit"), b"{not json").expect("write");
        let err = read_exit(tmp.path()).expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
