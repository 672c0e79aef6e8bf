//! Shared helpers for the registry integration tests: small generated images, transport
//! options pointing at a test registry, push and pull through the transport traits.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Read;
use std::time::Duration;

use strata_graph_image::{Descriptor, ImageDestination, ImageSource, RawManifest};
use strata_graph_registry::{AuthStore, ClientOptions, DockerOptions, Reference};
use strata_tests::registry::Registry;
use strata_types::Digest;

pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image made of generated blobs.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub config: Vec<u8>,
    pub config_desc: Descriptor,
    pub layers: Vec<(Descriptor, Vec<u8>)>,
    pub manifest: RawManifest,
}

impl TestImage {
    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest.bytes)
    }

    /// Every blob: config first, then layers.
    pub fn blobs(&self) -> Vec<(Descriptor, Vec<u8>)> {
        let mut v = vec![(self.config_desc.clone(), self.config.clone())];
        v.extend(self.layers.iter().cloned());
        v
    }
}

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: Digest::of(data),
        size: data.len() as u64,
        annotations: None,
        platform: None,
    }
}

/// An OCI image with layers of the given sizes; `seed` makes its blobs unique.
pub fn image(seed: u64, layer_sizes: &[usize]) -> TestImage {
    let layers: Vec<(Descriptor, Vec<u8>)> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let data = bytes(seed * 1000 + i as u64, n);
            (desc(LAYER_TYPE, &data), data)
        })
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(d, _)| d.digest.to_string()).collect::<Vec<_>>()},
        "config": {"Labels": {"seed": seed.to_string()}},
    }))
    .expect("config JSON");
    let config_desc = desc(CONFIG_TYPE, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_desc,
        "layers": layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        "annotations": {"org.example.note": "aaaaaaaa"},
    }))
    .expect("manifest JSON");
    TestImage {
        config,
        config_desc,
        layers,
        manifest: RawManifest {
            bytes: manifest,
            media_type: MANIFEST_TYPE.to_owned(),
        },
    }
}

/// Options for a test registry: its certs.d root, no auth files, no verification for a
/// plain-HTTP registry, quick retries.
pub fn options(reg: &Registry) -> DockerOptions {
    DockerOptions {
        client: ClientOptions {
            tls_verify: if reg.ca_cert().is_some() {
                None
            } else {
                Some(false)
            },
            certs_root: reg.certs_root(),
            auth: AuthStore::default(),
            retry_delay: Duration::from_millis(20),
            ..ClientOptions::default()
        },
        ..DockerOptions::default()
    }
}

pub fn reference(reg: &Registry, name: &str) -> Reference {
    Reference::parse(&format!("{}/{name}", reg.host())).expect("valid reference")
}

/// Pushes the image as the copy engine would: blobs the registry lacks, then the manifest.
/// Returns how many blobs were sent.
pub fn push(dest: &dyn ImageDestination, img: &TestImage) -> strata_graph_image::Result<usize> {
    let mut sent = 0;
    for (d, data) in img.blobs() {
        if dest.has_blob(&d)? {
            continue;
        }
        dest.put_blob(&d, &mut data.as_slice())?;
        sent += 1;
    }
    dest.put_manifest(&img.manifest, None)?;
    dest.commit()?;
    Ok(sent)
}

/// Pulls the image back and checks every byte against `img`.
pub fn pull_and_compare(src: &dyn ImageSource, img: &TestImage) {
    let m = src.manifest().expect("manifest");
    assert_eq!(m.bytes, img.manifest.bytes, "manifest bytes round-trip");
    assert_eq!(m.media_type, MANIFEST_TYPE);
    for (d, data) in img.blobs() {
        let mut got = Vec::new();
        src.blob(&d)
            .expect("open blob")
            .read_to_end(&mut got)
            .expect("read blob");
        assert_eq!(got.len(), data.len(), "size of {}", d.digest);
        assert!(got == data, "content of {} differs", d.digest);
    }
}
