//! `fsck`: checks referential integrity between metadata and payload, and with `content`
//! re-hashes every blob and regenerates every layer's tar to compare with its diff ID.
//! `repair` removes what is broken (a layer, and every image, layer and container built on it)
//! and then collects garbage, so the store is consistent again.
//!
//! Problems are inconsistencies (metadata that points at missing or wrong data); garbage
//! (payload that no metadata points at) is reported separately: it is harmless and `gc`
//! removes it.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use strata_graph_archive::export_tarsplit;
use strata_types::{ContainerId, ImageId, LayerId};

use crate::error::Result;
use crate::paths::{container_key, key_owner, layer_key, KeyOwner};
use crate::store::Store;

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsckOptions {
    pub content: bool,
    pub repair: bool,
}

/// One inconsistency.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub object: String,
    pub message: String,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub problems: Vec<Problem>,
    /// Debris that `gc` would remove.
    pub garbage: Vec<String>,
    /// What `repair` removed.
    pub repaired: Vec<String>,
    pub checked_layers: usize,
    pub checked_images: usize,
    pub checked_containers: usize,
}

impl FsckReport {
    pub fn consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Default)]
struct Broken {
    layers: HashSet<LayerId>,
    images: HashSet<ImageId>,
    containers: HashSet<ContainerId>,
}

