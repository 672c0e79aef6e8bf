//! Locating the prebuilt fixture images (`tests/fixtures/make-images.sh`, run by
//! `cargo xtask fixtures`) through `$STRATA_FIXTURES`.
//!
//! A test that needs fixtures and does not find them fails with a message saying how to make
//! them; it never passes by skipping. This module does not build fixtures itself.

use std::path::PathBuf;

/// The fixtures directory. Panics (fails the test) when `$STRATA_FIXTURES` is unset or missing.
pub fn fixtures_dir() -> PathBuf {
    let Some(d) = std::env::var_os("STRATA_FIXTURES").filter(|d| !d.is_empty()) else {
        panic!(
            "STRATA_FIXTURES is not set: this test needs the fixture images; run `cargo xtask fixtures` \
             (or `bash tests/fixtures/make-images.sh DIR`) and set STRATA_FIXTURES=DIR"
        );
    };
    let d = PathBuf::from(d);
    assert!(
        d.is_dir(),
        "STRATA_FIXTURES={} does not exist: run `cargo xtask fixtures` to build the fixture images",
        d.display()
    );
    d
}

/// The OCI layout directory of fixture image `name`.
pub fn layout_dir(name: &str) -> PathBuf {
    let p = fixtures_dir().join("oci").join(name);
    assert!(
        p.join("index.json").is_file(),
        "fixture image {name} is missing ({} has no index.json): run `cargo xtask fixtures`",
        p.display()
    );
    p
}

/// `oci:DIR` of fixture image `name`, as `storage load` takes it.
pub fn oci(name: &str) -> String {
    format!("oci:{}", layout_dir(name).display())
}

/// The reference root filesystem of fixture image `name` (made by `umoci unpack`).
pub fn reference_rootfs(name: &str) -> PathBuf {
    let p = fixtures_dir().join("unpacked").join(name).join("rootfs");
    assert!(
        p.is_dir(),
        "reference rootfs {} is missing: run `cargo xtask fixtures`",
        p.display()
    );
    p
}

/// Reads a blob of fixture image `name` as JSON.
pub fn blob_json(name: &str, digest: &str) -> serde_json::Value {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    let p = layout_dir(name).join("blobs").join("sha256").join(hex);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// The manifest of fixture image `name` (its only entry in `index.json`), following an image
/// index to the manifest for `platform` (`os/arch`) when there is one.
pub fn manifest(name: &str, platform: Option<&str>) -> serde_json::Value {
    let index: serde_json::Value = {
        let p = layout_dir(name).join("index.json");
        serde_json::from_slice(&std::fs::read(&p).expect("read index.json"))
            .expect("index.json is JSON")
    };
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json lists manifests");
    assert_eq!(
        manifests.len(),
        1,
        "fixture {name} should hold exactly one image"
    );
    let mut v = blob_json(name, manifests[0]["digest"].as_str().expect("digest"));
    while let Some(list) = v.get("manifests").and_then(|m| m.as_array()) {
        let want =
            platform.unwrap_or_else(|| panic!("fixture {name} is multi-platform: give a platform"));
        let (os, arch) = want.split_once('/').expect("platform is os/arch");
        let desc = list
            .iter()
            .find(|d| d["platform"]["os"] == os && d["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("fixture {name} has no {want} manifest"));
        v = blob_json(name, desc["digest"].as_str().expect("digest"));
    }
    v
}

/// The config digest (= the image ID a store must report) of fixture image `name`.
pub fn config_digest(name: &str, platform: Option<&str>) -> String {
    manifest(name, platform)["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_owned()
}

/// The config of fixture image `name`.
pub fn config(name: &str, platform: Option<&str>) -> serde_json::Value {
    blob_json(name, &config_digest(name, platform))
}
