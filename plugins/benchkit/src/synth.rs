//! Deterministic synthetic images (`strata bench images`): an OCI layout whose layers follow a
//! spec (layer count, files per layer, a size distribution, a duplicate ratio, whiteouts), so
//! results are comparable across machines without a registry. The same spec and seed give the
//! same files, the same diff IDs and, with the same gzip implementation, the same digests.
//!
//! ```text
//! layers=3,files=100,dirs=10,size=1k..64k,dup=0.1,whiteouts=0.05,seed=7
//! ```
//!
//! - Layer `i` puts `files` regular files `dNNN/f<i>_<j>` into `dirs` directories (file `j` in
//!   directory `j % dirs`), each directory entry first; sizes are log-uniform between the
//!   bounds (uniform when the lower bound is 0).
//! - `dup`: the share of files whose bytes (and size) repeat an earlier file's, as real images
//!   repeat licences, locales and libraries.
//! - `whiteouts`: in every layer but the first, `whiteouts * files` files of lower layers are
//!   deleted with `.wh.` entries.
//! - Every byte is drawn from SplitMix64 streams derived from the seed (`rng.rs`); headers are
//!   ustar with owner 0:0, fixed modes and a fixed mtime. Layers are written streaming: a
//!   file's bytes are generated as the tar is written, hashed twice (diff ID, then blob
//!   digest) on their way to disk, never held whole in memory.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_graph_image::digesting::HashingWriter;
use strata_types::Digest;

use crate::rng::SplitMix64;

/// The modification time of every entry (2023-11-14T22:13:20Z).
const MTIME: u64 = 1_700_000_000;
/// Bounds that keep a mistyped spec from filling a disk by accident.
const MAX_LAYERS: u32 = 1000;
const MAX_FILES: u32 = 1_000_000;
const MAX_DIRS: u32 = 100_000;
const MAX_FILE_SIZE: u64 = 64 << 30;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid image spec {spec:?}: {why}")]
    Spec { spec: String, why: String },
    #[error("{0} exists and is not an empty directory: give a new one")]
    NotEmpty(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> SynthError + 'p {
    move |source| SynthError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A synthetic image's shape. See the module docs for the syntax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub layers: u32,
    /// Files per layer.
    pub files: u32,
    /// Directories each layer's files are spread over.
    pub dirs: u32,
    pub min_size: u64,
    pub max_size: u64,
    /// Share of files repeating an earlier file's bytes (0 to 1).
    pub dup: f64,
    /// Share of `files` each upper layer deletes from the layers below (0 to 1).
    pub whiteouts: f64,
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            layers: 3,
            files: 100,
            dirs: 10,
            min_size: 1 << 10,
            max_size: 64 << 10,
            dup: 0.0,
            whiteouts: 0.0,
            seed: 1,
        }
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

impl FromStr for Spec {
    type Err = SynthError;

    fn from_str(text: &str) -> Result<Spec, SynthError> {
        let bad = |why: String| SynthError::Spec {
            spec: text.to_owned(),
            why,
        };
        let mut spec = Spec::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
            let int = |max: u32| -> Result<u32, SynthError> {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|v| (1..=max).contains(v))
                    .ok_or_else(|| bad(format!("{key} must be a whole number from 1 to {max}")))
            };
            let share = || -> Result<f64, SynthError> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| bad(format!("{key} must be a number from 0 to 1")))
            };
            match key {
                "layers" => spec.layers = int(MAX_LAYERS)?,
                "files" => spec.files = int(MAX_FILES)?,
                "dirs" => spec.dirs = int(MAX_DIRS)?,
                "size" => {
                    let (lo, hi) = value.split_once("..").unwrap_or((value, value));
                    let (Some(lo), Some(hi)) = (parse_size(lo), parse_size(hi)) else {
                        return Err(bad(format!(
                            "size {value:?} is not SIZE or MIN..MAX (bytes, or with k, m, g)"
                        )));
                    };
                    if lo > hi || hi > MAX_FILE_SIZE {
                        return Err(bad(format!(
                            "size bounds must be ordered and at most {MAX_FILE_SIZE} bytes"
                        )));
                    }
                    (spec.min_size, spec.max_size) = (lo, hi);
                }
                "dup" => spec.dup = share()?,
                "whiteouts" => spec.whiteouts = share()?,
                "seed" => {
                    spec.seed = value
                        .parse()
                        .map_err(|_| bad("seed must be a whole number".into()))?
                }
                other => {
                    return Err(bad(format!(
                        "unknown key {other:?} (layers, files, dirs, size, dup, whiteouts, seed)"
                    )))
                }
            }
        }
        Ok(spec)
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layers={},files={},dirs={},size={}..{},dup={},whiteouts={},seed={}",
            self.layers,
            self.files,
            self.dirs,
            self.min_size,
            self.max_size,
            self.dup,
            self.whiteouts,
            self.seed
        )
    }
}

