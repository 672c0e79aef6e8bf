//! Image volumes (the kubelet's `image` volume source, a CRI `Mount` with `image` set): an
//! image's file tree mounted read-only into a container, as CRI-O does it. Each volume is a
//! store container of the image (metadata key [`VOLUME_KEY`], no engine record, so `strata
//! ps` and the CRI lists leave it out), mounted by the store and bind-mounted read-only (not
//! `noexec`) at the container path. The CRI container's record lists its volumes; they are
//! mounted again before a start (after a reboot) and removed with the container or its pod.
//! A server killed between making a volume and recording its container leaves a volume no
//! record names: the next server start removes it ([`sweep`]).
//!
//! Image volumes are read-only: a mount asking for a writable one is refused (the CRI's
//! "runtimes SHOULD reject"). `image_sub_path` (a newer API field) is not in the `k8s-cri`
//! proto, so the whole image is mounted.

use std::collections::HashSet;

use anyhow::{Context, Result};
use k8s_cri::v1 as cri;
use strata_engine_containers::{MountSpec, NewContainer};
use strata_plugin_api::ErrorKind;
use strata_types::IdMap;

use crate::rpc::kinded;
use crate::server::Cri;

/// The store metadata key marking an image volume (its value names the container path).
pub const VOLUME_KEY: &str = "cri-image-volume";

/// Makes and mounts the volume for `m` (a mount with `image` set); returns its mount spec and
/// the volume's store container ID.
pub fn prepare(cri: &Cri, m: &cri::Mount, id_map: Option<&IdMap>) -> Result<(MountSpec, String)> {
    let spec = m
        .image
        .as_ref()
        .map(|i| i.image.as_str())
        .unwrap_or_default();
    let bad = |why: &str| {
        kinded(
            ErrorKind::InvalidArgument,
            format!("image volume at {}: {why}", m.container_path),
        )
    };
    if spec.is_empty() {
        return Err(bad("no image named"));
    }
    if !m.readonly {
        return Err(bad("image volumes are read-only: set readonly"));
    }
    if !m.host_path.is_empty() {
        return Err(bad("give an image or a host path, not both"));
    }
    let image = crate::container::image(cri, spec)?;
    let store = cri.engine.store();
    let rec = store
        .create_container(NewContainer {
            image: image.id.clone(),
            name: None,
            metadata: serde_json::json!({ VOLUME_KEY: { "destination": m.container_path } }),
            id_map: id_map.cloned(),
        })
        .with_context(|| format!("make the image volume of {spec}"))?;
    let path = match store.mount(&rec.id) {
        Ok(p) => p,
        Err(e) => {
            let _ = store.remove_container(&rec.id);
            return Err(anyhow::Error::new(e).context(format!("mount the image volume of {spec}")));
        }
    };
    Ok((
        MountSpec {
            kind: "bind".into(),
            source: path.display().to_string(),
            destination: m.container_path.clone(),
            read_only: true,
            options: vec!["rprivate".into()],
        },
        rec.id,
    ))
}

/// Mounts the volumes again where they are not (after a reboot); idempotent.
pub fn mount(cri: &Cri, ids: &[String]) -> Result<()> {
    for id in ids {
        cri.engine
            .store()
            .mount(id)
            .with_context(|| format!("mount image volume {id}"))?;
    }
    Ok(())
}

/// Unmounts and removes volumes (those already gone are skipped).
pub fn remove(cri: &Cri, ids: &[String]) -> Result<()> {
    for id in ids {
        match cri.engine.store().remove_container(id) {
            Ok(()) => {}
            Err(e) if e.kind == strata_types::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("remove image volume {id}")))
            }
        }
    }
    Ok(())
}

/// Removes the volumes no CRI container's record names (left by a server killed mid-create,
/// or by a container removed behind the server's back with `strata rm -f`).
pub fn sweep(cri: &Cri) -> Result<()> {
    let volumes = cri.engine.store().containers(&[VOLUME_KEY])?;
    if volumes.is_empty() {
        return Ok(());
    }
    let named: HashSet<String> = cri
        .index
        .all(cri)?
        .iter()
        .flat_map(|e| e.rec.image_volumes.iter().cloned())
        .collect();
    let orphans: Vec<String> = volumes
        .into_iter()
        .map(|v| v.id)
        .filter(|id| !named.contains(id))
        .collect();
    if !orphans.is_empty() {
        crate::log::info(format_args!(
            "removing {} image volume(s) no container uses",
            orphans.len()
        ));
        remove(cri, &orphans)?;
    }
    Ok(())
}
