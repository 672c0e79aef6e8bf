//! Copy-up: making a lower file (and its directories) part of the upper layer before it
//! changes, whiteouts, and renames.
//!
//! A copy is built under the work directory (same filesystem as the upper) with the file's
//! data (a reflink where the filesystem can, else `copy_file_range`), owner, mode, xattrs
//! (except the overlay's own) and times, then renamed into place, so a crash never leaves a
//! half-copied file in the upper layer; the next server clears the work directory.
//!
//! Hardlinks stay together: copying up a lower file with other names copies it once and links
//! every other name of it that the merged view shows from that layer (found by scanning the
//! layer), as the kernel's overlay does with its index.
//!
//! Renaming a directory that has lower content copies its whole merged subtree up first and
//! marks the copies opaque. The kernel's overlay records such renames as redirect xattrs
//! instead; Strata's layer format (the OCI diff of the upper directory, and kernel overlay
//! mounts without `redirect_dir`) has no place for them, so the copy is what keeps the upper
//! directory a correct, self-contained diff.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use strata_driver_overlay::metacopy;

use crate::fs::{clear_whiteouts, key_of, Fs, RenameMode};
use crate::layers::{dot, is_private_xattr, Found};
use crate::tree::{Ino, ROOT};

impl Fs {
    /// Copies a node (and its directories) up, if it is not in the upper layer yet.
    pub(crate) fn copy_up(&self, ino: Ino) -> Result<(), Errno> {
        self.layers.upper()?;
        let (node, path) = self.node(ino)?;
        if node.layer == 0 {
            if node.data.is_some() {
                self.complete(ino, &path)?;
            }
            return Ok(());
        }
        self.copy_up_path(&path)
    }

    /// Copies a node up for a change of metadata only: a lower regular file with one name
    /// becomes a metadata-only copy (see `strata_driver_overlay::metacopy`); anything else is
    /// copied whole.
    pub(crate) fn copy_up_meta(&self, ino: Ino) -> Result<(), Errno> {
        self.layers.upper()?;
        let (node, path) = self.node(ino)?;
        if node.layer == 0 {
            return Ok(());
        }
        let st = self.layers.stat(node.layer, &path)?;
        #[allow(clippy::unnecessary_cast)]
        let single =
            FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink as u64 == 1;
        if !single || self.work.is_none() {
            return self.copy_up_path(&path);
        }
        if let Some(parent) = path.parent() {
            self.copy_up_path(parent)?;
        }
        let found = Found {
            layer: node.layer,
            stat: st,
            dir_layers: Vec::new(),
        };
        self.copy_one(&path, &found, false)
    }

    /// Gives a metadata-only copy its data.
    fn complete(&self, ino: Ino, path: &Path) -> Result<(), Errno> {
        let work = self.work.as_ref().ok_or(Errno::ROFS)?;
        metacopy::complete(&self.layers.dirs[0].abs(path), &work.path)?;
        let ust = self.layers.stat(0, path)?;
        self.tree().add_key(ino, key_of(&ust));
        if let Some(n) = self.tree().get_mut(ino) {
            n.data = None;
        }
        Ok(())
    }

    fn root_layers(&self) -> Vec<usize> {
        self.tree()
            .get(ROOT)
            .map(|n| n.dir_layers.clone())
            .unwrap_or_default()
    }

    /// What the merged view shows at `rel`.
    pub(crate) fn resolve(&self, rel: &Path) -> Result<Option<Found>, Errno> {
        let mut dir_layers = self.root_layers();
        let mut prefix = PathBuf::new();
        let mut found = None;
        for c in rel.components() {
            prefix.push(c);
            match self.layers.probe(&dir_layers, &prefix)? {
                Some(f) => {
                    dir_layers.clone_from(&f.dir_layers);
                    found = Some(f);
                }
                None => return Ok(None),
            }
        }
        Ok(found)
    }

