//! Mount errors, with the mount's description and, when the kernel logged any, the messages of
//! the filesystem context (`fsopen` log), so that "invalid argument" says which lower dir or
//! option the kernel refused.

use std::path::PathBuf;

use rustix::io::Errno;
use strata_types::{ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount spec that cannot be performed as given (empty lower list, upper without work).
    #[error("invalid mount spec for {target}: {reason}")]
    InvalidSpec { target: PathBuf, reason: String },
    /// The kernel refused one step of a mount.
    #[error("mount {description} on {target}: {step}: {}{hint}{log}", std::io::Error::from(*errno),
        hint = privilege_hint(*errno), log = kernel_log(description, log))]
    Mount {
        description: String,
        target: PathBuf,
        /// The failing call, e.g. `fsconfig lowerdir+ #57 (/x/diff)`.
        step: String,
        errno: Errno,
        /// Messages the kernel left in the filesystem context's log (`e overlayfs: ...`).
        log: Vec<String>,
    },
    #[error("unmount {target}: {}{hint}", std::io::Error::from(*errno), hint = privilege_hint(*errno))]
    Unmount { target: PathBuf, errno: Errno },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The FUSE overlay server could not be found or did not start.
    #[error("fuse-overlay on {target}: {reason}")]
    FuseServer { target: PathBuf, reason: String },
    /// `/dev/fuse` cannot be opened by this user.
    #[error("cannot open /dev/fuse: {}; {hint}", std::io::Error::from(*errno))]
    FuseDevice { errno: Errno, hint: String },
    #[error("cannot parse {path} line {line:?}: {reason}")]
    MountInfo {
        path: PathBuf,
        line: String,
        reason: &'static str,
    },
}

fn privilege_hint(errno: Errno) -> &'static str {
    if errno == Errno::PERM {
        " (mounting needs root or a user namespace)"
    } else {
        ""
    }
}

fn kernel_log(description: &str, log: &[String]) -> String {
    if log.is_empty() {
        // overlayfs reports many refusals (path checks, upper/work placement) only to the
        // kernel ring buffer, not to the filesystem context.
        if description.starts_with("overlay") {
            " (overlayfs may have logged why: see dmesg)".into()
        } else {
            String::new()
        }
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

impl MountError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> MountError {
        let path = path.into();
        move |source| MountError::Io { op, path, source }
    }

    /// The OS error number behind this error, if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            MountError::Mount { errno, .. } | MountError::Unmount { errno, .. } => Some(*errno),
            MountError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw_os_error),
            MountError::FuseDevice { errno, .. } => Some(*errno),
            MountError::InvalidSpec { .. }
            | MountError::MountInfo { .. }
            | MountError::FuseServer { .. } => None,
        }
    }
}

fn errno_kind(errno: Errno) -> ErrorKind {
    match errno {
        Errno::PERM | Errno::ACCESS | Errno::ROFS => ErrorKind::FailedPrecondition,
        Errno::BUSY => ErrorKind::Busy,
        Errno::NOENT => ErrorKind::NotFound,
        Errno::INVAL | Errno::NOTDIR | Errno::NAMETOOLONG | Errno::LOOP => {
            ErrorKind::InvalidArgument
        }
        Errno::NODEV | Errno::NOSYS | Errno::OPNOTSUPP => ErrorKind::Unsupported,
        _ => ErrorKind::Internal,
    }
}

impl HasKind for MountError {
    fn kind(&self) -> ErrorKind {
        match self {
            MountError::InvalidSpec { .. } => ErrorKind::InvalidArgument,
            MountError::Mount { errno, .. } | MountError::Unmount { errno, .. } => {
                errno_kind(*errno)
            }
            MountError::Io { source, .. } => match source.raw_os_error() {
                Some(raw) => errno_kind(Errno::from_raw_os_error(raw)),
                None => ErrorKind::from_io(source),
            },
            MountError::MountInfo { .. } => ErrorKind::Internal,
            MountError::FuseServer { .. } => ErrorKind::Unavailable,
            MountError::FuseDevice { .. } => ErrorKind::FailedPrecondition,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn failed(errno: Errno, log: Vec<String>) -> MountError {
        MountError::Mount {
            description: "overlay (2 lower dirs)".into(),
            target: "/m".into(),
            step: "fsconfig_create".into(),
            errno,
            log,
        }
    }

    #[test]
    fn kinds_follow_the_errno() {
        assert_eq!(
            failed(Errno::PERM, vec![]).kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(failed(Errno::BUSY, vec![]).kind(), ErrorKind::Busy);
        assert_eq!(failed(Errno::NODEV, vec![]).kind(), ErrorKind::Unsupported);
        let u = MountError::Unmount {
            target: "/m".into(),
            errno: Errno::BUSY,
        };
        assert_eq!(u.kind(), ErrorKind::Busy);
    }

    #[test]
    fn messages_carry_description_hint_and_kernel_log() {
        let e = failed(Errno::PERM, vec![]).to_string();
        assert!(
            e.contains("overlay (2 lower dirs) on /m: fsconfig_create"),
            "{e}"
        );
        assert!(e.contains("needs root or a user namespace"), "{e}");
        let e = failed(Errno::INVAL, vec!["e overlayfs: missing 'lowerdir'".into()]).to_string();
        assert!(
            e.ends_with("(kernel: e overlayfs: missing 'lowerdir')"),
            "{e}"
        );
        assert!(!e.contains("user namespace"), "{e}");
    }
}
