//! Reading a pjdfstest log: one status line per test (`NAME  ok`, `NAME  FAILED`, `NAME
//! skipped`, `NAME  failed as expected`, `NAME  PASSED UNEXPECTEDLY`), the panic message under
//! a failure (tab-indented, possibly several lines), an optional backtrace (with
//! `RUST_BACKTRACE=1`), the reasons under a skip, and the closing `Summary:` line.
//!
//! It only reads what pjdfstest printed; it does not decide what a result means for the
//! comparison (see `report`). Colour codes are expected to be off (`NO_COLOR=1`) but are
//! stripped anyway.

use std::collections::BTreeMap;

/// The result of one test in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    /// Listed in pjdfstest's own `expected_failures` and failed (we list none).
    ExpectedFailure,
    /// Listed in pjdfstest's own `expected_failures` but passed.
    UnexpectedPass,
}

impl Status {
    /// How the report shows it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
            Status::ExpectedFailure => "failed (expected)",
            Status::UnexpectedPass => "passed (unexpected)",
        }
    }

    fn parse(word: &str) -> Option<Status> {
        Some(match word {
            "ok" => Status::Passed,
            "FAILED" => Status::Failed,
            "skipped" => Status::Skipped,
            "failed as expected" => Status::ExpectedFailure,
            "PASSED UNEXPECTEDLY" => Status::UnexpectedPass,
            _ => return None,
        })
    }
}

/// One test's outcome: its status and, for failures and skips, what pjdfstest said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// The panic message (failures) or the skip reasons, one entry per line.
    pub message: Vec<String>,
    /// The test's own frames from the backtrace, innermost first (`pjdfstest::tests::...`).
    pub frames: Vec<String>,
}

impl Outcome {
    /// The message on one line (`assertion `left == right` failed; left: 1; right: 0`).
    pub fn one_line(&self) -> String {
        self.message.join("; ")
    }
}

/// The counts of pjdfstest's closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub failed: u64,
    pub skipped: u64,
    pub passed: u64,
    pub expected_failures: u64,
    pub total: u64,
}

impl Summary {
    /// Parses `Summary: 41 failed, 14 skipped, 343 passed, 0 expected failures, 398 total`.
    fn parse(line: &str) -> Option<Summary> {
        let counts = line.trim().strip_prefix("Summary:")?;
        let mut s = Summary::default();
        for part in counts.split(',') {
            let (n, what) = part.trim().split_once(' ')?;
            let n = n.parse().ok()?;
            match what {
                "failed" => s.failed = n,
                "skipped" => s.skipped = n,
                "passed" => s.passed = n,
                "expected failures" => s.expected_failures = n,
                "total" => s.total = n,
                _ => {}
            }
        }
        Some(s)
    }
}

/// Everything read from one log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLog {
    pub tests: BTreeMap<String, Outcome>,
    /// Absent when pjdfstest did not finish (crash, time-out, bad configuration).
    pub summary: Option<Summary>,
}

impl RunLog {
    pub fn parse(log: &str) -> RunLog {
        let mut run = RunLog::default();
        // The test whose message or backtrace the following lines belong to.
        let mut current: Option<String> = None;
        let mut in_backtrace = false;
        for raw in log.lines() {
            let line = strip_ansi(raw);
            let line = line.trim_end();
            if let Some(summary) = Summary::parse(line) {
                run.summary = Some(summary);
                current = None;
                continue;
            }
            if let Some((name, status)) = status_line(line) {
                run.tests.insert(
                    name.to_owned(),
                    Outcome {
                        status,
                        message: Vec::new(),
                        frames: Vec::new(),
                    },
                );
                current = Some(name.to_owned());
                in_backtrace = false;
                continue;
            }
            let Some(outcome) = current.as_ref().and_then(|n| run.tests.get_mut(n)) else {
                continue;
            };
            if line == "Backtrace:" {
                in_backtrace = true;
            } else if in_backtrace {
                if let Some(frame) = test_frame(line) {
                    outcome.frames.push(frame.to_owned());
                }
            } else if !line.trim().is_empty() {
                outcome.message.push(line.trim().to_owned());
            }
        }
        run
    }
}

