//! What a stack of layers shows: whiteouts, opaque directories, hardlinks, xattrs, owners and
//! modes, as seen through a mounted view.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use strata_types::ChangeKind;

use crate::fixture::{exists, gate, lstat, names, read, Fixture, MakeDriver};
use crate::layer_tar::{LayerTar, E};

const MOUNTS: &str = "mounts, owners and device nodes (run as root)";

/// A whiteout in an upper layer hides a lower file or a whole lower directory; the lower
/// layer's own view is unaffected; a later layer can re-create the path; the whited-out
/// layer's changes report the deletion.
pub fn whiteouts_hide_lower_files(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "whiteouts_hide_lower_files", MOUNTS) {
        return;
    }
    let l1 = fx.layer(
        "l1",
        None,
        LayerTar::of([
            E::dir("a"),
            E::file("a/keep", "k"),
            E::file("a/gone", "g"),
            E::file("top-gone", "t"),
            E::dir("d"),
            E::file("d/x", "x"),
        ]),
    );
    let l2 = fx.layer(
        "l2",
        Some(&l1),
        LayerTar::of([
            E::whiteout("a/gone"),
            E::whiteout("top-gone"),
            E::whiteout("d"),
        ]),
    );
    let l3 = fx.layer("l3", Some(&l2), LayerTar::of([E::file("top-gone", "back")]));

    let v2 = fx.view(&l2, false);
    assert_eq!(
        names(&v2.path),
        ["a"],
        "whiteouts hide files and directories, and are not visible themselves"
    );
    assert_eq!(names(&v2.join("a")), ["keep"]);
    let v1 = fx.view(&l1, false);
    assert_eq!(
        names(&v1.path),
        ["a", "d", "top-gone"],
        "the lower layer's own view is unchanged"
    );
    assert_eq!(names(&v1.join("a")), ["gone", "keep"]);
    let v3 = fx.view(&l3, false);
    assert_eq!(
        read(&v3.join("top-gone")),
        "back",
        "a later layer re-creates a whited-out path"
    );
    assert!(!exists(&v3.join("a/gone")) && !exists(&v3.join("d")));

    let changes = fx
        .driver
        .changes(&l2, &fx.parents(&l2))
        .expect("changes of l2");
    for p in ["a/gone", "top-gone", "d"] {
        assert!(
            changes
                .iter()
                .any(|c| c.path.to_str() == Some(p) && c.kind == ChangeKind::Deleted),
            "{p} is reported deleted: {changes:?}"
        );
    }
}

/// An opaque directory hides everything its lower layers had in it but keeps what its own
/// layer (and later layers) put there, with its own metadata.
pub fn opaque_dirs_hide_lower_contents(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "opaque_dirs_hide_lower_contents", MOUNTS) {
        return;
    }
    let l1 = fx.layer(
        "l1",
        None,
        LayerTar::of([
            E::dir("o"),
            E::file("o/old1", "1"),
            E::dir("o/sub"),
            E::file("o/sub/old2", "2"),
            E::file("o/same-name", "lower"),
            E::file("sibling", "s"),
        ]),
    );
    let l2 = fx.layer(
        "l2",
        Some(&l1),
        LayerTar::of([
            E::dir("o").mode(0o700),
            E::opaque("o"),
            E::file("o/new", "n"),
            E::file("o/same-name", "upper"),
        ]),
    );
    let l3 = fx.layer("l3", Some(&l2), LayerTar::of([E::file("o/newer", "nn")]));

    let v2 = fx.view(&l2, false);
    assert_eq!(names(&v2.join("o")), ["new", "same-name"]);
    assert_eq!(read(&v2.join("o/same-name")), "upper");
    assert_eq!(
        lstat(&v2.join("o")).mode() & 0o7777,
        0o700,
        "the opaque directory has its own layer's mode"
    );
    assert_eq!(
        names(&v2.path),
        ["o", "sibling"],
        "only that directory is opaque"
    );
    let v3 = fx.view(&l3, false);
    assert_eq!(
        names(&v3.join("o")),
        ["new", "newer", "same-name"],
        "a later layer adds to the opaque directory"
    );
}

