//! Interop with the real `skopeo` (offline, local transports only): what we write, skopeo
//! reads and copies; what skopeo writes, we read with the same config and diff IDs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use strata_graph_image::{Compression, CopyOptions};

const SKOPEO: &str = "/usr/bin/skopeo";

fn skopeo(args: &[&str]) -> String {
    let out = Command::new(SKOPEO)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SKOPEO} (is skopeo installed?): {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("skopeo prints UTF-8")
}

fn skopeo_copy(extra: &[&str], from: &str, to: &str) {
    let mut args = vec!["--insecure-policy", "copy", "-q"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[from, to]);
    skopeo(&args);
}

#[test]
fn skopeo_reads_and_copies_what_we_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    for kind in KINDS {
        let ours = name_in(tmp.path(), kind, "ours");
        write(&mem, &ours, &CopyOptions::default()).unwrap();
        assert!(std::fs::read_dir(tmp.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp")));

        let info: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", &ours])).unwrap();
        assert_eq!(info["Architecture"], host_arch(), "{kind}");
        assert_eq!(info["Os"], "linux", "{kind}");
        assert_eq!(info["Layers"].as_array().unwrap().len(), 2, "{kind}");
        assert_eq!(info["Labels"]["org.example"], "yes", "{kind}");
        let config = skopeo(&["inspect", "--config", "--raw", &ours]);
        assert_eq!(
            config.as_bytes(),
            img.config.as_slice(),
            "{kind}: config bytes"
        );

        for target in ["oci", "dir"] {
            let theirs = name_in(tmp.path(), target, &format!("skopeo-from-{kind}"));
            skopeo_copy(&[], &ours, &theirs);
            let seen = read_back(open(&theirs).as_ref());
            if kind != "docker-archive" {
                // skopeo re-serialises the config when it converts Docker v2s2 to OCI.
                assert_eq!(seen.config, img.config, "{kind} -> skopeo -> {target}");
            }
            assert_eq!(
                seen.diff_ids,
                img.diff_ids(),
                "{kind} -> skopeo -> {target}"
            );
        }
    }
}

#[test]
fn we_read_what_skopeo_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let origin = format!("oci:{}:origin", tmp.path().join("origin").display());
    write(&mem, &origin, &CopyOptions::default()).unwrap();
    for kind in KINDS {
        let theirs = name_in(tmp.path(), kind, "theirs");
        skopeo_copy(&[], &origin, &theirs);
        let seen = read_back(open(&theirs).as_ref());
        assert_eq!(seen.diff_ids, img.diff_ids(), "skopeo -> {kind}");
        if kind != "docker-archive" {
            // skopeo re-serialises the config when it converts OCI to Docker v2s2.
            assert_eq!(seen.config, img.config, "skopeo -> {kind}: config bytes");
        }
        // And we copy it on, to a transport skopeo then reads again.
        let again = name_in(tmp.path(), "oci-archive", &format!("ours-from-{kind}"));
        write(open(&theirs).as_ref(), &again, &CopyOptions::default()).unwrap();
        let info: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", &again])).unwrap();
        assert_eq!(info["Layers"].as_array().unwrap().len(), 2, "{kind}");
    }
}

#[test]
fn zstd_layers_interoperate() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, img) = single(Compression::Gzip);
    let ours = format!("oci:{}:z", tmp.path().join("ours").display());
    let opts = CopyOptions {
        dest_compression: Some(Compression::Zstd),
        ..CopyOptions::default()
    };
    write(&mem, &ours, &opts).unwrap();
    // skopeo reads our zstd layers (1.9 cannot decompress them into a docker-archive)...
    let copied = format!("dir:{}", tmp.path().join("d").display());
    skopeo_copy(&[], &ours, &copied);
    let seen = read_back(open(&copied).as_ref());
    assert_eq!(seen.diff_ids, img.diff_ids());
    assert!(
        seen.layer_types.iter().all(|t| t.ends_with("+zstd")),
        "{:?}",
        seen.layer_types
    );
    // ...and we read skopeo's own zstd output.
    let theirs = format!("oci:{}:z", tmp.path().join("theirs").display());
    skopeo_copy(
        &["--dest-compress-format", "zstd"],
        &origin_of(&mem, tmp.path()),
        &theirs,
    );
    let seen = read_back(open(&theirs).as_ref());
    assert_eq!(seen.diff_ids, img.diff_ids());
    assert!(
        seen.layer_types.iter().all(|t| t.ends_with("+zstd")),
        "{:?}",
        seen.layer_types
    );
}

fn origin_of(mem: &MemSource, dir: &Path) -> String {
    let origin = format!("oci:{}:origin", dir.join("origin").display());
    write(mem, &origin, &CopyOptions::default()).expect("write the origin image");
    origin
}

#[test]
fn indexes_interoperate_with_all() {
    let tmp = tempfile::tempdir().unwrap();
    let (mem, host, other) = index();
    let ours = format!("oci:{}:multi", tmp.path().join("ours").display());
    write(
        &mem,
        &ours,
        &CopyOptions {
            all: true,
            ..CopyOptions::default()
        },
    )
    .unwrap();
    let raw = skopeo(&["inspect", "--raw", &ours]);
    assert_eq!(raw.as_bytes(), mem.top.as_slice());

    let theirs = format!("oci:{}:multi", tmp.path().join("theirs").display());
    skopeo_copy(&["--all"], &ours, &theirs);
    let src = open(&theirs);
    let idx = strata_graph_image::manifest::parse_index(&src.manifest().unwrap().bytes).unwrap();
    assert_eq!(idx.manifests.len(), 2);
    for (entry, img) in idx.manifests.iter().zip([&host, &other]) {
        assert_eq!(
            src.manifest_by_digest(&entry.digest).unwrap().bytes,
            img.manifest
        );
    }
    assert_eq!(read_back(src.as_ref()).diff_ids, host.diff_ids());
}
