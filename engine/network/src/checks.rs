//! The checks every way of attaching makes before it runs anything: the container ID (it
//! names state files, and the CNI spec limits it) and the network namespace (a namespace file,
//! not a missing path or the bare file an unmounted pin leaves).

use std::path::Path;

use crate::NetworkError;

/// `nsfs`, the filesystem of namespace files (`/proc/<pid>/ns/*` and their bind mounts).
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Whether `path` designates a namespace (a pinned one, or a `/proc` one).
pub(crate) fn is_namespace(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == NSFS_MAGIC)
}

pub(crate) fn check_netns(netns: &Path) -> Result<(), NetworkError> {
    if is_namespace(netns) {
        Ok(())
    } else {
        Err(NetworkError::NetnsMissing(netns.into()))
    }
}

/// The spec allows letters, digits, `_`, `.` and `-` in container IDs; they also name our
/// state files.
pub(crate) fn check_container_id(id: &str) -> Result<(), NetworkError> {
    let valid = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(NetworkError::InvalidConfig(format!(
            "container ID `{id}` must be letters, digits, `_`, `.` and `-`"
        )))
    }
}
