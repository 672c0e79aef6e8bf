//! The only code in Strata that mounts and unmounts.
//!
//! Drivers describe mounts as plain data ([`strata_types::Mount`]); this crate performs
//! them with the new mount API: overlays through `fsopen`/`fsconfig`/`fsmount` with one
//! `lowerdir+` parameter per layer (chains of hundreds of layers mount; the legacy option page
//! fits about 140), binds through `open_tree`/`move_mount` (read-only ones are made read-only
//! before they are attached). It also unmounts ([`unmount`]), tells whether a path is a mount
//! point ([`is_mounted`]) and which mounts use a directory ([`mounts_using`]), and offers
//! [`MountGuard`], which unmounts on drop.
//!
//! What it deliberately does not do: choose mount points, record what is mounted (the kernel is
//! the record), set propagation, or create the target directory (callers own their targets).

mod bind;
mod block;
mod error;
pub mod fuse;
mod guard;
mod idmap;
mod mountinfo;
pub mod netns;
mod overlay;
mod setattr;
mod unmount;
pub mod userns;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_types::Mount;

pub use block::mount_block;
pub use error::MountError;
pub use fuse::{fuse_is_dead, fuse_server_binary};
pub use guard::MountGuard;
pub use idmap::{IdMap, IdRange, UserNs};
pub use mountinfo::{mounts_of_device, mounts_using};
pub use netns::{create_netns, remove_netns};
pub use unmount::{is_mounted, unmount, unmount_detach};
pub use userns::in_user_namespace;

/// Performs `m` at `target` (an existing directory). The new mount is stacked on whatever is
/// already mounted there.
pub fn mount(m: &Mount, target: &Path) -> Result<(), MountError> {
    mount_with_server(m, None, target).map(drop)
}

/// What a mount started besides the mount itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mounted {
    /// The pid of the FUSE server serving it (`FuseOverlay`), which ends when it is unmounted.
    pub fuse_server: Option<u32>,
}

/// Performs `m` at `target`, with `map` applied when given (see [`mount_idmapped`]), and says
/// which server process (if any) now serves it, for callers that record it.
pub fn mount_with_server(
    m: &Mount,
    map: Option<&IdMap>,
    target: &Path,
) -> Result<Mounted, MountError> {
    let plain = Mounted { fuse_server: None };
    match (m, map) {
        (
            Mount::FuseOverlay {
                lower,
                upper,
                work,
                options,
            },
            map,
        ) => {
            let opts = fuse::option_string(
                lower,
                upper.as_deref(),
                work.as_deref(),
                options,
                map,
                target,
            )?;
            let pid = fuse::mount_fuse_overlay(&opts, upper.is_none(), target)?;
            Ok(Mounted {
                fuse_server: Some(pid),
            })
        }
        (_, None) => mount_in(m, None, target).map(|()| plain),
        (_, Some(map)) if map.is_identity() => mount_in(m, None, target).map(|()| plain),
        (
            Mount::Overlay {
                lower,
                upper,
                work,
                options,
            },
            Some(map),
        ) if in_user_namespace() => {
            // The kernel idmaps only for the initial namespace's root: in a user's own
            // namespace the FUSE overlay applies the map over the same layers.
            let fuse = Mount::FuseOverlay {
                lower: lower.clone(),
                upper: upper.clone(),
                work: work.clone(),
                options: options
                    .iter()
                    .filter(|o| *o == "userxattr")
                    .cloned()
                    .collect(),
            };
            mount_with_server(&fuse, Some(map), target)
        }
        (_, Some(map)) => mount_idmapped_kernel(m, map, target).map(|()| plain),
    }
}

/// Whether mounting `m` with an id map applies the map inside the filesystem (the FUSE
/// overlay), so that files a container writes are stored with its own (image) ids; otherwise
/// (kernel idmapped layers) they land in the upper directory with its host ids.
pub fn maps_ids_in_filesystem(m: &Mount) -> bool {
    match m {
        Mount::FuseOverlay { .. } => true,
        Mount::Overlay { .. } => in_user_namespace(),
        Mount::Bind { .. } => false,
    }
}

/// Performs `m` at `target` with every layer idmapped by `map`, for a container in its own user
/// namespace (see the `idmap` module). An identity map mounts plainly.
pub fn mount_idmapped(m: &Mount, map: &IdMap, target: &Path) -> Result<(), MountError> {
    mount_with_server(m, Some(map), target).map(drop)
}

fn mount_idmapped_kernel(m: &Mount, map: &IdMap, target: &Path) -> Result<(), MountError> {
    if let Mount::Overlay {
        upper: Some(upper), ..
    } = m
    {
        // The container's root directory is the upper directory's root: hand it to the
        // container's root user (a fresh one belongs to host root, which the map cannot show).
        let meta = std::fs::metadata(upper).map_err(MountError::io("stat", upper))?;
        if (meta.uid(), meta.gid()) == (0, 0) {
            let (uid, gid) = (map.host_uid(0), map.host_gid(0));
            std::os::unix::fs::chown(upper, uid, gid).map_err(MountError::io("chown", upper))?;
        }
    }
    let ns = UserNs::new(map)?;
    mount_in(m, Some(&ns), target)
}

fn mount_in(m: &Mount, idmap: Option<&UserNs>, target: &Path) -> Result<(), MountError> {
    match m {
        Mount::Bind { source, read_only } => bind::mount_bind(source, *read_only, idmap, target),
        Mount::Overlay {
            lower,
            upper,
            work,
            options,
        } => overlay::mount_overlay(
            overlay::OverlaySpec {
                lower,
                upper: upper.as_deref(),
                work: work.as_deref(),
                options,
                idmap,
            },
            target,
        ),
        Mount::FuseOverlay { .. } => mount_with_server(m, None, target).map(drop),
    }
}

/// Performs `mounts` in order, all at `target` (each stacks on the previous one; drivers
/// return one mount today). If one fails, the ones already made are unmounted again.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount(m, target) {
            for _ in 0..i {
                if let Err(u) = unmount(target) {
                    tracing::warn!(target = %target.display(), error = %u, "cannot undo a partial mount");
                }
            }
            return Err(e);
        }
    }
    Ok(())
}
