//! OCI image layout import (`storage load oci:DIR[:REF]`) and export (`storage save`).
//!
//! Import accepts OCI and Docker v2 schema 2 manifests, image indexes / manifest lists (the
//! host platform, or an explicit one, is picked), and gzip, zstd or uncompressed layers. Every
//! manifest, config and layer blob is verified against its digest while it streams; layers go
//! straight from the layout's blob files through the layer pipeline (no temporary copies).
//!
//! Export regenerates each layer's exact uncompressed tar from its payload and tar-split record
//! (so diff IDs are preserved bit for bit), compresses it (gzip by default, as podman and
//! skopeo push), and writes an OCI v1 manifest plus the image's original config bytes (so the
//! image ID is preserved). What it does not preserve: the original compressed blob digests,
//! since the store does not keep compressed copies.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use strata_graph_archive::{compressor, export_tarsplit, Compression};
use strata_types::{Digest, Hasher, ImageId, LayerId};

use crate::blobs::random_hex;
use crate::error::{Result, StoreError};
use crate::import::LayerInput;
use crate::layers::Layer;
use crate::store::Store;

const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Manifests, indexes and configs are small; refuse absurd ones instead of reading them whole.
const MAX_JSON_BLOB: u64 = 16 << 20;

/// A platform selector for image indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI (Go) spelling.
    pub fn host() -> Platform {
        let arch = strata_types::arch::go_arch();
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => Err(StoreError::Invalid(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ))),
        }
    }
}

/// Options for [`Store::load_oci`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The manifest to pick by its `org.opencontainers.image.ref.name` annotation.
    pub reference: Option<String>,
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Names to give the image.
    pub names: Vec<String>,
}

/// What a load did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Loaded {
    pub image: ImageId,
    pub layers: usize,
    pub extracted: usize,
}

/// Options for [`Store::save_oci`].
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub reference: Option<String>,
    pub compression: Compression,
}

struct Layout<'a> {
    dir: &'a Path,
}

impl Layout<'_> {
    fn blob_path(&self, d: &Digest) -> std::path::PathBuf {
        self.dir.join("blobs").join(d.algorithm()).join(d.hex())
    }

    /// Reads a small JSON blob and verifies its digest.
    fn json_blob(&self, d: &Digest) -> Result<(Vec<u8>, Value)> {
        let p = self.blob_path(d);
        let bytes = read_limited(&p)?;
        let got = Digest::of(&bytes);
        if got != *d {
            return Err(StoreError::Invalid(format!(
                "blob {} in {} is corrupt: it hashes to {got}",
                d,
                self.dir.display()
            )));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Invalid(format!(
                "blob {d} in {}: invalid JSON: {e}",
                self.dir.display()
            ))
        })?;
        Ok((bytes, v))
    }
}

fn read_limited(p: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(p).map_err(StoreError::io("read", p))?;
    if meta.len() > MAX_JSON_BLOB {
        return Err(StoreError::Invalid(format!(
            "{} is {} bytes, too large for a manifest or config",
            p.display(),
            meta.len()
        )));
    }
    std::fs::read(p).map_err(StoreError::io("read", p))
}

fn descriptor_digest(desc: &Value, what: &str) -> Result<Digest> {
    let s = desc
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| StoreError::Invalid(format!("{what} descriptor has no digest")))?;
    Digest::parse(s).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

fn is_index(media_type: Option<&str>, v: &Value) -> bool {
    matches!(media_type, Some(MT_OCI_INDEX | MT_DOCKER_LIST))
        || (media_type.is_none() && v.get("manifests").is_some())
}

fn platform_matches(desc: &Value, want: &Platform) -> bool {
    let p = match desc.get("platform") {
        Some(p) => p,
        None => return false,
    };
    let s = |k: &str| p.get(k).and_then(|v| v.as_str());
    s("os") == Some(want.os.as_str())
        && s("architecture") == Some(want.architecture.as_str())
        && (want.variant.is_none() || s("variant") == want.variant.as_deref())
}

