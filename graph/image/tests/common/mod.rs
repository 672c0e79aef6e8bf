//! Shared fixtures: tiny images built in memory, an in-memory source, and readers that
//! check what a transport holds.
#![allow(dead_code)]
// Test fixtures: a failure here is a broken test setup, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};
use std::path::Path;

use serde_json::json;
use strata_graph_image::compression::{compress_into, decompressed};
use strata_graph_image::manifest::{diff_ids, media_type as mt, parse_manifest};
use strata_graph_image::{
    copy_image, parse_transport, Compression, CopyOptions, Descriptor, ImageError, ImageSource,
    RawManifest, Result,
};
use strata_types::Digest;

/// An uncompressed tar holding `files`.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
    compress_into(c, &mut &data[..], Vec::new()).unwrap()
}

pub fn uncompress(data: &[u8]) -> Vec<u8> {
    let (_, mut r) = decompressed(data).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": Digest::of(bytes), "size": bytes.len()})
}

/// An in-memory image source (manifests and blobs by digest).
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    pub top: Vec<u8>,
    pub top_type: String,
    pub manifests: HashMap<Digest, Vec<u8>>,
    pub blobs: HashMap<Digest, Vec<u8>>,
}

/// One test image: its config and uncompressed layer tars.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub config: Vec<u8>,
    pub tars: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.tars.iter().map(|t| Digest::of(t)).collect()
    }
}

/// Builds an image for `arch` with two layers compressed with `c`, adds its blobs to `src`.
pub fn add_image(
    src: &mut MemSource,
    arch: &str,
    variant: Option<&str>,
    c: Compression,
) -> TestImage {
    let tars = vec![
        layer_tar(&[("etc/hello", format!("hello from {arch}\n").as_bytes())]),
        layer_tar(&[
            ("bin/tool", b"#!/bin/sh\necho tool\n"),
            ("etc/hello", b"v2\n"),
        ]),
    ];
    let mut config = json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"org.example": "yes"}, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| Digest::of(t)).collect::<Vec<_>>()},
        "history": [{"created_by": "test"}],
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    let config = serde_json::to_vec(&config).unwrap();
    let layer_type = match c {
        Compression::None => mt::OCI_LAYER_TAR,
        Compression::Gzip => mt::OCI_LAYER_TAR_GZIP,
        Compression::Zstd => mt::OCI_LAYER_TAR_ZSTD,
    };
    let mut layers = Vec::new();
    for t in &tars {
        let blob = compress(c, t);
        layers.push(desc(layer_type, &blob));
        src.blobs.insert(Digest::of(&blob), blob);
    }
    src.blobs.insert(Digest::of(&config), config.clone());
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": desc(mt::OCI_CONFIG, &config),
        "layers": layers,
        "annotations": {"org.example.kept": "yes"},
    }))
    .unwrap();
    src.manifests
        .insert(Digest::of(&manifest), manifest.clone());
    TestImage {
        config,
        tars,
        manifest,
    }
}

/// A single-image source with gzip layers.
pub fn single(c: Compression) -> (MemSource, TestImage) {
    let mut src = MemSource::default();
    let img = add_image(&mut src, host_arch(), None, c);
    src.top = img.manifest.clone();
    src.top_type = mt::OCI_MANIFEST.into();
    (src, img)
}

