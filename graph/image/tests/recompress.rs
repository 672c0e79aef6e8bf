//! Changing layer compression keeps the diff IDs and the config bytes.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use strata_graph_image::manifest::media_type as mt;
use strata_graph_image::{
    copy_image, parse_transport, Compression, CopyOptions, Flavor, ProgressEvent,
};

#[test]
fn gzip_to_zstd_and_back_keeps_diff_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let zstd_name = format!("oci:{}:z", tmp.path().join("l").display());
    let opts = CopyOptions {
        dest_compression: Some(Compression::Zstd),
        temp_dir: Some(tmp.path().to_owned()),
        jobs: 2,
        ..CopyOptions::default()
    };
    let report = write(&mem, &zstd_name, &opts).unwrap();
    let zstd = read_back(open(&zstd_name).as_ref());
    assert_eq!(zstd.config, img.config);
    assert_eq!(zstd.diff_ids, img.diff_ids());
    assert!(
        zstd.layer_types.iter().all(|t| t == mt::OCI_LAYER_TAR_ZSTD),
        "{:?}",
        zstd.layer_types
    );
    assert_ne!(
        report.manifest_digest,
        strata_types::Digest::of(&img.manifest)
    );
    // The manifest keeps its annotations after the rewrite.
    let top: serde_json::Value =
        serde_json::from_slice(&open(&zstd_name).manifest().unwrap().bytes).unwrap();
    assert_eq!(top["annotations"]["org.example.kept"], "yes");

    let back = format!("dir:{}", tmp.path().join("d").display());
    let opts = CopyOptions {
        dest_compression: Some(Compression::Gzip),
        ..CopyOptions::default()
    };
    write(open(&zstd_name).as_ref(), &back, &opts).unwrap();
    let gz = read_back(open(&back).as_ref());
    assert_eq!(gz.config, img.config);
    assert_eq!(gz.diff_ids, img.diff_ids());
    assert!(gz.layer_types.iter().all(|t| t == mt::OCI_LAYER_TAR_GZIP));
    // Only the temp files we made are gone: the staging dir is the one thing left.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn docker_archive_source_to_zstd_becomes_oci() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let archive = format!("docker-archive:{}", tmp.path().join("a.tar").display());
    write(&mem, &archive, &CopyOptions::default()).unwrap();
    let src = open(&archive);
    assert_eq!(src.manifest().unwrap().media_type, mt::DOCKER_MANIFEST);

    let dst = format!("oci:{}", tmp.path().join("l").display());
    let opts = CopyOptions {
        dest_compression: Some(Compression::Zstd),
        ..CopyOptions::default()
    };
    write(src.as_ref(), &dst, &opts).unwrap();
    let out = open(&dst).manifest().unwrap();
    assert_eq!(out.media_type, mt::OCI_MANIFEST);
    let seen = read_back(open(&dst).as_ref());
    assert_eq!(seen.diff_ids, img.diff_ids());
    assert_eq!(seen.config, img.config);

    let forced = CopyOptions {
        dest_compression: Some(Compression::Zstd),
        format: Some(Flavor::Docker),
        ..CopyOptions::default()
    };
    let err = write(
        src.as_ref(),
        &format!("oci:{}:x", tmp.path().join("l").display()),
        &forced,
    )
    .unwrap_err();
    assert!(err.to_string().contains("zstd"), "{err}");
}

#[test]
fn format_conversion_to_oci_rewrites_media_types_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let archive = format!("docker-archive:{}", tmp.path().join("a.tar").display());
    write(&mem, &archive, &CopyOptions::default()).unwrap();
    let dst = format!("oci:{}", tmp.path().join("l").display());
    // Without the format, an OCI layout refuses a Docker manifest (skopeo would not see it).
    let raw_dst = parse_transport(&dst).unwrap().open_destination().unwrap();
    let err = copy_image(
        open(&archive).as_ref(),
        raw_dst.as_ref(),
        &CopyOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("OCI manifests only"), "{err}");
    assert!(!tmp.path().join("l/index.json").exists());
    let opts = CopyOptions {
        format: Some(Flavor::Oci),
        ..CopyOptions::default()
    };
    write(open(&archive).as_ref(), &dst, &opts).unwrap();
    let seen = read_back(open(&dst).as_ref());
    assert_eq!(seen.blob_digests, img.diff_ids());
    assert!(seen.layer_types.iter().all(|t| t == mt::OCI_LAYER_TAR));
    let m: serde_json::Value =
        serde_json::from_slice(&open(&dst).manifest().unwrap().bytes).unwrap();
    assert_eq!(m["mediaType"], mt::OCI_MANIFEST);
    assert_eq!(m["config"]["mediaType"], mt::OCI_CONFIG);
}

#[test]
fn progress_reports_every_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let opts = CopyOptions {
        progress: Some(Arc::new(move |e| sink.lock().unwrap().push(e))),
        ..CopyOptions::default()
    };
    let dst = format!("oci:{}", tmp.path().join("l").display());
    let report = write(&mem, &dst, &opts).unwrap();
    let events = events.lock().unwrap();
    let done = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::BlobDone { .. }))
        .count();
    let bytes: u64 = events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::BlobProgress { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .sum();
    assert_eq!(done, 3);
    let layer_bytes: u64 =
        mem.blobs.values().map(|b| b.len() as u64).sum::<u64>() - img.config.len() as u64;
    assert_eq!(bytes, layer_bytes);
    assert_eq!(report.bytes, layer_bytes + img.config.len() as u64);
}
