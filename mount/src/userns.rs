//! Whether this process runs in a user namespace other than the initial one, the one test
//! every rootless decision uses (the euid says nothing there: it is 0 inside).

use strata_types::idmap::{is_initial_map, parse_proc_map};

/// True when `/proc/self/uid_map` is not the identity map (`0 0 4294967295`): mounts then
/// need the rootless forms (`userxattr`, `user.overlay.*`), and cgroups cannot be used.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| !is_initial_map(&parse_proc_map(&m)))
}
