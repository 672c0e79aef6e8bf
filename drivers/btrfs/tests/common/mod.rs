//! A btrfs filesystem made for one test on a loop-backed sparse file, mounted at a directory the
//! test chooses, and undone on drop (unmounted, loop device detached, image deleted) even when
//! the test fails. Needs root; callers gate on `strata_tests::require_privileged` first.

#![allow(dead_code)] // each test file uses part of this module

use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of the sparse image: comfortably above mkfs.btrfs's minimum, allocated lazily.
pub const IMAGE_SIZE: u64 = 1 << 30;

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A mounted loop btrfs: unmounted, then detached on drop; the image goes with `image_dir`.
#[derive(Debug)]
pub struct LoopBtrfs {
    image_dir: tempfile::TempDir,
    device: Option<String>,
    mount_point: Option<PathBuf>,
}

impl LoopBtrfs {
    /// Makes a fresh btrfs and mounts it at `target` (an existing directory) with the extra
    /// mount `options` (comma-separated, may be empty).
    pub fn mount_at(target: &Path, options: &str) -> LoopBtrfs {
        let image_dir = tempfile::Builder::new()
            .prefix("strata-btrfs-image-")
            .tempdir_in("/tmp")
            .expect("temp dir for the image");
        let image = image_dir.path().join("btrfs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(IMAGE_SIZE))
            .expect("create the sparse image");
        run("mkfs", Command::new("mkfs.btrfs").arg("-q").arg(&image));
        let mut fs = LoopBtrfs {
            image_dir,
            device: None,
            mount_point: None,
        };
        fs.device = Some(run(
            "attach a loop device",
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&image),
        ));
        let mut mount = Command::new("mount");
        mount.args(["-t", "btrfs"]);
        if !options.is_empty() {
            mount.args(["-o", options]);
        }
        run(
            "mount",
            mount
                .arg(fs.device.as_deref().expect("just set"))
                .arg(target),
        );
        fs.mount_point = Some(target.to_path_buf());
        fs
    }

    pub fn mount_point(&self) -> &Path {
        self.mount_point.as_deref().expect("mounted")
    }

    /// Bytes in use on the filesystem, after writing out everything pending.
    pub fn used_bytes(&self) -> u64 {
        let dir = std::fs::File::open(self.mount_point()).expect("open the mount point");
        rustix::fs::syncfs(&dir).expect("syncfs");
        let s = rustix::fs::fstatfs(&dir).expect("statfs");
        (s.f_blocks - s.f_bfree) * s.f_bsize as u64
    }

    /// Names of the subvolumes on the filesystem (`btrfs subvolume list`), sorted.
    pub fn subvolumes(&self) -> Vec<String> {
        let out = run(
            "list subvolumes",
            Command::new("btrfs")
                .args(["subvolume", "list"])
                .arg(self.mount_point()),
        );
        let mut names: Vec<String> = out
            .lines()
            .filter_map(|l| l.split(" path ").nth(1).map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        if let Some(target) = self.mount_point.take() {
            let ok = Command::new("umount")
                .arg(&target)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Still busy (a failing test left a view mounted): detach it lazily so that
                // the device goes away with the last user.
                let _ = Command::new("umount").arg("-l").arg(&target).status();
            }
        }
        if let Some(dev) = self.device.take() {
            let _ = Command::new("losetup").arg("-d").arg(&dev).status();
        }
    }
}
