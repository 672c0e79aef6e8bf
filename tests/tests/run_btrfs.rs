//! The run front end on a btrfs store, black-box: the real `strata` binary with `--driver
//! btrfs`, its store root on a btrfs made for the test on a loop-backed sparse file, the
//! busybox fixture and the default OCI runtime (privileged tier, root).
//!
//! What a user of a btrfs host checks: a container's root really is the btrfs (a subvolume),
//! exit codes and output pass through, detached containers exec, log, stop and go away, a
//! file written inside shows in `diff` and in the image `commit` makes, and `--rm` (or `rm`)
//! leaves no subvolume behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use strata_tests::cli::mounts_below;
use strata_tests::containers::wait_for;
use strata_tests::{fixtures, require_privileged, Strata};

const WHAT: &str = "a loop-mounted btrfs and containers run by the default OCI runtime";

fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A btrfs on a sparse file, mounted at a directory the test chooses. On drop it is
/// unmounted (lazily if something still holds it, or not at all if someone already did) and
/// its loop device detached; the image goes with its temporary directory.
struct LoopBtrfs {
    _image_dir: tempfile::TempDir,
    device: Option<String>,
    target: PathBuf,
}

impl LoopBtrfs {
    fn mount_at(target: &Path) -> LoopBtrfs {
        let image_dir = tempfile::Builder::new()
            .prefix("strata-run-btrfs-")
            .tempdir_in("/tmp")
            .expect("temp dir for the image");
        let image = image_dir.path().join("btrfs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(2 << 30))
            .expect("create the sparse image");
        sh(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        let mut fs = LoopBtrfs {
            _image_dir: image_dir,
            device: None,
            target: target.to_path_buf(),
        };
        fs.device = Some(sh(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)));
        std::fs::create_dir_all(target).expect("create the mount point");
        sh(Command::new("mount")
            .args(["-t", "btrfs"])
            .arg(fs.device.as_deref().expect("just set"))
            .arg(target));
        fs
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        if !mounts_below(&self.target).is_empty() {
            let ok = Command::new("umount")
                .arg(&self.target)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.target).status();
            }
        }
        if let Some(dev) = self.device.take() {
            let _ = Command::new("losetup").arg("-d").arg(&dev).status();
        }
    }
}

/// A busybox store whose root is a fresh btrfs. Fields drop in declaration order: the store
/// first (its containers are removed and its mounts undone while the filesystem is still
/// there), then the filesystem.
struct BtrfsStore {
    s: Strata,
    fs: LoopBtrfs,
}

impl BtrfsStore {
    fn new() -> BtrfsStore {
        let s = Strata::new("btrfs");
        let fs = LoopBtrfs::mount_at(&s.root);
        let id = s.load(&format!("{}:latest", fixtures::oci("busybox")), &[]);
        s.ok(["tag", &id, "busybox"]);
        BtrfsStore { s, fs }
    }

    /// Paths (from the filesystem's top) of every subvolume on the store's btrfs.
    fn subvolumes(&self) -> BTreeSet<String> {
        sh(Command::new("btrfs")
            .args(["subvolume", "list"])
            .arg(&self.fs.target))
        .lines()
        .filter_map(|l| l.split(" path ").nth(1).map(str::to_owned))
        .collect()
    }
}

/// `run --rm --network none <image> <cmd...>`'s output.
fn run_rm(s: &Strata, image: &str, cmd: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend_from_slice(cmd);
    s.run(args)
}

