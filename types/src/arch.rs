//! This machine's architecture as OCI image configs and indexes spell it (Go's `GOARCH` names
//! and variants): one table for every crate that writes or matches a platform.

/// The architecture (`amd64`, `arm64`, `ppc64le`, ...).
pub fn go_arch() -> &'static str {
    go_platform().0
}

/// The architecture and its variant (`arm64` is `v8`, `arm` here `v7`).
pub fn go_platform() -> (&'static str, Option<&'static str>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips64" => ("mips64", None),
        "loongarch64" => ("loong64", None),
        other => (other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_gets_go_names() {
        assert_ne!(go_arch(), "x86_64");
        assert_ne!(go_arch(), "aarch64");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(go_platform(), ("amd64", None));
        }
    }
}
