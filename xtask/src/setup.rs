//! Machine setup: the Debian 12 packages the tests and the demo need, installed with apt as
//! root. Idempotent: when `dpkg-query` says every package is installed, apt is not run at all.
//!
//! It does not touch anything but packages (no services, cgroups or kernel settings) and does
//! not upgrade packages that are already installed.

use std::collections::HashSet;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{self, run};

/// Everything `cargo xtask test` needs: the fixture tools (umoci, skopeo, busybox-static, attr's
/// setfattr, libcap2-bin's setcap, zstd, tar, python3), reference and helper tools the tests
/// use (containers-storage, pigz, jq), FUSE, mount/loop tools (util-linux), and mkfs for the
/// ext4 and btrfs backing filesystems; a real registry (docker-registry, distribution v2)
/// with htpasswd (apache2-utils) and openssl for its TLS certificates.
pub const TEST_PACKAGES: &[&str] = &[
    // Building the workspace: the devicemapper crate binds libdevmapper with bindgen; the
    // engine compiles seccomp filters with libseccomp.
    "libdevmapper-dev",
    "pkg-config",
    "libclang-dev",
    "libseccomp-dev",
    // The CRI plugin's protocol (k8s-cri) is generated from cri-api's .proto at build time.
    "protobuf-compiler",
    // The devicemapper driver's tools (run in the VM tier) and its xfs option.
    "dmsetup",
    "xfsprogs",
    "docker-registry",
    "apache2-utils",
    "openssl",
    "umoci",
    "skopeo",
    "busybox-static",
    "attr",
    "libcap2-bin",
    "containers-storage",
    "zstd",
    "pigz",
    "tar",
    "python3",
    "jq",
    "fuse3",
    // `cargo xtask pjdfstest`: the reference FUSE overlay, and the ACL headers pjdfstest builds with.
    "fuse-overlayfs",
    "libacl1-dev",
    "util-linux",
    "e2fsprogs",
    "btrfs-progs",
    // The run front end: OCI runtimes, the user-namespace helpers, CNI networking, and
    // podman for the interoperability tests.
    "crun",
    "runc",
    "uidmap",
    // useradd/usermod: the rootless tests make their users (runuser is util-linux's).
    "passwd",
    "containernetworking-plugins",
    "iptables",
    "catatonit",
    "podman",
    // The build front end is compared with buildah (`bud --layers`) on the same Containerfiles.
    "buildah",
    // ADD's bzip2 and xz archives are decompressed by Debian's tools (and the build corpus
    // makes them).
    "bzip2",
    "xz-utils",
    // The reference CRI server the CRI front end is checked against (its CRI plugin).
    "containerd",
    // Rootless networking (podman only recommends it).
    "slirp4netns",
    // The seccomp tests' syscall probe is built static with the host's C compiler.
    "gcc",
    "libc6-dev",
    // The bench report's browser test opens report.html in headless Chromium to prove it
    // renders with no console errors (plugins/benchkit/tests/report_browser.rs).
    "chromium",
];

/// What `cargo xtask bench` needs beyond the test packages: the reference tools it compares
/// with (podman) and GNU time for peak memory.
pub const BENCH_PACKAGES: &[&str] = &["time"];

/// What `cargo xtask demo` needs: the build's libraries (libdevmapper, libclang for bindgen,
/// libseccomp), umoci and busybox-static to build the busybox image, crun to run it, the CNI
/// plugins and iptables for its bridge network.
pub const DEMO_PACKAGES: &[&str] = &[
    "libdevmapper-dev",
    "pkg-config",
    "libclang-dev",
    "libseccomp-dev",
    "protobuf-compiler",
    "umoci",
    "busybox-static",
    "crun",
    "containernetworking-plugins",
    "iptables",
];

/// Makes this host able to run crun 1.8: on a cgroup v1 (hybrid) host every v1 controller must
/// be mounted, and this machine leaves hugetlb out (see shared/notes/MACHINE.md). Idempotent;
/// does nothing on pure cgroup v2 hosts or when not root.
pub fn prepare_host() -> Result<()> {
    let cgroup_root = std::path::Path::new("/sys/fs/cgroup");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v1 = mounts.lines().any(|l| l.contains(" - cgroup cgroup "));
    let hugetlb_enabled = std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("hugetlb\t") && l.ends_with("\t1"));
    let hugetlb_mounted = mounts
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.contains("hugetlb"));
    if !v1 || !hugetlb_enabled || hugetlb_mounted || !process::is_root()? {
        return Ok(());
    }
    let dir = cgroup_root.join("hugetlb");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    run(std::process::Command::new("mount")
        .args(["-t", "cgroup", "-o", "hugetlb", "cgroup"])
        .arg(&dir))
    .context("cannot mount the hugetlb cgroup hierarchy crun needs")?;
    eprintln!(
        "xtask: mounted the hugetlb cgroup v1 hierarchy (crun needs every v1 controller mounted)"
    );
    Ok(())
}