/// Files hardlinked in a layer are one inode in the view.
pub fn hardlinks_stay_linked(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "hardlinks_stay_linked", MOUNTS) {
        return;
    }
    let l1 = fx.layer(
        "l1",
        None,
        LayerTar::of([
            E::dir("h"),
            E::file("h/a", "shared data"),
            E::hardlink("h/b", "h/a"),
            E::hardlink("c", "h/a"),
        ]),
    );
    let l2 = fx.layer(
        "l2",
        Some(&l1),
        LayerTar::of([E::file("x1", "x"), E::hardlink("x2", "x1")]),
    );
    let v = fx.view(&l2, false);
    let (a, b, c) = (
        lstat(&v.join("h/a")),
        lstat(&v.join("h/b")),
        lstat(&v.join("c")),
    );
    assert_eq!(
        (a.ino(), a.dev()),
        (b.ino(), b.dev()),
        "h/a and h/b are one inode"
    );
    assert_eq!(
        (a.ino(), a.dev()),
        (c.ino(), c.dev()),
        "h/a and c are one inode"
    );
    assert_eq!(a.nlink(), 3);
    assert_eq!(read(&v.join("c")), "shared data");
    let (x1, x2) = (lstat(&v.join("x1")), lstat(&v.join("x2")));
    assert_eq!(x1.ino(), x2.ino(), "links within an upper layer too");
}

/// `user.*` and `security.capability` xattrs of files and directories are visible in views;
/// the overlay driver's own attributes are not content.
pub fn xattrs_are_visible(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "xattrs_are_visible", MOUNTS) {
        return;
    }
    // VFS_CAP_REVISION_2 with the effective flag; CAP_NET_BIND_SERVICE permitted.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let l1 = fx.layer(
        "l1",
        None,
        LayerTar::of([
            E::dir("d").xattr("user.dir", "1"),
            E::file("d/ping", "bin")
                .mode(0o755)
                .xattr("security.capability", cap)
                .xattr("user.note", "hello"),
        ]),
    );
    let l2 = fx.layer(
        "l2",
        Some(&l1),
        LayerTar::of([E::file("upper", "u").xattr("user.layer", "two")]),
    );
    let c = fx.container("c", Some(&l2));
    for v in [fx.view(&l2, false), fx.view(&c, true)] {
        let x = strata_tests::tree::read_xattrs(&v.join("d/ping")).expect("read xattrs");
        assert_eq!(
            x.get("security.capability").map(Vec::as_slice),
            Some(&cap[..]),
            "{x:?}"
        );
        assert_eq!(x.get("user.note").map(Vec::as_slice), Some(&b"hello"[..]));
        let x = strata_tests::tree::read_xattrs(&v.join("d")).expect("read xattrs");
        assert_eq!(x.get("user.dir").map(Vec::as_slice), Some(&b"1"[..]));
        let x = strata_tests::tree::read_xattrs(&v.join("upper")).expect("read xattrs");
        assert_eq!(x.get("user.layer").map(Vec::as_slice), Some(&b"two"[..]));
    }
}

/// Owners, setuid/setgid/sticky bits, odd modes, device nodes and fifos come through.
pub fn ownership_and_modes_are_preserved(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "ownership_and_modes_are_preserved", MOUNTS) {
        return;
    }
    let l1 = fx.layer(
        "l1",
        None,
        LayerTar::of([
            E::dir("tmp").mode(0o1777),
            E::file("suid", "s").mode(0o4755).owner(1000, 1000),
            E::file("sgid", "g").mode(0o2711).owner(0, 50),
            E::dir("owned").mode(0o750).owner(1234, 5678),
            E::file("owned/none", "").mode(0o000).owner(1234, 5678),
            E::symlink("link", "suid").owner(7, 8),
            E::char_dev("null", 1, 3).mode(0o666),
            E::fifo("fifo").owner(42, 43),
        ]),
    );
    // Ownership of a path changed by a later layer.
    let l2 = fx.layer(
        "l2",
        Some(&l1),
        LayerTar::of([E::file("sgid", "g2").mode(0o2750).owner(99, 98)]),
    );
    let v = fx.view(&l2, false);
    let check = |p: &str, mode: u32, uid: u32, gid: u32| {
        let m = lstat(&v.join(p));
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, uid, gid),
            "{p}: mode, uid, gid"
        );
    };
    check("tmp", 0o1777, 0, 0);
    check("suid", 0o4755, 1000, 1000);
    check("sgid", 0o2750, 99, 98);
    check("owned", 0o750, 1234, 5678);
    check("owned/none", 0o000, 1234, 5678);
    check("fifo", 0o600, 42, 43);
    let link = lstat(&v.join("link"));
    assert!(link.file_type().is_symlink());
    assert_eq!((link.uid(), link.gid()), (7, 8), "symlink owner");
    if strata_mount::in_user_namespace() {
        // No device nodes can be made in a user namespace: the layer pipeline skips them
        // with a warning, as podman does rootless.
        assert!(
            std::fs::symlink_metadata(v.join("null")).is_err(),
            "a device node in a rootless store"
        );
    } else {
        let null = lstat(&v.join("null"));
        assert!(null.file_type().is_char_device());
        assert_eq!(
            (
                rustix::fs::major(null.rdev()),
                rustix::fs::minor(null.rdev())
            ),
            (1, 3)
        );
    }
    assert!(lstat(&v.join("fifo")).file_type().is_fifo());
}
