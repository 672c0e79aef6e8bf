//! Views: read-only views refuse writes, writable layers keep their writes to themselves (and
//! across remounts), and payload that a mounted view uses cannot be removed.
//!
//! Removal while mounted is defined as: removing a key whose own view is mounted fails with
//! kind `Busy` and leaves the view working. Removing a *parent* of a mounted view either fails
//! with `Busy` (overlay: the parent is a lower layer of the mount) or succeeds while the view
//! keeps showing everything (vfs: the view is a full copy).

use std::os::unix::fs::PermissionsExt;

use strata_types::{ErrorKind, HasKind};

use crate::fixture::{exists, gate, names, read, write, Fixture, MakeDriver};
use crate::layer_tar::{LayerTar, E};

const MOUNTS: &str = "kernel mounts (run as root)";

fn base(fx: &Fixture) -> strata_driver_api::Key {
    fx.layer(
        "base",
        None,
        LayerTar::of([E::file("f", "lower"), E::dir("d"), E::file("d/x", "x")]),
    )
}

fn erofs(what: &str, r: std::io::Result<()>) {
    match r {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) => {}
        other => panic!("{what}: expected EROFS, got {other:?}"),
    }
}

pub fn read_only_views_refuse_writes(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "read_only_views_refuse_writes", MOUNTS) {
        return;
    }
    let l1 = base(&fx);
    let l2 = fx.layer("l2", Some(&l1), LayerTar::of([E::file("g", "upper")]));
    for k in [&l1, &l2] {
        let v = fx.view(k, false);
        erofs("create a file", std::fs::write(v.join("new"), "x"));
        erofs(
            "overwrite a file",
            std::fs::OpenOptions::new()
                .write(true)
                .open(v.join("f"))
                .map(drop),
        );
        erofs("mkdir", std::fs::create_dir(v.join("nd")));
        erofs("unlink", std::fs::remove_file(v.join("d/x")));
        erofs(
            "chmod",
            std::fs::set_permissions(v.join("f"), std::fs::Permissions::from_mode(0o600)),
        );
        erofs(
            "setxattr",
            rustix::fs::lsetxattr(v.join("f"), "user.x", b"1", rustix::fs::XattrFlags::empty())
                .map_err(Into::into),
        );
        assert_eq!(read(&v.join("f")), "lower");
    }
}

pub fn writable_layers_keep_writes_to_themselves(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(
        &*fx.driver,
        "writable_layers_keep_writes_to_themselves",
        MOUNTS,
    ) {
        return;
    }
    let l1 = base(&fx);
    let c1 = fx.container("c1", Some(&l1));
    let c2 = fx.container("c2", Some(&l1));
    let v1 = fx.view(&c1, true);
    write(&v1.join("f"), "changed");
    write(&v1.join("added"), "a");
    std::fs::remove_file(v1.join("d/x")).expect("delete in the container");
    v1.unmount();

    let lower = fx.view(&l1, false);
    assert_eq!(
        read(&lower.join("f")),
        "lower",
        "writes do not reach the layer"
    );
    assert!(!exists(&lower.join("added")));
    assert!(exists(&lower.join("d/x")));
    let v2 = fx.view(&c2, true);
    assert_eq!(
        read(&v2.join("f")),
        "lower",
        "a sibling container does not see them"
    );
    assert_eq!(names(&v2.path), ["d", "f"]);
    let again = fx.view(&c1, true);
    assert_eq!(
        read(&again.join("f")),
        "changed",
        "writes persist across remounts"
    );
    assert!(exists(&again.join("added")) && !exists(&again.join("d/x")));
}

pub fn removal_while_mounted_is_refused(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(&*fx.driver, "removal_while_mounted_is_refused", MOUNTS) {
        return;
    }
    let l1 = base(&fx);
    let l2 = fx.layer("l2", Some(&l1), LayerTar::of([E::file("g", "upper")]));
    let c = fx.container("c", Some(&l2));
    let d = &*fx.driver;

    let v = fx.view(&l2, false);
    let e = d.remove(&l2).expect_err("removing a mounted layer");
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(d.exists(&l2));
    assert_eq!(read(&v.join("g")), "upper", "the view still works");

    match d.remove(&l1) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Busy, "{e}"),
        Ok(()) => {
            assert!(!d.exists(&l1));
            assert_eq!(
                (read(&v.join("f")), read(&v.join("d/x"))),
                ("lower".into(), "x".into()),
                "view intact"
            );
        }
    }
    v.unmount();

    let cv = fx.view(&c, true);
    assert_eq!(
        d.remove(&c)
            .expect_err("removing a mounted container")
            .kind(),
        ErrorKind::Busy
    );
    cv.unmount();
    d.remove(&c).expect("remove once unmounted");
    d.remove(&l2).expect("remove once unmounted");
    assert!(!d.exists(&c) && !d.exists(&l2));
    d.remove(&l2)
        .expect("removing a missing key is not an error");
    assert!(!d.list().expect("list").contains(&l2));
}
