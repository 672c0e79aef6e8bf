//! Overlay mounts through the new mount API: `fsopen("overlay")`, one `fsconfig` call per lower
//! directory (`lowerdir+`, topmost first) and per option, `fsconfig_create`, `fsmount`,
//! `move_mount`. Passing lower directories one by one is what lets chains of several hundred
//! layers mount: the legacy `mount(2)` data page (4 KiB) holds about 140 short paths.
//!
//! Mount-point flags (`ro`, `nodev`, `nosuid`, `noexec`, `noatime`, `nodiratime`, `relatime`,
//! `strictatime`, `nosymfollow`) among the options are applied as `fsmount` attributes, so the
//! mount is created with them (never briefly without). Everything else goes to the overlay
//! filesystem verbatim (`key=value` as a string parameter, a bare word as a flag).
//!
//! It does not check the directories beforehand: the kernel does, and its refusal is reported
//! with the step that failed and the messages from the filesystem context's log.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
};

use crate::idmap::{StagedLowers, UserNs};
use crate::MountError;

/// The overlay parameters of a `Mount::Overlay`, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverlaySpec<'a> {
    pub lower: &'a [PathBuf],
    pub upper: Option<&'a Path>,
    pub work: Option<&'a Path>,
    pub options: &'a [String],
    /// When set, every layer (lower, upper, work) is passed as an idmapped detached mount.
    pub idmap: Option<&'a UserNs>,
}

impl OverlaySpec<'_> {
    /// A one-line description for errors and logs (not every lower dir: there may be hundreds).
    pub fn describe(&self) -> String {
        let mut s = format!("overlay ({} lower dirs", self.lower.len());
        if let Some(top) = self.lower.first() {
            s.push_str(&format!(", topmost {}", top.display()));
        }
        if let Some(u) = self.upper {
            s.push_str(&format!(", upper {}", u.display()));
        }
        if let Some(w) = self.work {
            s.push_str(&format!(", work {}", w.display()));
        }
        if !self.options.is_empty() {
            s.push_str(&format!(", options {}", self.options.join(",")));
        }
        if self.idmap.is_some() {
            s.push_str(", idmapped layers");
        }
        s.push(')');
        s
    }
}

/// Splits options into mount-point attributes and filesystem parameters.
pub(crate) fn split_options(options: &[String]) -> (MountAttrFlags, Vec<(&str, Option<&str>)>) {
    let mut attrs = MountAttrFlags::empty();
    let mut params = Vec::new();
    for opt in options {
        let flag = match opt.as_str() {
            "ro" => Some(MountAttrFlags::MOUNT_ATTR_RDONLY),
            "nodev" => Some(MountAttrFlags::MOUNT_ATTR_NODEV),
            "nosuid" => Some(MountAttrFlags::MOUNT_ATTR_NOSUID),
            "noexec" => Some(MountAttrFlags::MOUNT_ATTR_NOEXEC),
            "noatime" => Some(MountAttrFlags::MOUNT_ATTR_NOATIME),
            "nodiratime" => Some(MountAttrFlags::MOUNT_ATTR_NODIRATIME),
            "relatime" => Some(MountAttrFlags::MOUNT_ATTR_RELATIME),
            "strictatime" => Some(MountAttrFlags::MOUNT_ATTR_STRICTATIME),
            "nosymfollow" => Some(MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW),
            _ => None,
        };
        match flag {
            Some(f) => attrs |= f,
            None => match opt.split_once('=') {
                Some((k, v)) => params.push((k, Some(v))),
                None => params.push((opt.as_str(), None)),
            },
        }
    }
    (attrs, params)
}

