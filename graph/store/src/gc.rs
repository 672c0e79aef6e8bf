//! Garbage collection: reconciles what is on disk with the metadata, both ways.
//!
//! It runs under the exclusive gc lock, so no import, create or remove is in flight: anything
//! on disk that no metadata row accounts for is debris (of a crash, or of an interrupted
//! operation) and is removed, and so are layers that nothing references.

use std::collections::HashSet;

use serde::Serialize;
use strata_types::{ContainerId, LayerId};

use crate::error::{Result, StoreError};
use crate::paths::{key_owner, KeyOwner};
use crate::store::Store;

/// What a collection removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Layers nothing referenced (metadata and payload).
    pub layers: usize,
    /// Driver payloads with no metadata row.
    pub orphan_payloads: usize,
    /// Tar-split records with no layer.
    pub orphan_tarsplits: usize,
    /// Blobs no image references.
    pub blobs: usize,
    /// Staging areas and temporary files of dead processes, and the trash (payload and
    /// directories of removed layers and containers waiting for deletion).
    pub staging: usize,
    pub temp_files: usize,
    /// Mount points of containers that no longer exist.
    pub mountpoints: usize,
    /// Front-end directories of containers that no longer exist.
    pub container_dirs: usize,
}

impl GcReport {
    pub fn total(&self) -> usize {
        self.layers
            + self.orphan_payloads
            + self.orphan_tarsplits
            + self.blobs
            + self.staging
            + self.temp_files
            + self.mountpoints
            + self.container_dirs
    }
}

impl Store {
    /// Removes unreferenced layers and blobs and all debris. See the module docs.
    pub fn gc(&self) -> Result<GcReport> {
        let _x = self.gc_exclusive()?;
        // Deletions committed unsynced (deferred container removals) are made durable before
        // gc acts on the payload they left.
        self.meta.sync()?;
        // A deletion on a full disk may have used the space reserve: gc makes it again.
        self.meta.ensure_reserve();
        let mut r = GcReport::default();
        // 1. Unreferenced layers: rows first (children before parents), then payload.
        let dead = self.meta.write(|tx| {
            let dead = tx.unreferenced_layers()?;
            for id in &dead {
                tx.delete_layer(id)?;
            }
            Ok(dead)
        })?;
        for id in &dead {
            self.remove_layer_payload(id, false)?;
        }
        r.layers = dead.len();
        // 2. Payload without rows.
        let (layers, containers): (HashSet<LayerId>, HashSet<ContainerId>) =
            self.meta.read(|tx| {
                Ok((
                    tx.layers()?.into_iter().map(|l| l.id).collect(),
                    tx.containers()?.into_iter().map(|c| c.id).collect(),
                ))
            })?;
        for key in self.driver.list()? {
            let known = match key_owner(&key) {
                KeyOwner::Layer(l) => layers.contains(&l),
                KeyOwner::Container(c) => containers.contains(&c),
                KeyOwner::Unknown => false,
            };
            if !known {
                tracing::info!(key = %key, "removing orphaned payload");
                self.driver.remove(&key)?;
                r.orphan_payloads += 1;
            }
        }
        // 3. Tar-split records without layers.
        for entry in read_dir(&self.paths.tarsplits())? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let live = name
                .strip_suffix(".tsz")
                .and_then(|h| strata_types::Digest::from_hex(h).ok())
                .is_some_and(|d| layers.contains(&LayerId(d)));
            if !live {
                remove_file(&entry.path())?;
                r.orphan_tarsplits += 1;
            }
        }
        // 4. Blobs no image references.
        let live_blobs = self.referenced_blobs()?;
        for b in self.blobs.list()? {
            match b {
                Ok(d) if live_blobs.contains(&d) => {}
                Ok(d) => {
                    self.blobs.remove(&d)?;
                    r.blobs += 1;
                }
                Err(path) => {
                    remove_file(&path)?;
                    r.blobs += 1;
                }
            }
        }
        // 5. Staging areas, temporary files and layer lock files (nobody holds them now).
        r.staging = self.trash.collect_now()?;
        for entry in read_dir(&self.paths.tmp())? {
            let p = entry.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(StoreError::io("remove", &p))?;
            } else {
                remove_file(&p)?;
            }
            r.temp_files += 1;
        }
        for entry in read_dir(&self.paths.locks())? {
            if entry.file_name() != "gc.lock" && entry.file_name() != "init.lock" {
                remove_file(&entry.path())?;
            }
        }
        // 6. Mount points of containers that are gone.
        for entry in read_dir(&self.paths.mounts())? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ContainerId::parse(&name).is_some_and(|c| containers.contains(&c)) {
                continue;
            }
            let p = entry.path();
            while strata_mount::is_mounted(&p)? {
                strata_mount::unmount(&p)?;
            }
            std::fs::remove_dir(&p).map_err(StoreError::io("remove mount point", &p))?;
            r.mountpoints += 1;
        }
        // 7. Front-end directories of containers that are gone.
        for dir in [self.paths.containers_dir(), self.paths.container_rundirs()] {
            for entry in read_dir(&dir)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if ContainerId::parse(&name).is_some_and(|c| containers.contains(&c)) {
                    continue;
                }
                let p = entry.path();
                std::fs::remove_dir_all(&p).map_err(StoreError::io("remove", &p))?;
                r.container_dirs += 1;
            }
        }
        tracing::info!(removed = r.total(), "garbage collected");
        Ok(r)
    }
}

pub(crate) fn read_dir(dir: &std::path::Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(StoreError::io("list", dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io("list", dir)(e)),
    }
}

fn remove_file(p: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io("remove", p)(e)),
        _ => Ok(()),
    }
}
