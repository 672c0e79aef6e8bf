//! Importing into Strata's store ([`StoreDestination`]): the image goes over whole.
//!
//! The store gets the manifest as the source has it, the config bytes (verified against
//! the config descriptor), and one [`StoreLayer`] per layer whose `open` streams the source
//! blob through a [`VerifyingReader`](crate::digesting::VerifyingReader): a digest or size
//! mismatch surfaces as a read error, so the store aborts that layer. Recompression does not
//! apply (the store extracts layers). Layers the store never opens are reported as skipped.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use strata_types::Digest;

use super::blobs::{read_config, verified};
use super::{CopyOptions, CopyReport, ProgressEvent};
use crate::error::{ImageError, Result};
use crate::manifest::{diff_ids, is_foreign_layer, parse_manifest};
use crate::transport::{ImageSource, RawManifest, StoreDestination, StoreLayer};

pub(super) fn import(
    src: &dyn ImageSource,
    store: &dyn StoreDestination,
    image: RawManifest,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let manifest = parse_manifest(&image.bytes)?;
    let config = read_config(src, &manifest.config, opts)?;
    let diff_ids = diff_ids(&config)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Invalid(format!(
            "{}: config lists {} diff IDs for {} layers",
            src.describe(),
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    if let Some(l) = manifest
        .layers
        .iter()
        .find(|l| is_foreign_layer(&l.media_type))
    {
        return Err(ImageError::Unsupported(format!(
            "layer {} is a foreign layer ({}); it cannot be imported",
            l.digest, l.media_type
        )));
    }
    let opened: Vec<Arc<AtomicBool>> = manifest
        .layers
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let bytes = Arc::new(AtomicU64::new(0));
    let layers = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .zip(&opened)
        .map(|((desc, diff_id), flag)| {
            let (desc2, flag, bytes) = (desc.clone(), Arc::clone(flag), Arc::clone(&bytes));
            let open = move || -> Result<Box<dyn Read + Send + '_>> {
                flag.store(true, Ordering::Relaxed);
                bytes.fetch_add(desc2.size, Ordering::Relaxed);
                opts.emit(ProgressEvent::BlobStarted {
                    descriptor: desc2.clone(),
                });
                let done = opts.progress.clone();
                let digest = desc2.digest.clone();
                let (size, mut seen) = (desc2.size, 0u64);
                let inner = src.blob(&desc2)?;
                let r = verified(inner, &desc2, opts).with_progress(Box::new(move |n| {
                    seen += n;
                    if let Some(f) = &done {
                        f(ProgressEvent::BlobProgress {
                            digest: digest.clone(),
                            bytes: n,
                        });
                        if seen == size {
                            f(ProgressEvent::BlobDone {
                                digest: digest.clone(),
                            });
                        }
                    }
                }));
                Ok(Box::new(r))
            };
            StoreLayer {
                blob: desc.clone(),
                diff_id,
                open: Box::new(open),
            }
        })
        .collect();
    let image_id = store.import(&image, &config, layers)?;
    let mut report = CopyReport {
        manifest_digest: Digest::of(&image.bytes),
        config_digest: Some(manifest.config.digest.clone()),
        image_id: Some(image_id),
        blobs_copied: 1,
        blobs_skipped: 0,
        bytes: config.len() as u64 + bytes.load(Ordering::Relaxed),
    };
    for (desc, flag) in manifest.layers.iter().zip(&opened) {
        if flag.load(Ordering::Relaxed) {
            report.blobs_copied += 1;
        } else {
            report.blobs_skipped += 1;
            opts.emit(ProgressEvent::BlobSkipped {
                descriptor: desc.clone(),
            });
        }
    }
    Ok(report)
}
