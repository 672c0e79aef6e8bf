//! A corrupt source never produces a visible image.

mod common;

use common::*;
use strata_graph_image::{Compression, CopyOptions};
use strata_types::{ErrorKind, HasKind};

fn corrupt_layer(mem: &mut common::MemSource) {
    let manifest =
        strata_graph_image::manifest::parse_manifest(&mem.top).expect("fixture manifest parses");
    let blob = mem
        .blobs
        .get_mut(&manifest.layers[1].digest)
        .expect("fixture has the layer");
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
}

#[test]
fn corrupt_blob_fails_and_destination_is_unchanged() {
    for jobs in [1, 4] {
        let tmp = tempfile::tempdir().unwrap();
        // Different blobs from `bad` (zstd), so nothing is skipped as already present.
        let (good, _) = single(Compression::Zstd);
        // An existing layout with another image must keep its index.json as it was.
        let layout = tmp.path().join("layout");
        write(
            &good,
            &format!("oci:{}:keep", layout.display()),
            &CopyOptions::default(),
        )
        .unwrap();
        let index_before = std::fs::read(layout.join("index.json")).unwrap();

        let (mut bad, _) = single(Compression::Gzip);
        corrupt_layer(&mut bad);
        let opts = CopyOptions {
            jobs,
            ..CopyOptions::default()
        };
        for (name, path) in [
            (format!("oci:{}:new", layout.display()), None),
            (
                format!("oci-archive:{}", tmp.path().join("o.tar").display()),
                Some("o.tar"),
            ),
            (
                format!("docker-archive:{}:a:b", tmp.path().join("d.tar").display()),
                Some("d.tar"),
            ),
            (
                format!("dir:{}", tmp.path().join("dir").display()),
                Some("dir"),
            ),
        ] {
            let err = write(&bad, &name, &opts).expect_err("should fail");
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{name}: {err}");
            assert!(err.to_string().contains("digest mismatch"), "{name}: {err}");
            if let Some(p) = path {
                assert!(!tmp.path().join(p).exists(), "{name} was created");
            }
        }
        assert_eq!(
            std::fs::read(layout.join("index.json")).unwrap(),
            index_before
        );
        // Only the layout and nothing left over from staging.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("layout")]);
    }
}

#[test]
fn corrupt_blob_fails_recompression_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut bad, _) = single(Compression::Gzip);
    corrupt_layer(&mut bad);
    let opts = CopyOptions {
        dest_compression: Some(Compression::Zstd),
        ..CopyOptions::default()
    };
    let err = write(
        &bad,
        &format!("oci:{}", tmp.path().join("l").display()),
        &opts,
    )
    .expect_err("should fail");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(!tmp.path().join("l/index.json").exists());
}

#[test]
fn wrong_diff_id_is_caught_when_recompressing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut mem, img) = single(Compression::Gzip);
    // Replace a layer blob by another valid gzip and fix the manifest: only the diff ID
    // check in the config can notice.
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let other = compress(Compression::Gzip, &layer_tar(&[("x", b"other")]));
    manifest["layers"][0]["digest"] = serde_json::json!(strata_types::Digest::of(&other));
    manifest["layers"][0]["size"] = serde_json::json!(other.len());
    mem.blobs.insert(strata_types::Digest::of(&other), other);
    mem.top = serde_json::to_vec(&manifest).unwrap();
    let opts = CopyOptions {
        dest_compression: Some(Compression::Zstd),
        ..CopyOptions::default()
    };
    let err = write(
        &mem,
        &format!("oci:{}", tmp.path().join("l").display()),
        &opts,
    )
    .expect_err("should fail");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("diff ID"), "{err}");
}

#[test]
fn missing_source_reports_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        format!("oci:{}", tmp.path().join("nope").display()),
        format!("oci-archive:{}", tmp.path().join("nope.tar").display()),
        format!("docker-archive:{}", tmp.path().join("nope.tar").display()),
        format!("dir:{}", tmp.path().join("nope").display()),
    ] {
        let err = strata_graph_image::parse_transport(&name)
            .unwrap()
            .open_source()
            .err()
            .expect("should fail");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{name}: {err}");
    }
}