/// `NAME<spaces>STATUS`: a test name (no leading blank, no spaces) then a status word.
fn status_line(line: &str) -> Option<(&str, Status)> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let (name, rest) = line.split_once(' ')?;
    let status = Status::parse(rest.trim())?;
    Some((name, status))
}

/// A backtrace frame inside the test suite's own code (`  7: pjdfstest::tests::chmod::x`),
/// leaving out the runner (`pjdfstest::main...`).
fn test_frame(line: &str) -> Option<&str> {
    let (_, function) = line.trim().split_once(": ")?;
    (function.starts_with("pjdfstest::") && !function.starts_with("pjdfstest::main"))
        .then_some(function)
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
unlink::remove_type::fifo                                                     ok
chmod::eloop_comp                                                         FAILED
\tcalled `Result::unwrap()` on an `Err` value: ENOENT
Backtrace:
   0: pjdfstest::main::{{closure}}
   6: core::result::unwrap_failed
   7: pjdfstest::tests::errors::eloop::create_loop_symlinks
   8: pjdfstest::tests::chmod::eloop_comp
   9: pjdfstest::main
  14: __libc_start_call_main
             at ./csu/../sysdeps/nptl/libc_start_call_main.h:58:16

unlink::open_file_not_freed                                               FAILED
\tassertion `left == right` failed
  left: 1
 right: 0
rename::erofs_named                                                      skipped
\tRemounts (allow_remount) are not allowed in the configuration file
utimensat::y2038                                             failed as expected

Summary: 2 failed, 1 skipped, 1 passed, 1 expected failures, 5 total
Error: Some tests have failed
";

    #[test]
    fn every_status_line_is_a_test() {
        let run = RunLog::parse(LOG);
        let status = |n: &str| run.tests.get(n).map(|o| o.status);
        assert_eq!(run.tests.len(), 5);
        assert_eq!(status("unlink::remove_type::fifo"), Some(Status::Passed));
        assert_eq!(status("chmod::eloop_comp"), Some(Status::Failed));
        assert_eq!(status("rename::erofs_named"), Some(Status::Skipped));
        assert_eq!(status("utimensat::y2038"), Some(Status::ExpectedFailure));
    }

    #[test]
    fn failures_keep_their_message_and_own_frames() {
        let run = RunLog::parse(LOG);
        let eloop = &run.tests["chmod::eloop_comp"];
        assert_eq!(
            eloop.message,
            ["called `Result::unwrap()` on an `Err` value: ENOENT"]
        );
        assert_eq!(
            eloop.frames,
            [
                "pjdfstest::tests::errors::eloop::create_loop_symlinks",
                "pjdfstest::tests::chmod::eloop_comp"
            ]
        );
        let freed = &run.tests["unlink::open_file_not_freed"];
        assert_eq!(
            freed.message,
            ["assertion `left == right` failed", "left: 1", "right: 0"]
        );
        assert!(freed.frames.is_empty());
        assert_eq!(
            freed.one_line(),
            "assertion `left == right` failed; left: 1; right: 0"
        );
        assert_eq!(
            run.tests["rename::erofs_named"].message,
            ["Remounts (allow_remount) are not allowed in the configuration file"]
        );
    }

    #[test]
    fn summary_line_is_read() {
        let run = RunLog::parse(LOG);
        assert_eq!(
            run.summary,
            Some(Summary {
                failed: 2,
                skipped: 1,
                passed: 1,
                expected_failures: 1,
                total: 5
            })
        );
    }

    #[test]
    fn unfinished_log_has_no_summary_and_colours_are_ignored() {
        let run = RunLog::parse("\u{1b}[34mmkdir::eloop_comp\u{1b}[0m   \u{1b}[32mok\u{1b}[0m\n");
        assert_eq!(run.summary, None);
        assert_eq!(run.tests["mkdir::eloop_comp"].status, Status::Passed);
    }

    #[test]
    fn message_lines_are_not_status_lines() {
        assert_eq!(status_line("\tok"), None);
        assert_eq!(status_line("Error: Some tests have failed"), None);
        assert_eq!(status_line("  left: 1"), None);
    }
}