impl Store {
    pub fn fsck(&self, opts: FsckOptions) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let mut broken = Broken::default();
        {
            let _x = self.gc_exclusive()?;
            self.check(opts, &mut report, &mut broken)?;
        }
        if opts.repair && !report.problems.is_empty() {
            self.repair(&broken, &mut report)?;
            let gc = self.gc()?;
            report
                .repaired
                .push(format!("garbage collection removed {} item(s)", gc.total()));
            report.garbage.clear();
        }
        Ok(report)
    }

    fn check(&self, opts: FsckOptions, report: &mut FsckReport, broken: &mut Broken) -> Result<()> {
        let mut problem =
            |object: String, message: String| report.problems.push(Problem { object, message });
        for p in self.meta.integrity_check()? {
            problem("metadata database".into(), p);
        }
        let (layers, images, containers) = self
            .meta
            .read(|tx| Ok((tx.layers()?, tx.images()?, tx.containers()?)))?;
        let layer_ids: HashSet<&LayerId> = layers.iter().map(|l| &l.id).collect();
        for l in &layers {
            let obj = format!("layer {}", l.id);
            if let Some(p) = &l.parent {
                if !layer_ids.contains(p) {
                    problem(obj.clone(), format!("parent {p} does not exist"));
                    broken.layers.insert(l.id.clone());
                }
            }
            if LayerId::chain(l.parent.as_ref(), &l.diff_id) != l.id {
                problem(
                    obj.clone(),
                    "chain ID does not match parent and diff ID".into(),
                );
                broken.layers.insert(l.id.clone());
            }
            let key = layer_key(&l.id);
            if !self.driver.exists(&key) {
                problem(
                    obj.clone(),
                    format!("payload is missing from the {} driver", self.driver.name()),
                );
                broken.layers.insert(l.id.clone());
                continue;
            }
            let ts = self.paths.tarsplit(&l.id);
            let file = match std::fs::File::open(&ts) {
                Ok(f) => f,
                Err(e) => {
                    problem(
                        obj.clone(),
                        format!("tar-split record {}: {e}", ts.display()),
                    );
                    broken.layers.insert(l.id.clone());
                    continue;
                }
            };
            if opts.content {
                match export_tarsplit(file, &self.driver.diff_dir(&key), std::io::sink()) {
                    Ok((d, _)) if d == l.diff_id => {}
                    Ok((d, _)) => {
                        problem(
                            obj.clone(),
                            format!("content hashes to {d}, not its diff ID {}", l.diff_id),
                        );
                        broken.layers.insert(l.id.clone());
                    }
                    Err(e) => {
                        problem(obj.clone(), format!("content cannot be read back: {e}"));
                        broken.layers.insert(l.id.clone());
                    }
                }
            }
        }
        report.checked_layers = layers.len();
        for img in &images {
            let obj = format!("image {}", img.id);
            for (what, d) in [
                ("config", img.id.digest()),
                ("manifest", &img.manifest_digest),
            ] {
                if !self.blobs.exists(d) {
                    problem(obj.clone(), format!("{what} blob {d} is missing"));
                    broken.images.insert(img.id.clone());
                } else if opts.content && !self.blobs.verify(d)? {
                    problem(
                        obj.clone(),
                        format!("{what} blob {d} does not match its digest"),
                    );
                    broken.images.insert(img.id.clone());
                }
            }
            if let Some(t) = &img.top_layer {
                if !layer_ids.contains(t) {
                    problem(obj.clone(), format!("top layer {t} does not exist"));
                    broken.images.insert(img.id.clone());
                    continue;
                }
            }
            if broken.images.contains(&img.id) {
                continue;
            }
            // The config's diff IDs must be exactly the layer chain's.
            let config: serde_json::Value =
                serde_json::from_slice(&self.blobs.read(img.id.digest())?).unwrap_or_default();
            let want: Vec<String> = config["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let have: Vec<String> = match &img.top_layer {
                None => Vec::new(),
                Some(t) => {
                    let mut c: Vec<String> = self
                        .meta
                        .read(|tx| tx.chain(t))?
                        .into_iter()
                        .map(|l| l.diff_id.to_string())
                        .collect();
                    c.reverse();
                    c
                }
            };
            if want != have {
                problem(
                    obj.clone(),
                    "config diff IDs do not match the image's layers".into(),
                );
                broken.images.insert(img.id.clone());
            }
        }
        report.checked_images = images.len();
        let image_ids: HashSet<&ImageId> = images.iter().map(|i| &i.id).collect();
        for c in &containers {
            let obj = format!("container {} ({})", c.name, c.id.short());
            if !image_ids.contains(&c.image) {
                problem(obj.clone(), format!("image {} does not exist", c.image));
                broken.containers.insert(c.id.clone());
            }
            if !self.driver.exists(&container_key(&c.id)) {
                problem(obj.clone(), "read-write layer payload is missing".into());
                broken.containers.insert(c.id.clone());
            }
        }
        report.checked_containers = containers.len();
        // Garbage (not problems).
        let cids: HashSet<&ContainerId> = containers.iter().map(|c| &c.id).collect();
        for key in self.driver.list()? {
            let known = match key_owner(&key) {
                KeyOwner::Layer(l) => layer_ids.contains(&l),
                // A removed container whose payload the trash collector has yet to delete
                // is neither live nor garbage.
                KeyOwner::Container(c) => cids.contains(&c) || self.trash.noted(&c),
                KeyOwner::Unknown => false,
            };
            if !known {
                report
                    .garbage
                    .push(format!("payload {key} has no metadata"));
            }
        }
        let live_blobs = self.referenced_blobs()?;
        for b in self.blobs.list()? {
            match b {
                Ok(d) if live_blobs.contains(&d) => {}
                Ok(d) => report.garbage.push(format!("blob {d} is unreferenced")),
                Err(p) => report.garbage.push(format!("stray file {}", p.display())),
            }
        }
        for e in crate::gc::read_dir(&self.paths.tmp())? {
            report
                .garbage
                .push(format!("temporary file {}", e.path().display()));
        }
        Ok(())
    }

    fn repair(&self, broken: &Broken, report: &mut FsckReport) -> Result<()> {
        let _gc = self.gc_shared()?;
        let (layers, images, containers) = self
            .meta
            .read(|tx| Ok((tx.layers()?, tx.images()?, tx.containers()?)))?;
        // Everything built on a broken layer is broken too.
        let mut bad_layers: BTreeSet<LayerId> = broken.layers.iter().cloned().collect();
        loop {
            let before = bad_layers.len();
            for l in &layers {
                if l.parent.as_ref().is_some_and(|p| bad_layers.contains(p)) {
                    bad_layers.insert(l.id.clone());
                }
            }
            if bad_layers.len() == before {
                break;
            }
        }
        let bad_images: BTreeSet<ImageId> = images
            .iter()
            .filter(|i| {
                broken.images.contains(&i.id)
                    || i.top_layer.as_ref().is_some_and(|t| bad_layers.contains(t))
            })
            .map(|i| i.id.clone())
            .collect();
        let bad_containers: Vec<_> = containers
            .iter()
            .filter(|c| {
                broken.containers.contains(&c.id)
                    || bad_images.contains(&c.image)
                    || c.parent_layer
                        .as_ref()
                        .is_some_and(|t| bad_layers.contains(t))
            })
            .cloned()
            .collect();
        for c in &bad_containers {
            self.unmount_container(c)?;
        }
        self.meta.write(|tx| {
            for c in &bad_containers {
                tx.delete_container(&c.id)?;
            }
            for i in &bad_images {
                tx.delete_image(i)?;
            }
            for l in &bad_layers {
                tx.delete_layer(l)?;
            }
            Ok(())
        })?;
        for c in &bad_containers {
            self.driver.remove(&container_key(&c.id))?;
            report
                .repaired
                .push(format!("removed container {} ({})", c.name, c.id.short()));
        }
        for i in &bad_images {
            report.repaired.push(format!("removed image {i}"));
        }
        for l in &bad_layers {
            self.remove_layer_payload(l, false)?;
            report.repaired.push(format!("removed layer {l}"));
        }
        Ok(())
    }
}
