//! Importing layers: the store side of the layer pipeline.
//!
//! For each layer of a chain, bottom first:
//! 1. take the layer's lock (blocking; in chain order, so two importers never deadlock), then
//!    look it up: a layer that is already committed is reused, never extracted again;
//! 2. for missing layers, ask the driver for a staging area and stream the blob through
//!    `strata_graph_archive::apply` (hash + decompress + extract in one pass) **outside any
//!    metadata transaction**, so readers and other writers are never blocked by extraction;
//!    with a driver that allows it (`parallel_stage`), all missing layers extract in parallel;
//! 3. commit, bottom first: tar-split file renamed into place, payload renamed into place by the
//!    driver, then the metadata row inserted in a short write transaction.
//!
//! The returned [`LayerLease`] keeps every layer of the chain locked until the caller has
//! recorded what references it (an image or a container), so a concurrent `rmi` cannot remove
//! a layer between its import and its first reference.

use std::io::{BufWriter, Read, Write};

use strata_driver_api::{Key, Staging};
use strata_graph_archive::{apply, Applied, ApplyOptions};
use strata_types::{Digest, LayerId};

use crate::blobs::TempFile;
use crate::error::{Result, StoreError};
use crate::layers::Layer;
use crate::locks::{self, Lock};
use crate::meta::now;
use crate::paths::layer_key;
use crate::store::Store;

/// Opens a layer's blob stream. Called only if the layer must be extracted.
pub type Opener<'a> = Box<dyn FnOnce() -> Result<Box<dyn Read + Send + 'a>> + Send + 'a>;

/// One layer to import.
pub struct LayerInput<'a> {
    /// The digest of the uncompressed tar, from the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// The digest of the blob as stored or served (compressed), when known.
    pub blob_digest: Option<Digest>,
    pub open: Opener<'a>,
}

impl std::fmt::Debug for LayerInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerInput")
            .field("diff_id", &self.diff_id)
            .finish_non_exhaustive()
    }
}

/// Holds a chain's layer locks (and the shared gc lock) until dropped.
#[derive(Debug)]
pub struct LayerLease {
    pub layers: Vec<LayerId>,
    /// How many of the layers were extracted (the rest were already present).
    pub extracted: usize,
    _locks: Vec<Lock>,
    _gc: Lock,
}

impl LayerLease {
    pub fn top(&self) -> Option<&LayerId> {
        self.layers.last()
    }
}

struct Staged {
    staging: Staging,
    tarsplit: TempFile,
    applied: Applied,
}

impl Store {
    /// Imports `inputs` (bottom first) on top of `parent`. See the module docs.
    pub fn put_layers(
        &self,
        parent: Option<&LayerId>,
        inputs: Vec<LayerInput<'_>>,
    ) -> Result<LayerLease> {
        let gc = self.gc_shared()?;
        let mut ids = Vec::with_capacity(inputs.len());
        let mut prev = parent.cloned();
        for i in &inputs {
            let id = LayerId::chain(prev.as_ref(), &i.diff_id);
            prev = Some(id.clone());
            ids.push(id);
        }
        let mut held = Vec::with_capacity(ids.len() + 1);
        if let Some(p) = parent {
            held.push(locks::acquire(&self.layer_lock_path(p), true)?);
            if self.meta.read(|tx| tx.layer(p))?.is_none() {
                return Err(StoreError::not_found("layer", p.to_string()));
            }
        }
        for id in &ids {
            held.push(locks::acquire(&self.layer_lock_path(id), true)?);
        }
        let present: Vec<bool> = self
            .meta
            .read(|tx| ids.iter().map(|id| Ok(tx.layer(id)?.is_some())).collect())?;
        let parent_keys = |idx: usize| -> Vec<Key> {
            let mut keys: Vec<Key> = ids[..idx].iter().rev().map(layer_key).collect();
            if let Some(p) = parent {
                keys.extend(
                    self.meta
                        .read(|tx| Store::chain_keys(tx, Some(p)))
                        .unwrap_or_default(),
                );
            }
            keys
        };
        let mut extracted = 0;
        let jobs: Vec<(usize, LayerInput<'_>)> = inputs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !present[*i])
            .collect();
        if self.driver.parallel_stage() && jobs.len() > 1 {
            let width = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2);
            let mut staged: Vec<Option<Result<Staged>>> = (0..ids.len()).map(|_| None).collect();
            let mut queue = jobs.into_iter().peekable();
            while queue.peek().is_some() {
                let batch: Vec<_> = queue.by_ref().take(width).collect();
                std::thread::scope(|s| {
                    let handles: Vec<_> = batch
                        .into_iter()
                        .map(|(i, input)| {
                            let keys = parent_keys(i);
                            let id = &ids[i];
                            (i, s.spawn(move || self.stage_layer(id, &keys, input)))
                        })
                        .collect();
                    for (i, h) in handles {
                        staged[i] = Some(h.join().unwrap_or_else(|_| {
                            Err(StoreError::Precondition(
                                "layer extraction thread panicked".into(),
                            ))
                        }));
                    }
                });
            }
            // Fail as a whole if any layer failed (staging areas are discarded on drop below).
            if let Some(pos) = staged.iter().position(|s| matches!(s, Some(Err(_)))) {
                let err = staged[pos].take().and_then(|r| r.err());
                for s in staged.into_iter().flatten().flatten() {
                    discard(s.staging);
                }
                return Err(err.expect("position found an error"));
            }
            for (i, s) in staged.into_iter().enumerate() {
                if let Some(Ok(s)) = s {
                    let p = if i == 0 {
                        parent.cloned()
                    } else {
                        Some(ids[i - 1].clone())
                    };
                    self.commit_layer(&ids[i], p, s)?;
                    extracted += 1;
                }
            }
        } else {
            for (i, input) in jobs {
                let s = self.stage_layer(&ids[i], &parent_keys(i), input)?;
                let p = if i == 0 {
                    parent.cloned()
                } else {
                    Some(ids[i - 1].clone())
                };
                self.commit_layer(&ids[i], p, s)?;
                extracted += 1;
            }
        }
        Ok(LayerLease {
            layers: ids,
            extracted,
            _locks: held,
            _gc: gc,
        })
    }

