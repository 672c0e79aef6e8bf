//! Changing a layer's compression on the way (gzip <-> zstd, or to an uncompressed tar).
//!
//! Design: a destination's `put_blob` needs the final digest and size up front, so the
//! layer is first recompressed into an unnamed temporary file in `opts.temp_dir` (digest and
//! size computed while writing), then streamed from there. This costs one extra disk write
//! per changed layer; a registry destination could avoid it with chunked uploads, but the
//! trait gives no streaming-with-unknown-digest call, so none is attempted here. The source
//! compression is detected from magic bytes, not trusted from the media type. The
//! uncompressed stream is checked against the config's diff ID, so a recompressed layer is
//! known to hold exactly the original content.

use std::io::{self, BufWriter, Seek, SeekFrom};

use strata_types::Digest;

use super::blobs::{verified, Outcome};
use super::{CopyOptions, ProgressEvent};
use crate::compression::{self, Compression};
use crate::digesting::{HashingReader, HashingWriter, VerifyingReader};
use crate::error::{ImageError, Result};
use crate::transport::{Descriptor, ImageDestination, ImageSource};

/// Recompresses the layer `desc` to `to` and stores it at `dst`.
pub(super) fn recompress(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    desc: &Descriptor,
    to: Compression,
    diff_id: Option<&Digest>,
    opts: &CopyOptions,
) -> Result<Outcome> {
    let temp_dir = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let io_err = |op| ImageError::io(op, temp_dir.clone());
    opts.emit(ProgressEvent::BlobStarted {
        descriptor: desc.clone(),
    });

    let mut source = verified(src.blob(desc)?, desc, opts);
    let verdict = source.verdict();
    let tmp = tempfile::tempfile_in(&temp_dir).map_err(io_err("create temporary file in"))?;
    let written = (|| -> io::Result<_> {
        let (_, plain) = compression::decompressed(&mut source)?;
        let mut plain = HashingReader::new(plain);
        let out = HashingWriter::new(BufWriter::new(tmp));
        let out = compression::compress_into(to, &mut plain, out)?;
        let plain = plain.finish();
        // A decompressor may stop at the end of its frame: read the rest so the whole
        // blob is verified.
        io::copy(&mut source, &mut io::sink())?;
        Ok((plain, out.finish()))
    })();
    let ((plain_digest, _), (digest, size, out)) = match written {
        Ok(w) => w,
        Err(e) => {
            // The decompressor may fail before the end of a corrupt blob: finish reading
            // it so a digest mismatch is reported as such.
            let _ = io::copy(&mut source, &mut io::sink());
            return Err(verdict.mismatch().unwrap_or_else(|| {
                ImageError::io("recompress layer", format!("{}", desc.digest))(e)
            }));
        }
    };
    verdict.check()?;
    if let Some(want) = diff_id {
        if plain_digest != *want {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed content (diff ID) of layer {}", desc.digest),
                expected: want.to_string(),
                actual: plain_digest.to_string(),
            });
        }
    }
    let mut tmp = out
        .into_inner()
        .map_err(|e| io_err("write temporary file in")(e.into_error()))?;
    tmp.seek(SeekFrom::Start(0))
        .map_err(io_err("rewind temporary file in"))?;

    let new = Descriptor {
        media_type: desc.media_type.clone(),
        digest,
        size,
        annotations: desc.annotations.clone(),
        platform: None,
    };
    tracing::debug!(from = %desc.digest, to = %new.digest, compression = to.name(), "recompressed layer");
    if dst.has_blob(&new)? {
        opts.emit(ProgressEvent::BlobSkipped {
            descriptor: desc.clone(),
        });
        return Ok(Outcome {
            skipped: true,
            bytes: 0,
            replaced: Some((new, to)),
        });
    }
    let mut r = VerifyingReader::new(
        tmp,
        new.digest.clone(),
        new.size,
        format!("recompressed blob {}", new.digest),
    );
    let v = r.verdict();
    if let Err(e) = dst.put_blob(&new, &mut r) {
        return Err(v.mismatch().unwrap_or(e));
    }
    v.check()?;
    opts.emit(ProgressEvent::BlobDone {
        digest: desc.digest.clone(),
    });
    Ok(Outcome {
        skipped: false,
        bytes: desc.size,
        replaced: Some((new, to)),
    })
}