/// What the tests need of the host beyond packages, made as a Debian host with podman would
/// have it (idempotent; root only):
/// - `containers` ranges in /etc/subuid and /etc/subgid, podman's convention for
///   `--userns auto` (`containers:2147483647:2147483648`), when there are none;
/// - `/dev/net/tun` mode 0666 (Debian's default; this machine ships 0600), so that a non-root
///   user's slirp4netns can open it for rootless port publishing;
/// - `/dev/fuse` mode 0666 (the same story), for a non-root user's FUSE overlay.
pub fn prepare_test_host() -> Result<()> {
    if !process::is_root()? {
        return Ok(());
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with("containers:")) {
            let mut text = text;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("containers:2147483647:2147483648\n");
            std::fs::write(file, text).with_context(|| format!("cannot write {file}"))?;
            eprintln!("xtask: added podman's `containers` range to {file} (for --userns auto)");
        }
    }
    // A non-root user's FUSE overlay (rootless fuse-overlay, --userns keep-id) opens /dev/fuse.
    let fuse = std::path::Path::new("/dev/fuse");
    if let Ok(meta) = std::fs::metadata(fuse) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o777 != 0o666 {
            std::fs::set_permissions(fuse, std::fs::Permissions::from_mode(0o666))
                .with_context(|| format!("cannot chmod {}", fuse.display()))?;
            eprintln!("xtask: /dev/fuse is now 0666 (Debian's default) for rootless FUSE mounts");
        }
    }
    let tun = std::path::Path::new("/dev/net/tun");
    if let Ok(meta) = std::fs::metadata(tun) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o777 != 0o666 {
            std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o666))
                .with_context(|| format!("cannot chmod {}", tun.display()))?;
            eprintln!("xtask: /dev/net/tun is now 0666 (Debian's default) for rootless networking");
        }
    }
    Ok(())
}

/// Installs whichever of `packages` are missing (`apt-get update` once, then one
/// `apt-get install`). Fails when something is missing and we are not root.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing = missing_packages(packages)?;
    if missing.is_empty() {
        eprintln!(
            "xtask: all {} needed packages are installed",
            packages.len()
        );
        return Ok(());
    }
    if !process::is_root()? {
        bail!(
            "packages {} are missing and installing them needs root: run this as root, or \
             `apt-get install {}` yourself",
            missing.join(", "),
            missing.join(" ")
        );
    }
    run(apt().arg("update")).context("apt-get update failed: check the machine's apt sources")?;
    run(apt()
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing))
    .with_context(|| format!("cannot install {}", missing.join(" ")))?;
    let still = missing_packages(packages)?;
    if !still.is_empty() {
        bail!(
            "apt-get reported success but {} are still not installed",
            still.join(", ")
        );
    }
    Ok(())
}

fn apt() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// The packages of `packages` that dpkg does not list as installed.
fn missing_packages(packages: &[&str]) -> Result<Vec<String>> {
    // dpkg-query exits 1 when some name is unknown to dpkg; its stdout still lists the rest.
    let out = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Package} ${db:Status-Abbrev}\\n"])
        .args(packages)
        .stderr(std::process::Stdio::null())
        .output()
        .context("cannot run dpkg-query: this needs a Debian machine")?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let installed = installed_from_listing(&listing);
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(**p))
        .map(|p| p.to_string())
        .collect())
}

/// Names whose dpkg status abbreviation is `ii` (wanted: install, state: installed).
fn installed_from_listing(listing: &str) -> HashSet<&str> {
    listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fully_installed_packages_count() {
        let listing = "umoci ii \nskopeo rc \nattr un \nzstd ii \n";
        let installed = installed_from_listing(listing);
        assert!(installed.contains("umoci") && installed.contains("zstd"));
        assert!(
            !installed.contains("skopeo"),
            "removed but not purged is not installed"
        );
        assert!(!installed.contains("attr"));
    }

    #[test]
    fn unknown_package_is_missing() {
        let missing = missing_packages(&["no-such-package-strata-xtask"]).expect("dpkg-query runs");
        assert_eq!(missing, ["no-such-package-strata-xtask"]);
    }

    #[test]
    fn package_lists_have_no_duplicates() {
        for list in [TEST_PACKAGES, DEMO_PACKAGES] {
            let set: HashSet<_> = list.iter().collect();
            assert_eq!(set.len(), list.len());
        }
        assert!(DEMO_PACKAGES.iter().all(|p| TEST_PACKAGES.contains(p)));
    }
}
