//! An OCI image layout writer for hand-made images, well-formed or hostile.
//!
//! A [`LayoutBuilder`] takes layer bytes (an uncompressed tar from [`crate::TarBuilder`], or any
//! raw bytes), compresses them as asked, and writes `oci-layout`, the blobs, a config whose
//! `rootfs.diff_ids` are computed from the uncompressed bytes, a manifest and an `index.json`
//! with a reference annotation. Every digest can be overridden (to make mismatches), and the
//! written [`Layout`] can corrupt or truncate any blob afterwards.
//!
//! It deliberately does not validate anything: writing broken layouts is its purpose.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Compresses `bytes` in memory.
    pub fn compress(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => bytes.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(bytes).expect("writing to memory");
                e.finish().expect("writing to memory")
            }
            Compression::Zstd => zstd::encode_all(bytes, 3).expect("compressing in memory"),
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One layer of a hand-made image.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    /// The uncompressed bytes (normally a tar).
    pub content: Vec<u8>,
    pub compression: Compression,
    /// Bytes written as the blob instead of compressing `content` (e.g. a truncated stream).
    /// The diff ID is still computed from `content`.
    pub blob_override: Option<Vec<u8>>,
    /// Diff ID put in the config instead of the real one.
    pub diff_id_override: Option<String>,
    /// Digest put in the manifest's descriptor (and used as the blob's file name) instead of
    /// the real one: the blob then does not hash to its name.
    pub digest_override: Option<String>,
}

impl LayerSpec {
    /// An uncompressed layer.
    pub fn tar(content: Vec<u8>) -> LayerSpec {
        LayerSpec {
            content,
            compression: Compression::None,
            blob_override: None,
            diff_id_override: None,
            digest_override: None,
        }
    }

    pub fn compressed(mut self, c: Compression) -> LayerSpec {
        self.compression = c;
        self
    }

    pub fn blob(mut self, bytes: Vec<u8>) -> LayerSpec {
        self.blob_override = Some(bytes);
        self
    }

    pub fn diff_id(mut self, d: impl Into<String>) -> LayerSpec {
        self.diff_id_override = Some(d.into());
        self
    }

    pub fn digest(mut self, d: impl Into<String>) -> LayerSpec {
        self.digest_override = Some(d.into());
        self
    }
}

/// Builds an OCI layout directory with one image.
#[derive(Debug, Clone)]
pub struct LayoutBuilder {
    layers: Vec<LayerSpec>,
    reference: Option<String>,
    architecture: String,
    manifest_digest_override: Option<String>,
}

impl Default for LayoutBuilder {
    fn default() -> Self {
        LayoutBuilder::new()
    }
}

impl LayoutBuilder {
    /// An image for linux/<host arch> with reference `latest` and no layers yet.
    pub fn new() -> LayoutBuilder {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        LayoutBuilder {
            layers: Vec::new(),
            reference: Some("latest".into()),
            architecture: arch.into(),
            manifest_digest_override: None,
        }
    }

    pub fn layer(mut self, l: LayerSpec) -> LayoutBuilder {
        self.layers.push(l);
        self
    }

    /// The `org.opencontainers.image.ref.name` annotation (`None`: no annotation).
    pub fn reference(mut self, r: Option<&str>) -> LayoutBuilder {
        self.reference = r.map(str::to_owned);
        self
    }

    /// Makes `index.json` point at this digest instead of the real manifest's (the manifest
    /// blob is still written under this name, so the file exists but does not hash to it).
    pub fn manifest_digest(mut self, d: impl Into<String>) -> LayoutBuilder {
        self.manifest_digest_override = Some(d.into());
        self
    }

    /// Writes the layout into `dir` (created if needed).
    pub fn write(self, dir: &Path) -> std::io::Result<Layout> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs)?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let mut descs = Vec::new();
        let mut layer_digests = Vec::new();
        let mut diff_ids = Vec::new();
        for l in &self.layers {
            let blob = l
                .blob_override
                .clone()
                .unwrap_or_else(|| l.compression.compress(&l.content));
            let digest = l
                .digest_override
                .clone()
                .unwrap_or_else(|| sha256_digest(&blob));
            write_blob(&blobs, &digest, &blob)?;
            descs.push(json!({"mediaType": l.compression.media_type(), "digest": digest, "size": blob.len()}));
            layer_digests.push(digest);
            diff_ids.push(
                l.diff_id_override
                    .clone()
                    .unwrap_or_else(|| sha256_digest(&l.content)),
            );
        }
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": self.architecture,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": self.layers.iter().map(|_| json!({"created_by": "strata-tests layout builder"})).collect::<Vec<Value>>(),
        }))?;
        let config_digest = sha256_digest(&config);
        write_blob(&blobs, &config_digest, &config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": descs,
        }))?;
        let manifest_digest = self
            .manifest_digest_override
            .clone()
            .unwrap_or_else(|| sha256_digest(&manifest));
        write_blob(&blobs, &manifest_digest, &manifest)?;
        let mut desc = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
        });
        if let Some(r) = &self.reference {
            desc["annotations"] = json!({"org.opencontainers.image.ref.name": r});
        }
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            reference: self.reference,
            manifest: manifest_digest,
            config: config_digest,
            layers: layer_digests,
            diff_ids,
        })
    }
}