pub(crate) fn mount_overlay(spec: OverlaySpec<'_>, target: &Path) -> Result<(), MountError> {
    if spec.lower.is_empty() {
        return Err(MountError::InvalidSpec {
            target: target.into(),
            reason: "overlay needs a lower dir".into(),
        });
    }
    if spec.upper.is_some() != spec.work.is_some() {
        return Err(MountError::InvalidSpec {
            target: target.into(),
            reason: "overlay upper and work dirs go together".into(),
        });
    }
    let fail = |fs: Option<&OwnedFd>, step: String, errno: Errno| MountError::Mount {
        description: spec.describe(),
        target: target.into(),
        step,
        errno,
        log: fs.map(read_log).unwrap_or_default(),
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| fail(None, "fsopen".into(), e))?;
    // Idmapped, each lower directory is first attached as an idmapped mount under a scratch
    // tmpfs at `target` (overlay clones its layers' mounts, which only works for attached ones);
    // the overlay keeps private clones, and the scratch tree is detached again before the
    // overlay is moved to `target`. The upper directory is not idmapped: overlay does its
    // internal work (work dir, copy-up) with the mounter's credentials, which an idmapped upper
    // cannot represent. Files the container creates land there with its host ids.
    let staged = match spec.idmap {
        Some(ns) => Some(StagedLowers::attach(spec.lower, ns, target)?),
        None => None,
    };
    let lowers = staged.as_ref().map_or(spec.lower, |s| s.paths());
    if !kernel_has_lowerdir_add() {
        drop(fs);
        let r = mount_legacy(&spec, lowers, target);
        drop(staged);
        return r;
    }
    for (i, dir) in lowers.iter().enumerate() {
        if i == 0 && fsconfig_set_string(&fs, "lowerdir+", dir) == Err(Errno::INVAL) {
            // Kernels before 6.8 have no `lowerdir+` (Debian 12's 6.1, for one): the legacy
            // option page is what they take.
            drop(fs);
            let r = mount_legacy(&spec, lowers, target);
            drop(staged);
            return r;
        }
        if i == 0 {
            continue; // set just above
        }
        fsconfig_set_string(&fs, "lowerdir+", dir).map_err(|e| {
            fail(
                Some(&fs),
                format!("fsconfig lowerdir+ #{i} ({})", dir.display()),
                e,
            )
        })?;
    }
    if let (Some(upper), Some(work)) = (spec.upper, spec.work) {
        fsconfig_set_string(&fs, "upperdir", upper)
            .map_err(|e| fail(Some(&fs), "fsconfig upperdir".into(), e))?;
        fsconfig_set_string(&fs, "workdir", work)
            .map_err(|e| fail(Some(&fs), "fsconfig workdir".into(), e))?;
    }
    let (mut attrs, params) = split_options(spec.options);
    for (key, value) in params {
        let r = match value {
            Some(v) => fsconfig_set_string(&fs, key, v),
            None => fsconfig_set_flag(&fs, key),
        };
        r.map_err(|e| fail(Some(&fs), format!("fsconfig option {key:?}"), e))?;
    }
    if spec.upper.is_none() {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    fsconfig_create(&fs).map_err(|e| fail(Some(&fs), "fsconfig_create".into(), e))?;
    drop(staged);
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| fail(Some(&fs), "fsmount".into(), e))?;
    move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail(Some(&fs), "move_mount".into(), e))?;
    tracing::debug!(target = %target.display(), mount = %spec.describe(), "mounted overlay");
    Ok(())
}

/// Whether overlay takes `lowerdir+` (Linux 6.8). Before 6.5 overlay parsed its options only
/// at `fsconfig_create` (an unknown key is not refused when set), so the release is the test,
/// read once per process.
fn kernel_has_lowerdir_add() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        release_at_least(&release, (6, 8))
    })
}

/// Whether a kernel release string (`6.1.0-28-amd64`) is at least `major.minor`.
fn release_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse().ok());
    let minor = parts.next().and_then(|p| p.parse().ok());
    match (major, minor) {
        (Some(a), Some(b)) => (a, b) >= want,
        _ => true, // unknown: try the new API, which reports its own refusal
    }
}

