//! The uncompressed kernel (`vmlinux`, an ELF) behind Debian's xz-compressed `vmlinuz`, for
//! qemu's PVH boot: qemu loads the ELF and jumps straight into the kernel, skipping the
//! firmware's Linux loader and the kernel's self-decompression, which under TCG take 6-8 s
//! of every boot. It needs a kernel built with `CONFIG_PVH=y` (Debian's is).
//!
//! The payload is found like the kernel tree's `scripts/extract-vmlinux` does, by the xz
//! stream magic inside the bzImage, and unpacked with the host's `xz`. It does not handle
//! other compressors: without an xz payload or PVH, callers boot the bzImage as it is.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Whether the kernel configuration `config` (a `boot/config-*` file) enables PVH entry.
pub fn supports_pvh(config: &Path) -> bool {
    fs::read_to_string(config).is_ok_and(|c| c.lines().any(|l| l == "CONFIG_PVH=y"))
}

/// Writes the ELF kernel inside `bzimage` to `out` (through a temporary file and a rename).
pub fn extract(bzimage: &Path, out: &Path) -> Result<()> {
    let image = fs::read(bzimage).with_context(|| format!("cannot read {}", bzimage.display()))?;
    let offset = find(&image, XZ_MAGIC)
        .with_context(|| format!("{} has no xz payload", bzimage.display()))?;
    drop(image);
    let mut input = File::open(bzimage)?;
    input.seek(SeekFrom::Start(offset as u64))?;
    let tmp = out.with_extension("tmp");
    let output = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    // --single-stream: stop at the end of the payload, ignoring the bzImage's tail.
    let status = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::from(input))
        .stdout(Stdio::from(output))
        .status()
        .context("cannot run xz (package xz-utils)")?;
    if !status.success() {
        let _ = fs::remove_file(&tmp);
        bail!(
            "xz failed ({status}) on the payload of {}",
            bzimage.display()
        );
    }
    let mut head = [0u8; 4];
    File::open(&tmp)?.read_exact(&mut head)?;
    if head != ELF_MAGIC {
        let _ = fs::remove_file(&tmp);
        bail!("the payload of {} is not an ELF kernel", bzimage.display());
    }
    fs::rename(&tmp, out).with_context(|| format!("cannot rename {}", tmp.display()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn payload_after_a_header_and_before_a_tail_is_extracted() {
        let dir = std::env::temp_dir().join(format!("strata-vmlinux-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let elf = b"\x7fELF pretend kernel";
        let mut xz = Command::new("xz")
            .args(["-c", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("xz runs");
        xz.stdin
            .take()
            .expect("piped")
            .write_all(elf)
            .expect("write");
        let payload = xz.wait_with_output().expect("xz output").stdout;
        let mut bzimage = b"MZ boot sector and setup code".to_vec();
        bzimage.extend(&payload);
        bzimage.extend(b"trailing data, not xz");
        let bz = dir.join("vmlinuz");
        fs::write(&bz, &bzimage).expect("write bzImage");
        let out = dir.join("vmlinux");
        extract(&bz, &out).expect("extracts");
        assert_eq!(fs::read(&out).expect("read"), elf);
        fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn pvh_is_read_from_the_config() {
        let dir = std::env::temp_dir().join(format!("strata-pvh-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("config");
        fs::write(&config, "CONFIG_XEN_PVH=y\n# CONFIG_PVH is not set\n").expect("write");
        assert!(!supports_pvh(&config));
        fs::write(&config, "CONFIG_XEN_PVH=y\nCONFIG_PVH=y\n").expect("write");
        assert!(supports_pvh(&config));
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
