//! A container's root filesystem, reached from the host for `cp` and `export`: running
//! containers are already mounted; stopped ones are mounted through the store for the
//! duration of the command and unmounted afterwards, unless someone else had mounted them
//! (`strata storage mount`), in which case the mount is left as it was.
//!
//! While a stopped container is mounted here its state lock is held, so a concurrent `start`
//! waits instead of running on a mount this command is about to take away. Running
//! containers are not locked: their monitor's cleanup needs the lock when they end.
//!
//! What it does not do: pause a running container (files may change while they are read,
//! as with podman's `cp` and `export` without `--pause`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use strata_engine_containers::state::Lock;
use strata_engine_containers::Container;
use strata_plugin_api::StoreClient;

use crate::context::Ctx;
use crate::errors::call;

/// A mounted container root; unmounted on drop if this command mounted it.
#[derive(Debug)]
pub struct Rootfs<'e> {
    store: StoreClient,
    id: String,
    path: PathBuf,
    unmount: bool,
    /// The engine's record of the container, if it has one.
    pub container: Option<Container<'e>>,
    _lock: Option<Lock>,
}

impl<'e> Rootfs<'e> {
    /// Mounts (if needed) the root of container `name` (any container of the store).
    pub fn open(ctx: &'e Ctx<'_>, name: &str) -> Result<Rootfs<'e>> {
        let info = ctx.engine.store().container(name)?;
        let id = info.id.clone();
        let container = Container::from_record(&ctx.engine, info).ok();
        let mut lock = None;
        let mut running = false;
        if let Some(c) = &container {
            lock = c.hold_unless_running()?;
            running = lock.is_none();
        }
        let was_mounted = ctx.engine.is_mounted(&id);
        let path = PathBuf::from(ctx.store.mount(&id).map_err(call)?);
        let unmount = !was_mounted && !running;
        Ok(Rootfs {
            store: ctx.store,
            id,
            path,
            unmount,
            container,
            _lock: lock,
        })
    }

    /// Opens the root directory, for `openat2(RESOLVE_IN_ROOT)` lookups. Close it before
    /// this guard drops (declare it after the guard): an open directory keeps the mount busy.
    pub fn open_dir(&self) -> Result<OwnedFd> {
        rustix::fs::open(
            &self.path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", self.path.display()))
    }

    /// Where it is mounted on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Rootfs<'_> {
    fn drop(&mut self) {
        if self.unmount {
            if let Err(e) = self.store.unmount(&self.id) {
                tracing::warn!(container = %self.id, error = %e, "could not unmount the container");
            }
        }
    }
}