impl Store {
    /// Loads an image from an OCI layout directory.
    pub fn load_oci(&self, dir: &Path, opts: &LoadOptions) -> Result<Loaded> {
        let layout = Layout { dir };
        let index_path = dir.join("index.json");
        let index: Value = serde_json::from_slice(&read_limited(&index_path)?).map_err(|e| {
            StoreError::Invalid(format!("{}: invalid JSON: {e}", index_path.display()))
        })?;
        let manifests = index
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let refname = |d: &Value| {
            d.get("annotations")
                .and_then(|a| a.get(REF_ANNOTATION))
                .and_then(|r| r.as_str())
                .map(str::to_owned)
        };
        let mut desc = match &opts.reference {
            Some(r) => manifests
                .iter()
                .find(|d| refname(d).as_deref() == Some(r.as_str()))
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<String> = manifests.iter().filter_map(refname).collect();
                    StoreError::not_found(
                        "reference",
                        format!("{r} in {} (it has: {})", dir.display(), known.join(", ")),
                    )
                })?,
            None => match manifests.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(StoreError::Invalid(format!(
                        "{} lists no images",
                        index_path.display()
                    )))
                }
                many => {
                    let known: Vec<String> = many.iter().filter_map(refname).collect();
                    return Err(StoreError::Invalid(format!(
                        "{} holds {} images; say which with oci:{}:REF (references: {})",
                        dir.display(),
                        many.len(),
                        dir.display(),
                        known.join(", ")
                    )));
                }
            },
        };
        // Follow indexes / manifest lists down to one manifest.
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let (manifest_bytes, manifest) = loop {
            let d = descriptor_digest(&desc, "manifest")?;
            let (bytes, v) = layout.json_blob(&d)?;
            let mt = v
                .get("mediaType")
                .and_then(|m| m.as_str())
                .or_else(|| desc.get("mediaType").and_then(|m| m.as_str()));
            if is_index(mt, &v) {
                let list = v
                    .get("manifests")
                    .and_then(|m| m.as_array())
                    .cloned()
                    .unwrap_or_default();
                desc = list
                    .iter()
                    .find(|m| platform_matches(m, &platform))
                    .cloned()
                    .ok_or_else(|| {
                        let have: Vec<String> = list
                            .iter()
                            .filter_map(|m| m.get("platform"))
                            .map(|p| {
                                format!(
                                    "{}/{}",
                                    p["os"].as_str().unwrap_or("?"),
                                    p["architecture"].as_str().unwrap_or("?")
                                )
                            })
                            .collect();
                        StoreError::not_found(
                            "platform",
                            format!(
                                "{}/{} in {} (it has: {})",
                                platform.os,
                                platform.architecture,
                                dir.display(),
                                have.join(", ")
                            ),
                        )
                    })?;
                continue;
            }
            match mt {
                Some(MT_OCI_MANIFEST | MT_DOCKER_MANIFEST) | None => break (bytes, v),
                Some(other) => {
                    return Err(StoreError::Unsupported(format!(
                        "manifest media type {other}"
                    )))
                }
            }
        };
        let config_desc = manifest
            .get("config")
            .ok_or_else(|| StoreError::Invalid("manifest has no config".into()))?;
        let config_digest = descriptor_digest(config_desc, "config")?;
        let (config_bytes, _) = layout.json_blob(&config_digest)?;
        let layer_descs = manifest
            .get("layers")
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_default();
        let mut layers = Vec::with_capacity(layer_descs.len());
        for desc in &layer_descs {
            let blob = descriptor_digest(desc, "layer")?;
            let path = layout.blob_path(&blob);
            layers.push((
                Some(blob),
                Box::new(move || {
                    let f = std::fs::File::open(&path)
                        .map_err(StoreError::io("open layer blob", &path))?;
                    Ok(Box::new(f) as Box<dyn std::io::Read + Send>)
                }) as crate::import::Opener<'_>,
            ));
        }
        self.import_image(&manifest_bytes, &config_bytes, layers, &opts.names)
    }

    /// Imports one image from its manifest, config and layer streams (bottom first, each with
    /// its blob digest if known): the layers stream through the pipeline (extracted in
    /// parallel where the driver allows, verified against the blob digests and the config's
    /// diff IDs), then the image is recorded with `names`. Every transport's pull ends here.
    pub fn import_image<'a>(
        &self,
        manifest: &[u8],
        config: &[u8],
        layers: Vec<(Option<Digest>, crate::import::Opener<'a>)>,
        names: &[String],
    ) -> Result<Loaded> {
        let config_digest = Digest::of(config);
        let config_v: Value = serde_json::from_slice(config).map_err(|e| {
            StoreError::Invalid(format!("config {config_digest}: invalid JSON: {e}"))
        })?;
        let diff_ids: Vec<Digest> = config_v
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| d.as_array())
            .ok_or_else(|| {
                StoreError::Invalid(format!("config {config_digest} has no rootfs.diff_ids"))
            })?
            .iter()
            .map(|d| {
                d.as_str()
                    .ok_or_else(|| StoreError::Invalid("non-string diff ID".into()))
                    .and_then(|s| Digest::parse(s).map_err(|e| StoreError::Invalid(e.to_string())))
            })
            .collect::<Result<_>>()?;
        if layers.len() != diff_ids.len() {
            return Err(StoreError::Invalid(format!(
                "manifest lists {} layers but config {config_digest} lists {} diff IDs",
                layers.len(),
                diff_ids.len()
            )));
        }
        let total = layers.len();
        let inputs = layers
            .into_iter()
            .zip(diff_ids)
            .map(|((blob_digest, open), diff_id)| LayerInput {
                diff_id,
                blob_digest,
                open,
            })
            .collect();
        let lease = self.put_layers(None, inputs)?;
        let image = self.record_image(config, Some(manifest), lease.top().cloned(), names)?;
        Ok(Loaded {
            image,
            layers: total,
            extracted: lease.extracted,
        })
    }

    /// Saves an image into an OCI layout directory (created if missing; other images in it
    /// are kept). Returns the manifest digest.
    pub fn save_oci(&self, image: &str, dir: &Path, opts: &SaveOptions) -> Result<Digest> {
        let img = self.image(image)?;
        let layers = self.image_layers(&img)?;
        let blobs_dir = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs_dir).map_err(StoreError::io("create", &blobs_dir))?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(StoreError::io("write", dir.join("oci-layout")))?;
        // Layers in parallel, bounded by the number of CPUs.
        let width = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut descs: Vec<Option<Result<Value>>> = (0..layers.len()).map(|_| None).collect();
        for (chunk_no, chunk) in layers.chunks(width).enumerate() {
            std::thread::scope(|s| {
                let hs: Vec<_> = chunk
                    .iter()
                    .map(|l| s.spawn(|| self.export_layer_blob(l, &blobs_dir, opts.compression)))
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    descs[chunk_no * width + i] = Some(h.join().unwrap_or_else(|_| {
                        Err(StoreError::Precondition(
                            "layer export thread panicked".into(),
                        ))
                    }));
                }
            });
        }
        let layer_descs: Vec<Value> = descs
            .into_iter()
            .map(|d| d.expect("every layer exported"))
            .collect::<Result<_>>()?;
        let config = self.blobs.read(img.id.digest())?;
        write_blob(&blobs_dir, img.id.digest(), &config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": img.id.digest().as_str(), "size": config.len()},
            "layers": layer_descs,
        }))
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mdigest = Digest::of(&manifest);
        write_blob(&blobs_dir, &mdigest, &manifest)?;
        update_index(
            dir,
            &mdigest,
            manifest.len() as u64,
            opts.reference.as_deref(),
        )?;
        Ok(mdigest)
    }

    /// Writes a layer's uncompressed tar to `out`, bit for bit the one its diff ID names (an
    /// error if the payload no longer reproduces it). Returns the diff ID and size.
    pub fn export_layer(&self, layer: &LayerId, out: impl Write) -> Result<(Digest, u64)> {
        let l = self
            .meta
            .read(|tx| tx.layer(layer))?
            .ok_or_else(|| StoreError::not_found("layer", layer.to_string()))?;
        let ts_path = self.paths.tarsplit(&l.id);
        let ts =
            std::fs::File::open(&ts_path).map_err(StoreError::io("open tar-split", &ts_path))?;
        let source = self.driver.diff_dir(&crate::paths::layer_key(&l.id));
        let (diff, size) =
            export_tarsplit(ts, &source, out).map_err(|source| StoreError::Archive {
                layer: l.id.to_string(),
                source,
            })?;
        if diff != l.diff_id {
            return Err(StoreError::Corrupt(format!(
                "layer {} no longer reproduces its diff ID (got {diff}); run `strata storage fsck --content`",
                l.id
            )));
        }
        Ok((diff, size))
    }

    fn export_layer_blob(&self, l: &Layer, blobs_dir: &Path, c: Compression) -> Result<Value> {
        let ts_path = self.paths.tarsplit(&l.id);
        let ts =
            std::fs::File::open(&ts_path).map_err(StoreError::io("open tar-split", &ts_path))?;
        let tmp = blobs_dir.join(format!(".tmp-{}", random_hex(8)));
        let file = std::fs::File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
        let result = (|| {
            let hashing = HashingWriter {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: Hasher::new(),
                size: 0,
            };
            let mut comp = compressor(hashing, c).map_err(|source| StoreError::Archive {
                layer: l.id.to_string(),
                source,
            })?;
            let source = self.driver.diff_dir(&crate::paths::layer_key(&l.id));
            let (diff, _) =
                export_tarsplit(ts, &source, &mut comp).map_err(|source| StoreError::Archive {
                    layer: l.id.to_string(),
                    source,
                })?;
            if diff != l.diff_id {
                return Err(StoreError::Corrupt(format!(
                    "layer {} no longer reproduces its diff ID (got {diff}); run `strata storage fsck --content`",
                    l.id
                )));
            }
            let mut hashing = comp.finish().map_err(StoreError::io("compress", &tmp))?;
            hashing
                .inner
                .flush()
                .map_err(StoreError::io("write", &tmp))?;
            let digest = hashing.hasher.finish();
            std::fs::rename(&tmp, blobs_dir.join(digest.hex()))
                .map_err(StoreError::io("rename", &tmp))?;
            let media_type = match c {
                Compression::None => "application/vnd.oci.image.layer.v1.tar",
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            Ok(json!({"mediaType": media_type, "digest": digest.as_str(), "size": hashing.size}))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_blob(blobs_dir: &Path, d: &Digest, bytes: &[u8]) -> Result<()> {
    let dest = blobs_dir.join(d.hex());
    if dest.exists() {
        return Ok(());
    }
    let tmp = blobs_dir.join(format!(".tmp-{}", random_hex(8)));
    std::fs::write(&tmp, bytes).map_err(StoreError::io("write", &tmp))?;
    std::fs::rename(&tmp, &dest).map_err(StoreError::io("rename", &dest))
}

/// Adds the manifest to `index.json`, replacing an entry with the same reference.
fn update_index(dir: &Path, manifest: &Digest, size: u64, reference: Option<&str>) -> Result<()> {
    let path = dir.join("index.json");
    let mut index: Value = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({"schemaVersion": 2, "manifests": []})
        }
        Err(e) => return Err(StoreError::io("read", &path)(e)),
    };
    let mut desc = json!({"mediaType": MT_OCI_MANIFEST, "digest": manifest.as_str(), "size": size});
    if let Some(r) = reference {
        desc["annotations"] = json!({ REF_ANNOTATION: r });
    }
    let list = index
        .as_object_mut()
        .ok_or_else(|| StoreError::Invalid(format!("{} is not a JSON object", path.display())))?
        .entry("manifests")
        .or_insert(json!([]));
    if let Some(arr) = list.as_array_mut() {
        arr.retain(|d| match reference {
            Some(r) => {
                d.get("annotations")
                    .and_then(|a| a.get(REF_ANNOTATION))
                    .and_then(|v| v.as_str())
                    != Some(r)
            }
            None => d.get("digest").and_then(|v| v.as_str()) != Some(manifest.as_str()),
        });
        arr.push(desc);
    }
    index["schemaVersion"] = json!(2);
    index["mediaType"] = json!(MT_OCI_INDEX);
    let tmp = dir.join(format!(".index.json.{}", random_hex(6)));
    std::fs::write(
        &tmp,
        serde_json::to_vec(&index).map_err(|e| StoreError::Invalid(e.to_string()))?,
    )
    .map_err(StoreError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(StoreError::io("rename", &path))
}

/// An OCI manifest describing `layers` uncompressed (used for images made by `commit`, whose
/// layers have no compressed blob of their own).
pub(crate) fn manifest_json(
    config: &Digest,
    config_size: u64,
    layers: &[Layer],
) -> Result<Vec<u8>> {
    let ls: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.diff_id.as_str(), "size": l.size}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": config.as_str(), "size": config_size},
        "layers": ls,
    }))
    .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// The current time as RFC 3339 UTC (`2026-11-29T03:38:00Z`), for config `created` fields.
pub(crate) fn rfc3339_now() -> String {
    strata_types::time::rfc3339(crate::meta::now())
}
