//! Multi-platform images: `--all` copies, platform selection and its errors.

mod common;

use common::*;
use strata_graph_image::manifest::{media_type as mt, parse_index};
use strata_graph_image::{copy_image, parse_transport, CopyOptions, ImageError, Platform};
use strata_types::{Digest, ErrorKind, HasKind};

#[test]
fn all_copies_every_instance_and_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, host, other) = index();
    for kind in ["oci", "oci-archive", "dir"] {
        let name = name_in(tmp.path(), kind, "all");
        let opts = CopyOptions {
            all: true,
            ..CopyOptions::default()
        };
        let report = write(&mem, &name, &opts).unwrap();
        assert_eq!(report.manifest_digest, Digest::of(&mem.top), "{kind}");
        let src = open(&name);
        let top = src.manifest().unwrap();
        assert_eq!(top.bytes, mem.top, "{kind}: index bytes kept");
        let idx = parse_index(&top.bytes).unwrap();
        assert_eq!(idx.manifests.len(), 2);
        for (entry, img) in idx.manifests.iter().zip([&host, &other]) {
            let m = src.manifest_by_digest(&entry.digest).unwrap();
            assert_eq!(m.bytes, img.manifest, "{kind}");
        }
        // The host instance reads back whole.
        assert_eq!(read_back(src.as_ref()).diff_ids, host.diff_ids(), "{kind}");
    }
}

#[test]
fn without_all_the_platform_is_picked() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, host, other) = index();
    let name = format!("oci:{}:host", tmp.path().join("l").display());
    write(&mem, &name, &CopyOptions::default()).unwrap();
    assert_eq!(open(&name).manifest().unwrap().bytes, host.manifest);

    let other_platform: serde_json::Value = serde_json::from_slice(&other.config).unwrap();
    let want = Platform::new(
        "linux",
        other_platform["architecture"].as_str().unwrap(),
        other_platform["variant"].as_str(),
    );
    let name = format!("oci:{}:other", tmp.path().join("l").display());
    let opts = CopyOptions {
        platform: Some(want),
        ..CopyOptions::default()
    };
    write(&mem, &name, &opts).unwrap();
    let got = open(&name).manifest().unwrap();
    assert_eq!(got.bytes, other.manifest);
    assert_eq!(got.media_type, mt::OCI_MANIFEST);
}

#[test]
fn missing_platform_lists_the_available_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, _, _) = index();
    let dst = parse_transport(&format!("oci:{}:x", tmp.path().join("l").display()))
        .unwrap()
        .open_destination()
        .unwrap();
    let opts = CopyOptions {
        platform: Some(Platform::parse("linux/s390x").unwrap()),
        ..CopyOptions::default()
    };
    let err = copy_image(&mem, dst.as_ref(), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(msg.contains("linux/s390x"), "{msg}");
    assert!(msg.contains(&format!("linux/{}", host_arch())), "{msg}");
    assert!(msg.contains("available"), "{msg}");
    assert!(!tmp.path().join("l/index.json").exists());
}

#[test]
fn all_into_docker_archive_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, _, _) = index();
    let file = tmp.path().join("a.tar");
    let opts = CopyOptions {
        all: true,
        ..CopyOptions::default()
    };
    let err = write(
        &mem,
        &format!("docker-archive:{}:a:b", file.display()),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, ImageError::Unsupported(_)), "{err}");
    assert!(!file.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "staging removed"
    );
}
