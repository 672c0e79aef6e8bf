//! The guest's initramfs: the host's static busybox with its applet links, the init script
//! ([`super::guest::INIT_SCRIPT`]), `/dev/console`, and the kernel modules the guest loads at
//! boot with their dependency closure (read from the cached kernel's `modules.dep`).
//!
//! Two module lists: the ones init needs to reach the host root (virtio, 9p, ext4, overlay) are
//! required, and init fails the run when one does not load; the rest (device-mapper, loop,
//! xfs, btrfs, FUSE, tun and the netfilter modules container networking wants) are optional:
//! a load failure is a warning. Anything else is still loadable in the guest, from the full
//! module tree init mounts once the host root is up.
//!
//! The archive is uncompressed (the guest skips a decompression that costs seconds under
//! TCG) and cached as `initramfs/<release>-<hash>.cpio`, the hash covering the module lists,
//! the init script, busybox and the format version. It does not include any other userland:
//! commands run in the host root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::cpio::{Kind, Writer};
use super::guest::INIT_SCRIPT;
use super::kernel::Kernel;
use crate::process;

/// Bump when the archive's layout changes in a way the hash inputs do not show.
const FORMAT_VERSION: u32 = 1;

/// The host's static busybox (package busybox-static).
const BUSYBOX: &str = "/bin/busybox";

/// Modules init cannot do without: the virtio PCI bus, console and disk, 9p over virtio for
/// the host root, ext4 for the scratch disk and overlay to make the root writable.
pub const REQUIRED_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "virtio_blk",
    "9pnet_virtio",
    "9p",
    "crc32c_generic",
    "ext4",
    "overlay",
];

/// Modules loaded at boot when possible: storage drivers' filesystems and device-mapper
/// targets, FUSE, and what runtimes and CNI plugins use for container networks.
pub const OPTIONAL_MODULES: &[&str] = &[
    "crc32c_intel",
    "virtio_rng",
    "loop",
    "xfs",
    "btrfs",
    "fuse",
    "dm_mod",
    "dm_bufio",
    "dm_bio_prison",
    "dm_persistent_data",
    "dm_thin_pool",
    "dm_snapshot",
    "tun",
    "veth",
    "bridge",
    "br_netfilter",
    "nf_tables",
    "nft_compat",
    "nft_chain_nat",
    "nft_masq",
    "nf_nat",
    "nf_conntrack",
    "ip_tables",
    "iptable_nat",
    "iptable_filter",
    "ip6_tables",
    "ip6table_nat",
    "ip6table_filter",
    "xt_MASQUERADE",
    "xt_conntrack",
    "xt_comment",
    "xt_mark",
    "xt_multiport",
    "xt_addrtype",
    "xt_tcpudp",
];

