//! Every local transport reads what every other one writes: config bytes and diff IDs are
//! preserved, and blob digests too where compression does not change.

mod common;

use common::*;
use strata_graph_image::{Compression, CopyOptions};

#[test]
fn every_pair_of_transports_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let gzip_digests = read_back(&mem).blob_digests;
    for a in KINDS {
        let a_name = name_in(tmp.path(), a, "first");
        write(&mem, &a_name, &CopyOptions::default()).unwrap();
        let from_a = open(&a_name);
        let seen_a = read_back(from_a.as_ref());
        assert_eq!(seen_a.config, img.config, "{a}");
        assert_eq!(seen_a.diff_ids, img.diff_ids(), "{a}");
        for b in KINDS {
            let b_name = name_in(tmp.path(), b, &format!("from-{a}"));
            write(from_a.as_ref(), &b_name, &CopyOptions::default())
                .unwrap_or_else(|e| panic!("{a} -> {b}: {e}"));
            let seen_b = read_back(open(&b_name).as_ref());
            assert_eq!(seen_b.config, img.config, "{a} -> {b}");
            assert_eq!(seen_b.diff_ids, img.diff_ids(), "{a} -> {b}");
            if b == "docker-archive" || a == "docker-archive" {
                // docker-archive holds uncompressed layers: the blob is the diff ID.
                assert_eq!(seen_b.blob_digests, img.diff_ids(), "{a} -> {b}");
            } else {
                assert_eq!(seen_b.blob_digests, gzip_digests, "{a} -> {b}");
            }
        }
    }
}

#[test]
fn second_copy_skips_blobs_the_destination_has() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, _) = single(Compression::Gzip);
    let dst = format!("oci:{}:one", tmp.path().join("l").display());
    let first = write(&mem, &dst, &CopyOptions::default()).unwrap();
    assert_eq!((first.blobs_copied, first.blobs_skipped), (3, 0));
    let again = format!("oci:{}:two", tmp.path().join("l").display());
    let second = write(&mem, &again, &CopyOptions::default()).unwrap();
    assert_eq!((second.blobs_copied, second.blobs_skipped), (0, 3));
    assert_eq!(first.manifest_digest, second.manifest_digest);
    // Both names resolve.
    assert_eq!(
        read_back(open(&dst).as_ref()),
        read_back(open(&again).as_ref())
    );
}

#[test]
fn unchanged_manifest_keeps_its_digest_and_unknown_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let dst = format!("dir:{}", tmp.path().join("d").display());
    let report = write(&mem, &dst, &CopyOptions::default()).unwrap();
    assert_eq!(
        report.manifest_digest,
        strata_types::Digest::of(&img.manifest)
    );
    let stored = std::fs::read(tmp.path().join("d/manifest.json")).unwrap();
    assert_eq!(stored, img.manifest);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("d/version")).unwrap(),
        "Directory Transport Version: 1.1\n"
    );
}

#[test]
fn docker_archive_converted_layers_keep_other_manifest_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let archive = tmp.path().join("a.tar");
    write(
        &mem,
        &format!("docker-archive:{}:x:1", archive.display()),
        &CopyOptions::default(),
    )
    .unwrap();
    let idx = strata_graph_image::tar_index::TarIndex::open(&archive).unwrap();
    let entries: serde_json::Value =
        serde_json::from_slice(&idx.read_small("manifest.json").unwrap()).unwrap();
    assert_eq!(entries[0]["RepoTags"][0], "x:1");
    let config_name = entries[0]["Config"].as_str().unwrap();
    assert_eq!(idx.read_small(config_name).unwrap(), img.config);
    for (name, tar) in entries[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&img.tars)
    {
        assert_eq!(&idx.read_small(name.as_str().unwrap()).unwrap(), tar);
    }
}
