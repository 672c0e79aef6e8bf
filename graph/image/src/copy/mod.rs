//! The copy engine: moves one image (or a whole index) from an [`ImageSource`] to an
//! [`ImageDestination`], whatever transports they are.
//!
//! Order of work: resolve the top-level manifest (an index picks the wanted platform unless
//! `all`), copy config and layer blobs ([`blobs`], in parallel, every byte verified,
//! recompressing where asked), rewrite the manifest if any blob changed ([`rewrite`]), write
//! the manifest(s), and only then `commit`. Any failure returns before `commit`, so the
//! destination shows nothing. Strata's store takes the image whole instead ([`store`]).
//!
//! The engine prints nothing: callers watch [`ProgressEvent`]s. Signatures, encryption and
//! partial (zstd:chunked) pulls are deliberately not handled.

mod blobs;
mod recompress;
mod rewrite;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use strata_types::Digest;

use crate::compression::Compression;
use crate::error::{ImageError, Result};
use crate::manifest::{classify, parse_index, Flavor, ManifestKind};
use crate::platform::{self, Platform};
use crate::transport::{Descriptor, ImageDestination, ImageSource, RawManifest};

pub use rewrite::{convert_layer_media_type, rewrite_index, IndexUpdate};

/// What happened to a blob, for progress bars.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// A blob started streaming from the source.
    BlobStarted { descriptor: Descriptor },
    /// `bytes` more bytes of blob `digest` were read from the source.
    BlobProgress { digest: Digest, bytes: u64 },
    /// The blob is at the destination (verified).
    BlobDone { digest: Digest },
    /// The destination already had the blob.
    BlobSkipped { descriptor: Descriptor },
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// How to copy.
#[derive(Clone, Default)]
pub struct CopyOptions {
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Copy every image of an index, and the index itself.
    pub all: bool,
    /// Blobs copied at once (0 means the default, 4).
    pub jobs: usize,
    /// Recompress layers (`Gzip` or `Zstd`; `None` here means "store uncompressed"). Leaving
    /// the option unset keeps blobs as they are.
    pub dest_compression: Option<Compression>,
    /// Convert manifests to this flavour (skopeo's `--format oci|v2s2`). Unset keeps the
    /// source's flavour, except that zstd layers force OCI.
    pub format: Option<Flavor>,
    /// Where recompressed layers are staged (default: the system temp directory).
    pub temp_dir: Option<PathBuf>,
    /// Called with progress events, from worker threads.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("platform", &self.platform)
            .field("all", &self.all)
            .field("jobs", &self.jobs)
            .field("dest_compression", &self.dest_compression)
            .field("format", &self.format)
            .field("temp_dir", &self.temp_dir)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl CopyOptions {
    fn jobs(&self) -> usize {
        if self.jobs == 0 {
            4
        } else {
            self.jobs
        }
    }

    pub(crate) fn emit(&self, event: ProgressEvent) {
        if let Some(f) = &self.progress {
            f(event);
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The digest of the top-level manifest written (an index when `all`).
    pub manifest_digest: Digest,
    /// The config digest of the image copied (`None` when a whole index was copied).
    pub config_digest: Option<Digest>,
    /// For the store: the image ID it assigned.
    pub image_id: Option<Digest>,
    pub blobs_copied: usize,
    pub blobs_skipped: usize,
    /// Bytes read from the source for copied blobs.
    pub bytes: u64,
}

/// Counters shared by the copy steps.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub copied: usize,
    pub skipped: usize,
    pub bytes: u64,
}

/// Copies an image from `src` to `dst` (see the module docs).
pub fn copy_image(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let _span =
        tracing::info_span!("copy_image", src = %src.describe(), dst = %dst.describe()).entered();
    let top = src.manifest()?;
    if let Some(store) = dst.as_store() {
        if opts.all {
            return Err(ImageError::Unsupported(format!(
                "{} stores single images: copy one platform instead of --all",
                dst.describe()
            )));
        }
        let image = resolve_platform(src, top, opts)?;
        return store::import(src, store, image, opts);
    }
    let mut tally = Tally::default();
    let (manifest_digest, config_digest) = if classify(&top)? == ManifestKind::Index && opts.all {
        (copy_index(src, dst, top, opts, &mut tally)?, None)
    } else {
        let image = resolve_platform(src, top, opts)?;
        let (written, config) = blobs::copy_image_blobs(src, dst, &image, opts, &mut tally)?;
        dst.put_manifest(&written, None)?;
        (Digest::of(&written.bytes), Some(config))
    };
    dst.commit()?;
    tracing::info!(digest = %manifest_digest, copied = tally.copied, skipped = tally.skipped, "copied image");
    Ok(CopyReport {
        manifest_digest,
        config_digest,
        image_id: None,
        blobs_copied: tally.copied,
        blobs_skipped: tally.skipped,
        bytes: tally.bytes,
    })
}

/// Follows index entries down to the image manifest for the wanted platform.
pub(crate) fn resolve_platform(
    src: &dyn ImageSource,
    mut manifest: RawManifest,
    opts: &CopyOptions,
) -> Result<RawManifest> {
    let want = opts.platform.clone().unwrap_or_else(Platform::host);
    for _ in 0..4 {
        if classify(&manifest)? == ManifestKind::Image {
            return Ok(manifest);
        }
        let index = parse_index(&manifest.bytes)?;
        let entry = platform::select(&index.manifests, &want)?;
        manifest = fetch_instance(src, &entry.digest)?;
    }
    Err(ImageError::Invalid(format!(
        "{}: indexes nested too deeply",
        src.describe()
    )))
}

fn fetch_instance(src: &dyn ImageSource, digest: &Digest) -> Result<RawManifest> {
    let m = src.manifest_by_digest(digest)?;
    let actual = Digest::of(&m.bytes);
    if &actual != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("manifest in {}", src.describe()),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(m)
}

/// Copies every image of an index, then the (possibly rewritten) index itself.
fn copy_index(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    top: RawManifest,
    opts: &CopyOptions,
    tally: &mut Tally,
) -> Result<Digest> {
    let index = parse_index(&top.bytes)?;
    let mut updates = Vec::new();
    for entry in &index.manifests {
        let instance = fetch_instance(src, &entry.digest)?;
        if classify(&instance)? == ManifestKind::Index {
            return Err(ImageError::Unsupported(format!(
                "{}: nested index {} cannot be copied with --all",
                src.describe(),
                entry.digest
            )));
        }
        let (written, _) = blobs::copy_image_blobs(src, dst, &instance, opts, tally)?;
        let digest = Digest::of(&written.bytes);
        dst.put_manifest(&written, Some(&digest))?;
        updates.push(IndexUpdate {
            old: entry.digest.clone(),
            digest,
            size: written.bytes.len() as u64,
            media_type: written.media_type.clone(),
        });
    }
    let written = rewrite_index(&top, &updates, opts.format)?.unwrap_or(top);
    dst.put_manifest(&written, None)?;
    Ok(Digest::of(&written.bytes))
}
