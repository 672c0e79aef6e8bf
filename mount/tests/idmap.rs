//! Privileged tier: idmapped overlay layers and binds (run as root).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::fs::{chown, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_mount::{is_mounted, mount_idmapped, unmount, IdMap};
use strata_types::Mount;

fn gate(test: &str) -> bool {
    strata_tests::require_privileged(test, "idmapped mounts")
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        // A process the test started may still be leaving the mount (seen once under a loaded
        // full run): give it a moment, then detach rather than leave the mount behind.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while is_mounted(&self.0).unwrap_or(false) {
            match unmount(&self.0) {
                Ok(()) => {}
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("unmount {}: {e}; retrying", self.0.display());
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(_) => strata_mount::unmount_detach(&self.0).unwrap(),
            }
        }
    }
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// Runs `touch path` as host uid/gid `id`.
fn touch_as(id: u32, path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            &format!("--reuid={id}"),
            &format!("--regid={id}"),
            "--clear-groups",
            "touch",
        ])
        .arg(path)
        .status()
        .unwrap()
        .success()
}

#[test]
fn an_idmapped_overlay_shows_shifted_owners_and_writes_image_space_owners() {
    if !gate("mount::idmap::an_idmapped_overlay_shows_shifted_owners_and_writes_image_space_owners")
    {
        return;
    }
    let t = tempfile::tempdir_in("/tmp").unwrap();
    let (l1, l2, upper, work, merged) = (
        t.path().join("l1"),
        t.path().join("l2"),
        t.path().join("upper"),
        t.path().join("work"),
        t.path().join("merged"),
    );
    for d in [&l1, &l2, &upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(l1.join("root-file"), "r").unwrap();
    std::fs::write(l2.join("user-file"), "u").unwrap();
    chown(l2.join("user-file"), Some(1000), Some(1000)).unwrap();

    let map = IdMap::uniform(0, 200_000, 65536);
    let m = Mount::Overlay {
        lower: vec![l2.clone(), l1.clone()],
        upper: Some(upper.clone()),
        work: Some(work.clone()),
        options: vec![],
    };
    mount_idmapped(&m, &map, &merged).unwrap();
    let _g = Unmount(merged.clone());

    // Through the mount, image-space owners appear shifted into the container's host range...
    assert_eq!(owner(&merged.join("root-file")), (200_000, 200_000));
    assert_eq!(owner(&merged.join("user-file")), (201_000, 201_000));
    assert_eq!(owner(&merged), (200_000, 200_000));
    // ...while the layers on disk keep their owners (no chown copy).
    assert_eq!(owner(&l1.join("root-file")), (0, 0));
    assert_eq!(owner(&l2.join("user-file")), (1000, 1000));

    // The container's root owns its root directory, and creates a file there; it lands in the
    // upper dir with the host id (diff and commit map it back).
    assert_eq!(owner(&upper), (200_000, 200_000));
    assert!(touch_as(200_000, &merged.join("new-file")));
    assert_eq!(owner(&upper.join("new-file")), (200_000, 200_000));
    // Copy-up of a lower file keeps its shifted owner; the lower file is untouched.
    assert!(touch_as(201_000, &merged.join("user-file")));
    assert_eq!(owner(&upper.join("user-file")), (201_000, 201_000));
    assert_eq!(owner(&l2.join("user-file")), (1000, 1000));
    // Nothing of the scratch tree stays mounted: only the overlay is at the target.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let at_target = mounts
        .lines()
        .filter(|l| l.contains(merged.to_str().unwrap()))
        .count();
    assert_eq!(at_target, 1, "{mounts}");
}

#[test]
fn an_idmapped_bind_shifts_owners_and_identity_maps_mount_plainly() {
    if !gate("mount::idmap::an_idmapped_bind_shifts_owners_and_identity_maps_mount_plainly") {
        return;
    }
    let t = tempfile::tempdir_in("/tmp").unwrap();
    let (src, target) = (t.path().join("src"), t.path().join("target"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&target).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    chown(src.join("f"), Some(7), Some(8)).unwrap();
    let m = Mount::Bind {
        source: src.clone(),
        read_only: true,
    };

    mount_idmapped(&m, &IdMap::uniform(0, 300_000, 1000), &target).unwrap();
    {
        let _g = Unmount(target.clone());
        assert_eq!(owner(&target.join("f")), (300_007, 300_008));
        assert!(std::fs::write(target.join("g"), "y").is_err(), "read-only");
    }
    mount_idmapped(&m, &IdMap::uniform(0, 0, u32::MAX), &target).unwrap();
    let _g = Unmount(target.clone());
    assert_eq!(owner(&target.join("f")), (7, 8));
}
