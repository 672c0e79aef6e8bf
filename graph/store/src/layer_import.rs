//! Importing one layer from a stream onto a parent, without an image: what a build's `COPY`
//! and `ADD` steps need (the image comes later, from `record_image` or a commit).
//!
//! With the diff ID known, the stream goes straight through the layer pipeline (and is not
//! read at all when the store already has the layer). Without it, the stream is first copied
//! to a temporary file in the store while its uncompressed bytes are hashed (one pass, as
//! much disk as the stream, no memory beyond buffers), then imported from that file with the
//! diff ID it gave. The uncompressed size is bounded by the store's `max_layer_size` in both
//! passes, so a decompression bomb stops early.
//!
//! A layer that no image or container references is garbage: `gc` removes it. Callers record
//! what references it (an image) right after importing it, holding gc off meanwhile
//! ([`Store::hold_off_gc`]; the plugin host does so for a plugin until it records an image or
//! its command ends).

use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use strata_graph_archive::decompressing;
use strata_types::{Digest, Hasher, LayerId};

use crate::blobs::TempFile;
use crate::error::{Result, StoreError};
use crate::import::{LayerInput, Opener};
use crate::store::Store;

/// What [`Store::import_layer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLayer {
    pub layer: LayerId,
    pub diff_id: Digest,
    /// The uncompressed tar's size.
    pub size: u64,
    /// Whether it was extracted now (false: the store had it).
    pub extracted: bool,
}

/// Copies everything read through it into `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Store {
    /// Imports the layer tar (plain, gzip or zstd) that `open` streams on top of `parent`;
    /// `open` is called only if the stream must be read (see the module docs).
    pub fn import_layer(
        &self,
        parent: Option<&LayerId>,
        diff_id: Option<Digest>,
        open: Opener<'_>,
    ) -> Result<ImportedLayer> {
        let (diff_id, open): (Digest, Opener<'_>) = match diff_id {
            Some(d) => (d, open),
            None => {
                let (d, file) = self.spool(open()?)?;
                (
                    d,
                    Box::new(move || Ok(Box::new(file) as Box<dyn Read + Send>)),
                )
            }
        };
        let lease = self.put_layers(
            parent,
            vec![LayerInput {
                diff_id: diff_id.clone(),
                blob_digest: None,
                open,
            }],
        )?;
        let layer = lease
            .top()
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("a one-layer import made no layer".into()))?;
        let size = self
            .meta
            .read(|tx| tx.layer(&layer))?
            .map(|l| l.size)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("layer {layer} was imported but has no record"))
            })?;
        Ok(ImportedLayer {
            layer,
            diff_id,
            size,
            extracted: lease.extracted > 0,
        })
    }

    /// Copies `stream` to a temporary file while hashing its uncompressed bytes; returns the
    /// diff ID and the file, rewound.
    fn spool(&self, stream: Box<dyn Read + Send + '_>) -> Result<(Digest, std::fs::File)> {
        let mut tmp = TempFile::new(&self.paths, ".layer")?;
        let path = tmp.path.clone();
        let out = tmp
            .file
            .try_clone()
            .map_err(StoreError::io("reopen", &path))?;
        let tee = BufReader::with_capacity(256 * 1024, Tee { inner: stream, out });
        let (_, mut tar) =
            decompressing(tee).map_err(StoreError::io("read the layer stream into", &path))?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total: u64 = 0;
        loop {
            let n = match tar.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("read the layer stream into", &path)(e)),
            };
            total += n as u64;
            if total > self.max_layer_size {
                return Err(StoreError::Invalid(format!(
                    "the layer expands past the store's limit of {} bytes (max_layer_size)",
                    self.max_layer_size
                )));
            }
            hasher.update(&buf[..n]);
        }
        drop(tar);
        tmp.file
            .seek(SeekFrom::Start(0))
            .map_err(StoreError::io("seek", &path))?;
        let file = tmp
            .file
            .try_clone()
            .map_err(StoreError::io("reopen", &path))?;
        // The path goes now; the open file lives on until the import has read it.
        drop(tmp);
        Ok((hasher.finish(), file))
    }
}
