//! How REF selects and names images in each transport, and `inspect`.

mod common;

use common::*;
use strata_graph_image::{inspect, parse_transport, Compression, CopyOptions, ImageError};
use strata_types::Digest;

#[test]
fn oci_ref_replaces_its_own_entry_and_keeps_others() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("l");
    let (a, _) = single(Compression::Gzip);
    let (b, b_img) = single(Compression::Zstd);
    write(
        &a,
        &format!("oci:{}:one", layout.display()),
        &CopyOptions::default(),
    )
    .unwrap();
    write(
        &a,
        &format!("oci:{}:two", layout.display()),
        &CopyOptions::default(),
    )
    .unwrap();
    write(
        &b,
        &format!("oci:{}:one", layout.display()),
        &CopyOptions::default(),
    )
    .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["two", "one"]);
    let one = open(&format!("oci:{}:one", layout.display()));
    assert_eq!(one.manifest().unwrap().bytes, b_img.manifest);

    // Without REF a source needs exactly one image.
    let err = parse_transport(&format!("oci:{}", layout.display()))
        .unwrap()
        .open_source()
        .err()
        .expect("should fail");
    assert!(
        err.to_string().contains("one, two") || err.to_string().contains("two, one"),
        "{err}"
    );
    let err = parse_transport(&format!("oci:{}:three", layout.display()))
        .unwrap()
        .open_source()
        .err()
        .expect("should fail");
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
}

#[test]
fn docker_archive_selects_by_tag_or_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let file = tmp.path().join("a.tar");
    write(
        &mem,
        &format!(
            "docker-archive:{}:docker.io/library/busybox",
            file.display()
        ),
        &CopyOptions::default(),
    )
    .unwrap();
    for r in [
        "",
        ":busybox:latest",
        ":busybox",
        ":@0",
        ":docker.io/library/busybox:latest",
    ] {
        let src = open(&format!("docker-archive:{}{r}", file.display()));
        assert_eq!(read_back(src.as_ref()).diff_ids, img.diff_ids(), "{r}");
    }
    for r in [":busybox:1", ":@1"] {
        let err = parse_transport(&format!("docker-archive:{}{r}", file.display()))
            .unwrap()
            .open_source()
            .err()
            .expect("should fail");
        assert!(matches!(err, ImageError::NotFound { .. }), "{r}: {err}");
    }
    let err = parse_transport(&format!(
        "docker-archive:{}:@0",
        tmp.path().join("b.tar").display()
    ))
    .unwrap()
    .open_destination()
    .err()
    .expect("should fail");
    assert!(err.to_string().contains("name:tag"), "{err}");
}

#[test]
fn inspect_reports_config_and_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, host, _) = index();
    let name = format!("oci:{}:i", tmp.path().join("l").display());
    write(
        &mem,
        &name,
        &CopyOptions {
            all: true,
            ..CopyOptions::default()
        },
    )
    .unwrap();
    let info = inspect(open(&name).as_ref(), None).unwrap();
    assert_eq!(info.digest, Digest::of(&mem.top));
    assert_eq!(info.architecture, host_arch());
    assert_eq!(info.os, "linux");
    assert_eq!(info.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(info.env, Some(vec!["PATH=/usr/bin:/bin".to_owned()]));
    assert_eq!(info.labels.unwrap()["org.example"], "yes");
    assert_eq!(info.layers.len(), 2);
    let m = strata_graph_image::manifest::parse_manifest(&host.manifest).unwrap();
    assert_eq!(
        info.layers,
        m.layers
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>()
    );
    let json = serde_json::to_value(inspect(open(&name).as_ref(), None).unwrap()).unwrap();
    for key in [
        "Digest",
        "RepoTags",
        "Created",
        "DockerVersion",
        "Labels",
        "Architecture",
        "Os",
        "Layers",
        "LayersData",
        "Env",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        json["LayersData"][0]["MIMEType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
}
