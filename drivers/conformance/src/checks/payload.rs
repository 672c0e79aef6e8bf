//! Payload bookkeeping: tar-split export is bit-exact, staging areas of dead processes are
//! cleaned up (and live ones are not), and keys are created, listed, measured, replaced and
//! removed as the trait says.

use strata_driver_api::Key;
use strata_graph_archive::export_tarsplit;
use strata_types::Digest;

use crate::fixture::{gate, key, Fixture, MakeDriver};
use crate::layer_tar::{LayerTar, E};

fn sample_layers(fx: &Fixture) -> (Key, Key) {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let long = format!("deep/{}/{}", "d".repeat(90), "n".repeat(120));
    let l1 = fx.layer(
        "l1",
        None,
        LayerTar::of([
            E::dir("deep"),
            E::dir(&format!("deep/{}", "d".repeat(90))),
            E::file(&long, "long name"),
            E::file("big", &big),
            E::file("empty", ""),
            E::file("x", "x")
                .xattr("user.a", "1")
                .owner(5, 6)
                .mode(0o4711),
            E::hardlink("x-link", "x"),
            E::symlink("sym", "x"),
            E::char_dev("null", 1, 3),
            E::fifo("fifo"),
            E::dir("o"),
            E::file("o/a", "a"),
            E::file("gone", "g"),
        ]),
    );
    let l2 = fx.layer(
        "l2",
        Some(&l1),
        LayerTar::of([
            E::whiteout("gone"),
            E::dir("o"),
            E::opaque("o"),
            E::file("o/b", "b"),
            E::file("big", "small now"),
        ]),
    );
    (l1, l2)
}

pub fn tarsplit_export_reproduces_the_tar(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(
        &*fx.driver,
        "tarsplit_export_reproduces_the_tar",
        "owners and device nodes (run as root)",
    ) {
        return;
    }
    let (l1, l2) = sample_layers(&fx);
    for k in [l1, l2] {
        let made = fx.made(&k);
        let mut out = Vec::new();
        let (digest, size) = export_tarsplit(&made.tarsplit[..], &fx.driver.diff_dir(&k), &mut out)
            .expect("export_tarsplit");
        assert_eq!(
            digest, made.applied.diff_id,
            "{k}: exported digest equals the diff ID"
        );
        assert_eq!(
            digest,
            Digest::of(&made.tar),
            "{k}: the diff ID is the original tar's digest"
        );
        assert_eq!(size, made.tar.len() as u64);
        assert!(
            out == made.tar,
            "{k}: the exported bytes are the original tar"
        );
    }
}

/// Needs no root: staging areas are plain directories.
pub fn cleanup_staging_removes_only_dead_areas(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    let d = &*fx.driver;
    let dead = d.stage(&[]).expect("stage");
    std::fs::write(dead.root.join("partial"), "half extracted").expect("write into staging");
    let dead_area = dead.area.clone();
    // Dropping the Staging releases its lock exactly as the death of its process would.
    drop(dead);
    let live = d.stage(&[]).expect("stage");
    std::fs::write(live.root.join("f"), "kept").expect("write into staging");

    let removed = d.cleanup_staging().expect("cleanup");
    assert_eq!(removed, 1, "one dead area");
    assert!(!dead_area.exists(), "the dead area is gone");
    assert!(
        live.area.exists(),
        "a live area (lock held, even by this process) is kept"
    );
    assert_eq!(d.cleanup_staging().expect("cleanup"), 0);

    let k = key("after-cleanup");
    d.commit(live, &k).expect("the live area still commits");
    assert_eq!(
        std::fs::read_to_string(d.diff_dir(&k).join("f")).expect("read"),
        "kept"
    );
    assert_eq!(
        d.cleanup_staging().expect("cleanup"),
        0,
        "commit leaves no debris"
    );
}

/// Needs no root: keys are created by writing into staging areas directly.
pub fn keys_are_created_listed_replaced_and_removed(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    let d = &*fx.driver;
    let k1 = key("k1");
    assert!(!d.exists(&k1));
    assert!(d.list().expect("list").is_empty());
    let s = d.stage(&[]).expect("stage");
    std::fs::write(s.root.join("f"), vec![1u8; 100_000]).expect("write");
    d.commit(s, &k1).expect("commit");
    assert!(d.exists(&k1));
    assert!(d.size(&k1).expect("size") >= 100_000);

    // Committing a key again replaces stale payload (crash debris) instead of failing.
    let s = d.stage(&[]).expect("stage");
    std::fs::write(s.root.join("g"), "second").expect("write");
    d.commit(s, &k1).expect("commit over stale payload");
    assert!(d.diff_dir(&k1).join("g").exists() && !d.diff_dir(&k1).join("f").exists());

    let c = key("c-1");
    d.create_writable(&c, std::slice::from_ref(&k1))
        .expect("create_writable");
    assert_eq!(d.list().expect("list"), [c.clone(), k1.clone()]);
    assert!(
        d.changes(&c, std::slice::from_ref(&k1))
            .expect("changes")
            .is_empty(),
        "a fresh container changed nothing"
    );
    d.remove(&c).expect("remove");
    d.remove(&k1).expect("remove");
    assert!(d.list().expect("list").is_empty());
    assert!(d.size(&k1).is_err(), "size of a missing key is an error");
    assert_eq!(
        d.cleanup_staging().expect("cleanup"),
        0,
        "removal leaves no debris"
    );

    // Retiring (the store's deferred deletion): gone at once, bytes left for the next cleanup.
    let k2 = key("k2");
    let s = d.stage(&[]).expect("stage");
    std::fs::write(s.root.join("f"), vec![2u8; 100_000]).expect("write");
    d.commit(s, &k2).expect("commit");
    d.retire(&k2).expect("retire");
    assert!(!d.exists(&k2), "a retired key does not exist");
    assert!(d.list().expect("list").is_empty(), "nor is it listed");
    d.retire(&k2).expect("retiring a missing key is fine");
    d.cleanup_staging()
        .expect("cleanup deletes what was retired");
    assert_eq!(
        d.cleanup_staging().expect("cleanup"),
        0,
        "after one cleanup nothing retired is left"
    );
}