/// The initramfs for `kernel`, built into `<cache>/initramfs/` unless already there.
pub fn ensure(cache: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let deps = ModuleDeps::read(&kernel.modules)?;
    let required = deps.present(REQUIRED_MODULES, true)?;
    let optional = deps.present(OPTIONAL_MODULES, false)?;
    let conf = format!(
        "KERNEL_RELEASE='{}'\nREQUIRED_MODULES='{}'\nOPTIONAL_MODULES='{}'\n",
        kernel.release,
        required.join(" "),
        optional.join(" ")
    );
    let busybox =
        fs::metadata(BUSYBOX).with_context(|| format!("cannot stat {BUSYBOX} (busybox-static)"))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (FORMAT_VERSION, INIT_SCRIPT, &conf, busybox.len()).hash(&mut hasher);
    busybox.modified().ok().hash(&mut hasher);
    let name = format!("{}-{:016x}.cpio", kernel.release, hasher.finish());
    let dir = cache.join("initramfs");
    let path = dir.join(&name);
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let modules = deps.closure(required.iter().chain(&optional))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    write(&tmp, kernel, &deps, &modules, &conf)
        .with_context(|| format!("cannot write the initramfs {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot rename {}", tmp.display()))?;
    eprintln!("xtask: built the guest initramfs {}", path.display());
    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.file_name() != name.as_str() {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(path)
}

fn write(
    path: &Path,
    kernel: &Kernel,
    deps: &ModuleDeps,
    modules: &BTreeSet<String>,
    conf: &str,
) -> Result<()> {
    let file = fs::File::create(path)?;
    let mut cpio = Writer::new(BufWriter::new(file));
    let moddir = format!("lib/modules/{}", kernel.release);
    let mut dirs: BTreeSet<String> = [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "lower",
        "scratch", "newroot", "etc",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    dirs.insert(moddir.clone());
    for m in modules {
        if let Some(parent) = Path::new(m).parent() {
            dirs.insert(format!("{moddir}/{}", parent.display()));
        }
    }
    // Every ancestor too; BTreeSet order puts parents before their children.
    for d in dirs.clone() {
        let mut p = Path::new(&d);
        while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(parent.display().to_string());
            p = parent;
        }
    }
    for d in &dirs {
        cpio.entry(d, Kind::Dir, 0o755, b"")?;
    }
    cpio.entry("dev/console", Kind::CharDev(5, 1), 0o600, b"")?;
    cpio.entry("dev/null", Kind::CharDev(1, 3), 0o666, b"")?;
    let busybox = fs::read(BUSYBOX).with_context(|| format!("cannot read {BUSYBOX}"))?;
    cpio.entry("bin/busybox", Kind::File, 0o755, &busybox)?;
    let applets = process::output(Command::new(BUSYBOX).arg("--list-full"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        let parent = Path::new(applet).parent().map(|p| p.display().to_string());
        if applet != "bin/busybox" && parent.is_some_and(|p| dirs.contains(&p)) {
            cpio.entry(applet, Kind::Symlink, 0o777, b"/bin/busybox")?;
        }
    }
    cpio.entry("init", Kind::File, 0o755, INIT_SCRIPT.as_bytes())?;
    cpio.entry("etc/strata-vm.conf", Kind::File, 0o644, conf.as_bytes())?;
    let mut dep_lines = String::new();
    for m in modules {
        let data =
            fs::read(kernel.modules.join(m)).with_context(|| format!("cannot read module {m}"))?;
        cpio.entry(&format!("{moddir}/{m}"), Kind::File, 0o644, &data)?;
        let needs = deps.deps.get(m).map(|d| d.join(" ")).unwrap_or_default();
        dep_lines.push_str(&format!("{m}: {needs}\n"));
    }
    cpio.entry(
        &format!("{moddir}/modules.dep"),
        Kind::File,
        0o644,
        dep_lines.as_bytes(),
    )?;
    cpio.finish()?;
    Ok(())
}

/// `modules.dep` and `modules.builtin` of a module tree.
#[derive(Debug)]
struct ModuleDeps {
    /// Module path (relative to the tree) to the paths it depends on.
    deps: BTreeMap<String, Vec<String>>,
    /// Module name (`-` spelt `_`) to its path.
    by_name: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
}

impl ModuleDeps {
    fn read(tree: &Path) -> Result<ModuleDeps> {
        let dep_file = tree.join("modules.dep");
        let text = fs::read_to_string(&dep_file)
            .with_context(|| format!("cannot read {}", dep_file.display()))?;
        let builtin_file = tree.join("modules.builtin");
        let builtin = fs::read_to_string(&builtin_file).unwrap_or_default();
        Ok(ModuleDeps::parse(&text, &builtin))
    }

    fn parse(modules_dep: &str, modules_builtin: &str) -> ModuleDeps {
        let mut deps = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for line in modules_dep.lines() {
            let Some((module, list)) = line.split_once(':') else {
                continue;
            };
            let module = module.trim().to_owned();
            by_name.insert(module_name(&module), module.clone());
            deps.insert(module, list.split_whitespace().map(str::to_owned).collect());
        }
        let builtin = modules_builtin.lines().map(module_name).collect();
        ModuleDeps {
            deps,
            by_name,
            builtin,
        }
    }

    /// The names of `wanted` that exist as loadable modules. Built-in ones are left out;
    /// missing ones are an error when `required`, else a warning.
    fn present(&self, wanted: &[&str], required: bool) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for w in wanted {
            let name = w.replace('-', "_");
            if self.by_name.contains_key(&name) {
                found.push(name);
            } else if self.builtin.contains(&name) {
                continue;
            } else if required {
                bail!("the guest kernel has no module {w}, built in or loadable");
            } else {
                eprintln!("xtask: warning: the guest kernel has no module {w}; skipping it");
            }
        }
        Ok(found)
    }

    /// The module files for `names` plus everything they depend on.
    fn closure<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<BTreeSet<String>> {
        let mut todo: Vec<String> = names
            .into_iter()
            .map(|n| {
                self.by_name
                    .get(n)
                    .cloned()
                    .with_context(|| format!("no module {n}"))
            })
            .collect::<Result<_>>()?;
        let mut out = BTreeSet::new();
        while let Some(m) = todo.pop() {
            if out.insert(m.clone()) {
                let deps = self
                    .deps
                    .get(&m)
                    .with_context(|| format!("modules.dep lists {m} as a dependency only"))?;
                todo.extend(deps.iter().cloned());
            }
        }
        Ok(out)
    }
}

/// `kernel/fs/overlayfs/overlay.ko` -> `overlay`; `dm-mod.ko.xz` -> `dm_mod`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/md/dm-thin-pool.ko: kernel/drivers/md/dm-bio-prison.ko kernel/drivers/md/dm-mod.ko\n\
                       kernel/drivers/md/dm-bio-prison.ko:\n\
                       kernel/drivers/md/dm-mod.ko:\n\
                       kernel/fs/overlayfs/overlay.ko:\n";

    #[test]
    fn closure_follows_dependencies() {
        let deps = ModuleDeps::parse(DEP, "kernel/fs/ext4/ext4.ko\n");
        let names = deps
            .present(&["dm-thin-pool"], true)
            .expect("dm-thin-pool is there");
        assert_eq!(names, ["dm_thin_pool"]);
        let closure = deps.closure(&names).expect("closure");
        assert_eq!(
            closure.into_iter().collect::<Vec<_>>(),
            [
                "kernel/drivers/md/dm-bio-prison.ko",
                "kernel/drivers/md/dm-mod.ko",
                "kernel/drivers/md/dm-thin-pool.ko"
            ]
        );
    }

    #[test]
    fn builtin_modules_are_skipped_and_missing_required_ones_fail() {
        let deps = ModuleDeps::parse(DEP, "kernel/fs/ext4/ext4.ko\n");
        assert_eq!(
            deps.present(&["ext4", "overlay"], true)
                .expect("both exist"),
            ["overlay"]
        );
        let err = deps.present(&["xfs"], true).expect_err("xfs is absent");
        assert!(err.to_string().contains("no module xfs"), "{err}");
        assert!(deps.present(&["xfs"], false).expect("optional").is_empty());
    }

    #[test]
    fn module_names_normalise_dashes_and_suffixes() {
        assert_eq!(module_name("kernel/drivers/md/dm-mod.ko"), "dm_mod");
        assert_eq!(module_name("kernel/fs/9p/9p.ko.xz"), "9p");
    }
}
