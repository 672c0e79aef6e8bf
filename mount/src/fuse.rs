//! FUSE mounts: Strata's overlay filesystem served by `strata-fuse-overlay`.
//!
//! [`mount_fuse_overlay`] opens `/dev/fuse`, mounts it at the target (`fuse.strata-overlay`,
//! `allow_other,default_permissions`: the kernel checks permissions from the owners the server
//! shows), then starts the server on that descriptor and waits until it says it opened the
//! layers. The server `setsid`s and outlives the caller; unmounting ends it (its reads of the
//! device fail with `ENODEV`). A server that died leaves a mount whose every access fails with
//! `ENOTCONN` ([`fuse_is_dead`]); callers unmount it and mount again.
//!
//! `/dev/fuse` is mode 0666 on a stock Debian; a non-root user needs read-write access to it
//! (this crate's error says so). Inside the user's own user namespace (rootless Strata) the
//! kernel allows FUSE mounts without `fusermount`.
//!
//! The server gets the device and a readiness pipe as inherited descriptors (`--fd`,
//! `--ready-fd`). They are duplicated without close-on-exec just around the spawn; a process
//! forked by another thread in that instant would inherit them too, which at worst keeps a
//! copy of a descriptor open (the mount still ends when it is unmounted).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;

use crate::idmap::{IdMap, IdRange};
use crate::MountError;

/// The file system type shown in the mount table.
pub const FS_TYPE: &str = "fuse.strata-overlay";

/// How long a server may take to open its layers.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens `/dev/fuse` and mounts it at `target`; returns the device descriptor to serve.
pub fn mount_fuse_device(target: &Path, read_only: bool) -> Result<OwnedFd, MountError> {
    let dev = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|errno| MountError::FuseDevice {
            errno,
            hint: fuse_device_hint(errno),
        })?;
    let st = rustix::fs::stat(target).map_err(|e| MountError::io("stat", target)(e.into()))?;
    let data = format!(
        "fd={},rootmode={:o},user_id={},group_id={},allow_other,default_permissions",
        dev.as_raw_fd(),
        st.st_mode & libc::S_IFMT,
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let mut flags = MountFlags::empty();
    if read_only {
        flags |= MountFlags::RDONLY;
    }
    let data = std::ffi::CString::new(data).map_err(|_| MountError::InvalidSpec {
        target: target.into(),
        reason: "NUL in mount options".into(),
    })?;
    rustix::mount::mount(
        "strata-overlay",
        target,
        FS_TYPE,
        flags,
        Some(data.as_c_str()),
    )
    .map_err(|errno| MountError::Mount {
        description: "fuse (strata-overlay)".into(),
        target: target.into(),
        step: "mount".into(),
        errno,
        log: Vec::new(),
    })?;
    Ok(dev)
}

/// What to tell a user who cannot open `/dev/fuse`.
pub fn fuse_device_hint(errno: Errno) -> String {
    match errno {
        Errno::ACCESS | Errno::PERM => format!(
            "uid {} needs read-write access to /dev/fuse (Debian's default mode is 0666; this \
             host has it restricted): run `chmod 0666 /dev/fuse` as root, or use another driver",
            rustix::process::getuid().as_raw()
        ),
        Errno::NOENT | Errno::NODEV | Errno::NXIO => {
            "the kernel has no FUSE device (load the fuse module: `modprobe fuse`)".into()
        }
        _ => "FUSE is unavailable here".into(),
    }
}

