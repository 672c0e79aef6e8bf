//! OCI whiteouts and opaque directories in the three formats drivers ask for.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use common::*;
use strata_graph_archive::WhiteoutFormat;

fn whiteout_layer() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.file(".wh.gone", 0o644, b"")
        .file(".wh.gonedir", 0o644, b"")
        .dir("d/", 0o750)
        .file("d/-early", 0o644, b"created before the marker")
        .dir("d/sub/", 0o755)
        .file("d/sub/mine", 0o644, b"mine")
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/late", 0o644, b"created after the marker")
        .file(".wh.missing", 0o644, b"")
        .file("nested/deeper/.wh.x", 0o644, b"")
        .dir("e/.wh..wh.plnk/", 0o700);
    let mut h = TarBuilder::header(tar::EntryType::Regular, 0o644, 0);
    h.set_uid(1000);
    h.set_gid(1000);
    t.b.append_data(&mut h, "a/b/.wh.c", &[][..]).unwrap();
    t.finish()
}

#[test]
fn apply_format_removes_whited_out_and_lower_opaque_contents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sh(&format!(
        "cd {} && mkdir -p gonedir/sub d/sub e a/b && echo x > gone && echo x > gonedir/sub/f && \
         echo k > keep && echo l > d/lowerfile && echo o > d/sub/old && echo e > e/x && echo c > a/b/c",
        root.display()
    ));
    let layer = whiteout_layer();
    let (applied, split) = apply_ok(&layer, root, WhiteoutFormat::Apply);
    assert_eq!(applied.entries, 12);
    let exists = |p: &str| root.join(p).symlink_metadata().is_ok();
    assert!(!exists("gone") && !exists("gonedir") && !exists("a/b/c"));
    assert!(exists("keep") && exists("e/x"));
    assert!(
        !exists("d/lowerfile"),
        "lower content of an opaque dir is removed"
    );
    assert!(
        !exists("d/sub/old"),
        "also inside a directory the layer merged into"
    );
    assert_eq!(
        std::fs::read(root.join("d/-early")).unwrap(),
        b"created before the marker"
    );
    assert_eq!(std::fs::read(root.join("d/sub/mine")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read(root.join("d/late")).unwrap(),
        b"created after the marker"
    );
    assert!(!exists(".wh.gone") && !exists("d/.wh..wh..opq") && !exists("e/.wh..wh.plnk"));
    assert_eq!(
        std::fs::metadata(root.join("d")).unwrap().mode() & 0o7777,
        0o750
    );
    assert!(
        export(&split, root).2 == layer,
        "whiteouts are reproduced by the tar-split record"
    );
}

fn is_whiteout_device(p: &std::path::Path) -> bool {
    let md = std::fs::symlink_metadata(p).unwrap();
    md.file_type().is_char_device() && md.rdev() == 0
}

#[test]
fn overlay_trusted_format_writes_devices_and_trusted_xattrs() {
    if !strata_tests::require_privileged(
        "archive_overlay_trusted_whiteouts",
        "mknod and trusted.* xattrs",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let layer = whiteout_layer();
    let (_, split) = apply_ok(&layer, root, WhiteoutFormat::OverlayTrusted);
    assert!(is_whiteout_device(&root.join("gone")));
    assert!(is_whiteout_device(&root.join("gonedir")));
    assert!(is_whiteout_device(&root.join("nested/deeper/x")));
    let c = root.join("a/b/c");
    assert!(is_whiteout_device(&c));
    assert_eq!(
        std::fs::symlink_metadata(&c).unwrap().uid(),
        1000,
        "whiteouts keep the entry's owner"
    );
    assert!(xattrs(&root.join("d")).contains(&("trusted.overlay.opaque".into(), b"y".to_vec())));
    assert_eq!(
        std::fs::read(root.join("d/-early")).unwrap(),
        b"created before the marker"
    );
    assert_eq!(
        std::fs::read(root.join("d/late")).unwrap(),
        b"created after the marker"
    );
    assert!(!root.join("d/.wh..wh..opq").exists() && !root.join(".wh.gone").exists());
    assert!(export(&split, root).2 == layer);
}

#[test]
fn overlay_user_format_writes_devices_and_user_xattrs() {
    if !strata_tests::require_privileged(
        "archive_overlay_user_whiteouts",
        "mknod of whiteout devices",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let layer = whiteout_layer();
    let (_, split) = apply_ok(&layer, root, WhiteoutFormat::OverlayUser);
    assert!(is_whiteout_device(&root.join("gone")));
    assert!(is_whiteout_device(&root.join("a/b/c")));
    let d = xattrs(&root.join("d"));
    assert!(
        d.contains(&("user.overlay.opaque".into(), b"y".to_vec())),
        "{d:?}"
    );
    assert!(!d.iter().any(|(k, _)| k.starts_with("trusted.")));
    assert!(export(&split, root).2 == layer);
}

#[test]
fn overlay_xattrs_in_a_layer_are_not_applied() {
    // A layer must not be able to forge the driver's own overlay metadata.
    let mut t = TarBuilder::new();
    t.pax(&[
        ("SCHILY.xattr.user.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.user.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.ok", b"1"),
    ])
    .dir("d/", 0o755);
    let layer = t.finish();
    let dir = tempfile::tempdir().unwrap();
    apply_ok(&layer, dir.path(), WhiteoutFormat::OverlayUser);
    assert_eq!(
        xattrs(&dir.path().join("d")),
        vec![("user.ok".to_owned(), b"1".to_vec())]
    );
}