/// The legacy `mount(2)` form, for kernels without `lowerdir+`: every option in one string,
/// which must fit the kernel's one-page option buffer (about 140 short layer paths).
fn mount_legacy(
    spec: &OverlaySpec<'_>,
    lowers: &[PathBuf],
    target: &Path,
) -> Result<(), MountError> {
    let fail = |step: String, errno: Errno| MountError::Mount {
        description: spec.describe(),
        target: target.into(),
        step,
        errno,
        log: vec![],
    };
    let mut names: Vec<String> = Vec::with_capacity(lowers.len());
    for dir in lowers {
        let d = dir
            .to_str()
            .filter(|d| !d.contains([',', ':', '\\']))
            .ok_or_else(|| MountError::InvalidSpec {
                target: target.into(),
                reason: format!(
                    "{} cannot be written in the legacy overlay options (this kernel lacks \
                     lowerdir+, Linux 6.8)",
                    dir.display()
                ),
            })?;
        names.push(d.to_owned());
    }
    // Deep chains: each lower dir as `/proc/self/fd/N` of an `O_PATH` descriptor (about 18
    // bytes, whatever the store's path), which the kernel follows when it resolves the option.
    // That fits about 200 layers in the page; the descriptors live until the mount is made.
    let mut held = Vec::new();
    if names.iter().map(|n| n.len() + 1).sum::<usize>() > 3072 {
        names.clear();
        for dir in lowers {
            let fd = rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| fail(format!("open {}", dir.display()), e))?;
            names.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            held.push(fd);
        }
    }
    let mut data = format!("lowerdir={}", names.join(":"));
    if let (Some(upper), Some(work)) = (spec.upper, spec.work) {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            upper.display(),
            work.display()
        ));
    }
    let (attrs, params) = split_options(spec.options);
    for (key, value) in params {
        data.push(',');
        data.push_str(key);
        if let Some(v) = value {
            data.push('=');
            data.push_str(v);
        }
    }
    // One page, less the terminating NUL.
    if data.len() >= 4096 {
        return Err(MountError::InvalidSpec {
            target: target.into(),
            reason: format!(
                "{} layers do not fit the legacy overlay option page ({} bytes) and this kernel \
                 lacks lowerdir+ (Linux 6.8)",
                lowers.len(),
                data.len()
            ),
        });
    }
    let mut flags = MountFlags::empty();
    for (a, f) in [
        (MountAttrFlags::MOUNT_ATTR_RDONLY, MountFlags::RDONLY),
        (MountAttrFlags::MOUNT_ATTR_NODEV, MountFlags::NODEV),
        (MountAttrFlags::MOUNT_ATTR_NOSUID, MountFlags::NOSUID),
        (MountAttrFlags::MOUNT_ATTR_NOEXEC, MountFlags::NOEXEC),
        (MountAttrFlags::MOUNT_ATTR_NOATIME, MountFlags::NOATIME),
        (
            MountAttrFlags::MOUNT_ATTR_NODIRATIME,
            MountFlags::NODIRATIME,
        ),
        (
            MountAttrFlags::MOUNT_ATTR_STRICTATIME,
            MountFlags::STRICTATIME,
        ),
        (
            MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
            MountFlags::NOSYMFOLLOW,
        ),
    ] {
        if attrs.contains(a) {
            flags |= f;
        }
    }
    if spec.upper.is_none() {
        flags |= MountFlags::RDONLY;
    }
    let data = std::ffi::CString::new(data).map_err(|_| MountError::InvalidSpec {
        target: target.into(),
        reason: "a NUL byte in the overlay options".into(),
    })?;
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(|e| fail("mount(2) with legacy options".into(), e))?;
    drop(held);
    tracing::debug!(target = %target.display(), mount = %spec.describe(), "mounted overlay (legacy options)");
    Ok(())
}

/// Drains the filesystem context's message log (each read returns one message; `ENODATA` when
/// it is empty).
fn read_log(fs: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // The log holds at most 8 messages; bound the loop anyway.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()),
            _ => break,
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(!release_at_least("6.1.0-28-amd64", (6, 8)));
        assert!(release_at_least("6.8.0", (6, 8)));
        assert!(release_at_least("6.18.2-strata\n", (6, 8)));
        assert!(release_at_least("7.0", (6, 8)));
        assert!(!release_at_least("5.19.17", (6, 8)));
    }

    #[test]
    fn mount_point_flags_become_attributes() {
        let opts: Vec<String> = ["nodev", "userxattr", "index=off", "ro", "metacopy=off"]
            .map(String::from)
            .into();
        let (attrs, params) = split_options(&opts);
        assert_eq!(
            attrs,
            MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_RDONLY
        );
        assert_eq!(
            params,
            vec![
                ("userxattr", None),
                ("index", Some("off")),
                ("metacopy", Some("off"))
            ]
        );
    }

    #[test]
    fn description_names_the_chain_without_listing_it() {
        let lower: Vec<PathBuf> = (0..300)
            .map(|i| PathBuf::from(format!("/l/{i}/diff")))
            .collect();
        let spec = OverlaySpec {
            lower: &lower,
            upper: Some(Path::new("/c/diff")),
            work: Some(Path::new("/c/work")),
            options: &["userxattr".to_owned()],
            idmap: None,
        };
        assert_eq!(
            spec.describe(),
            "overlay (300 lower dirs, topmost /l/0/diff, upper /c/diff, work /c/work, options userxattr)"
        );
    }
}