/// Where `strata-fuse-overlay` is: `$STRATA_FUSE_OVERLAY`, next to this program (or one
/// directory up, for test binaries under `target/*/deps`), or the installed `lib/strata`.
pub fn fuse_server_binary() -> Result<PathBuf, MountError> {
    const NAME: &str = "strata-fuse-overlay";
    if let Some(p) = std::env::var_os("STRATA_FUSE_OVERLAY").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join(NAME));
        candidates.push(dir.join("..").join(NAME));
        candidates.push(dir.join("../lib/strata").join(NAME));
    }
    candidates.push(PathBuf::from("/usr/local/lib/strata").join(NAME));
    candidates.push(PathBuf::from("/usr/lib/strata").join(NAME));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| MountError::FuseServer {
            target: PathBuf::new(),
            reason: format!(
                "{NAME} not found (looked in {}); install it with `cargo xtask install` or set \
                 STRATA_FUSE_OVERLAY",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// The filesystem's option string for a spec (see `strata_fuse_overlay::options`).
pub(crate) fn option_string(
    lower: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    options: &[String],
    idmap: Option<&IdMap>,
    target: &Path,
) -> Result<String, MountError> {
    let bad = |p: &Path| {
        let s = p.as_os_str().as_encoded_bytes();
        s.contains(&b',') || s.contains(&b':')
    };
    if let Some(p) = lower
        .iter()
        .map(PathBuf::as_path)
        .chain(upper)
        .chain(work)
        .find(|p| bad(p))
    {
        return Err(MountError::InvalidSpec {
            target: target.into(),
            reason: format!("{} contains ',' or ':'", p.display()),
        });
    }
    if lower.is_empty() {
        return Err(MountError::InvalidSpec {
            target: target.into(),
            reason: "no lower layer".into(),
        });
    }
    let mut out = vec![format!(
        "lowerdir={}",
        lower
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    )];
    match (upper, work) {
        (Some(u), Some(w)) => {
            out.push(format!("upperdir={}", u.display()));
            out.push(format!("workdir={}", w.display()));
        }
        (None, None) => {}
        _ => {
            return Err(MountError::InvalidSpec {
                target: target.into(),
                reason: "an upper directory needs a work directory".into(),
            })
        }
    }
    out.extend(options.iter().cloned());
    if let Some(map) = idmap.filter(|m| !m.is_identity()) {
        let fmt = |r: &[IdRange]| {
            r.iter()
                .map(|r| format!("{}:{}:{}", r.inside, r.outside, r.count))
                .collect::<Vec<_>>()
                .join(":")
        };
        out.push(format!("uidmapping={}", fmt(&map.uids)));
        out.push(format!("gidmapping={}", fmt(&map.gids)));
    }
    Ok(out.join(","))
}

/// Mounts the FUSE overlay described by `options` (the filesystem's option string) at
/// `target` and starts its server. Returns the server's pid.
pub fn mount_fuse_overlay(
    options: &str,
    read_only: bool,
    target: &Path,
) -> Result<u32, MountError> {
    let server = fuse_server_binary().map_err(|e| match e {
        MountError::FuseServer { reason, .. } => MountError::FuseServer {
            target: target.into(),
            reason,
        },
        other => other,
    })?;
    let dev = mount_fuse_device(target, read_only)?;
    match start_server(&server, &dev, options, target) {
        Ok(pid) => Ok(pid),
        Err(e) => {
            drop(dev);
            let _ = crate::unmount_detach(target);
            Err(e)
        }
    }
}

fn start_server(
    server: &Path,
    dev: &OwnedFd,
    options: &str,
    target: &Path,
) -> Result<u32, MountError> {
    let failed = |reason: String| MountError::FuseServer {
        target: target.into(),
        reason,
    };
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| failed(format!("pipe: {e}")))?;
    // Inheritable copies, just for the spawn.
    let child_dev = rustix::io::dup(dev).map_err(|e| failed(format!("dup: {e}")))?;
    let child_ready = rustix::io::dup(&ready_w).map_err(|e| failed(format!("dup: {e}")))?;
    drop(ready_w);
    let stderr = match std::env::var_os("STRATA_FUSE_LOG").filter(|p| !p.is_empty()) {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        None => Stdio::null(),
    };
    let spawned = Command::new(server)
        .arg("--fd")
        .arg(child_dev.as_raw_fd().to_string())
        .arg("--ready-fd")
        .arg(child_ready.as_raw_fd().to_string())
        .arg("-o")
        .arg(options)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn();
    drop(child_dev);
    drop(child_ready);
    let mut child =
        spawned.map_err(|e| failed(format!("cannot start {}: {e}", server.display())))?;
    let pid = child.id();
    // Wait for one line: "ok" or the reason it cannot serve.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = std::fs::File::from(ready_r);
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "{} did not start within {READY_TIMEOUT:?}",
                server.display()
            )));
        }
        let mut fds = [rustix::event::PollFd::new(
            &ready,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec::try_from(left.min(Duration::from_millis(500))).unwrap_or(
            rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 500_000_000,
            },
        );
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(failed(format!("poll: {e}"))),
        }
        let n = ready.read(&mut buf).unwrap_or(0);
        if n == 0 {
            let status = child.wait().ok();
            let said = String::from_utf8_lossy(&line).trim().to_string();
            return Err(failed(if said.is_empty() {
                format!("the server exited before serving ({status:?}); set STRATA_FUSE_LOG=FILE to see why")
            } else {
                said
            }));
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            let said = String::from_utf8_lossy(&line[..end]).to_string();
            if said == "ok" {
                // The server is its own session leader now; nobody waits for it here.
                drop(child);
                tracing::debug!(target = %target.display(), pid, "fuse-overlay server started");
                return Ok(pid);
            }
            let _ = child.wait();
            return Err(failed(said));
        }
    }
}

/// Whether `target` is a FUSE mount whose server is gone (`ENOTCONN`). The attributes are
/// asked of the filesystem itself (`AT_STATX_FORCE_SYNC`): the kernel's cached ones would
/// hide a dead server.
pub fn fuse_is_dead(target: &Path) -> bool {
    matches!(
        rustix::fs::statx(
            rustix::fs::CWD,
            target,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW | rustix::fs::AtFlags::STATX_FORCE_SYNC,
            rustix::fs::StatxFlags::BASIC_STATS,
        ),
        Err(Errno::NOTCONN)
    )
}

/// Mount points of live `strata-fuse-overlay` servers whose layers include `dir` (canonical)
/// or a path below it, read from their command lines (`-o OPTIONS MOUNTPOINT`).
pub(crate) fn servers_using(dir: &Path) -> Vec<PathBuf> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        if !args
            .first()
            .is_some_and(|a| a.ends_with(b"strata-fuse-overlay"))
        {
            continue;
        }
        let Some(opts) = args
            .iter()
            .position(|a| *a == b"-o")
            .and_then(|i| args.get(i + 1))
        else {
            continue;
        };
        let Some(target) = args.last() else { continue };
        let opts = String::from_utf8_lossy(opts);
        let uses = opts.split(',').any(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            matches!(k, "lowerdir" | "upperdir" | "workdir")
                && v.split(':')
                    .any(|p| std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(dir)))
        });
        if uses {
            use std::os::unix::ffi::OsStrExt;
            let target = PathBuf::from(std::ffi::OsStr::from_bytes(target));
            out.push(std::fs::canonicalize(&target).unwrap_or(target));
        }
    }
    out
}
