//! Copying one image's blobs: the config (small, read whole and verified, since layer
//! recompression needs its diff IDs) and the layers, `opts.jobs` at a time on scoped
//! threads. Each layer is either streamed verbatim through a [`VerifyingReader`] or
//! recompressed ([`super::recompress`]). Foreign (non-distributable) layers are left where
//! they are, as skopeo does by default.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use strata_types::Digest;

use super::recompress::recompress;
use super::rewrite::rewrite_manifest;
use super::{CopyOptions, ProgressEvent, Tally};
use crate::compression::Compression;
use crate::digesting::{OnBytes, VerifyingReader};
use crate::error::{ImageError, Result};
use crate::manifest::{
    diff_ids, flavor_of, is_foreign_layer, layer_compression, parse_manifest, Flavor,
};
use crate::tar_index::SMALL_LIMIT;
use crate::transport::{
    CompressionPreference, Descriptor, ImageDestination, ImageSource, RawManifest,
};

/// What to do with one layer.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Copy,
    Transform {
        to: Compression,
        diff_id: Option<Digest>,
    },
}

#[derive(Debug)]
pub(super) struct Outcome {
    pub skipped: bool,
    pub bytes: u64,
    /// The new descriptor and its compression, when the blob changed.
    pub replaced: Option<(Descriptor, Compression)>,
}

/// Copies the config and layers of `image`; returns the manifest to write (rewritten if
/// blobs changed) and the config digest.
pub(super) fn copy_image_blobs(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    image: &RawManifest,
    opts: &CopyOptions,
    tally: &mut Tally,
) -> Result<(RawManifest, Digest)> {
    let manifest = parse_manifest(&image.bytes)?;
    let config = read_config(src, &manifest.config, opts)?;
    if dst.has_blob(&manifest.config)? {
        opts.emit(ProgressEvent::BlobSkipped {
            descriptor: manifest.config.clone(),
        });
        tally.skipped += 1;
    } else {
        dst.put_blob(&manifest.config, &mut Cursor::new(&config))?;
        opts.emit(ProgressEvent::BlobDone {
            digest: manifest.config.digest.clone(),
        });
        tally.copied += 1;
        tally.bytes += config.len() as u64;
    }

    let diff_ids = diff_ids(&config)?;
    let mut flavor = opts.format.unwrap_or_else(|| flavor_of(&image.media_type));
    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        if is_foreign_layer(&layer.media_type) || !seen.insert(layer.digest.clone()) {
            continue;
        }
        let action = match layer_compression(&layer.media_type) {
            None => Action::Copy,
            Some(have) => {
                let want = match dst.preferred_compression() {
                    CompressionPreference::Uncompressed => Compression::None,
                    CompressionPreference::Keep => opts.dest_compression.unwrap_or(have),
                };
                if want == have {
                    Action::Copy
                } else {
                    Action::Transform {
                        to: want,
                        diff_id: diff_ids.get(i).cloned(),
                    }
                }
            }
        };
        if matches!(
            action,
            Action::Transform {
                to: Compression::Zstd,
                ..
            }
        ) && flavor == Flavor::Docker
        {
            if opts.format == Some(Flavor::Docker) {
                return Err(ImageError::Unsupported(
                    "Docker v2s2 manifests cannot describe zstd layers; use the OCI format".into(),
                ));
            }
            flavor = Flavor::Oci;
        }
        jobs.push((layer.clone(), action));
    }

    let outcomes = run_parallel(opts.jobs(), &jobs, |(desc, action)| {
        copy_layer(src, dst, desc, action, opts)
    })?;
    let mut updates = HashMap::new();
    for ((old, _), outcome) in jobs.iter().zip(outcomes) {
        if outcome.skipped {
            tally.skipped += 1;
        } else {
            tally.copied += 1;
            tally.bytes += outcome.bytes;
        }
        if let Some(new) = outcome.replaced {
            updates.insert(old.digest.clone(), new);
        }
    }
    let written = rewrite_manifest(image, &updates, flavor)?.unwrap_or_else(|| image.clone());
    Ok((written, manifest.config.digest))
}

