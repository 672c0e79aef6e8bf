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

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
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
    for (i, dir) in lowers.iter().enumerate() {
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
