//! `cargo xtask demo`, the README's demo: the release `strata` binary, its plugins and
//! `strata-monitor` load the busybox fixture image into a throwaway store under /tmp and run a
//! container from it (`strata run --rm`, on crun, with a bridge network), then run one in
//! the background, read its log, list it and remove it.
//!
//! It drives the product only through the `strata` CLI, printing each command line. The store
//! is removed afterwards even when a step fails (anything still mounted below it is lazily
//! unmounted first). Nothing is fetched from the network.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{self, cargo};
use crate::{fixtures, setup, Workspace};

const GREETING: &str = "hello from strata";

/// Runs the demo with the given storage driver, building the release `strata` unless `strata`
/// names a binary to use (its plugins and monitor must then be installed next to it).
pub fn run(ws: &Workspace, driver: &str, strata: Option<PathBuf>) -> Result<()> {
    if !process::is_root()? {
        bail!("the demo mounts filesystems and runs containers: run it as root");
    }
    setup::ensure_packages(setup::DEMO_PACKAGES)?;
    setup::prepare_host()?;
    let fixtures_dir = ws.target.join("demo-fixtures");
    fixtures::build(ws, &fixtures_dir, fixtures::Selection::Busybox)?;
    let bin = match strata {
        Some(bin) => bin,
        None => {
            process::run(cargo(&ws.root).args([
                "build",
                "--release",
                "-p",
                "strata-tools",
                "-p",
                "strata-plugin-run",
                "-p",
                "strata-plugin-copy",
                "-p",
                "strata-tools-monitor",
            ]))?;
            let release = ws.target.join("release");
            crate::install_plugins(&release, &release.join("lib/strata/plugins"))?;
            release.join("strata")
        }
    };

    let store = DemoStore::create(bin, driver)?;
    let image = format!("oci:{}:latest", fixtures_dir.join("oci/busybox").display());
    store.strata([
        "storage",
        "load",
        &image,
        "--name",
        "localhost/busybox:latest",
    ])?;
    store.strata(["images"])?;
    let said = store.strata(["run", "--rm", "busybox", "echo", GREETING])?;
    if said.trim() != GREETING {
        bail!("the container printed {said:?}, expected {GREETING:?}");
    }
    store.strata([
        "run",
        "-d",
        "--name",
        "demo",
        "busybox",
        "sh",
        "-c",
        "echo up on $(hostname) at $(ip -4 -o addr show eth0 | awk '{print $4}'); exec sleep 600",
    ])?;
    store.strata(["ps"])?;
    store.strata(["exec", "demo", "uname", "-a"])?;
    store.strata(["logs", "demo"])?;
    store.strata(["rm", "-f", "demo"])?;
    println!("demo: ok ({driver} driver)");
    Ok(())
}

/// A temporary store (root and runroot under one /tmp directory), removed on drop.
#[derive(Debug)]
struct DemoStore {
    bin: PathBuf,
    base: PathBuf,
    driver: String,
}

impl DemoStore {
    fn create(bin: PathBuf, driver: &str) -> Result<DemoStore> {
        let base = std::env::temp_dir().join(format!("strata-demo-{}", std::process::id()));
        fs::create_dir(&base).with_context(|| format!("cannot create {}", base.display()))?;
        Ok(DemoStore {
            bin,
            base,
            driver: driver.to_owned(),
        })
    }

    /// Runs `strata --root .. --runroot .. --driver .. ARGS`; returns its stdout.
    fn strata<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(self.base.join("root"))
            .arg("--runroot")
            .arg(self.base.join("run"))
            .arg("--driver")
            .arg(&self.driver)
            .args(args);
        let out = process::output(&mut cmd)?;
        if !out.is_empty() {
            println!("{out}");
        }
        Ok(out)
    }
}

impl Drop for DemoStore {
    fn drop(&mut self) {
        // Containers first: their monitors, runtime records and networks.
        let _ = self.strata(["rm", "-f", "--all"]);
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for target in mounts_under(&mountinfo, &self.base) {
            eprintln!("xtask: unmounting leftover {}", target.display());
            if let Err(e) = process::run(Command::new("umount").arg("--lazy").arg(&target)) {
                eprintln!("xtask: warning: {e:#}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.base) {
            eprintln!(
                "xtask: warning: cannot remove the demo store {}: {e}",
                self.base.display()
            );
        }
    }
}

/// Mount points in `mountinfo` (the format of /proc/self/mountinfo) at or below `base`,
/// deepest first.
fn mounts_under(mountinfo: &str, base: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .filter(|p| p.starts_with(base))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found.dedup();
    found
}

/// Undoes the kernel's `\NNN` octal escaping of spaces, tabs, newlines and backslashes.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (bytes[i], digits) {
            (b'\\', Some(d)) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 22 0:50 / /tmp/strata-demo-7/run/mounts/abc rw - overlay overlay rw,lowerdir=/x
91 90 0:51 / /tmp/strata-demo-7/run/mounts/abc/proc rw - proc proc rw
92 22 0:52 / /tmp/strata-demo-70/other rw - tmpfs tmpfs rw
93 22 0:53 / /tmp/strata-demo-7/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_mounts_below_base_deepest_first() {
        let found = mounts_under(MOUNTINFO, Path::new("/tmp/strata-demo-7"));
        assert_eq!(
            found,
            [
                PathBuf::from("/tmp/strata-demo-7/with space"),
                PathBuf::from("/tmp/strata-demo-7/run/mounts/abc/proc"),
                PathBuf::from("/tmp/strata-demo-7/run/mounts/abc"),
            ]
        );
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape_octal("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape_octal("plain\\9"), "plain\\9");
    }
}
