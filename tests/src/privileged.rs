//! The privileged-tier gate.

use std::path::PathBuf;

/// Where markers go: `$STRATA_PRIVILEGED_MARKERS`, else `$CARGO_TARGET_DIR` or `./target`
/// relative to the workspace, under `privileged-markers/`.
pub fn markers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STRATA_PRIVILEGED_MARKERS") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("privileged-markers")
}

/// Gate for a privileged test named `test` that needs `what` (e.g. "kernel overlay mounts").
/// Returns `true` when the test must run, `false` when the run explicitly excluded the
/// privileged tier. Panics (fails the test) when it must run but cannot.
pub fn require_privileged(test: &str, what: &str) -> bool {
    if std::env::var("STRATA_SKIP_PRIVILEGED").is_ok_and(|v| v == "1") {
        eprintln!("privileged test {test} left out (STRATA_SKIP_PRIVILEGED=1)");
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        panic!(
            "privileged test {test} needs root for {what}; run the test suite as root \
             (see README), or set STRATA_SKIP_PRIVILEGED=1 to leave the privileged tier out"
        );
    }
    let dir = markers_dir();
    let _ = std::fs::create_dir_all(&dir);
    let name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let _ = std::fs::write(dir.join(name), what);
    true
}

/// A kernel feature this host may lack and the VM tier's guest (Debian's stock kernel under
/// qemu, `cargo xtask vm`) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFeature {
    /// A pure cgroup v2 hierarchy at /sys/fs/cgroup (this host is hybrid v1).
    Cgroup2,
    /// Device-mapper (the kernel's `device-mapper` misc device; not in this host's kernel).
    DeviceMapper,
}

impl KernelFeature {
    pub fn name(self) -> &'static str {
        match self {
            KernelFeature::Cgroup2 => "cgroup2",
            KernelFeature::DeviceMapper => "devicemapper",
        }
    }

    pub fn present(self) -> bool {
        match self {
            KernelFeature::Cgroup2 => rustix::fs::statfs("/sys/fs/cgroup")
                .map(|s| s.f_type == 0x6367_7270)
                .unwrap_or(false),
            // The kernel's misc device, not the `/dev/mapper/control` node: dmsetup creates
            // that node even on a kernel without device-mapper.
            KernelFeature::DeviceMapper => {
                std::path::Path::new("/sys/class/misc/device-mapper").exists()
            }
        }
    }
}

/// Gate for a privileged test that also needs `feature`. Present: as [`require_privileged`].
/// Absent: returns `false` only when the run explicitly leaves the feature's tests out
/// (`STRATA_LEAVE_OUT` lists it, comma-separated: the host tier of `cargo xtask test` does,
/// because its VM tier runs them); otherwise fails naming how to run them.
pub fn require_kernel(test: &str, feature: KernelFeature, what: &str) -> bool {
    if !feature.present() {
        let left_out = std::env::var("STRATA_LEAVE_OUT")
            .is_ok_and(|v| v.split(',').any(|f| f.trim() == feature.name()));
        if left_out || std::env::var("STRATA_SKIP_PRIVILEGED").is_ok_and(|v| v == "1") {
            eprintln!(
                "test {test} left out: this kernel lacks {} (STRATA_LEAVE_OUT); the VM tier runs it",
                feature.name()
            );
            return false;
        }
        panic!(
            "test {test} needs {} for {what}, which this kernel lacks; run it in the VM tier \
             (`cargo xtask test` does, or `cargo xtask vm -- <test binary> {test}`), or set \
             STRATA_LEAVE_OUT={} to leave it out",
            feature.name(),
            feature.name()
        );
    }
    require_privileged(test, what)
}
