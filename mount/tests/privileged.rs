//! Privileged tier: real mounts (run as root). Every mount is owned by a `MountGuard` so that a
//! failing assertion never leaves one behind.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::{Path, PathBuf};

use strata_mount::{is_mounted, mount, mounts_using, unmount, MountGuard};
use strata_types::Mount;
use strata_types::{ErrorKind, HasKind};

fn gate(test: &str) -> bool {
    strata_tests::require_privileged(test, "kernel overlay and bind mounts")
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-mount-")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

fn dirs(base: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = base.join(n);
            fs::create_dir_all(&p).expect("mkdir");
            p
        })
        .collect()
}

fn overlay(lower: Vec<PathBuf>, upper_work: Option<(PathBuf, PathBuf)>) -> Mount {
    let (upper, work) = upper_work.unzip();
    Mount::Overlay {
        lower,
        upper,
        work,
        options: vec!["index=off".into(), "metacopy=off".into()],
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().expect("an OS error")
}

#[test]
fn lowerdir_plus_order_is_topmost_first() {
    if !gate("mount::lowerdir_plus_order_is_topmost_first") {
        return;
    }
    let t = tmp();
    let d = dirs(t.path(), &["top", "bottom", "m"]);
    fs::write(d[0].join("f"), "top").unwrap();
    fs::write(d[1].join("f"), "bottom").unwrap();
    fs::write(d[1].join("only-bottom"), "b").unwrap();
    let g = MountGuard::mount(&[overlay(vec![d[0].clone(), d[1].clone()], None)], &d[2]).unwrap();
    assert_eq!(fs::read_to_string(d[2].join("f")).unwrap(), "top");
    assert_eq!(fs::read_to_string(d[2].join("only-bottom")).unwrap(), "b");
    g.unmount().unwrap();
    assert!(!is_mounted(&d[2]).unwrap());
}

#[test]
fn chains_deeper_than_the_legacy_option_page_mount() {
    if !gate("mount::chains_deeper_than_the_legacy_option_page_mount") {
        return;
    }
    let t = tmp();
    // Long absolute paths: 250 of them are ~25 KiB, far past one 4 KiB page.
    let long = t
        .path()
        .join("a-rather-long-directory-name-to-make-the-option-string-large");
    let lower: Vec<PathBuf> = (0..250)
        .map(|i| {
            let p = long.join(format!("layer-{i:04}-with-a-long-name/diff"));
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join(format!("f{i}")), i.to_string()).unwrap();
            fs::write(p.join("shared"), i.to_string()).unwrap();
            p
        })
        .collect();
    let d = dirs(t.path(), &["upper", "work", "m"]);
    let m = overlay(lower, Some((d[0].clone(), d[1].clone())));
    let g = MountGuard::mount(&[m], &d[2]).unwrap();
    for i in 0..250 {
        assert_eq!(
            fs::read_to_string(d[2].join(format!("f{i}"))).unwrap(),
            i.to_string()
        );
    }
    // Index 0 is the topmost layer.
    assert_eq!(fs::read_to_string(d[2].join("shared")).unwrap(), "0");
    fs::write(d[2].join("new"), "x").unwrap();
    assert_eq!(
        fs::read_to_string(d[0].join("new")).unwrap(),
        "x",
        "writes go to the upper dir"
    );
    drop(g);
    assert!(!is_mounted(&d[2]).unwrap(), "the guard unmounts on drop");
}