    /// Copies `rel` and every directory above it into the upper layer.
    pub(crate) fn copy_up_path(&self, rel: &Path) -> Result<(), Errno> {
        let mut dir_layers = self.root_layers();
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            prefix.push(c);
            let found = self
                .layers
                .probe(&dir_layers, &prefix)?
                .ok_or(Errno::NOENT)?;
            dir_layers.clone_from(&found.dir_layers);
            if found.layer != 0 {
                self.copy_one(&prefix, &found, true)?;
                if !dir_layers.is_empty() {
                    dir_layers.insert(0, 0);
                }
            }
        }
        Ok(())
    }

    fn tmp_name(&self) -> PathBuf {
        PathBuf::from(format!(
            "copy-{}-{}",
            std::process::id(),
            self.tmp_seq.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Copies the single entry `rel` (its parent is already in the upper layer); a regular
    /// file without its data (a metadata-only copy) unless `data`.
    fn copy_one(&self, rel: &Path, found: &Found, data: bool) -> Result<(), Errno> {
        let work = self.work.as_ref().ok_or(Errno::ROFS)?;
        let upper = self.layers.upper()?;
        let src_layer = &self.layers.dirs[found.layer];
        let st = &found.stat;
        let kind = FileType::from_raw_mode(st.st_mode);
        let tmp = self.tmp_name();
        let made = (|| {
            match kind {
                FileType::Directory => {
                    rustix::fs::mkdirat(&work.fd, &tmp, Mode::from_raw_mode(0o700))?;
                }
                FileType::RegularFile => {
                    let src = rustix::fs::openat(
                        &src_layer.fd,
                        dot(rel),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    let dst = rustix::fs::openat(
                        &work.fd,
                        &tmp,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )?;
                    if data {
                        metacopy::copy_data(&src, &dst)?;
                    } else {
                        let from = src_layer.abs(rel);
                        rustix::fs::fsetxattr(
                            &dst,
                            metacopy::xattr(self.layers.userxattr),
                            from.as_os_str().as_encoded_bytes(),
                            rustix::fs::XattrFlags::empty(),
                        )?;
                    }
                }
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&src_layer.fd, dot(rel), Vec::new())?;
                    rustix::fs::symlinkat(target.as_c_str(), &work.fd, &tmp)?;
                }
                other => {
                    #[allow(clippy::unnecessary_cast)]
                    rustix::fs::mknodat(
                        &work.fd,
                        &tmp,
                        other,
                        Mode::from_raw_mode(0o600),
                        st.st_rdev as u64,
                    )?;
                }
            }
            copy_meta(&src_layer.abs(rel), &work.fd, &work.abs(&tmp), &tmp, st)?;
            rustix::fs::renameat_with(&work.fd, &tmp, &upper.fd, rel, RenameFlags::NOREPLACE)
        })();
        if let Err(e) = made {
            let flags = if kind == FileType::Directory {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            let _ = rustix::fs::unlinkat(&work.fd, &tmp, flags);
            return Err(e);
        }
        let ust = self.layers.stat(0, rel)?;
        {
            let mut t = self.tree();
            if let Some(ino) = t.at_path(rel).or_else(|| t.by_key(key_of(st))) {
                t.add_key(ino, key_of(&ust));
                if let Some(n) = t.get_mut(ino) {
                    n.layer = 0;
                    n.data = (!data && kind == FileType::RegularFile).then(|| src_layer.abs(rel));
                    if n.is_dir && n.dir_layers.first() != Some(&0) {
                        n.dir_layers.insert(0, 0);
                    }
                }
            }
        }
        #[allow(clippy::unnecessary_cast)]
        if data && kind == FileType::RegularFile && st.st_nlink as u64 > 1 {
            self.link_other_names(rel, found.layer, st)?;
        }
        Ok(())
    }

    /// Links, in the upper layer, every other name under which the merged view shows the
    /// lower file just copied up to `rel`.
    fn link_other_names(&self, rel: &Path, layer: usize, st: &Stat) -> Result<(), Errno> {
        let root = self.layers.dirs[layer].path.clone();
        let key = key_of(st);
        let mut others = Vec::new();
        for e in walkdir::WalkDir::new(&root)
            .same_file_system(true)
            .into_iter()
            .flatten()
        {
            use std::os::unix::fs::MetadataExt;
            if !e.file_type().is_file() {
                continue;
            }
            let Ok(m) = e.metadata() else { continue };
            if (m.dev(), m.ino()) != key {
                continue;
            }
            if let Ok(r) = e.path().strip_prefix(&root) {
                if r != rel {
                    others.push(r.to_path_buf());
                }
            }
        }
        let upper = &self.layers.upper()?.fd;
        for other in others {
            let shown = self.resolve(&other)?;
            if !shown.is_some_and(|f| f.layer == layer && key_of(&f.stat) == key) {
                continue;
            }
            if let Some(parent) = other.parent() {
                self.copy_up_path(parent)?;
            }
            rustix::fs::linkat(upper, rel, upper, &other, AtFlags::empty())?;
            let ust = self.layers.stat(0, &other)?;
            let mut t = self.tree();
            if let Some(ino) = t.at_path(&other) {
                t.add_key(ino, key_of(&ust));
                if let Some(n) = t.get_mut(ino) {
                    n.layer = 0;
                }
            }
        }
        Ok(())
    }

    /// Puts a whiteout at `rel` in the upper layer (its directory is there already).
    pub(crate) fn make_whiteout(&self, rel: &Path) -> Result<(), Errno> {
        let upper = &self.layers.upper()?.fd;
        match rustix::fs::mknodat(upper, rel, FileType::CharacterDevice, Mode::empty(), 0) {
            Ok(()) => Ok(()),
            Err(Errno::PERM) if self.layers.userxattr => {
                let fd = rustix::fs::openat(
                    upper,
                    rel,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                drop(fd);
                rustix::fs::lsetxattr(
                    self.layers.dirs[0].abs(rel),
                    "user.overlay.whiteout",
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
            }
            Err(e) => Err(e),
        }
    }

    fn set_opaque(&self, rel: &Path) -> Result<(), Errno> {
        rustix::fs::lsetxattr(
            self.layers.dirs[0].abs(rel),
            self.layers.opaque_xattr(),
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
    }

    /// Copies a whole merged directory tree up and makes every directory of it opaque.
    fn materialize(&self, rel: &Path) -> Result<(), Errno> {
        self.copy_up_path(rel)?;
        let found = self.resolve(rel)?.ok_or(Errno::NOENT)?;
        for ent in self.layers.merged(&found.dir_layers, rel)? {
            let child = rel.join(&ent.name);
            if ent.kind == FileType::Directory {
                self.materialize(&child)?;
            } else {
                self.copy_up_path(&child)?;
            }
        }
        self.set_opaque(rel)
    }

    pub(crate) fn rename_locked(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        mode: RenameMode,
    ) -> Result<(), Errno> {
        let (noreplace, exchange) = (mode == RenameMode::NoReplace, mode == RenameMode::Exchange);
        let (pnode, ppath) = self.node(parent)?;
        let (npnode, nppath) = self.node(new_parent)?;
        if !pnode.is_dir || !npnode.is_dir {
            return Err(Errno::NOTDIR);
        }
        let src_rel = ppath.join(name);
        let dst_rel = nppath.join(new_name);
        let src = self
            .layers
            .probe(&pnode.dir_layers, &src_rel)?
            .ok_or(Errno::NOENT)?;
        let dst = self.layers.probe(&npnode.dir_layers, &dst_rel)?;
        let is_dir = |f: &Found| FileType::from_raw_mode(f.stat.st_mode) == FileType::Directory;
        let src_dir = is_dir(&src);
        let upper = &self.layers.upper()?.fd;
        let src_lower = self.layers.lower_has(&pnode.dir_layers, &src_rel)?;
        let dst_lower = self.layers.lower_has(&npnode.dir_layers, &dst_rel)?;
        if exchange {
            let dst = dst.ok_or(Errno::NOENT)?;
            // Both sides must live in the upper layer alone; anything else would need
            // whiteouts and copies on both sides at once. EXDEV asks the caller to copy.
            let pure = |f: &Found| f.layer == 0 && f.dir_layers.len() <= 1;
            if !pure(&src) || !pure(&dst) || src_lower || dst_lower {
                return Err(Errno::XDEV);
            }
            rustix::fs::renameat_with(upper, &src_rel, upper, &dst_rel, RenameFlags::EXCHANGE)?;
            let mut t = self.tree();
            let a = t.remove_name(parent, name);
            let b = t.remove_name(new_parent, new_name);
            if let Some(a) = a {
                t.place(a, new_parent, new_name);
            }
            if let Some(b) = b {
                t.place(b, parent, name);
            }
            return Ok(());
        }
        if let Some(d) = &dst {
            if noreplace {
                return Err(Errno::EXIST);
            }
            if key_of(&d.stat) == key_of(&src.stat) {
                return Ok(()); // two names of one file: rename does nothing
            }
            match (src_dir, is_dir(d)) {
                (true, false) => return Err(Errno::NOTDIR),
                (false, true) => return Err(Errno::ISDIR),
                (true, true) if !self.layers.merged(&d.dir_layers, &dst_rel)?.is_empty() => {
                    return Err(Errno::NOTEMPTY);
                }
                _ => {}
            }
        }
        if src_dir && src.dir_layers.iter().any(|&l| l != 0) {
            self.materialize(&src_rel)?;
        } else {
            self.copy_up_path(&src_rel)?;
        }
        self.copy_up_path(&nppath)?;
        // Clear the way in the upper layer: a whiteout, or an empty (merged) directory that
        // still holds whiteouts.
        match self.layers.stat(0, &dst_rel) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                clear_whiteouts(&self.layers, &dst_rel)?;
            }
            Ok(st) if self.layers.is_whiteout(0, &dst_rel, &st) => {
                rustix::fs::unlinkat(upper, &dst_rel, AtFlags::empty())?;
            }
            _ => {}
        }
        let done = if src_lower {
            rustix::fs::renameat_with(upper, &src_rel, upper, &dst_rel, RenameFlags::WHITEOUT)
        } else {
            Err(Errno::INVAL)
        };
        if let Err(e) = done {
            if src_lower && !matches!(e, Errno::INVAL | Errno::PERM) {
                return Err(e);
            }
            rustix::fs::renameat(upper, &src_rel, upper, &dst_rel)?;
            if src_lower {
                self.make_whiteout(&src_rel)?;
            }
        }
        if src_dir && dst_lower {
            self.set_opaque(&dst_rel)?;
        }
        let mut t = self.tree();
        // A replaced upper file with no other link is gone: its inode number may be reused.
        if let Some(d) = &dst {
            #[allow(clippy::unnecessary_cast)]
            if d.layer == 0 && (is_dir(d) || d.stat.st_nlink as u64 <= 1) {
                t.drop_key(key_of(&d.stat));
            }
        }
        t.rename(parent, name, new_parent, new_name);
        if src_dir {
            if let Some(moved) = t.child(new_parent, new_name) {
                for ino in t.ids() {
                    if t.is_within(ino, moved) {
                        if let Some(n) = t.get_mut(ino) {
                            n.layer = 0;
                            if n.is_dir {
                                n.dir_layers = vec![0];
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Gives the copy at `dst_rel` (in `dst_dir`, absolute `dst_abs`) the owner, mode, xattrs and
/// times of the original (`src_abs`, stat `st`). Owner first: chown clears set-id bits and
/// file capabilities, which the mode and xattrs then restore.
fn copy_meta(
    src_abs: &Path,
    dst_dir: &OwnedFd,
    dst_abs: &Path,
    dst_rel: &Path,
    st: &Stat,
) -> Result<(), Errno> {
    rustix::fs::chownat(
        dst_dir,
        dst_rel,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::Symlink {
        rustix::fs::chmodat(
            dst_dir,
            dst_rel,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    for name in crate::layers::list_xattrs(src_abs)? {
        if is_private_xattr(&name) {
            continue;
        }
        let name = OsStr::from_bytes(&name);
        let value = crate::layers::get_xattr(src_abs, name)?;
        match rustix::fs::lsetxattr(dst_abs, name, &value, rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            // trusted.* inside a user namespace, or user.* on a symlink: not ours to keep.
            Err(Errno::PERM | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    rustix::fs::utimensat(
        dst_dir,
        dst_rel,
        &metacopy::stat_times(st),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}
