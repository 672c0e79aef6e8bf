//! Privileged tier: `mounts_using` on btrfs, where every subvolume reports its own `st_dev`
//! (different from the device number mountinfo shows for the filesystem), on a btrfs made on a
//! loop-backed sparse file. Every mount is owned by a guard, so a failing assertion leaves
//! nothing mounted or attached.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_mount::{mounts_using, MountGuard};
use strata_types::Mount;

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

/// A btrfs on a 1 GiB sparse file in a temp dir, mounted at `<dir>/mnt`; unmounted (lazily if
/// still busy) and its loop device detached on drop, then the temp dir goes.
struct LoopBtrfs {
    dir: tempfile::TempDir,
    device: Option<String>,
    mounted: bool,
}

impl LoopBtrfs {
    fn new() -> LoopBtrfs {
        let dir = tempfile::Builder::new()
            .prefix("strata-mount-btrfs-")
            .tempdir_in("/tmp")
            .unwrap();
        let image = dir.path().join("btrfs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(1 << 30))
            .unwrap();
        sh(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        let mut fs = LoopBtrfs {
            dir,
            device: None,
            mounted: false,
        };
        fs.device = Some(sh(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)));
        std::fs::create_dir(fs.mnt()).unwrap();
        sh(Command::new("mount")
            .args(["-t", "btrfs"])
            .arg(fs.device.as_deref().unwrap())
            .arg(fs.mnt()));
        fs.mounted = true;
        fs
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn subvolume(&self, name: &str) -> PathBuf {
        let p = self.mnt().join(name);
        sh(Command::new("btrfs").args(["subvolume", "create"]).arg(&p));
        p
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        if self.mounted {
            let mnt = self.mnt();
            let ok = Command::new("umount")
                .arg(&mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&mnt).status();
            }
        }
        if let Some(dev) = self.device.take() {
            let _ = Command::new("losetup").arg("-d").arg(&dev).status();
        }
    }
}

fn target(base: &Path, name: &str) -> PathBuf {
    let p = base.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn bind(source: &Path, at: &Path) -> MountGuard {
    MountGuard::mount(
        &[Mount::Bind {
            source: source.to_path_buf(),
            read_only: true,
        }],
        at,
    )
    .unwrap()
}

#[test]
fn mounts_using_sees_binds_and_overlays_of_btrfs_subvolumes() {
    if !strata_tests::require_privileged(
        "mount::mounts_using_sees_binds_and_overlays_of_btrfs_subvolumes",
        "a loop-backed btrfs and bind mounts",
    ) {
        return;
    }
    let fs = LoopBtrfs::new();
    let targets = tempfile::Builder::new()
        .prefix("strata-mount-targets-")
        .tempdir_in("/tmp")
        .unwrap();
    let k1 = fs.subvolume("k1");
    let k2 = fs.subvolume("k2");
    let k3 = fs.subvolume("k3");
    std::fs::create_dir(k2.join("etc")).unwrap();
    std::fs::create_dir(k3.join("work")).unwrap();
    assert_ne!(
        std::fs::metadata(&k1).unwrap().dev(),
        std::fs::metadata(fs.mnt()).unwrap().dev(),
        "btrfs gives every subvolume its own st_dev (the case this test is about)"
    );
    assert!(mounts_using(&k1).unwrap().is_empty());

    let (v1, etc, ov) = (
        target(targets.path(), "v1"),
        target(targets.path(), "etc"),
        target(targets.path(), "ov"),
    );
    let g1 = bind(&k1, &v1);
    let g2 = bind(&k2.join("etc"), &etc);
    let g3 = MountGuard::mount(
        &[Mount::Overlay {
            lower: vec![k3.join("work"), k2.join("etc")],
            upper: None,
            work: None,
            options: vec!["index=off".into()],
        }],
        &ov,
    )
    .unwrap();
    assert_eq!(mounts_using(&k1).unwrap(), vec![v1.clone()]);
    assert_eq!(
        mounts_using(&k2).unwrap(),
        [etc.clone(), ov.clone()],
        "a bind of a directory inside the subvolume and an overlay lower in it"
    );
    assert_eq!(mounts_using(&k3).unwrap(), vec![ov.clone()]);
    // Through the view itself, and with a path that is not canonical.
    assert_eq!(mounts_using(&v1).unwrap(), vec![v1.clone()]);
    assert_eq!(
        mounts_using(&fs.mnt().join("k2/../k1")).unwrap(),
        vec![v1.clone()]
    );
    // The filesystem's root is used by everything on it (and by its own mount point).
    let all = mounts_using(&fs.mnt()).unwrap();
    for p in [&fs.mnt(), &v1, &etc, &ov] {
        assert!(all.contains(p), "{} missing from {all:?}", p.display());
    }
    // A snapshot of a mounted subvolume is a different subvolume: nothing uses it.
    let snap = fs.mnt().join("k1-snap");
    sh(Command::new("btrfs")
        .args(["subvolume", "snapshot"])
        .arg(&k1)
        .arg(&snap));
    assert!(mounts_using(&snap).unwrap().is_empty());

    drop((g1, g2, g3));
    for k in [&k1, &k2, &k3] {
        assert!(
            mounts_using(k).unwrap().is_empty(),
            "{} after unmount",
            k.display()
        );
    }
}
