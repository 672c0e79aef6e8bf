//! The filesystems under test and their scratch space: a sparse ext4 image on a loop device
//! ([`Scratch`]) holding one shared lower layer, a second directory for the cross-device
//! (`EXDEV`) tests, and per filesystem an empty upper, work directory and mount point; and
//! the three overlay mounts over it ([`Mounted`]).
//!
//! ```text
//! <scratch>/fs.img              sparse ext4 image, on a loop device
//! <scratch>/ext4/               its mount
//!     lower/t/readme            the lower layer (pjdfstest runs in the merged t/)
//!     lower/etc/hostname
//!     secondary/                a directory on another filesystem, for EXDEV
//!     <kind>/{upper,work}       one overlay's layers per filesystem
//! <scratch>/<kind>/             its mount point
//! ```
//!
//! The mount points stay short on purpose: pjdfstest binds Unix sockets at absolute paths
//! [`SUFFIX_LEN`] bytes below them, and a socket path has room for 107 bytes only.
//!
//! Both guards undo what they did when dropped, also on errors and panics: unmount (retrying
//! while busy, then aborting a FUSE connection and detaching), wait for a FUSE server to exit
//! (ending it by PID if it lingers), detach the loop device. [`Scratch::create`] first
//! clears what an interrupted run left below the same directory. It ends no process but FUSE
//! servers and pjdfstest runs it finds working below the scratch directory (see `tables`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::tables::{end, mount_table, servers, wait_gone};
use crate::process;

/// Size of the sparse ext4 image (`open::interact_2gb` writes past 2 GiB, sparsely).
const IMAGE_SIZE: &str = "1G";
/// How much pjdfstest adds to a test directory's path for a file it creates
/// (`/.tmpXXXXXX/.tmpXXXXXX/` and 32 random characters).
pub const SUFFIX_LEN: usize = 55;
/// The longest path a Unix socket can be bound at (`sun_path` less its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// How long a FUSE server may take to exit after its unmount.
const SERVER_EXIT: Duration = Duration::from_secs(10);

/// The lower layer's directory pjdfstest runs in (merged, in each mount).
pub const TEST_DIR: &str = "t";

/// The filesystems compared, in the report's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kernel,
    FuseOverlayfs,
    Strata,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Kernel, Kind::FuseOverlayfs, Kind::Strata];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel overlay",
            Kind::FuseOverlayfs => "fuse-overlayfs",
            Kind::Strata => "strata-fuse-overlay",
        }
    }

    /// File names: logs and directories.
    pub fn short(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::FuseOverlayfs => "fuse-overlayfs",
            Kind::Strata => "strata",
        }
    }

    /// The mount point's name (short: see the module's note on socket paths).
    fn mount_dir(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::FuseOverlayfs => "fo",
            Kind::Strata => "strata",
        }
    }

    /// The type the mount table shows.
    fn fs_type(self) -> &'static str {
        match self {
            Kind::Kernel => "overlay",
            Kind::FuseOverlayfs => "fuse.fuse-overlayfs",
            Kind::Strata => "fuse.strata-overlay",
        }
    }

    /// The FUSE server's program name.
    pub fn server(self) -> Option<&'static str> {
        match self {
            Kind::Kernel => None,
            Kind::FuseOverlayfs => Some("fuse-overlayfs"),
            Kind::Strata => Some("strata-fuse-overlay"),
        }
    }
}

/// The loop-mounted ext4 image and the layers on it; torn down when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    image: PathBuf,
    ext4: PathBuf,
    loop_dev: Option<String>,
}

