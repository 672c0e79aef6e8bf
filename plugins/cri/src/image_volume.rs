//! Image volumes (the kubelet's `image` volume source, a CRI `Mount` with `image` set): an
//! image's file tree mounted read-only into a container, as CRI-O does it. Each volume is a
//! store container of the image (metadata key [`VOLUME_KEY`], no engine record, so `strata
//! ps` and the CRI lists leave it out), mounted by the store and bind-mounted read-only (not
//! `noexec`) at the container path. The CRI container's record lists its volumes; they are
//! mounted again before a start (after a reboot) and removed with the container or its pod.
//! A server killed between making a volume and recording its container, or a removal that
//! failed half-way, leaves a volume no record names: [`sweep`] removes those, at server
//! start and after the removal of a pod that had some (under `Cri::volumes`, which a create
//! holds while it makes volumes, so a volume being made is never taken for a leftover).
//!
//! Image volumes are read-only: a mount asking for a writable one is refused (the CRI's
//! "runtimes SHOULD reject"). A mount's `image_sub_path` (newer than the `k8s-cri` proto: the
//! server reads it from the request's bytes, `newer.rs`) mounts that path of the image,
//! resolved inside it; a sub path the image lacks fails the create.

use std::collections::HashSet;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

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
/// the volume's store container ID. A non-empty `sub_path` (the mount's `image_sub_path`)
/// mounts that path of the image instead of its root; it must exist.
pub fn prepare(
    cri: &Cri,
    m: &cri::Mount,
    sub_path: &str,
    id_map: Option<&IdMap>,
) -> Result<(MountSpec, String)> {
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
    let sub = Path::new(sub_path);
    if sub.is_absolute() || sub.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad(&format!(
            "the sub path {sub_path:?} must be relative and stay inside the image"
        )));
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
    let mounted = store
        .mount(&rec.id)
        .map_err(|e| anyhow::Error::new(e).context(format!("mount the image volume of {spec}")))
        .and_then(|root| {
            if sub_path.is_empty() {
                Ok(root)
            } else {
                inside(&root, sub_path)
                    .map_err(|e| e.context(format!("image volume at {}", m.container_path)))
            }
        });
    let path = match mounted {
        Ok(p) => p,
        Err(e) => {
            let _ = store.remove_container(&rec.id);
            return Err(e);
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

/// Where `sub_path` of the image mounted at `root` really is, its symlinks resolved inside
/// the image (`openat2` with `RESOLVE_IN_ROOT`, so a link to `/` means the image's root).
fn inside(root: &Path, sub_path: &str) -> Result<PathBuf> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root.display()))?;
    let fd = match openat2(
        &dir,
        sub_path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
            return Err(kinded(
                ErrorKind::NotFound,
                format!("the sub path {sub_path:?} is not in the image"),
            ))
        }
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("open the sub path {sub_path:?}"))
        }
    };
    let real_path = |fd: &rustix::fd::OwnedFd| -> Result<PathBuf> {
        let link = rustix::fs::readlinkat(
            CWD,
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)),
            Vec::new(),
        )
        .context("read where the sub path is")?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            link.into_bytes(),
        )))
    };
    let real = real_path(&fd)?;
    // RESOLVE_IN_ROOT keeps it inside; checked again as the bind source is a path (against
    // the root as the kernel names it: the store's path may go through symlinks).
    if !real.starts_with(real_path(&dir)?) {
        return Err(kinded(
            ErrorKind::InvalidArgument,
            format!("the sub path {sub_path:?} leaves the image"),
        ));
    }
    Ok(real)
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
    let _making = cri.volumes.lock().unwrap_or_else(|p| p.into_inner());
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
