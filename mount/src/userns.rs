//! Whether this process runs in a user namespace other than the initial one, the one test
//! every rootless decision uses (the euid says nothing there: it is 0 inside).

/// True when `/proc/self/uid_map` is not the identity map (`0 0 4294967295`): mounts then
/// need the rootless forms (`userxattr`, `user.overlay.*`), and cgroups cannot be used.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_identity_map(&m))
}

/// Whether a uid map is the initial namespace's identity map.
pub fn is_identity_map(map: &str) -> bool {
    map.split_whitespace().eq(["0", "0", "4294967295"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_are_told_apart() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("0 1000 1\n1 100000 65536\n"));
    }
}