/// Reads and verifies a config blob.
pub(super) fn read_config(
    src: &dyn ImageSource,
    desc: &Descriptor,
    opts: &CopyOptions,
) -> Result<Vec<u8>> {
    if desc.size > SMALL_LIMIT {
        return Err(ImageError::Invalid(format!(
            "config {} is {} bytes, too large",
            desc.digest, desc.size
        )));
    }
    opts.emit(ProgressEvent::BlobStarted {
        descriptor: desc.clone(),
    });
    let mut r = VerifyingReader::new(
        src.blob(desc)?,
        desc.digest.clone(),
        desc.size,
        format!("config {}", desc.digest),
    );
    let verdict = r.verdict();
    let mut out = Vec::new();
    if let Err(e) = r.read_to_end(&mut out) {
        return Err(verdict
            .mismatch()
            .unwrap_or_else(|| ImageError::io("read config from", src.describe())(e)));
    }
    verdict.check()?;
    Ok(out)
}

/// A byte counter that forwards to the progress hook.
pub(super) fn progress_hook(opts: &CopyOptions, digest: &Digest) -> Option<OnBytes> {
    let f = opts.progress.clone()?;
    let digest = digest.clone();
    Some(Box::new(move |bytes| {
        f(ProgressEvent::BlobProgress {
            digest: digest.clone(),
            bytes,
        })
    }))
}

/// Wraps a source stream in a verifying (and progress-reporting) reader.
pub(super) fn verified<R: Read>(r: R, desc: &Descriptor, opts: &CopyOptions) -> VerifyingReader<R> {
    let v = VerifyingReader::new(
        r,
        desc.digest.clone(),
        desc.size,
        format!("blob {}", desc.digest),
    );
    match progress_hook(opts, &desc.digest) {
        Some(h) => v.with_progress(h),
        None => v,
    }
}

fn copy_layer(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    desc: &Descriptor,
    action: &Action,
    opts: &CopyOptions,
) -> Result<Outcome> {
    match action {
        Action::Transform { to, diff_id } => {
            recompress(src, dst, desc, *to, diff_id.as_ref(), opts)
        }
        Action::Copy => {
            if dst.has_blob(desc)? {
                opts.emit(ProgressEvent::BlobSkipped {
                    descriptor: desc.clone(),
                });
                return Ok(Outcome {
                    skipped: true,
                    bytes: 0,
                    replaced: None,
                });
            }
            opts.emit(ProgressEvent::BlobStarted {
                descriptor: desc.clone(),
            });
            let mut r = verified(src.blob(desc)?, desc, opts);
            let verdict = r.verdict();
            if let Err(e) = dst.put_blob(desc, &mut r) {
                return Err(verdict.mismatch().unwrap_or(e));
            }
            // A destination that read nothing got the blob another way (a registry mounting
            // it from another repository, verified by digest on its side); one that read part
            // of the stream and stopped is a bug `check` reports.
            if r.bytes_read() > 0 {
                verdict.check()?;
            }
            opts.emit(ProgressEvent::BlobDone {
                digest: desc.digest.clone(),
            });
            Ok(Outcome {
                skipped: false,
                bytes: desc.size,
                replaced: None,
            })
        }
    }
}

/// Runs `f` over `items` on at most `jobs` scoped threads; stops handing out work after the
/// first failure and returns the first error (in item order).
pub(super) fn run_parallel<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut out = Vec::with_capacity(items.len());
    let mut first_err = None;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if out.len() != items.len() {
        return Err(ImageError::Invalid(
            "copy stopped before every blob was copied".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_parallel_keeps_order_and_reports_errors() {
        let items: Vec<u32> = (0..20).collect();
        let out = run_parallel(3, &items, |i| Ok(i * 2)).unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = run_parallel(3, &items, |i| {
            if *i == 7 {
                Err(ImageError::Invalid("seven".into()))
            } else {
                Ok(*i)
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "seven");
        assert!(run_parallel(4, &Vec::<u32>::new(), |i| Ok(*i))
            .unwrap()
            .is_empty());
    }
}