#[test]
fn kernel_refusals_name_the_step_and_carry_the_kernel_log() {
    if !gate("mount::kernel_refusals_name_the_step_and_carry_the_kernel_log") {
        return;
    }
    let t = tmp();
    let d = dirs(t.path(), &["l0", "m"]);
    let missing = t.path().join("missing");
    let err = mount(&overlay(vec![d[0].clone(), missing.clone()], None), &d[1]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("overlay (2 lower dirs"), "{msg}");
    assert!(
        msg.contains(&format!("fsconfig lowerdir+ #1 ({})", missing.display())),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!is_mounted(&d[1]).unwrap());

    // An option overlay does not know: refused, with the kernel's reason from the fs log.
    let mut m = overlay(vec![d[0].clone()], None);
    if let Mount::Overlay { options, .. } = &mut m {
        options.push("no-such-option".into());
    }
    let err = mount(&m, &d[1]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fsconfig option \"no-such-option\""), "{msg}");
    assert!(
        msg.contains("(kernel: e overlay: Unknown parameter 'no-such-option')"),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(!is_mounted(&d[1]).unwrap());

    let err = mount(
        &Mount::Overlay {
            lower: vec![],
            upper: None,
            work: None,
            options: vec![],
        },
        &d[1],
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn read_only_overlays_and_binds_refuse_writes() {
    if !gate("mount::read_only_overlays_and_binds_refuse_writes") {
        return;
    }
    let t = tmp();
    let d = dirs(t.path(), &["a", "b", "m1", "m2", "m3"]);
    fs::write(d[0].join("f"), "a").unwrap();
    let ro_overlay =
        MountGuard::mount(&[overlay(vec![d[0].clone(), d[1].clone()], None)], &d[2]).unwrap();
    let ro_bind = MountGuard::mount(
        &[Mount::Bind {
            source: d[0].clone(),
            read_only: true,
        }],
        &d[3],
    )
    .unwrap();
    let rw_bind = MountGuard::mount(
        &[Mount::Bind {
            source: d[0].clone(),
            read_only: false,
        }],
        &d[4],
    )
    .unwrap();
    for m in [&d[2], &d[3]] {
        assert_eq!(fs::read_to_string(m.join("f")).unwrap(), "a");
        let e = fs::write(m.join("new"), "x").unwrap_err();
        assert_eq!(errno_of(&e), libc::EROFS, "{}", m.display());
    }
    fs::write(d[4].join("via-rw-bind"), "x").unwrap();
    assert!(
        d[0].join("via-rw-bind").exists(),
        "a writable bind writes to its source"
    );
    fs::write(d[0].join("source-still-writable"), "x").unwrap();
    drop((ro_overlay, ro_bind, rw_bind));
}

#[test]
fn unmount_is_idempotent_and_reports_busy() {
    if !gate("mount::unmount_is_idempotent_and_reports_busy") {
        return;
    }
    let t = tmp();
    let d = dirs(t.path(), &["src", "m"]);
    fs::write(d[0].join("f"), "a").unwrap();
    unmount(&d[1]).expect("not mounted is fine");
    unmount(&t.path().join("missing")).expect("missing is fine");
    assert!(!is_mounted(&d[1]).unwrap());
    assert!(!is_mounted(&t.path().join("missing")).unwrap());

    let g = MountGuard::mount(
        &[Mount::Bind {
            source: d[0].clone(),
            read_only: false,
        }],
        &d[1],
    )
    .unwrap();
    assert!(is_mounted(&d[1]).unwrap());
    let open = fs::File::open(d[1].join("f")).unwrap();
    let err = unmount(&d[1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(is_mounted(&d[1]).unwrap());
    drop(open);
    g.unmount().unwrap();
    assert!(!is_mounted(&d[1]).unwrap());
}

#[test]
fn mounts_using_finds_binds_and_overlay_layers() {
    if !gate("mount::mounts_using_finds_binds_and_overlay_layers") {
        return;
    }
    let t = tmp();
    let d = dirs(
        t.path(),
        &[
            "layers/a/diff",
            "layers/b/diff",
            "layers/c",
            "bind-src",
            "m1",
            "m2",
        ],
    );
    let g1 = MountGuard::mount(&[overlay(vec![d[0].clone(), d[1].clone()], None)], &d[4]).unwrap();
    let g2 = MountGuard::mount(
        &[Mount::Bind {
            source: d[3].clone(),
            read_only: true,
        }],
        &d[5],
    )
    .unwrap();
    assert_eq!(
        mounts_using(&t.path().join("layers/b")).unwrap(),
        [d[4].clone()]
    );
    assert_eq!(mounts_using(&d[3]).unwrap(), [d[5].clone()]);
    assert!(mounts_using(&d[2]).unwrap().is_empty());
    assert!(mounts_using(&t.path().join("missing")).unwrap().is_empty());
    drop((g1, g2));
    assert!(mounts_using(&t.path().join("layers/b")).unwrap().is_empty());
    assert!(mounts_using(&d[3]).unwrap().is_empty());
}
