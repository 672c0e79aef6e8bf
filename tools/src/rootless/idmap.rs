//! The id mappings of the rootless user namespace: the user's own uid and gid become 0, and
//! the subordinate ranges from `/etc/subuid` and `/etc/subgid` (by user name or uid) follow
//! from 1. They are written by the setuid helpers `newuidmap` and `newgidmap` (Debian's
//! `uidmap` package), which check the ranges against the same files.
//!
//! What it does not do: read subordinate ids from NSS (`subid:` in nsswitch.conf), or write
//! a single-id map without the helpers.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use strata_types::idmap::{parse_subids, SubIdRange as Range};

const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

/// Directories searched for the helpers besides `$PATH`.
const HELPER_DIRS: &[&str] = &["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"];

/// Everything needed to map a new user namespace, checked before it is created.
#[derive(Debug)]
pub struct Plan {
    uid: u32,
    gid: u32,
    subuids: Vec<Range>,
    subgids: Vec<Range>,
    newuidmap: PathBuf,
    newgidmap: PathBuf,
}

impl Plan {
    /// The plan for the calling user, or an error saying what is missing and how to add it.
    pub fn for_current_user() -> Result<Plan> {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let name = user_name(uid);
        let who = match &name {
            Some(n) => format!("user {n} (uid {uid})"),
            None => format!("uid {uid}"),
        };
        let subuids = ranges(Path::new(SUBUID), name.as_deref(), uid)?;
        let subgids = ranges(Path::new(SUBGID), name.as_deref(), uid)?;
        let missing: Vec<&str> = [(SUBUID, &subuids), (SUBGID, &subgids)]
            .into_iter()
            .filter(|(_, r)| r.is_empty())
            .map(|(f, _)| f)
            .collect();
        if !missing.is_empty() {
            bail!(
                "rootless mode needs subordinate ids for {who}, and {} has none: ask an \
                 administrator to run `usermod --add-subuids 100000-165535 --add-subgids \
                 100000-165535 {}`",
                missing.join(" and "),
                name.as_deref().unwrap_or("USER")
            );
        }
        Ok(Plan {
            uid,
            gid,
            subuids,
            subgids,
            newuidmap: helper("newuidmap")?,
            newgidmap: helper("newgidmap")?,
        })
    }

    /// Writes the uid and gid maps of process `pid` (which has just unshared its user
    /// namespace).
    pub fn apply(&self, pid: u32) -> Result<()> {
        run_helper(&self.newuidmap, pid, &map_args(self.uid, &self.subuids))?;
        run_helper(&self.newgidmap, pid, &map_args(self.gid, &self.subgids))
    }
}

/// The helper's arguments after the pid: `0 OWN 1`, then the ranges from 1 on.
fn map_args(own: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_owned(), own.to_string(), "1".to_owned()];
    let mut next: u64 = 1;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next += u64::from(r.count);
    }
    args
}

fn run_helper(helper: &Path, pid: u32, args: &[String]) -> Result<()> {
    let line = format!("{} {pid} {}", helper.display(), args.join(" "));
    let out = Command::new(helper)
        .arg(pid.to_string())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Finds a helper in `$PATH` or the usual directories.
fn helper(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(HELPER_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "rootless mode needs {name}, which is not installed (not in $PATH nor {}): \
                 install it with `apt-get install uidmap` (Fedora: `dnf install shadow-utils`)",
                HELPER_DIRS.join(", ")
            )
        })
}

/// The user's name from `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

/// The ranges of `file` for the user, by name or uid; a missing file has none.
fn ranges(file: &Path, name: Option<&str>, uid: u32) -> Result<Vec<Range>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse_ranges(&text, name, uid)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

fn parse_ranges(text: &str, name: Option<&str>, uid: u32) -> Vec<Range> {
    parse_subids(text, name, Some(uid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn ranges_match_by_name_or_uid() {
        let text = "# comment\nalice:100000:65536\nbob:165536:65536\n1002:300000:10\nalice:500000:5\ncarol:1:0\n";
        assert_eq!(
            parse_ranges(text, Some("alice"), 1000),
            [
                Range {
                    start: 100000,
                    count: 65536
                },
                Range {
                    start: 500000,
                    count: 5
                }
            ]
        );
        assert_eq!(
            parse_ranges(text, None, 1002),
            [Range {
                start: 300000,
                count: 10
            }]
        );
        assert!(parse_ranges(text, Some("carol"), 1003).is_empty());
        assert!(parse_ranges(text, Some("dave"), 1004).is_empty());
    }

    #[test]
    fn a_missing_helper_says_which_package_has_it() {
        let e = helper("strata-no-such-helper").unwrap_err().to_string();
        assert!(e.contains("strata-no-such-helper"), "{e}");
        assert!(e.contains("apt-get install uidmap"), "{e}");
    }

    #[test]
    fn maps_put_the_user_at_zero_and_the_ranges_after_it() {
        let r = [
            Range {
                start: 100000,
                count: 65536,
            },
            Range {
                start: 500000,
                count: 5,
            },
        ];
        assert_eq!(
            map_args(1000, &r),
            ["0", "1000", "1", "1", "100000", "65536", "65537", "500000", "5"]
        );
    }
}
