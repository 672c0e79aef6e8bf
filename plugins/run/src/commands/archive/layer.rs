//! `strata import`'s one layer: the tarball's digests, learnt in one streaming pass (the
//! blob digest over the bytes as they are, the diff ID over the uncompressed tar), and the
//! image config and manifest that describe it.
//!
//! Plain tars, gzip and zstd are accepted (the store's layer pipeline reads all three);
//! xz and bzip2 are refused with a message saying so.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use strata_types::{Digest, Hasher};

/// What the store needs to know about the tarball before it is imported.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// The digest of the file's bytes (what the manifest names).
    pub digest: Digest,
    pub size: u64,
    /// The digest of the uncompressed tar (what the config names).
    pub diff_id: Digest,
    pub media_type: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Tar,
    Gzip,
    Zstd,
}

fn sniff(head: &[u8]) -> Result<Format> {
    Ok(match head {
        [0x1f, 0x8b, ..] => Format::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Format::Zstd,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            bail!("xz-compressed tarballs are not supported: decompress it first (xz -d)")
        }
        [b'B', b'Z', b'h', ..] => {
            bail!("bzip2-compressed tarballs are not supported: decompress it first (bunzip2)")
        }
        _ => Format::Tar,
    })
}

/// Hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes everything written to it.
struct HashSink(Hasher);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads `path` once and returns its digests.
pub fn digest(path: &Path) -> Result<LayerBlob> {
    let mut head = [0u8; 6];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("read {}", path.display()))?;
    let format = sniff(&head[..n])?;
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut raw = Hashing {
        inner: BufReader::with_capacity(1 << 20, file),
        hasher: Hasher::new(),
        count: 0,
    };
    let mut plain = HashSink(Hasher::new());
    let what = || format!("read {}", path.display());
    let media_type = match format {
        Format::Tar => {
            std::io::copy(&mut raw, &mut plain).with_context(what)?;
            "application/vnd.oci.image.layer.v1.tar"
        }
        Format::Gzip => {
            let mut d = flate2::read::MultiGzDecoder::new(&mut raw);
            std::io::copy(&mut d, &mut plain)
                .with_context(|| format!("gunzip {}", path.display()))?;
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        Format::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(&mut raw).with_context(what)?;
            std::io::copy(&mut d, &mut plain)
                .with_context(|| format!("decompress {}", path.display()))?;
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
    };
    // Whatever follows the compressed stream still belongs to the blob.
    std::io::copy(&mut raw, &mut std::io::sink()).with_context(what)?;
    Ok(LayerBlob {
        digest: raw.hasher.finish(),
        size: raw.count,
        diff_id: plain.0.finish(),
        media_type,
    })
}

/// The OCI architecture name of this machine.
pub fn architecture() -> &'static str {
    strata_types::arch::go_arch()
}

/// A config for an image made of `layer` alone.
pub fn config(layer: &LayerBlob, created: &str, created_by: &str, comment: Option<&str>) -> Value {
    let mut history = json!({"created": created, "created_by": created_by});
    if let Some(c) = comment {
        history["comment"] = json!(c);
    }
    json!({
        "created": created,
        "architecture": architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.as_str()]},
        "history": [history],
    })
}

/// An OCI manifest for `config` (exact bytes) and `layers` as (media type, digest, size).
pub fn manifest(config: &[u8], layers: &[(&str, &str, u64)]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::of(config).as_str(),
            "size": config.len(),
        },
        "layers": layers.iter().map(|(mt, d, s)| json!({"mediaType": mt, "digest": d, "size": s})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gzip_digests_are_of_the_file_and_of_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "hi", &b"hi"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(dir.path().join("a.tar"), &tar).unwrap();
        std::fs::write(dir.path().join("a.tgz"), &gz).unwrap();

        let plain = digest(&dir.path().join("a.tar")).unwrap();
        assert_eq!(plain.digest, Digest::of(&tar));
        assert_eq!(plain.diff_id, Digest::of(&tar));
        assert_eq!(plain.size, tar.len() as u64);

        let z = digest(&dir.path().join("a.tgz")).unwrap();
        assert_eq!(z.digest, Digest::of(&gz));
        assert_eq!(z.diff_id, Digest::of(&tar));
        assert_eq!(z.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    }

    #[test]
    fn xz_is_refused_by_name() {
        let e = sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]).unwrap_err();
        assert!(e.to_string().contains("xz"));
    }
}
