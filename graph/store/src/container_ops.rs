//! Container operations: create, mount, unmount, diff, changes, metadata and remove (commit
//! is in `commit.rs`).
//!
//! Ordering keeps the "row implies payload" invariant: `create` makes the read-write layer
//! before inserting the row; `remove` unmounts, deletes the row, then removes the payload.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use strata_graph_archive::{write_changes, write_changes_with_owners};
use strata_types::{ChangeKind, ContainerId, Digest, IdMap};

use crate::blobs::random_hex;
use crate::containers::{validate_name, Container};
use crate::error::{Result, StoreError};
use crate::meta::now;
use crate::paths::container_key;
use crate::store::Store;

/// The id the kernel shows for an id a user namespace cannot map (`/proc/sys/kernel/overflowuid`).
const OVERFLOW_ID: u32 = 65534;

/// Options for [`Store::create_container`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The container's name; defaults to its short ID.
    pub name: Option<String>,
    /// Front-end metadata, stored verbatim.
    pub metadata: Option<serde_json::Value>,
    /// A user-namespace map for a container in its own user namespace (`--userns auto`):
    /// its mounts then idmap the image layers, and its diff maps owners back.
    pub id_map: Option<IdMap>,
}

impl Store {
    /// Creates a container from `image`: a new read-write layer on top of the image's layers.
    pub fn create_container(&self, image: &str, opts: CreateOptions) -> Result<Container> {
        let img = self.image(image)?;
        let id = ContainerId::parse(&random_hex(32)).expect("64 random hex digits");
        let name = opts.name.unwrap_or_else(|| id.short().to_owned());
        validate_name(&name)?;
        let _gc = self.gc_shared()?;
        let parents = self.meta.read(|tx| {
            if tx.container_name_taken(&name)? {
                return Err(StoreError::AlreadyExists {
                    what: "container",
                    name: name.clone(),
                });
            }
            Store::chain_keys(tx, img.top_layer.as_ref())
        })?;
        let key = container_key(&id);
        self.driver.create_writable(&key, &parents)?;
        for dir in [
            self.paths.container_dir(&id),
            self.paths.container_rundir(&id),
        ] {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                let _ = self.driver.remove(&key);
                return Err(StoreError::io("create container directory", &dir)(e));
            }
        }
        let c = Container {
            id,
            name,
            image: img.id.clone(),
            parent_layer: img.top_layer.clone(),
            created: now(),
            metadata: opts.metadata.unwrap_or_else(|| serde_json::json!({})),
            id_map: opts.id_map.filter(|m| !m.is_identity()),
        };
        if let Err(e) = self.meta.write_additive(|tx| {
            if tx.image(&img.id)?.is_none() {
                return Err(StoreError::not_found("image", image));
            }
            tx.insert_container(&c)
        }) {
            let _ = self.driver.remove(&key);
            let _ = self.remove_container_dirs(&c.id);
            return Err(e);
        }
        tracing::info!(container = %c.id.short(), name = %c.name, "container created");
        Ok(c)
    }

    /// Mounts a container's root filesystem (idempotent) and returns the mount point.
    pub fn mount(&self, name: &str) -> Result<PathBuf> {
        let c = self.container(name)?;
        let target = self.paths.mountpoint(&c.id);
        if strata_mount::is_mounted(&target)? {
            if !strata_mount::fuse_is_dead(&target) {
                return Ok(target);
            }
            // Its FUSE server died (killed, crashed): the mount answers nothing but ENOTCONN.
            tracing::warn!(container = %c.id.short(), "the filesystem server of this container's mount died; mounting it again");
            self.unmount_container(&c)?;
        }
        let parents = self
            .meta
            .read(|tx| Store::chain_keys(tx, c.parent_layer.as_ref()))?;
        let mounts = self.driver.mounts(&container_key(&c.id), &parents, true);
        std::fs::create_dir_all(&target).map_err(StoreError::io("create mount point", &target))?;
        for m in &mounts {
            let done = strata_mount::mount_with_server(m, c.id_map.as_ref(), &target)?;
            if let Some(pid) = done.fuse_server {
                let record = self.paths.mount_server(&c.id);
                std::fs::write(&record, format!("{pid}\n"))
                    .map_err(StoreError::io("record the mount's server", &record))?;
            }
        }
        tracing::info!(container = %c.id.short(), target = %target.display(), "mounted");
        Ok(target)
    }

    /// Unmounts a container's root filesystem if it is mounted.
    pub fn unmount(&self, name: &str) -> Result<()> {
        let c = self.container(name)?;
        self.unmount_container(&c)
    }

    pub(crate) fn unmount_container(&self, c: &Container) -> Result<()> {
        let target = self.paths.mountpoint(&c.id);
        while strata_mount::is_mounted(&target)? {
            strata_mount::unmount(&target)?;
        }
        self.wait_for_mount_server(&c.id);
        match std::fs::remove_dir(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("remove mount point", &target)(e))
            }
            _ => Ok(()),
        }
    }

    /// After an unmount, waits (briefly) for the FUSE server that served the mount to finish,
    /// so that the container's upper directory is quiet before it is read or removed.
    fn wait_for_mount_server(&self, c: &ContainerId) {
        let record = self.paths.mount_server(c);
        let Ok(text) = std::fs::read_to_string(&record) else {
            return;
        };
        if let Ok(pid) = text.trim().parse::<u32>() {
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let is_server = || {
                std::fs::read(proc_dir.join("cmdline")).is_ok_and(|c| {
                    c.split(|b| *b == 0)
                        .next()
                        .is_some_and(|argv0| argv0.ends_with(b"strata-fuse-overlay"))
                })
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while is_server() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let _ = std::fs::remove_file(&record);
    }

    /// Removes a container (unmounting it first).
    pub fn remove_container(&self, name: &str) -> Result<Container> {
        let c = self.container(name)?;
        let _gc = self.gc_shared()?;
        self.unmount_container(&c)?;
        if self.trash.deferred() {
            // The row goes now (unsynced); the payload once the collector has made that
            // durable (see trash.rs).
            self.meta.delete_unsynced(|tx| tx.delete_container(&c.id))?;
            match self.trash.note_container(&c.id) {
                Ok(()) => self.trash.wake(),
                Err(e) => {
                    tracing::warn!("cannot defer the deletion ({e}): deleting now");
                    self.meta.sync()?;
                    self.driver.remove(&container_key(&c.id))?;
                    self.remove_container_dirs(&c.id)?;
                }
            }
        } else {
            self.meta.write_freeing(|tx| tx.delete_container(&c.id))?;
            self.driver.remove(&container_key(&c.id))?;
            self.remove_container_dirs(&c.id)?;
        }
        // If the deletion needed the space reserve, the space it freed makes it again.
        self.meta.ensure_reserve();
        tracing::info!(container = %c.id.short(), "container removed");
        Ok(c)
    }

    /// A container's persistent directory (see `paths.rs`), for its front end's files.
    pub fn container_dir(&self, c: &ContainerId) -> PathBuf {
        self.paths.container_dir(c)
    }

    /// A container's volatile directory on the runroot.
    pub fn container_rundir(&self, c: &ContainerId) -> PathBuf {
        self.paths.container_rundir(c)
    }

    pub(crate) fn remove_container_dirs(&self, c: &ContainerId) -> Result<()> {
        for dir in [self.paths.container_dir(c), self.paths.container_rundir(c)] {
            // A process that was writing there as the container ended (its monitor's exit
            // command saving the state) can add a file while the tree goes: try again.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 5 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20 << tries));
                    }
                    Err(e) => return Err(StoreError::io("remove container directory", &dir)(e)),
                    Ok(()) => break,
                }
            }
        }
        Ok(())
    }

    /// Writes the container's changes as an uncompressed OCI layer tar. Returns its digest
    /// (the diff ID it would have as a layer) and size.
    pub fn diff(&self, name: &str, out: impl Write) -> Result<(Digest, u64)> {
        let c = self.container(name)?;
        let key = container_key(&c.id);
        let parents = self
            .meta
            .read(|tx| Store::chain_keys(tx, c.parent_layer.as_ref()))?;
        let changes = self.driver.changes(&key, &parents)?;
        let source = self.driver.changes_source(&key);
        // A filesystem that applies the map itself (the FUSE overlay) stores image ids;
        // kernel idmapped layers leave the container's host ids in the upper directory.
        let mapped_on_disk = c.id_map.as_ref().filter(|_| {
            !self
                .driver
                .mounts(&key, &parents, true)
                .first()
                .is_some_and(strata_mount::maps_ids_in_filesystem)
        });
        let written = match mapped_on_disk {
            None => write_changes(&changes, &source, out),
            Some(map) => {
                // The container wrote with its host ids; the layer records image ids. An id the
                // map cannot show is what the container saw it as: the overflow id.
                let back = |uid, gid| {
                    (
                        map.container_uid(uid).unwrap_or(OVERFLOW_ID),
                        map.container_gid(gid).unwrap_or(OVERFLOW_ID),
                    )
                };
                write_changes_with_owners(&changes, &source, &back, out)
            }
        };
        written.map_err(|source| StoreError::Archive {
            layer: format!("container {}", c.id.short()),
            source,
        })
    }

    /// The container's changes relative to its image, as `podman diff` lists them, sorted by
    /// path. A modified path is "added" (`'A'`) when the image has nothing there and
    /// "changed" (`'C'`) when it does; deletions are `'D'`.
    pub fn changes(&self, name: &str) -> Result<Vec<ContainerChange>> {
        let c = self.container(name)?;
        let key = container_key(&c.id);
        let parents = self
            .meta
            .read(|tx| Store::chain_keys(tx, c.parent_layer.as_ref()))?;
        let source = self.driver.changes_source(&key);
        let mut lowers: Vec<PathBuf> = parents.iter().map(|p| self.driver.diff_dir(p)).collect();
        // Overlay-style drivers (those that stage layers in parallel) keep only each layer's
        // own changes, so every lower layer is looked at, nearest first; a full-copy driver's
        // direct parent already holds the image's whole tree.
        if !self.driver.parallel_stage() {
            lowers.truncate(1);
        }
        let mut out = Vec::new();
        for ch in self.driver.changes(&key, &parents)? {
            let (kind, size) = if ch.kind == ChangeKind::Deleted {
                ('D', 0)
            } else {
                let kind = if in_lowers(&lowers, &ch.path)? {
                    'C'
                } else {
                    'A'
                };
                (kind, content_size(&source.join(&ch.path)))
            };
            out.push(ContainerChange {
                path: ch.path,
                kind,
                size,
            });
        }
        Ok(out)
    }

    /// Sets (or with `null` removes) one top-level key of a container's metadata, leaving the
    /// others as they are; returns the container as it now is.
    pub fn set_container_metadata(
        &self,
        name: &str,
        key: &str,
        value: serde_json::Value,
    ) -> Result<Container> {
        if key.is_empty() {
            return Err(StoreError::Invalid("a metadata key cannot be empty".into()));
        }
        let c = self.container(name)?;
        self.meta.write(|tx| {
            let mut current = tx
                .container(&c.id)?
                .ok_or_else(|| StoreError::not_found("container", name.to_owned()))?;
            if !current.metadata.is_object() {
                current.metadata = serde_json::json!({});
            }
            let obj = current
                .metadata
                .as_object_mut()
                .expect("made an object above");
            if value.is_null() {
                obj.remove(key);
            } else {
                obj.insert(key.to_owned(), value);
            }
            tx.update_container_metadata(&current.id, &current.metadata)?;
            Ok(current)
        })
    }
}

