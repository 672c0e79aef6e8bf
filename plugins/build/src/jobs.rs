//! `--jobs N`: independent stages built in parallel. Each stage the target needs (other than
//! the target itself) that does not depend on another such stage is built by a child `strata
//! build --target STAGE` of the same command line, at most N at a time. The children record
//! their steps in the store's cache index, which every process shares, so the build itself
//! then runs its stages in order and finds them cached: no stage is built twice, and the
//! parallelism needs no shared state beyond the store.
//!
//! What it does not do: parallelise steps within a stage (they depend on each other), or help
//! with `--no-cache`/`--layers=false` (nothing is recorded for the build to find; it then
//! builds one stage after another).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::containerfile::{Command as Instr, Containerfile};

/// The stages worth building ahead: needed, not the target, and needing no other stage.
pub fn independent(file: &Containerfile, need: &BTreeSet<usize>, target: usize) -> Vec<usize> {
    need.iter()
        .copied()
        .filter(|&i| i != target)
        .filter(|&i| {
            let s = &file.stages[i];
            let refers = |name: &str| {
                let lower = name.to_ascii_lowercase();
                lower.contains('$')
                    || file.stages[..i]
                        .iter()
                        .any(|o| o.name.as_deref() == Some(lower.as_str()))
                    || lower.parse::<usize>().is_ok_and(|n| n < i)
            };
            let from_stage = matches!(&s.from.command, Instr::From { image, .. } if refers(image));
            let copies = s
                .instructions
                .iter()
                .any(|ins| ins.flag("from").flatten().is_some_and(refers));
            let mounts = s.instructions.iter().any(|ins| {
                ins.flags.iter().filter(|f| f.name == "mount").any(|f| {
                    f.value.as_deref().is_some_and(|v| {
                        v.split(',')
                            .any(|kv| kv.strip_prefix("from=").is_some_and(refers))
                    })
                })
            });
            !(from_stage || copies || mounts)
        })
        .collect()
}

/// This command line without what must not repeat in a child: tags, the ID file, the
/// target, the job count, quiet.
fn child_args(target: usize) -> Vec<String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in argv {
        if skip_next {
            skip_next = false;
            continue;
        }
        let with_value = ["-t", "--tag", "--iidfile", "--target", "--jobs"];
        if with_value.contains(&a.as_str()) {
            skip_next = true;
            continue;
        }
        if with_value
            .iter()
            .any(|f| f.starts_with("--") && a.starts_with(&format!("{f}=")))
            || a == "-q"
            || a == "--quiet"
            || (a.starts_with("-t") && a.len() > 2 && !a.starts_with("--"))
        {
            continue;
        }
        out.push(a);
    }
    out.extend([
        "--target".into(),
        target.to_string(),
        "-q".into(),
        "--jobs".into(),
        "1".into(),
    ]);
    out
}

/// Builds `stages` in child processes, `jobs` at a time. A child that fails is reported;
/// the build itself then meets (and reports) the failure in order.
pub fn prebuild(stages: &[usize], jobs: usize) -> Result<()> {
    let exe = std::env::current_exe().context("find the strata binary")?;
    for chunk in stages.chunks(jobs.max(1)) {
        let children = chunk
            .iter()
            .map(|&i| {
                Command::new(&exe)
                    .args(child_args(i))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map(|c| (i, c))
                    .context("start a stage's build")
            })
            .collect::<Result<Vec<_>>>()?;
        for (i, child) in children {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                tracing::debug!(
                    "stage {i} failed in parallel: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    Ok(())
}
