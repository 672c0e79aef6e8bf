//! Test users, made by the tests that need them (never assumed to exist): the rootless
//! tests' `strata-rootless` (with subordinate id ranges) and `strata-nosubids` (without),
//! created under a lock every test process shares, so that any test can run first on a
//! fresh machine.

use std::process::{Command, Output, Stdio};

/// The non-root user the rootless and non-root driver tests run as (with subordinate ids).
pub const ROOTLESS_USER: &str = "strata-rootless";

/// A user's ids and its first subordinate uid and gid.
#[derive(Debug, Clone, Copy)]
pub struct TestUser {
    pub uid: u32,
    pub gid: u32,
    pub subuid: u32,
    pub subgid: u32,
}

/// Runs `cmd` with stdin closed; its output (panics if it cannot start).
pub fn sh(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and returns its stdout; panics with its stderr if it fails.
pub fn must(cmd: &mut Command) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first range of `user` in `file` (`/etc/subuid` or `/etc/subgid`).
fn first_range(file: &str, user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    strata_types::idmap::parse_subids(&text, Some(user), None)
        .first()
        .map(|r| (r.start, r.count))
}

/// Creates `user` if missing (as root), with subordinate ranges or with none, under a lock
/// shared by every test process, and returns its ids.
pub fn ensure_user(user: &str, subids: bool) -> TestUser {
    let lock = std::fs::File::create("/tmp/strata-tests-users.lock").expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
    if !sh(Command::new("id").args(["-u", user])).status.success() {
        let mut add = Command::new("useradd");
        add.args(["-M", "-s", "/bin/sh"]);
        if !subids {
            add.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        let out = sh(add.arg(user));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("already exists"),
            "useradd {user}: {err}"
        );
    }
    let has =
        first_range("/etc/subuid", user).is_some() && first_range("/etc/subgid", user).is_some();
    if subids && !has {
        // Past every range handed out so far.
        let end = ["/etc/subuid", "/etc/subgid"]
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
            })
            .max()
            .unwrap_or(100_000)
            .max(100_000);
        let range = format!("{end}-{}", end + 65535);
        must(Command::new("usermod").args([
            "--add-subuids",
            &range,
            "--add-subgids",
            &range,
            user,
        ]));
    }
    if !subids {
        for (file, flag) in [
            ("/etc/subuid", "--del-subuids"),
            ("/etc/subgid", "--del-subgids"),
        ] {
            while let Some((start, count)) = first_range(file, user) {
                let range = format!("{start}-{}", start + count - 1);
                must(Command::new("usermod").args([flag, &range, user]));
            }
        }
    }
    let id = |flag: &str| -> u32 {
        must(Command::new("id").args([flag, user]))
            .trim()
            .parse()
            .expect("numeric id")
    };
    TestUser {
        uid: id("-u"),
        gid: id("-g"),
        subuid: first_range("/etc/subuid", user).map_or(0, |r| r.0),
        subgid: first_range("/etc/subgid", user).map_or(0, |r| r.0),
    }
}
