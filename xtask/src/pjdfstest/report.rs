//! The comparison: which tests strata-fuse-overlay (or fuse-overlayfs) fails although the
//! kernel overlay passes them, the verdict against the known list, and the Markdown report
//! (summary table, each strata regression with its assertion message, the context lists,
//! then every test side by side).
//!
//! It works on parsed logs only; it runs nothing and writes no file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::Duration;

use super::known::Known;
use super::mounts::Kind;
use super::results::{Outcome, RunLog, Status};

/// One filesystem's run.
#[derive(Debug)]
pub struct Run {
    pub kind: Kind,
    pub log: RunLog,
    pub elapsed: Duration,
    /// Why the run has no summary line, when it has none (time-out, crash).
    pub incomplete: Option<String>,
}

/// A failing test run again alone, `runs` times, on the same mount (so state the full run
/// left behind, such as reused inode numbers, still counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rerun {
    pub passed: usize,
    pub runs: usize,
}

impl Rerun {
    fn describe(self) -> String {
        match self.passed {
            0 => format!(
                "run alone again on the same mount: failed {} of {}",
                self.runs, self.runs
            ),
            p => format!(
                "flaky: run alone again on the same mount, passed {p} of {}",
                self.runs
            ),
        }
    }
}

/// Tests the kernel overlay passes and `other` does not: it failed, or it never ran (the run
/// ended early). A skip is not a failure: skips follow the configuration, not the filesystem.
pub fn regressions(kernel: &RunLog, other: &RunLog) -> Vec<String> {
    kernel
        .tests
        .iter()
        .filter(|(_, o)| o.status == Status::Passed)
        .filter(|(name, _)| {
            other
                .tests
                .get(*name)
                .is_none_or(|o| matches!(o.status, Status::Failed | Status::ExpectedFailure))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// What the known list makes of strata's regressions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Regressions not in the known list: these fail the run.
    pub unexplained: Vec<String>,
    /// Regressions the known list explains.
    pub known: Vec<String>,
    /// Known entries that ran and did not fail this time: fixed, to be removed from the list.
    pub stale: Vec<String>,
    /// Known entries naming no test of the suite (only judged when the whole suite ran).
    pub unknown: Vec<String>,
}

/// Sorts `regressions` by the known list; `runs` are the logs that say which tests exist and
/// `whole_suite` whether no test was filtered out.
pub fn verdict(
    regressions: &[String],
    known: &Known,
    runs: &[&RunLog],
    whole_suite: bool,
) -> Verdict {
    let (known_hit, unexplained): (Vec<String>, Vec<String>) = regressions
        .iter()
        .cloned()
        .partition(|t| known.contains_key(t));
    let failing: BTreeSet<&String> = regressions.iter().collect();
    let exists = |t: &String| runs.iter().any(|r| r.tests.contains_key(t));
    Verdict {
        unexplained,
        known: known_hit,
        stale: known
            .keys()
            .filter(|k| !failing.contains(k) && exists(k))
            .cloned()
            .collect(),
        unknown: known
            .keys()
            .filter(|k| whole_suite && !failing.contains(k) && !exists(k))
            .cloned()
            .collect(),
    }
}

/// Everything the report shows.
#[derive(Debug)]
pub struct Input<'a> {
    /// Environment lines (versions, configuration), shown as a list.
    pub about: &'a [String],
    /// In [`Kind::ALL`]'s order.
    pub runs: &'a [Run],
    pub reruns: &'a BTreeMap<String, Rerun>,
    pub known: &'a Known,
    /// The verdict on strata's regressions (see [`verdict`]).
    pub verdict: &'a Verdict,
}

pub fn render(input: &Input) -> String {
    let mut md = String::new();
    let names: Vec<&str> = input.runs.iter().map(|r| r.kind.name()).collect();
    let _ = writeln!(md, "# pjdfstest: {}\n", names.join(" vs "));
    for line in input.about {
        let _ = writeln!(md, "- {line}");
    }
    md.push_str("\n| filesystem | passed | failed | skipped | total | time | log |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    for run in input.runs {
        let (p, f, s, t) = match run.log.summary {
            Some(s) => (s.passed, s.failed, s.skipped, s.total),
            None => {
                let count = |st| run.log.tests.values().filter(|o| o.status == st).count() as u64;
                let (p, f, s) = (
                    count(Status::Passed),
                    count(Status::Failed),
                    count(Status::Skipped),
                );
                (p, f, s, run.log.tests.len() as u64)
            }
        };
        let _ = writeln!(
            md,
            "| {} | {p} | {f} | {s} | {t} | {:.1} s | `{}.log` |",
            run.kind.name(),
            run.elapsed.as_secs_f64(),
            run.kind.short()
        );
    }
    for run in input.runs.iter().filter(|r| r.incomplete.is_some()) {
        let _ = writeln!(
            md,
            "\n**{} did not finish: {}.** Tests it never reached count as failures.",
            run.kind.name(),
            run.incomplete.as_deref().unwrap_or_default()
        );
    }

    let run_of = |k: Kind| input.runs.iter().find(|r| r.kind == k);
    if let (Some(kernel), Some(strata)) = (run_of(Kind::Kernel), run_of(Kind::Strata)) {
        let regs = regressions(&kernel.log, &strata.log);
        let v = input.verdict;
        let _ = writeln!(
            md,
            "\n## strata-fuse-overlay fails, kernel overlay passes ({}: {} unexplained, {} known)\n",
            regs.len(),
            v.unexplained.len(),
            v.known.len()
        );
        if regs.is_empty() {
            md.push_str("None.\n");
        }
        let (ran, never): (Vec<&String>, Vec<&String>) =
            regs.iter().partition(|t| strata.log.tests.contains_key(*t));
        for test in ran {
            let _ = writeln!(md, "### `{test}`\n");
            if let Some(r) = input.reruns.get(test) {
                let _ = writeln!(md, "- {}", r.describe());
            }
            if let Some(reason) = input.known.get(test) {
                let _ = writeln!(md, "- known (pjdfstest-known.toml): {reason}");
            }
            md.push('\n');
            md.push_str(&failure_block(strata.log.tests.get(test)));
        }
        if !never.is_empty() {
            let _ = writeln!(
                md,
                "### Never reached: the run ended early ({})\n",
                never.len()
            );
            for test in never {
                let rerun = input.reruns.get(test).map(|r| r.describe());
                let known = input.known.get(test).map(|r| format!("known: {r}"));
                let notes: Vec<String> = rerun.into_iter().chain(known).collect();
                if notes.is_empty() {
                    let _ = writeln!(md, "- `{test}`");
                } else {
                    let _ = writeln!(md, "- `{test}`: {}", notes.join("; "));
                }
            }
            md.push('\n');
        }
        if !v.stale.is_empty() || !v.unknown.is_empty() {
            md.push_str("\n## Known entries to remove from xtask/pjdfstest-known.toml\n\n");
            for t in &v.stale {
                let _ = writeln!(md, "- `{t}`: passes now");
            }
            for t in &v.unknown {
                let _ = writeln!(md, "- `{t}`: no such test");
            }
        }
    }
    if let (Some(kernel), Some(fo)) = (run_of(Kind::Kernel), run_of(Kind::FuseOverlayfs)) {
        let regs = regressions(&kernel.log, &fo.log);
        let _ = writeln!(
            md,
            "\n## fuse-overlayfs fails, kernel overlay passes ({}), for context\n",
            regs.len()
        );
        for test in &regs {
            let said = fo.log.tests.get(test).map(Outcome::one_line);
            let _ = writeln!(
                md,
                "- `{test}`: {}",
                said.as_deref().unwrap_or("did not run")
            );
        }
    }
    if let Some(kernel) = run_of(Kind::Kernel) {
        let failing: Vec<(&String, &Outcome)> = kernel
            .log
            .tests
            .iter()
            .filter(|(_, o)| o.status == Status::Failed)
            .collect();
        let _ = writeln!(
            md,
            "\n## Failing on the kernel overlay ({}): not compared\n",
            failing.len()
        );
        for (test, o) in failing {
            let _ = writeln!(md, "- `{test}`: {}", o.one_line());
        }
    }

    md.push_str("\n## Every test\n\n| test |");
    for n in &names {
        let _ = write!(md, " {n} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(names.len()));
    md.push('\n');
    let all: BTreeSet<&String> = input.runs.iter().flat_map(|r| r.log.tests.keys()).collect();
    for test in all {
        let _ = write!(md, "| `{test}` |");
        for run in input.runs {
            let cell = run
                .log
                .tests
                .get(test)
                .map_or("not run", |o| o.status.label());
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    md
}

/// A failure's message and where in the suite it was raised, as a fenced block.
fn failure_block(outcome: Option<&Outcome>) -> String {
    let mut block = String::from("```text\n");
    if let Some(o) = outcome {
        for line in &o.message {
            let _ = writeln!(block, "{line}");
        }
        if !o.frames.is_empty() {
            let _ = writeln!(block, "in {}", o.frames.join(" < "));
        }
    }
    block.push_str("```\n\n");
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: &[(&str, Status)]) -> RunLog {
        let mut run = RunLog::default();
        for (name, status) in entries {
            run.tests.insert(
                (*name).to_owned(),
                Outcome {
                    status: *status,
                    message: vec![format!("{name} said so")],
                    frames: Vec::new(),
                },
            );
        }
        run
    }

    #[test]
    fn regressions_are_kernel_passes_that_fail_or_never_ran() {
        let kernel = log(&[
            ("a", Status::Passed),
            ("b", Status::Passed),
            ("c", Status::Failed),
            ("d", Status::Passed),
            ("e", Status::Passed),
        ]);
        let strata = log(&[
            ("a", Status::Failed),
            ("b", Status::Passed),
            ("c", Status::Failed),
            ("e", Status::Skipped),
        ]);
        assert_eq!(regressions(&kernel, &strata), ["a", "d"]);
    }

    #[test]
    fn known_entries_explain_regressions_and_stale_ones_are_named() {
        let known: Known = [("a", "why"), ("z", "fixed since")]
            .into_iter()
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .collect();
        let strata = log(&[("a", Status::Failed), ("z", Status::Passed)]);
        let v = verdict(&["a".to_owned(), "d".to_owned()], &known, &[&strata], true);
        assert_eq!(v.unexplained, ["d"]);
        assert_eq!(v.known, ["a"]);
        assert_eq!(v.stale, ["z"]);
        assert!(v.unknown.is_empty());
        let typo: Known = [("a", "why"), ("chmod::typo", "r")]
            .into_iter()
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .collect();
        let v = verdict(&["a".to_owned()], &typo, &[&strata], true);
        assert_eq!(v.unknown, ["chmod::typo"]);
        let v = verdict(&["a".to_owned()], &typo, &[&strata], false);
        assert!(v.unknown.is_empty(), "a filtered run cannot tell");
    }

    #[test]
    fn report_shows_regressions_with_messages_and_every_test() {
        let runs = [
            Run {
                kind: Kind::Kernel,
                log: log(&[
                    ("chmod::x", Status::Passed),
                    ("mknod::c", Status::Failed),
                    ("rename::late", Status::Passed),
                ]),
                elapsed: Duration::from_millis(1500),
                incomplete: None,
            },
            Run {
                kind: Kind::FuseOverlayfs,
                log: log(&[("chmod::x", Status::Passed), ("mknod::c", Status::Failed)]),
                elapsed: Duration::from_secs(2),
                incomplete: None,
            },
            Run {
                kind: Kind::Strata,
                log: log(&[("chmod::x", Status::Failed), ("mknod::c", Status::Failed)]),
                elapsed: Duration::from_secs(6),
                incomplete: None,
            },
        ];
        let reruns = BTreeMap::from([("chmod::x".to_owned(), Rerun { passed: 2, runs: 3 })]);
        let known = Known::new();
        let regs = regressions(&runs[0].log, &runs[2].log);
        let v = verdict(&regs, &known, &[&runs[0].log, &runs[2].log], true);
        let md = render(&Input {
            about: &["pjdfstest 0.2.2".to_owned()],
            runs: &runs,
            reruns: &reruns,
            known: &known,
            verdict: &v,
        });
        assert!(md.contains("(2: 2 unexplained, 0 known)"), "{md}");
        assert!(
            md.contains("### Never reached: the run ended early (1)"),
            "{md}"
        );
        assert!(md.contains("- `rename::late`\n"), "{md}");
        assert!(md.contains("### `chmod::x`"), "{md}");
        assert!(md.contains("chmod::x said so"), "{md}");
        assert!(
            md.contains("flaky: run alone again on the same mount, passed 2 of 3"),
            "{md}"
        );
        assert!(
            md.contains("| `mknod::c` | FAILED | FAILED | FAILED |"),
            "{md}"
        );
        assert!(
            md.contains("| kernel overlay | 2 | 1 | 0 | 3 | 1.5 s |"),
            "{md}"
        );
        assert!(md.contains("## Failing on the kernel overlay (1)"), "{md}");
    }
}