impl Scratch {
    /// Clears leftovers below `dir`, then makes the image, its loop device, its mount and the
    /// lower layer.
    pub fn create(dir: &Path) -> Result<Scratch> {
        let longest = Kind::ALL
            .iter()
            .map(|k| dir.join(k.mount_dir()).join(TEST_DIR).as_os_str().len())
            .max()
            .unwrap_or_default();
        if longest + SUFFIX_LEN > SOCKET_PATH_MAX {
            bail!(
                "{} is too long a scratch directory: pjdfstest's socket paths below it would \
                 exceed {SOCKET_PATH_MAX} bytes (set TMPDIR to a shorter directory)",
                dir.display()
            );
        }
        clear_leftovers(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut scratch = Scratch {
            dir: dir.to_path_buf(),
            image: dir.join("fs.img"),
            ext4: dir.join("ext4"),
            loop_dev: None,
        };
        process::run(
            Command::new("truncate")
                .args(["-s", IMAGE_SIZE])
                .arg(&scratch.image),
        )?;
        process::run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&scratch.image),
        )?;
        let dev = process::output(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&scratch.image),
        )?;
        scratch.loop_dev = Some(dev.clone());
        std::fs::create_dir_all(&scratch.ext4)?;
        process::run(Command::new("mount").arg(&dev).arg(&scratch.ext4))?;
        let lower = scratch.lower();
        for d in [TEST_DIR, "etc", "usr/share/doc"] {
            std::fs::create_dir_all(lower.join(d))?;
        }
        std::fs::write(
            lower.join(TEST_DIR).join("readme"),
            "pjdfstest runs in a fresh directory below t/\n",
        )?;
        std::fs::write(lower.join("etc/hostname"), "lower\n")?;
        std::fs::create_dir_all(scratch.secondary())?;
        Ok(scratch)
    }

    pub fn lower(&self) -> PathBuf {
        self.ext4.join("lower")
    }

    /// A directory on another filesystem than the overlays, for the `EXDEV` tests.
    pub fn secondary(&self) -> PathBuf {
        self.ext4.join("secondary")
    }

    /// Mounts `kind` over the lower layer with a fresh upper and work directory. FUSE servers
    /// get `extra` appended to their options and write their stderr to `server_log`.
    pub fn mount(
        &self,
        kind: Kind,
        strata: &Path,
        extra: &str,
        server_log: &Path,
    ) -> Result<Mounted> {
        let base = self.ext4.join(kind.short());
        let (upper, work) = (base.join("upper"), base.join("work"));
        let target = self.dir.join(kind.mount_dir());
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut options = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lower().display(),
            upper.display(),
            work.display()
        );
        let mut cmd = match kind {
            Kind::Kernel => {
                let mut c = Command::new("mount");
                c.args(["-t", "overlay", "overlay"]);
                c
            }
            Kind::FuseOverlayfs => Command::new("fuse-overlayfs"),
            Kind::Strata => {
                let mut c = Command::new(strata);
                c.env("STRATA_FUSE_LOG", server_log);
                c
            }
        };
        if kind != Kind::Kernel {
            if !extra.is_empty() && kind == Kind::Strata {
                options = format!("{options},{extra}");
            }
            // The server daemonises and keeps these: never a pipe somebody waits on.
            // Appending, like strata-fuse-overlay's own STRATA_FUSE_LOG writer.
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(server_log)
                .with_context(|| format!("cannot open {}", server_log.display()))?;
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        }
        // The guard exists before the mount, so that whatever fails below is undone.
        let mut mounted = Mounted {
            kind,
            target: target.clone(),
            servers: Vec::new(),
        };
        process::run(cmd.arg("-o").arg(&options).arg(&target)).with_context(|| {
            let said = std::fs::read_to_string(server_log).unwrap_or_default();
            format!(
                "cannot mount {} at {}: {}",
                kind.name(),
                target.display(),
                said.trim()
            )
        })?;
        let fs_type = mount_table()
            .into_iter()
            .rev()
            .find(|m| m.point == target)
            .map(|m| m.fs_type);
        if fs_type.as_deref() != Some(kind.fs_type()) {
            bail!(
                "{} at {} shows as {fs_type:?} in the mount table, not {}",
                kind.name(),
                target.display(),
                kind.fs_type()
            );
        }
        if let Some(program) = kind.server() {
            mounted.servers = servers(Some(program), &target);
            if mounted.servers.is_empty() {
                bail!(
                    "no {program} process serves {} after mounting",
                    target.display()
                );
            }
        }
        Ok(mounted)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = unmount(&self.ext4) {
            eprintln!("xtask: {e:#}");
        }
        if let Some(dev) = self.loop_dev.take() {
            if let Err(e) = process::run(Command::new("losetup").arg("-d").arg(&dev)) {
                eprintln!("xtask: cannot detach {dev}: {e:#}");
            }
        }
        if mount_table()
            .iter()
            .all(|m| !m.point.starts_with(&self.dir))
        {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One overlay mount; unmounted when dropped.
#[derive(Debug)]
pub struct Mounted {
    pub kind: Kind,
    pub target: PathBuf,
    servers: Vec<u32>,
}

impl Mounted {
    /// The merged directory pjdfstest runs in.
    pub fn test_dir(&self) -> PathBuf {
        self.target.join(TEST_DIR)
    }

    /// Aborts the FUSE connection, failing every pending and future request with `ENOTCONN`,
    /// so that a process blocked on a hung server can be ended. Nothing for the kernel overlay.
    pub fn abort(&self) {
        if self.kind.server().is_none() {
            return;
        }
        let conn = mount_table()
            .into_iter()
            .rev()
            .find(|m| m.point == self.target)
            .and_then(|m| m.device.split_once(':').map(|(_, minor)| minor.to_owned()));
        if let Some(minor) = conn {
            let abort = format!("/sys/fs/fuse/connections/{minor}/abort");
            if let Err(e) = std::fs::write(&abort, "1") {
                eprintln!("xtask: cannot abort the FUSE connection ({abort}): {e}");
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = unmount(&self.target) {
            eprintln!("xtask: {e:#}");
            self.abort();
            let _ = Command::new("umount").arg("-l").arg(&self.target).status();
        }
        for &pid in &self.servers {
            if !wait_gone(pid, SERVER_EXIT) {
                eprintln!(
                    "xtask: {} server {pid} still runs {SERVER_EXIT:?} after its unmount; ending it",
                    self.kind.name()
                );
                end(pid, &self.target);
            }
        }
    }
}

/// Unmounts `target` if something is mounted there, retrying for a few seconds while busy.
fn unmount(target: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while mount_table().iter().any(|m| m.point == target) {
        match process::run(Command::new("umount").arg(target)) {
            Ok(()) => {}
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    Ok(())
}

/// Undoes what an interrupted run left below `dir`: pjdfstest and FUSE server processes,
/// mounts (deepest first, detached), loop devices on its image; then removes the directory.
fn clear_leftovers(dir: &Path) -> Result<()> {
    let mut stale: Vec<PathBuf> = mount_table()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with(dir))
        .collect();
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for pid in servers(None, dir) {
        eprintln!("xtask: ending process {pid} left by an earlier run");
        end(pid, dir);
    }
    for point in &stale {
        eprintln!(
            "xtask: detaching {} left by an earlier run",
            point.display()
        );
        let _ = Command::new("umount").arg("-l").arg(point).status();
    }
    let image = dir.join("fs.img");
    if image.exists() {
        let attached = process::output(Command::new("losetup").arg("-j").arg(&image))?;
        for dev in attached.lines().filter_map(|l| l.split(':').next()) {
            eprintln!("xtask: detaching loop device {dev} left by an earlier run");
            process::run(Command::new("losetup").arg("-d").arg(dev))?;
        }
    }
    if mount_table().iter().any(|m| m.point.starts_with(dir)) {
        bail!(
            "{} still has mounts below it; unmount them first",
            dir.display()
        );
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}