/// A small well-formed two-layer image (gzip, then zstd) for tests that need *an* image:
/// layer 1 has `/etc/hostname` ("sample\n"), `/usr/bin/tool` (0755) and `/usr/bin/alias ->
/// tool`; layer 2 adds `/etc/motd` and deletes `/usr/bin/alias`.
pub fn sample_image(dir: &Path) -> std::io::Result<Layout> {
    use crate::TarBuilder;
    let mut base = TarBuilder::new();
    base.dir("etc")
        .file("etc/hostname", b"sample\n")
        .dir("usr")
        .dir("usr/bin");
    base.file_mode("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .symlink("usr/bin/alias", "tool");
    let mut top = TarBuilder::new();
    top.file("etc/motd", b"welcome\n").whiteout("usr/bin/alias");
    LayoutBuilder::new()
        .layer(LayerSpec::tar(base.finish()).compressed(Compression::Gzip))
        .layer(LayerSpec::tar(top.finish()).compressed(Compression::Zstd))
        .write(dir)
}

fn write_blob(blobs: &Path, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    std::fs::write(blobs.join(hex), bytes)
}

/// A written layout.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub reference: Option<String>,
    /// Digest `index.json` names for the manifest.
    pub manifest: String,
    /// The config digest (the image ID a store should report).
    pub config: String,
    /// Layer blob digests as the manifest names them.
    pub layers: Vec<String>,
    /// Diff IDs as the config lists them.
    pub diff_ids: Vec<String>,
}

impl Layout {
    /// `oci:DIR[:REF]`, as the CLI takes it.
    pub fn oci_ref(&self) -> String {
        match &self.reference {
            Some(r) => format!("oci:{}:{r}", self.dir.display()),
            None => format!("oci:{}", self.dir.display()),
        }
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        self.dir.join("blobs").join("sha256").join(hex)
    }

    /// Flips one byte in the middle of a blob (its name no longer matches its content).
    pub fn corrupt_blob(&self, digest: &str) -> std::io::Result<()> {
        let p = self.blob_path(digest);
        let mut bytes = std::fs::read(&p)?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(p, bytes)
    }

    /// Cuts a blob to `len` bytes.
    pub fn truncate_blob(&self, digest: &str, len: u64) -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.blob_path(digest))?
            .set_len(len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::TarBuilder;

    #[test]
    fn writes_a_consistent_layout() {
        let d = tempfile::tempdir().unwrap();
        let tar = TarBuilder::new().file("a", b"x").finish();
        let l = LayoutBuilder::new()
            .layer(LayerSpec::tar(tar.clone()).compressed(Compression::Gzip))
            .layer(LayerSpec::tar(tar.clone()).compressed(Compression::Zstd))
            .write(d.path())
            .unwrap();
        assert_eq!(l.diff_ids, vec![sha256_digest(&tar); 2]);
        for b in l.layers.iter().chain([&l.config, &l.manifest]) {
            assert_eq!(&sha256_digest(&std::fs::read(l.blob_path(b)).unwrap()), b);
        }
        let index: Value =
            serde_json::from_slice(&std::fs::read(d.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], l.manifest.as_str());
        let config: Value =
            serde_json::from_slice(&std::fs::read(l.blob_path(&l.config)).unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][1], l.diff_ids[1].as_str());
        let gz = std::fs::read(l.blob_path(&l.layers[0])).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(l.oci_ref(), format!("oci:{}:latest", d.path().display()));
    }

    #[test]
    fn corrupt_and_truncate_change_the_blob() {
        let d = tempfile::tempdir().unwrap();
        let tar = TarBuilder::new().file("a", b"x").finish();
        let l = LayoutBuilder::new()
            .layer(LayerSpec::tar(tar))
            .write(d.path())
            .unwrap();
        l.corrupt_blob(&l.layers[0]).unwrap();
        assert_ne!(
            sha256_digest(&std::fs::read(l.blob_path(&l.layers[0])).unwrap()),
            l.layers[0]
        );
        l.truncate_blob(&l.layers[0], 10).unwrap();
        assert_eq!(
            std::fs::metadata(l.blob_path(&l.layers[0])).unwrap().len(),
            10
        );
    }
}