#[test]
fn privileged_btrfs_run_rm_runs_on_a_subvolume_and_leaves_none() {
    if !require_privileged("run_btrfs_run_rm", WHAT) {
        return;
    }
    let b = BtrfsStore::new();
    let image_only = b.subvolumes();
    assert_eq!(image_only.len(), 1, "busybox is one layer: {image_only:?}");

    let out = run_rm(
        &b.s,
        "busybox",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err\n"));

    // The container's root is a btrfs subvolume of the store's filesystem: its own one,
    // next to the image's, while it runs.
    let out = run_rm(&b.s, "busybox", &["cat", "/proc/self/mountinfo"]);
    assert!(out.status.success(), "{out:?}");
    let info = String::from_utf8_lossy(&out.stdout);
    let root = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount inside the container:\n{info}"));
    let fstype = root.split(" - ").nth(1).and_then(|t| t.split(' ').next());
    assert_eq!(fstype, Some("btrfs"), "{root}");
    let shown = root.split(' ').nth(3).expect("root field");
    let subvol = shown.trim_start_matches('/');
    assert!(
        !image_only.contains(subvol) && subvol.contains("/c-"),
        "the root is the container's own subvolume, not the image's: {root}"
    );

    assert_eq!(b.subvolumes(), image_only, "--rm left a subvolume");
    assert!(b.s.list("containers").is_empty());
    assert!(mounts_below(&b.s.runroot).is_empty());
}

#[test]
fn privileged_btrfs_detached_containers_exec_log_stop_and_go() {
    if !require_privileged("run_btrfs_detached", WHAT) {
        return;
    }
    let b = BtrfsStore::new();
    let s = &b.s;
    let image_only = b.subvolumes();
    let id = s
        .ok([
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo hello; echo oops >&2; exec sleep 1000",
        ])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
    let with_container = b.subvolumes();
    let added: Vec<&String> = with_container.difference(&image_only).collect();
    assert_eq!(added.len(), 1, "one subvolume for the container: {added:?}");
    assert!(added[0].ends_with(&format!("c-{id}")), "{added:?}");

    wait_for("the log", Duration::from_secs(10), || {
        s.ok(["logs", "web"]).contains("hello")
    });
    let out = s.run(["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    // exec sees the container's writable subvolume.
    s.ok(["exec", "web", "sh", "-c", "echo inside > /tmp/written"]);
    assert_eq!(s.ok(["exec", "web", "cat", "/tmp/written"]), "inside\n");
    let out = s.run(["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));

    s.ok(["stop", "-t", "1", "web"]);
    let state = &s.json(["inspect", "--type", "container", "web"])[0]["State"];
    assert_eq!(state["Status"], "exited", "{state}");
    assert_eq!(state["ExitCode"], 137, "sleep ignores SIGTERM: {state}");
    assert!(
        mounts_below(&s.runroot).is_empty(),
        "a stopped container is unmounted"
    );
    assert_eq!(b.subvolumes(), with_container, "stop keeps the container");
    s.ok(["rm", "web"]);
    assert!(s.list("containers").is_empty());
    assert_eq!(b.subvolumes(), image_only, "rm left a subvolume");
}

#[test]
fn privileged_btrfs_diff_shows_writes_and_commit_keeps_them() {
    if !require_privileged("run_btrfs_diff_commit", WHAT) {
        return;
    }
    let b = BtrfsStore::new();
    let s = &b.s;
    let image_only = b.subvolumes();
    s.ok([
        "run",
        "--name",
        "changer",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo written-on-btrfs > /marker && rm /bin/dirname",
    ]);
    let diff: Vec<String> = s.ok(["diff", "changer"]).lines().map(Into::into).collect();
    for expected in ["A /marker", "D /bin/dirname"] {
        assert!(
            diff.iter().any(|l| l == expected),
            "{expected} missing from diff: {diff:?}"
        );
    }

    let image = s
        .ok(["commit", "-q", "changer", "committed"])
        .trim()
        .to_owned();
    assert_eq!(image.len(), 64, "{image}");
    assert_eq!(
        b.subvolumes().len(),
        image_only.len() + 2,
        "the container's subvolume and the committed layer's"
    );
    let out = run_rm(
        s,
        "committed",
        &[
            "sh",
            "-c",
            "cat /marker; test -e /bin/dirname && echo present || echo gone",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "written-on-btrfs\ngone\n"
    );
    // The committed image does not depend on its container.
    s.ok(["rm", "changer"]);
    let out = run_rm(s, "committed", &["cat", "/marker"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "written-on-btrfs\n");
    assert_eq!(
        b.subvolumes().len(),
        image_only.len() + 1,
        "only the committed layer's subvolume is added"
    );
}
