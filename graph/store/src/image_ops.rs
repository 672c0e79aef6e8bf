//! Image operations: recording an image from its config (and manifest), and removing one.

use strata_types::{Digest, ImageId, LayerId};

use crate::error::{Result, StoreError};
use crate::images::Image;
use crate::locks;
use crate::meta::now;
use crate::paths::layer_key;
use crate::store::Store;

/// What `rmi` removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub image: ImageId,
    pub layers: Vec<LayerId>,
}

impl Store {
    /// Stores `config` (and `manifest`, or a generated OCI manifest describing the layers
    /// uncompressed) as blobs and records the image with `names`. The caller holds the layers'
    /// lease. Returns the image ID (the config digest).
    pub fn record_image(
        &self,
        config: &[u8],
        manifest: Option<&[u8]>,
        top: Option<LayerId>,
        names: &[String],
    ) -> Result<ImageId> {
        let _gc = self.gc_shared()?;
        // The same image again (same config, perhaps another manifest: other compression, or
        // copied from elsewhere): only the names are new. Storing its manifest too would leave
        // an unreferenced blob. (Two processes recording one image at the same moment can
        // still leave the loser's manifest blob; `gc` removes it.)
        let id = ImageId(Digest::of(config));
        if let Some(existing) = self.meta.read(|tx| tx.image(&id))? {
            self.meta
                .write_additive(|tx| tx.insert_image(&existing, names))?;
            tracing::info!(image = %id.0.short(), "image already present; names added");
            return Ok(id);
        }
        let config_digest = self.blobs.put_bytes(config)?;
        let manifest_bytes = match manifest {
            Some(m) => m.to_vec(),
            None => {
                let layers = match &top {
                    None => Vec::new(),
                    Some(t) => {
                        let mut c = self.meta.read(|tx| tx.chain(t))?;
                        c.reverse();
                        c
                    }
                };
                crate::oci::manifest_json(&config_digest, config.len() as u64, &layers)?
            }
        };
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes)?;
        let img = Image {
            id: ImageId(config_digest),
            names: Vec::new(),
            top_layer: top,
            manifest_digest,
            created: now(),
        };
        self.meta
            .write_additive(|tx| tx.insert_image(&img, names))?;
        tracing::info!(image = %img.id.0.short(), "image recorded");
        Ok(img.id)
    }

    /// Adds names to an image.
    pub fn tag(&self, image: &str, names: &[String]) -> Result<()> {
        let img = self.image(image)?;
        self.meta.write_additive(|tx| tx.insert_image(&img, names))
    }

    /// Removes one name from an image; the image itself stays (even with no names left).
    pub fn untag(&self, name: &str) -> Result<ImageId> {
        let full = crate::images::normalize_name(name)?;
        let img = self.image(&full)?;
        if !img.names.contains(&full) {
            return Err(StoreError::not_found("image name", name));
        }
        self.meta.write(|tx| tx.delete_name(&full))?;
        Ok(img.id)
    }

    /// Removes an image and those of its layers nothing else uses. Refused while a container
    /// uses the image. Layers being imported by another process right now are kept.
    pub fn remove_image(&self, name: &str) -> Result<Removed> {
        let img = self.image(name)?;
        let _gc = self.gc_shared()?;
        let users = self.meta.read(|tx| tx.image_users(&img.id))?;
        if !users.is_empty() {
            return Err(StoreError::Precondition(format!(
                "image {} is in use by container(s) {}; remove them first",
                name,
                users.join(", ")
            )));
        }
        // Lock the image's layers top-down while nobody else holds them; stop at the first layer
        // an importer holds (it and everything below it stay).
        let chain = match &img.top_layer {
            Some(t) => self.meta.read(|tx| tx.chain(t))?,
            None => Vec::new(),
        };
        let mut held = Vec::new();
        for l in &chain {
            match locks::try_acquire(&self.layer_lock_path(&l.id))? {
                Some(lock) => held.push((l.id.clone(), lock)),
                None => break,
            }
        }
        let removed = self.meta.write_freeing(|tx| {
            if !tx.image_users(&img.id)?.is_empty() {
                return Err(StoreError::Precondition(format!(
                    "image {name} gained a container; not removed"
                )));
            }
            tx.delete_image(&img.id)?;
            let mut removed = Vec::new();
            for (id, _) in &held {
                let referenced: bool = tx
                    .sql()
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM layers WHERE parent = ?1)
                             OR EXISTS(SELECT 1 FROM images WHERE top_layer = ?1)
                             OR EXISTS(SELECT 1 FROM containers WHERE parent_layer = ?1)",
                        [id.0.as_str()],
                        |r| r.get(0),
                    )
                    .map_err(tx.err())?;
                if referenced {
                    break;
                }
                tx.delete_layer(id)?;
                removed.push(id.clone());
            }
            Ok(removed)
        })?;
        // Retired into graves when deletion is deferred, then marked for the collector; with
        // no room even for the mark (a full disk) the graves are deleted now.
        let defer = self.trash.deferred() && !removed.is_empty();
        for id in &removed {
            self.remove_layer_payload(id, defer)?;
        }
        if defer {
            match self.trash.mark_graves() {
                Ok(()) => self.trash.wake(),
                Err(_) => {
                    self.driver.cleanup_staging()?;
                }
            }
        }
        self.remove_unreferenced_blobs(&[img.id.0.clone(), img.manifest_digest.clone()])?;
        self.meta.ensure_reserve();
        tracing::info!(image = %img.id.0.short(), layers = removed.len(), "image removed");
        Ok(Removed {
            image: img.id,
            layers: removed,
        })
    }

    /// Removes a layer's payload, or with `retire` moves it into a grave for the trash
    /// collector (the caller then marks the graves and wakes the collector).
    pub(crate) fn remove_layer_payload(&self, id: &LayerId, retire: bool) -> Result<()> {
        if retire {
            self.driver.retire(&layer_key(id))?;
        } else {
            self.driver.remove(&layer_key(id))?;
        }
        let ts = self.paths.tarsplit(id);
        match std::fs::remove_file(&ts) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("remove", &ts)(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes those of `candidates` that no image references any more.
    pub(crate) fn remove_unreferenced_blobs(&self, candidates: &[Digest]) -> Result<()> {
        let live = self.referenced_blobs()?;
        for d in candidates {
            if !live.contains(d) {
                self.blobs.remove(d)?;
            }
        }
        Ok(())
    }

    /// Every blob an image references (configs and manifests).
    pub(crate) fn referenced_blobs(&self) -> Result<std::collections::HashSet<Digest>> {
        self.meta.read(|tx| {
            Ok(tx
                .images()?
                .into_iter()
                .flat_map(|i| [i.id.0, i.manifest_digest])
                .collect())
        })
    }
}