/// One generated layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The compressed blob.
    pub digest: Digest,
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: Digest,
    pub tar_size: u64,
    pub files: u32,
    pub whiteouts: u32,
    /// Bytes of file content.
    pub content_bytes: u64,
}

/// A generated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub spec: Spec,
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<LayerInfo>,
}

/// The bytes of one file, generated as they are read.
struct Content {
    rng: SplitMix64,
    left: u64,
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        self.rng.fill(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Labels that keep the derived streams apart.
const SIZE_STREAM: u64 = 0x5153;
const BYTES_STREAM: u64 = 0x4259;
const CHOICE_STREAM: u64 = 0x4348;

impl Spec {
    fn size_of(&self, content: u64) -> u64 {
        if self.min_size == self.max_size {
            return self.min_size;
        }
        let u = SplitMix64::derive(self.seed ^ SIZE_STREAM, content).next_f64();
        let size = if self.min_size == 0 {
            u * (self.max_size + 1) as f64
        } else {
            let (lo, hi) = ((self.min_size as f64).ln(), (self.max_size as f64).ln());
            (lo + u * (hi - lo)).exp()
        };
        (size as u64).clamp(self.min_size, self.max_size)
    }
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Writes the image `spec` describes into `dir` (made if missing; it must be empty) as an OCI
/// layout whose index names it `reference`.
pub fn generate(spec: &Spec, dir: &Path, reference: &str) -> Result<Image, SynthError> {
    generate_with(spec, None, dir, reference)
}

/// [`generate`], with `extra`'s layer on top when given.
pub fn generate_with(
    spec: &Spec,
    extra: Option<&Extra>,
    dir: &Path,
    reference: &str,
) -> Result<Image, SynthError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(io("read", dir))?
            .next()
            .is_none();
        if !empty {
            return Err(SynthError::NotEmpty(dir.to_owned()));
        }
    }
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io("create", &blobs))?;
    let mut layers = Vec::new();
    // Content IDs of every file written so far (what duplicates copy), and the paths still
    // visible (what whiteouts delete).
    let mut contents: Vec<u64> = Vec::new();
    let mut live: Vec<String> = Vec::new();
    for i in 0..spec.layers {
        layers.push(write_layer(spec, i, &blobs, &mut contents, &mut live)?);
    }
    if let Some(extra) = extra {
        layers.push(write_extra_layer(spec, extra, &blobs)?);
    }
    let mut config = json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "history": layers.iter().enumerate().map(|(i, _)| json!({
            "created": "2023-11-14T22:13:20Z",
            "created_by": format!("strata bench images {spec} (layer {i})"),
        })).collect::<Vec<_>>(),
    });
    if extra.is_some_and(|e| e.busybox.is_some()) {
        config["config"]["Cmd"] = json!(["/bin/sh"]);
    }
    // A JSON value always serializes (compact, keys sorted): no error to handle.
    let config_bytes = config.to_string().into_bytes();
    let config_digest = put_blob(&blobs, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": CONFIG_TYPE,
            "digest": config_digest.as_str(),
            "size": config_bytes.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": LAYER_TYPE,
            "digest": l.digest.as_str(),
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = manifest.to_string().into_bytes();
    let manifest_digest = put_blob(&blobs, &manifest_bytes)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_TYPE,
            "digest": manifest_digest.as_str(),
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_file(&dir.join("index.json"), index.to_string().as_bytes())?;
    Ok(Image {
        spec: spec.clone(),
        manifest: manifest_digest,
        config: config_digest,
        layers,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(io("write", path))
}

fn put_blob(blobs: &Path, bytes: &[u8]) -> Result<Digest, SynthError> {
    let d = Digest::of(bytes);
    write_file(&blobs.join(d.hex()), bytes)?;
    Ok(d)
}

/// A ustar header with everything but the path (`append_data` sets that and the checksum).
pub(crate) fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

fn write_layer(
    spec: &Spec,
    i: u32,
    blobs: &Path,
    contents: &mut Vec<u64>,
    live: &mut Vec<String>,
) -> Result<LayerInfo, SynthError> {
    let LayerSink { mut tar, tmp } = LayerSink::create(blobs, &format!("layer-{i}"))?;
    let mut choose = SplitMix64::derive(spec.seed ^ CHOICE_STREAM, u64::from(i));

    // Whiteouts first in the layer's own order: pick among files of lower layers.
    let mut deleted: Vec<String> = Vec::new();
    if i > 0 {
        let count = ((spec.whiteouts * f64::from(spec.files)).round() as usize).min(live.len());
        for _ in 0..count {
            let k = choose.below(live.len() as u64) as usize;
            deleted.push(live.swap_remove(k));
        }
        deleted.sort();
    }
    let dirs = spec.dirs.min(spec.files);
    let dir_name = |k: u32| format!("d{k:03}");
    let entries = (|| -> std::io::Result<(u32, u64)> {
        let mut written_dirs: Vec<String> = (0..dirs).map(dir_name).collect();
        for d in &deleted {
            if let Some((parent, _)) = d.split_once('/') {
                written_dirs.push(parent.to_owned());
            }
        }
        written_dirs.sort();
        written_dirs.dedup();
        for d in &written_dirs {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, format!("{d}/"), std::io::empty())?;
        }
        for d in &deleted {
            let (parent, name) = d.split_once('/').unwrap_or(("", d));
            let wh = format!("{parent}/.wh.{name}");
            let mut h = header(tar::EntryType::Regular, 0o644, 0);
            tar.append_data(&mut h, wh, std::io::empty())?;
        }
        let mut bytes = 0;
        for j in 0..spec.files {
            let content = if !contents.is_empty() && choose.next_f64() < spec.dup {
                contents[choose.below(contents.len() as u64) as usize]
            } else {
                ((u64::from(i) << 32) | u64::from(j)) + 1
            };
            contents.push(content);
            let size = spec.size_of(content);
            let path = format!("{}/f{i}_{j}", dir_name(j % dirs));
            let mut h = header(tar::EntryType::Regular, 0o644, size);
            let data = Content {
                rng: SplitMix64::derive(spec.seed ^ BYTES_STREAM, content),
                left: size,
            };
            tar.append_data(&mut h, &path, data)?;
            live.push(path);
            bytes += size;
        }
        Ok((spec.files, bytes))
    })();
    let (files, content_bytes) = entries.map_err(io("write", &tmp))?;
    let mut info = LayerSink { tar, tmp }.finish(blobs)?;
    info.files = files;
    info.whiteouts = deleted.len() as u32;
    info.content_bytes = content_bytes;
    Ok(info)
}

/// A layer being written: a tar stream, hashed (diff ID), gzipped, hashed again (digest), into
/// a temporary file among the blobs that [`LayerSink::finish`] renames to its digest.
struct LayerSink {
    tar: tar::Builder<HashingWriter<GzEncoder<HashingWriter<BufWriter<File>>>>>,
    tmp: PathBuf,
}

impl LayerSink {
    fn create(blobs: &Path, name: &str) -> Result<LayerSink, SynthError> {
        let tmp = blobs.join(format!(".{name}-{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(io("create", &tmp))?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let gz = GzEncoder::new(compressed, flate2::Compression::default());
        Ok(LayerSink {
            tar: tar::Builder::new(HashingWriter::new(gz)),
            tmp,
        })
    }

    /// Ends the tar and stores the blob; the counts of the returned info are zero.
    fn finish(self, blobs: &Path) -> Result<LayerInfo, SynthError> {
        let tmp = self.tmp;
        let raw = self.tar.into_inner().map_err(io("write", &tmp))?;
        let (diff_id, tar_size, gz) = raw.finish();
        let compressed = gz.finish().map_err(io("compress", &tmp))?;
        let (digest, size, mut out) = compressed.finish();
        out.flush().map_err(io("write", &tmp))?;
        drop(out);
        let dest = blobs.join(digest.hex());
        std::fs::rename(&tmp, &dest).map_err(io("rename", &dest))?;
        Ok(LayerInfo {
            digest,
            size,
            diff_id,
            tar_size,
            files: 0,
            whiteouts: 0,
            content_bytes: 0,
        })
    }
}

/// What `strata bench run` adds on top of a synthetic image, in one more layer: a file to
/// copy up and read (`bench/large`, `large_file` bytes drawn from the seed), and, given a
/// static busybox from the host, `/bin/busybox` with `/bin/sh`, `/bin/true` and `/bin/sleep`
/// linked to it so that containers of the image can start (and pods keep running).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    pub large_file: u64,
    pub busybox: Option<PathBuf>,
}

const EXTRA_STREAM: u64 = 0x4558;

fn write_extra_layer(spec: &Spec, extra: &Extra, blobs: &Path) -> Result<LayerInfo, SynthError> {
    let LayerSink { mut tar, tmp } = LayerSink::create(blobs, "extra")?;
    let mut files = 0;
    let written = (|| -> std::io::Result<u64> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, "bench/", std::io::empty())?;
        let mut h = header(tar::EntryType::Regular, 0o644, extra.large_file);
        let data = Content {
            rng: SplitMix64::derive(spec.seed ^ EXTRA_STREAM, 0),
            left: extra.large_file,
        };
        tar.append_data(&mut h, "bench/large", data)?;
        files += 1;
        let mut bytes = extra.large_file;
        if let Some(busybox) = &extra.busybox {
            let f = File::open(busybox)?;
            let len = f.metadata()?.len();
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, "bin/", std::io::empty())?;
            let mut h = header(tar::EntryType::Regular, 0o755, len);
            tar.append_data(&mut h, "bin/busybox", f)?;
            for link in ["sh", "true", "sleep"] {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, format!("bin/{link}"), "busybox")?;
            }
            files += 1;
            bytes += len;
        }
        Ok(bytes)
    })();
    let content_bytes = written.map_err(io("write", &tmp))?;
    let mut info = LayerSink { tar, tmp }.finish(blobs)?;
    info.files = files;
    info.content_bytes = content_bytes;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(text: &str) -> Spec {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn specs_parse_with_defaults_and_refuse_nonsense() {
        let s = spec("layers=2, files=10,size=4k..1m,dup=0.25,seed=9");
        assert_eq!(
            (s.layers, s.files, s.min_size, s.max_size, s.dup, s.seed),
            (2, 10, 4096, 1 << 20, 0.25, 9)
        );
        assert_eq!(s.dirs, Spec::default().dirs);
        assert_eq!(spec("size=512").min_size, 512);
        assert_eq!(spec(&s.to_string()), s, "Display round-trips");
        for bad in [
            "layers=0",
            "layers=1001",
            "files=-1",
            "size=2k..1k",
            "size=1t",
            "dup=1.5",
            "whiteouts=-0.1",
            "colour=blue",
            "layers",
            "size=100g",
        ] {
            let e = bad.parse::<Spec>();
            assert!(e.is_err(), "{bad} was accepted");
            assert!(e.err().is_some_and(|e| e.to_string().contains(bad)));
        }
    }

    /// The entries of a layer blob: path to (size, content digest).
    fn entries(path: &Path) -> BTreeMap<String, (u64, Digest)> {
        let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        let mut out = BTreeMap::new();
        for e in a.entries().unwrap_or_else(|e| panic!("{e}")) {
            let mut e = e.unwrap_or_else(|e| panic!("{e}"));
            let name = e
                .path()
                .unwrap_or_else(|e| panic!("{e}"))
                .display()
                .to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap_or_else(|e| panic!("{e}"));
            out.insert(name, (bytes.len() as u64, Digest::of(&bytes)));
        }
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_image_and_another_seed_another() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = spec("layers=3,files=40,dirs=4,size=0..20k,dup=0.3,whiteouts=0.1,seed=11");
        let a = generate(&s, &t.path().join("a"), "latest").unwrap_or_else(|e| panic!("{e}"));
        let b = generate(&s, &t.path().join("b"), "latest").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        let other = Spec { seed: 12, ..s };
        let c = generate(&other, &t.path().join("c"), "latest").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a.manifest, c.manifest);
        assert!(a
            .layers
            .iter()
            .zip(&c.layers)
            .all(|(x, y)| x.diff_id != y.diff_id));
        assert!(
            generate(&s, &t.path().join("a"), "latest").is_err(),
            "a non-empty directory is refused"
        );
    }

    #[test]
    fn the_layout_says_what_the_spec_asked_for() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = spec("layers=3,files=50,dirs=5,size=1k..8k,dup=0.5,whiteouts=0.2,seed=3");
        let dir = t.path().join("img");
        let img = generate(&s, &dir, "v1").unwrap_or_else(|e| panic!("{e}"));
        let blob = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
        // The index names the manifest, the manifest the config and layers, with their sizes.
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("index.json")).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(index["manifests"][0]["digest"], img.manifest.as_str());
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        let manifest_bytes = std::fs::read(blob(&img.manifest)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Digest::of(&manifest_bytes), img.manifest);
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(blob(&img.config)).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut seen_bytes: BTreeMap<Digest, u32> = BTreeMap::new();
        let mut whiteouts = 0;
        for (k, l) in img.layers.iter().enumerate() {
            let path = blob(&l.digest);
            let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (Digest::of(&gz), gz.len() as u64),
                (l.digest.clone(), l.size)
            );
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut tar)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Digest::of(&tar),
                l.diff_id,
                "the diff ID is the tar's digest"
            );
            assert_eq!(config["rootfs"]["diff_ids"][k], l.diff_id.as_str());
            let files = entries(&path);
            let regular: Vec<_> = files
                .iter()
                .filter(|(n, _)| n.contains("/f") && !n.contains(".wh."))
                .collect();
            assert_eq!(regular.len(), 50);
            for (name, (size, digest)) in &regular {
                assert!((1024..=8192).contains(size), "{name}: {size}");
                *seen_bytes.entry(digest.clone()).or_default() += 1;
            }
            let wh = files.keys().filter(|n| n.contains("/.wh.")).count();
            assert_eq!(wh as u32, l.whiteouts);
            if k == 0 {
                assert_eq!(wh, 0, "the base layer deletes nothing");
            } else {
                assert_eq!(wh, 10, "20% of 50 files");
            }
            whiteouts += wh;
        }
        assert_eq!(whiteouts, 20);
        let repeated: u32 = seen_bytes.values().filter(|n| **n > 1).map(|n| n - 1).sum();
        assert!(
            (40..=110).contains(&repeated),
            "about half of 150 files repeat earlier bytes: {repeated}"
        );
    }
}