    fn stage_layer(&self, id: &LayerId, parents: &[Key], input: LayerInput<'_>) -> Result<Staged> {
        let span = tracing::info_span!("apply layer", layer = %id.0.short());
        let _e = span.enter();
        let staging = self.driver.stage(parents)?;
        let result = (|| {
            let tarsplit = TempFile::new(&self.paths, ".tsz")?;
            let mut opts = ApplyOptions::new(staging.whiteouts);
            opts.expected_diff_id = Some(input.diff_id.clone());
            opts.expected_blob_digest = input.blob_digest.clone();
            opts.max_uncompressed = self.max_layer_size;
            let reader = (input.open)()?;
            let mut w = BufWriter::with_capacity(256 * 1024, &tarsplit.file);
            let applied = apply(reader, &staging.root, &mut w, &opts).map_err(|source| {
                StoreError::Archive {
                    layer: id.to_string(),
                    source,
                }
            })?;
            w.flush()
                .map_err(StoreError::io("write tar-split", &tarsplit.path))?;
            drop(w);
            tracing::info!(
                bytes = applied.uncompressed_size,
                entries = applied.entries,
                "layer extracted"
            );
            Ok((tarsplit, applied))
        })();
        match result {
            Ok((tarsplit, applied)) => Ok(Staged {
                staging,
                tarsplit,
                applied,
            }),
            Err(e) => {
                discard(staging);
                Err(e)
            }
        }
    }

    fn commit_layer(&self, id: &LayerId, parent: Option<LayerId>, s: Staged) -> Result<()> {
        s.tarsplit.persist(&self.paths.tarsplit(id))?;
        self.driver.commit(s.staging, &layer_key(id))?;
        let layer = Layer {
            id: id.clone(),
            parent,
            diff_id: s.applied.diff_id.clone(),
            blob_digest: Some(s.applied.blob_digest.clone()),
            blob_size: Some(s.applied.blob_size),
            compression: Some(format!("{:?}", s.applied.compression).to_lowercase()),
            size: s.applied.uncompressed_size,
            created: now(),
        };
        self.meta.write_additive(|tx| tx.insert_layer(&layer))
    }
}

/// Removes a staging area that will not be committed. Failure only leaves debris for gc.
/// Staging areas follow the driver API's protocol: `<area>.lock` beside `<area>`; the area is
/// removed first, then the lock file, while the lock is still held.
fn discard(s: Staging) {
    if let Err(e) = std::fs::remove_dir_all(&s.area) {
        tracing::warn!(area = %s.area.display(), error = %e, "could not remove staging area; gc will");
        return;
    }
    let mut lock = s.area.clone().into_os_string();
    lock.push(".lock");
    let _ = std::fs::remove_file(lock);
}
