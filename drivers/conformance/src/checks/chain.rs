//! A chain deeper than the legacy overlay option page holds (about 140 short paths; the store's
//! paths are long): every layer adds a file, some delete an earlier one, and the top view and a
//! container on top show exactly the union.

use std::collections::BTreeSet;

use strata_driver_api::Key;

use crate::fixture::{exists, gate, names, read, write, Fixture, MakeDriver};
use crate::layer_tar::{LayerTar, E};

/// Layers in the chain.
pub const DEPTH: usize = 130;

pub fn deep_chains_mount_the_union(make: MakeDriver<'_>) {
    let fx = Fixture::new(make);
    if !gate(
        &*fx.driver,
        "deep_chains_mount_the_union",
        "mounts of a 130-layer chain (run as root)",
    ) {
        return;
    }
    let mut expected = BTreeSet::new();
    let mut top: Option<Key> = None;
    for i in 0..DEPTH {
        let mut entries = Vec::new();
        if i == 0 {
            entries.push(E::dir("f"));
        }
        entries.push(E::file(&format!("f/{i:03}"), i.to_string()));
        entries.push(E::file("shared", i.to_string()));
        expected.insert(format!("{i:03}"));
        if i % 10 == 9 {
            entries.push(E::whiteout(&format!("f/{:03}", i - 5)));
            expected.remove(&format!("{:03}", i - 5));
        }
        top = Some(fx.layer(
            &format!("layer-{i:03}"),
            top.as_ref(),
            LayerTar::of(entries),
        ));
    }
    let top = top.expect("at least one layer");
    assert_eq!(fx.parents(&top).len(), DEPTH - 1);
    let expected: Vec<String> = expected.into_iter().collect();

    let v = fx.view(&top, false);
    assert_eq!(names(&v.join("f")), expected, "the union of {DEPTH} layers");
    assert_eq!(
        read(&v.join("shared")),
        (DEPTH - 1).to_string(),
        "the topmost layer wins"
    );
    assert_eq!(read(&v.join("f/000")), "0", "the bottom layer is visible");

    let c = fx.container("c", Some(&top));
    let cv = fx.view(&c, true);
    assert_eq!(names(&cv.join("f")), expected);
    write(&cv.join("f/000"), "changed in the container");
    write(&cv.join("new"), "n");
    assert_eq!(read(&cv.join("f/000")), "changed in the container");
    assert_eq!(read(&v.join("f/000")), "0", "the layers are untouched");
    assert!(!exists(&v.join("new")));
}