/// A two-platform index (host arch and one other).
pub fn index() -> (MemSource, TestImage, TestImage) {
    let mut src = MemSource::default();
    let host = add_image(&mut src, host_arch(), None, Compression::Gzip);
    let (other_arch, other_variant) = if host_arch() == "arm64" {
        ("amd64", None)
    } else {
        ("arm64", Some("v8"))
    };
    let other = add_image(&mut src, other_arch, other_variant, Compression::Gzip);
    let mut other_platform = json!({"os": "linux", "architecture": other_arch});
    if let Some(v) = other_variant {
        other_platform["variant"] = json!(v);
    }
    let mut e1 = desc(mt::OCI_MANIFEST, &host.manifest);
    e1["platform"] = json!({"os": "linux", "architecture": host_arch()});
    let mut e2 = desc(mt::OCI_MANIFEST, &other.manifest);
    e2["platform"] = other_platform;
    src.top = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": [e1, e2]
    }))
    .unwrap();
    src.top_type = mt::OCI_INDEX.into();
    (src, host, other)
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl ImageSource for MemSource {
    fn manifest(&self) -> Result<RawManifest> {
        Ok(RawManifest {
            bytes: self.top.clone(),
            media_type: self.top_type.clone(),
        })
    }
    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest> {
        let bytes = self
            .manifests
            .get(digest)
            .cloned()
            .ok_or(ImageError::NotFound {
                what: "manifest",
                name: digest.to_string(),
            })?;
        Ok(RawManifest {
            bytes,
            media_type: mt::OCI_MANIFEST.into(),
        })
    }
    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let b = self
            .blobs
            .get(&desc.digest)
            .cloned()
            .ok_or(ImageError::NotFound {
                what: "blob",
                name: desc.digest.to_string(),
            })?;
        Ok(Box::new(Cursor::new(b)))
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Opens `name` as a source.
pub fn open(name: &str) -> Box<dyn ImageSource> {
    parse_transport(name).unwrap().open_source().unwrap()
}

/// Copies `src` into the image named `dst`, as the copy plugin does (the destination's
/// required manifest format applies unless `opts` names one).
pub fn write(
    src: &dyn ImageSource,
    dst: &str,
    opts: &CopyOptions,
) -> Result<strata_graph_image::CopyReport> {
    let name = parse_transport(dst)?;
    let d = name.open_destination()?;
    let opts = CopyOptions {
        format: opts.format.or(name.required_format()),
        ..opts.clone()
    };
    copy_image(src, d.as_ref(), &opts)
}

/// What a user checks about a stored image.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub config: Vec<u8>,
    pub diff_ids: Vec<Digest>,
    pub blob_digests: Vec<Digest>,
    pub layer_types: Vec<String>,
}

/// Reads the (host-platform) image of `src` and checks every layer's content against the
/// config's diff IDs.
pub fn read_back(src: &dyn ImageSource) -> Seen {
    let mut m = src.manifest().unwrap();
    if m.bytes.windows(11).any(|w| w == b"\"manifests\"") {
        let idx = strata_graph_image::manifest::parse_index(&m.bytes).unwrap();
        let e = strata_graph_image::platform::select(
            &idx.manifests,
            &strata_graph_image::Platform::host(),
        )
        .unwrap();
        m = src.manifest_by_digest(&e.digest).unwrap();
    }
    let manifest = parse_manifest(&m.bytes).unwrap();
    let mut config = Vec::new();
    src.blob(&manifest.config)
        .unwrap()
        .read_to_end(&mut config)
        .unwrap();
    assert_eq!(Digest::of(&config), manifest.config.digest);
    let ids = diff_ids(&config).unwrap();
    for (l, id) in manifest.layers.iter().zip(&ids) {
        let mut blob = Vec::new();
        src.blob(l).unwrap().read_to_end(&mut blob).unwrap();
        assert_eq!(Digest::of(&blob), l.digest, "blob digest of {}", l.digest);
        assert_eq!(blob.len() as u64, l.size);
        assert_eq!(
            &Digest::of(&uncompress(&blob)),
            id,
            "diff ID of {}",
            l.digest
        );
    }
    Seen {
        config,
        diff_ids: ids,
        blob_digests: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        layer_types: manifest
            .layers
            .iter()
            .map(|l| l.media_type.clone())
            .collect(),
    }
}

/// The transport name for `kind` under `dir`.
pub fn name_in(dir: &Path, kind: &str, tag: &str) -> String {
    let p = dir.join(format!("{kind}-{tag}"));
    let p = p.display();
    match kind {
        "oci" => format!("oci:{p}:{tag}"),
        "oci-archive" => format!("oci-archive:{p}.tar:{tag}"),
        "docker-archive" => format!("docker-archive:{p}.tar:example/{tag}:v1"),
        "dir" => format!("dir:{p}"),
        _ => unreachable!(),
    }
}

pub const KINDS: [&str; 4] = ["oci", "oci-archive", "docker-archive", "dir"];

/// Writes bytes to a file (test setup).
pub fn put(path: &Path, bytes: &[u8]) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}