/// One path a container changed ([`Store::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChange {
    /// Relative to the container's root, without a leading `/`.
    pub path: PathBuf,
    /// `'A'` added, `'C'` changed, `'D'` deleted.
    pub kind: char,
    /// Bytes of the new content for regular files and symbolic links (0 otherwise).
    pub size: u64,
}

fn content_size(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file() || m.file_type().is_symlink())
        .map_or(0, |m| m.len())
}

/// Whether `rel` exists in the tree the lower layers (nearest first) make together.
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> Result<bool> {
    for layer in lowers {
        match look_up(layer, rel)? {
            Seen::Present => return Ok(true),
            Seen::Hidden => return Ok(false),
            Seen::Absent => {}
        }
    }
    Ok(false)
}

enum Seen {
    /// The layer has the path.
    Present,
    /// The layer hides the path and everything below it (whiteout, opaque directory, or a
    /// non-directory where a parent directory would be).
    Hidden,
    /// The layer says nothing about it: look further down.
    Absent,
}

fn look_up(layer: &Path, rel: &Path) -> Result<Seen> {
    let parts: Vec<_> = rel.components().collect();
    let mut cur = layer.to_path_buf();
    let mut opaque_above = false;
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        let m = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(if opaque_above {
                    Seen::Hidden
                } else {
                    Seen::Absent
                })
            }
            Err(e) => return Err(StoreError::io("look up", &cur)(e)),
        };
        if is_whiteout(&cur, &m) {
            return Ok(Seen::Hidden);
        }
        if i + 1 == parts.len() {
            return Ok(Seen::Present);
        }
        if !m.is_dir() {
            return Ok(Seen::Hidden);
        }
        opaque_above |= has_xattr(
            &cur,
            &["trusted.overlay.opaque", "user.overlay.opaque"],
            Some(b"y"),
        );
    }
    Ok(Seen::Present)
}

/// Overlay whiteouts: a 0:0 character device, or (in a user namespace) an empty file marked
/// with an `overlay.whiteout` xattr. Full-copy drivers have none.
fn is_whiteout(path: &Path, m: &std::fs::Metadata) -> bool {
    let ft = m.file_type();
    (ft.is_char_device() && m.rdev() == 0)
        || (ft.is_file()
            && m.len() == 0
            && has_xattr(
                path,
                &["trusted.overlay.whiteout", "user.overlay.whiteout"],
                None,
            ))
}

fn has_xattr(path: &Path, names: &[&str], want: Option<&[u8]>) -> bool {
    let mut buf = [0u8; 8];
    names.iter().any(|name| {
        matches!(rustix::fs::lgetxattr(path, *name, &mut buf),
            Ok(n) if want.is_none_or(|w| &buf[..n] == w))
    })
}
