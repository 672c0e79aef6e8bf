//! A container's changes, exported with `write_changes` and applied as a new layer on the same
//! parents, reproduce the container's view exactly.
//!
//! Drivers may describe the same result differently (overlay reports an emptied-and-refilled
//! directory as `Opaque` and re-states copied-up parent directories; vfs lists deletions one
//! by one), so the list is checked for what every correct answer contains, and the round trip
//! checks the rest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use strata_graph_archive::write_changes;
use strata_types::{Change, ChangeKind};

use crate::fixture::{gate, write, Fixture, MakeDriver};
use crate::layer_tar::{LayerTar, E};

fn lower_layers(fx: &Fixture) -> strata_driver_api::Key {
    let l0 = fx.layer(
        "l0",
        None,
        LayerTar::of([
            E::dir("etc"),
            E::file("etc/conf", "old config"),
            E::file("etc/mode", "m"),
            E::file("etc/untouched", "u"),
            E::file("keep.txt", "keep"),
        ]),
    );
    fx.layer(
        "l1",
        Some(&l0),
        LayerTar::of([
            E::file("old.txt", "old"),
            E::file("torename.txt", "r"),
            E::dir("dir2"),
            E::file("dir2/inner", "i"),
            E::dir("opq"),
            E::file("opq/stale1", "s1"),
            E::file("opq/stale2", "s2"),
        ]),
    )
}

/// Changes a user makes in a container.
fn mutate(root: &Path) {
    let p = |s: &str| root.join(s);
    write(&p("added.txt"), "added");
    std::fs::hard_link(p("added.txt"), p("added-link")).expect("hardlink");
    write(&p("etc/conf"), "new config, longer");
    std::fs::set_permissions(
        p("etc/mode"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::remove_file(p("old.txt")).expect("rm old.txt");
    std::fs::rename(p("torename.txt"), p("renamed.txt")).expect("rename a file");
    std::fs::remove_dir_all(p("dir2")).expect("rm -rf dir2");
    write(&p("dir2"), "now a file");
    std::fs::remove_dir_all(p("opq")).expect("rm -rf opq");
    std::fs::create_dir(p("opq")).expect("mkdir opq");
    write(&p("opq/fresh"), "fresh");
    std::os::unix::fs::symlink("added.txt", p("newlink")).expect("symlink");
    std::fs::create_dir_all(p("new/deep")).expect("mkdir -p");
    write(&p("new/deep/file"), "deep");
    rustix::fs::lsetxattr(
        p("etc/untouched"),
        "user.tag",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
}

fn kinds(changes: &[Change]) -> BTreeMap<String, ChangeKind> {
    changes
        .iter()
        .map(|c| (c.path.to_string_lossy().into_owned(), c.kind))
        .collect()
}

fn check_list(changes: &[Change]) {
    let mut sorted = changes.to_vec();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(changes, sorted.as_slice(), "changes are sorted by path");
    let k = kinds(changes);
    assert_eq!(
        k.len(),
        changes.len(),
        "no path is listed twice: {changes:?}"
    );
    let show = format!("{changes:#?}");
    for p in [
        "added.txt",
        "added-link",
        "etc/conf",
        "etc/mode",
        "etc/untouched",
        "renamed.txt",
        "dir2",
        "opq/fresh",
        "newlink",
        "new",
        "new/deep",
        "new/deep/file",
    ] {
        assert_eq!(
            k.get(p),
            Some(&ChangeKind::Modified),
            "{p} modified in {show}"
        );
    }
    for p in ["old.txt", "torename.txt"] {
        assert_eq!(
            k.get(p),
            Some(&ChangeKind::Deleted),
            "{p} deleted in {show}"
        );
    }
    let opaque = k.get("opq") == Some(&ChangeKind::Opaque);
    let listed = ["opq/stale1", "opq/stale2"]
        .iter()
        .all(|p| k.get(*p) == Some(&ChangeKind::Deleted));
    assert!(
        opaque || listed,
        "opq is opaque, or its old entries are deleted: {show}"
    );
    for p in ["keep.txt", "dir2/inner"] {
        assert!(!k.contains_key(p), "{p} must not be listed: {show}");
    }
}

/// Overlay bookkeeping must never leak into an exported layer.
fn check_no_overlay_xattrs(tar: &[u8]) {
    let mut a = tar::Archive::new(tar);
    for e in a.entries().expect("read the exported tar") {
        let mut e = e.expect("tar entry");
        let path = e.path().expect("path").display().to_string();
        if let Some(ext) = e.pax_extensions().expect("pax") {
            for x in ext {
                let k = x.expect("pax record").key().expect("pax key").to_owned();
                assert!(
                    !k.contains(".overlay."),
                    "{path}: exported overlay xattr {k}"
                );
            }
        }
        let mut sink = Vec::new();
        e.read_to_end(&mut sink).expect("entry data");
    }
}

pub fn changes_reproduce_the_container(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(
        &*fx.driver,
        "changes_reproduce_the_container",
        "mounts and owners (run as root)",
    ) {
        return;
    }
    let l1 = lower_layers(&fx);
    let c = fx.container("c", Some(&l1));
    let v = fx.view(&c, true);
    mutate(&v.path);
    let while_mounted = fx
        .driver
        .changes(&c, &fx.parents(&c))
        .expect("changes while mounted");
    v.unmount();
    let changes = fx.driver.changes(&c, &fx.parents(&c)).expect("changes");
    assert_eq!(
        while_mounted, changes,
        "changes do not depend on the view being mounted"
    );
    check_list(&changes);

    let mut tar = Vec::new();
    let (digest, size) =
        write_changes(&changes, &fx.driver.changes_source(&c), &mut tar).expect("write_changes");
    assert_eq!(size, tar.len() as u64);
    check_no_overlay_xattrs(&tar);

    // Apply the exported layer as a fresh layer on the container's parents; compare views.
    let parent = fx.parents(&c).first().cloned();
    let committed = fx.layer("committed", parent.as_ref(), tar);
    assert_eq!(
        fx.made(&committed).applied.diff_id,
        digest,
        "write_changes reports the digest of what it wrote"
    );
    let cv = fx.view(&c, true);
    let kv = fx.view(&committed, false);
    let diffs = strata_tests::tree::compare(&cv.path, &kv.path);
    assert_eq!(
        diffs,
        Vec::<String>::new(),
        "the re-applied changes reproduce the container's view"
    );
}
