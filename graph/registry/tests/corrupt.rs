//! Corruption inside the registry's storage is caught on pull: the blob stream's final read
//! and a manifest fetched by digest fail with a digest mismatch of kind Corrupt.

mod common;

use std::io::Read;

use common::{image, options, push, reference};
use strata_graph_registry::{DockerDestination, DockerSource, RegistryError};
use strata_tests::registry::{Registry, RegistryOptions};
use strata_types::{ErrorKind, HasKind};

#[test]
fn corrupt_blob_and_manifest_are_detected() {
    let reg = Registry::start(RegistryOptions::default());
    let opts = options(&reg);
    let img = image(30, &[50_000]);
    let r = reference(&reg, "bad/app:1");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");

    // Flip bytes of the layer in the registry's storage (same size).
    let (layer, _) = &img.layers[0];
    let path = reg.blob_data(layer.digest.hex());
    let mut data = std::fs::read(&path).expect("read stored blob");
    for b in &mut data[1000..1010] {
        *b = !*b;
    }
    std::fs::write(&path, &data).expect("corrupt stored blob");

    let src = DockerSource::open(&r, &opts).expect("src");
    let mut out = Vec::new();
    // The client's blob stream verifies (the transport's ImageSource::blob leaves that to
    // the copy engine, which hashes every blob it moves).
    let e = src
        .client()
        .blob(
            src.pulled_from().repository(),
            &layer.digest,
            Some(layer.size),
        )
        .expect("open blob")
        .read_to_end(&mut out)
        .expect_err("corrupt blob must fail");
    let inner = RegistryError::from_io(&e).expect("a registry error inside the io::Error");
    assert_eq!(inner.kind(), ErrorKind::Corrupt, "{inner}");
    let msg = inner.to_string();
    assert!(msg.contains(&layer.digest.to_string()), "{msg}");
    assert!(msg.contains("digest mismatch"), "{msg}");

    // A manifest fetched by digest is checked too (the JSON stays valid, its digest not).
    let mpath = reg.blob_data(img.manifest_digest().hex());
    let m = std::fs::read_to_string(&mpath).expect("read stored manifest");
    std::fs::write(&mpath, m.replace("aaaaaaaa", "bbbbbbbb")).expect("corrupt manifest");
    let e = DockerSource::open(&r.with_digest(img.manifest_digest()), &opts)
        .expect_err("corrupt manifest must fail");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        e.to_string().contains(&img.manifest_digest().to_string()),
        "{e}"
    );
}
