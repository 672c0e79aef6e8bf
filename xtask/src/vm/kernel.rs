//! The guest kernel: Debian's stock image (the package `linux-image-amd64` points at),
//! fetched with `apt-get download` and unpacked with `dpkg-deb -x` into the cache. It is never
//! installed: nothing lands in the host's `/boot` or `/lib/modules` and no package scripts run.
//! Unpacking ends with `depmod` over the tree, so the guest can `modprobe` any module of it.
//!
//! A kernel directory appears in the cache by one rename once it is complete, so an interrupted
//! fetch leaves only a `.partial` directory that the next fetch replaces. Older kernels are
//! pruned when a new one lands. It does not verify the package beyond what apt does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::vmlinux;
use crate::process::{self, run};

/// The metapackage naming the current stock kernel.
const META_PACKAGE: &str = "linux-image-amd64";
/// apt's package lists; their mtime changes when `apt-get update` runs.
const APT_LISTS: &str = "/var/lib/apt/lists";

/// An unpacked kernel in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The release, as `uname -r` prints it in the guest (`6.1.0-56-amd64`).
    pub release: String,
    /// What qemu boots: the uncompressed ELF kernel (PVH entry, see `vmlinux.rs`) when it
    /// could be extracted, else the bzImage.
    pub image: PathBuf,
    /// `lib/modules/<release>`, with `modules.dep` and `modules.alias`.
    pub modules: PathBuf,
}

impl Kernel {
    fn at(dir: &Path, release: &str) -> Kernel {
        Kernel {
            release: release.to_owned(),
            image: dir.join("boot").join(format!("vmlinuz-{release}")),
            modules: dir.join("lib/modules").join(release),
        }
    }
}

/// The stock kernel, from `<cache>/kernel/<release>` or freshly fetched into it.
pub fn ensure(cache: &Path) -> Result<Kernel> {
    let kernels = cache.join("kernel");
    fs::create_dir_all(&kernels).with_context(|| format!("cannot create {}", kernels.display()))?;
    let package = image_package(&kernels)?;
    let release = package
        .strip_prefix("linux-image-")
        .context("image package name has no linux-image- prefix")?
        .to_owned();
    let dir = kernels.join(&release);
    let kernel = Kernel::at(&dir, &release);
    if !(kernel.image.is_file() && kernel.modules.join("modules.dep").is_file()) {
        fetch(&package, &kernels, &release)?;
        prune(&kernels, &release);
    }
    Ok(Kernel {
        image: boot_image(&dir, &release),
        ..kernel
    })
}

/// `boot/vmlinux-<release>`, extracted on first use, or the bzImage when that is impossible.
fn boot_image(dir: &Path, release: &str) -> PathBuf {
    let boot = dir.join("boot");
    let bzimage = boot.join(format!("vmlinuz-{release}"));
    let elf = boot.join(format!("vmlinux-{release}"));
    if elf.is_file() {
        return elf;
    }
    if !vmlinux::supports_pvh(&boot.join(format!("config-{release}"))) {
        return bzimage;
    }
    match vmlinux::extract(&bzimage, &elf) {
        Ok(()) => elf,
        Err(e) => {
            eprintln!("xtask: warning: booting the compressed kernel (slower): {e:#}");
            bzimage
        }
    }
}

/// The real image package behind the metapackage (`linux-image-6.1.0-56-amd64`). Asking apt
/// takes over a second, so the answer is kept in `<kernels>/.package` until apt's package
/// lists change (their directory's mtime moves with every `apt-get update`).
fn image_package(kernels: &Path) -> Result<String> {
    let lists_mtime = fs::metadata(APT_LISTS)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().to_string());
    let remembered = kernels.join(".package");
    if let (Some(stamp), Ok(text)) = (&lists_mtime, fs::read_to_string(&remembered)) {
        if let Some((s, package)) = text.trim().split_once(' ') {
            if s == stamp {
                return Ok(package.to_owned());
            }
        }
    }
    let out = process::output(Command::new("apt-cache").args(["depends", META_PACKAGE]))
        .with_context(|| format!("cannot ask apt which kernel {META_PACKAGE} means"))?;
    let package = image_package_from_depends(&out).with_context(|| {
        format!("`apt-cache depends {META_PACKAGE}` names no linux-image-<version> package")
    })?;
    if let Some(stamp) = lists_mtime {
        let _ = fs::write(&remembered, format!("{stamp} {package}\n"));
    }
    Ok(package)
}

fn image_package_from_depends(depends: &str) -> Option<String> {
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| {
            p.strip_prefix("linux-image-")
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_owned)
}

/// Downloads and unpacks `package` into `<kernels>/<release>` (atomically, by rename).
fn fetch(package: &str, kernels: &Path, release: &str) -> Result<()> {
    let partial = kernels.join(format!(".{release}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    eprintln!("xtask: fetching the guest kernel {package} (unpacked, not installed)");
    let mut download = Command::new("apt-get");
    download.arg("download").arg(package).current_dir(&partial);
    if process::is_root()? {
        // apt's _apt sandbox user cannot write into the cache directory.
        download.arg("-oAPT::Sandbox::User=root");
    }
    run(&mut download).with_context(|| format!("cannot download {package}"))?;
    let deb = fs::read_dir(&partial)
        .with_context(|| format!("cannot read {}", partial.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", partial.display()))?;
    let root = partial.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))
        .with_context(|| format!("cannot unpack {}", deb.display()))?;
    fs::remove_file(&deb).with_context(|| format!("cannot remove {}", deb.display()))?;
    let kernel = Kernel::at(&root, release);
    if !kernel.image.is_file() {
        bail!("{package} has no {}", kernel.image.display());
    }
    // busybox's depmod writes the text indexes that both busybox's and kmod's modprobe read.
    run(Command::new("busybox")
        .args(["depmod", "-b"])
        .arg(&root)
        .arg(release))
    .with_context(|| format!("depmod failed on {}", root.display()))?;
    let dir = kernels.join(release);
    fs::rename(&root, &dir)
        .with_context(|| format!("cannot move {} to {}", root.display(), dir.display()))?;
    fs::remove_dir_all(&partial).with_context(|| format!("cannot remove {}", partial.display()))
}

/// Removes kernels other than `keep` (a newer stock kernel replaced them).
fn prune(kernels: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(kernels) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name != keep && !name.to_string_lossy().starts_with('.') {
            eprintln!(
                "xtask: removing the old guest kernel {}",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_output_names_the_image_package() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            image_package_from_depends(out).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
    }

    #[test]
    fn other_dependencies_are_not_the_image() {
        let out = "linux-image-amd64\n  Depends: linux-image-amd64-signed-template\n  Recommends: firmware\n";
        assert_eq!(image_package_from_depends(out), None);
    }
}
