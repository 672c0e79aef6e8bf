//! `storage save` writes OCI layouts other tools accept and that load back to the same image:
//! skopeo (Debian's 1.9) inspects them and copies them (which verifies every blob digest), the
//! raw config is the original (so the image ID survives), `rootfs.diff_ids` are the original
//! ones, and every compression (gzip, zstd, none) reloads into a fresh store with the same ID.
//!
//! It does not compare compressed layer digests with the original's: the store keeps no
//! compressed copies, so re-compressed blobs legitimately differ.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use strata_tests::layout::sha256_digest;
use strata_tests::{fixtures, require_privileged, Strata};

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn skopeo_json(args: &[&str]) -> Value {
    serde_json::from_slice(&skopeo(args)).expect("skopeo prints JSON")
}

/// Saves `image` to `dir` with `compress` under reference `saved`; checks it with skopeo
/// and returns the `oci:DIR:REF` location.
fn save_and_inspect(s: &Strata, image: &str, id: &str, dir: &Path, compress: &str) -> String {
    let dest = format!("oci:{}:saved", dir.display());
    let digest = s
        .ok(["storage", "save", image, &dest, "--compress", compress])
        .trim()
        .to_owned();
    let inspect = skopeo_json(&["inspect", &dest]);
    assert_eq!(
        inspect["Digest"],
        digest.as_str(),
        "save prints the manifest digest"
    );
    let raw_manifest = skopeo(&["inspect", "--raw", &dest]);
    assert_eq!(sha256_digest(&raw_manifest), digest);
    let manifest: Value = serde_json::from_slice(&raw_manifest).expect("manifest JSON");
    let suffix = match compress {
        "gzip" => "tar+gzip",
        "zstd" => "tar+zstd",
        _ => "tar",
    };
    for l in manifest["layers"].as_array().expect("layers") {
        assert!(
            l["mediaType"].as_str().is_some_and(|m| m.ends_with(suffix)),
            "--compress {compress}: layer {l}"
        );
    }
    let raw_config = skopeo(&["inspect", "--raw", "--config", &dest]);
    assert_eq!(
        sha256_digest(&raw_config),
        id,
        "the saved config is the original (same image ID)"
    );
    let config = skopeo_json(&["inspect", "--config", &dest]);
    let original = fixtures::config(image, None);
    assert_eq!(
        config["rootfs"]["diff_ids"], original["rootfs"]["diff_ids"],
        "saved diff IDs"
    );
    dest
}

fn round_trip(test: &str, image: &str) {
    if !require_privileged(test, "root-owned extraction") {
        return;
    }
    let s = Strata::new("overlay");
    let id = s.load(&fixtures::oci(image), &["--name", image]);
    assert_eq!(id, fixtures::config_digest(image, None));
    for compress in ["gzip", "zstd", "none"] {
        let dir = s.scratch().join(format!("out-{compress}"));
        let dest = save_and_inspect(&s, image, &id, &dir, compress);
        if compress != "zstd" {
            // skopeo 1.9 copies zstd layers too, but checking digests once per format suffices.
            let copy = s.scratch().join(format!("copy-{compress}"));
            skopeo(&["copy", "--quiet", &dest, &format!("dir:{}", copy.display())]);
        }
        let fresh = Strata::new("overlay");
        assert_eq!(
            fresh.load(&dest, &[]),
            id,
            "--compress {compress}: reloading the saved layout gives the same image ID"
        );
        let diff_ids = |st: &Strata| {
            let mut v: Vec<String> = st
                .list("layers")
                .iter()
                .filter_map(|l| l["diff_id"].as_str().map(str::to_owned))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            diff_ids(&fresh),
            diff_ids(&s),
            "--compress {compress}: the reloaded layers"
        );
        let content = fresh.json(["storage", "fsck", "--content", "--format", "json"]);
        assert_eq!(content["problems"], serde_json::json!([]), "{content:#}");
    }
    s.assert_clean();
}

#[test]
fn busybox_round_trips() {
    round_trip("save::busybox_round_trips", "busybox");
}

#[test]
fn layers_round_trips() {
    round_trip("save::layers_round_trips", "layers");
}

#[test]
fn saving_twice_into_one_layout_keeps_both() {
    if !require_privileged(
        "save::saving_twice_into_one_layout_keeps_both",
        "root-owned extraction",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let a = s.load(&fixtures::oci("busybox"), &["--name", "busybox"]);
    let b = s.load(&fixtures::oci("layers"), &["--name", "layers"]);
    let dir = s.scratch().join("both");
    s.ok([
        "storage",
        "save",
        "busybox",
        &format!("oci:{}:a", dir.display()),
    ]);
    s.ok([
        "storage",
        "save",
        "layers",
        &format!("oci:{}:b", dir.display()),
    ]);
    let fresh = Strata::new("overlay");
    assert_eq!(fresh.load(&format!("oci:{}:a", dir.display()), &[]), a);
    assert_eq!(fresh.load(&format!("oci:{}:b", dir.display()), &[]), b);
    // Without a reference, a layout with two images is ambiguous.
    let (code, err) = fresh.fail(["storage", "load", &format!("oci:{}", dir.display())]);
    assert_eq!(code, 5, "{err}");
}
