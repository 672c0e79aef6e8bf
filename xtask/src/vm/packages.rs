//! The host packages the VM tier needs: qemu (`qemu-system-x86`), busybox-static (the
//! guest's userland until it switches to the host root) and e2fsprogs (the scratch disk).
//!
//! qemu is the delicate one. The qemu packages on a machine must come from one release: this
//! machine has `qemu-utils` from bookworm-backports, whose `Breaks: qemu-system-common (<< 8)`
//! makes apt *remove* it to install bookworm's qemu 7.2. So the version to install is the one
//! of the qemu packages already present; when only backports has it and the machine has no
//! backports source, apt is pointed at one through a private, temporary configuration (the
//! host's apt sources and lists are left as they were). apt always runs with `--no-remove`.
//!
//! It does not upgrade or remove anything, and never touches the kernel packages of the host.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::process::{self, run};
use crate::setup;

/// Packages installed the plain way (any version does).
const PLAIN: &[&str] = &["busybox-static", "e2fsprogs"];
const QEMU: &str = "qemu-system-x86";
/// Installed qemu packages whose version `qemu-system-x86` must match.
const QEMU_SIBLINGS: &[&str] = &["qemu-system-common", "qemu-utils", "qemu-system-data"];

/// Installs whatever of qemu, busybox-static and e2fsprogs is missing.
pub fn ensure() -> Result<()> {
    setup::ensure_packages(PLAIN)?;
    if installed_version(QEMU)?.is_some() {
        return Ok(());
    }
    if !process::is_root()? {
        bail!("{QEMU} is missing and installing it needs root: run this as root");
    }
    let pinned = QEMU_SIBLINGS
        .iter()
        .map(|p| installed_version(p))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .next();
    let Some(version) = pinned else {
        return apt_install(&[], QEMU);
    };
    let target = format!("{QEMU}={version}");
    let madison = process::output(Command::new("apt-cache").args(["madison", QEMU]))?;
    if madison_versions(&madison).contains(&version.as_str()) {
        return apt_install(&[], &target);
    }
    if !version.contains("~bpo") {
        bail!(
            "{QEMU} must match the installed qemu packages ({version}), but apt offers only {}; \
             install {target} yourself",
            madison_versions(&madison).join(", ")
        );
    }
    install_from_backports(&target)
}

/// Installs `target` with a temporary apt configuration that adds `<codename>-backports`.
fn install_from_backports(target: &str) -> Result<()> {
    let codename = os_release_field("VERSION_CODENAME")?;
    let dir = std::env::temp_dir().join(format!("strata-vm-apt-{}", std::process::id()));
    let lists = dir.join("lists");
    std::fs::create_dir_all(lists.join("partial"))
        .with_context(|| format!("cannot create {}", lists.display()))?;
    // Replaces /etc/apt/sources.list for this run only; sources.list.d/ stays in effect.
    let mut sources = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    sources.push_str(&format!(
        "\ndeb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian {codename}-backports main\n"
    ));
    let list = dir.join("sources.list");
    std::fs::write(&list, sources).with_context(|| format!("cannot write {}", list.display()))?;
    let options = [
        format!("-oDir::Etc::sourcelist={}", list.display()),
        format!("-oDir::State::lists={}", lists.display()),
    ];
    eprintln!("xtask: {target} is only in {codename}-backports; using a temporary apt source");
    let result = run(apt().args(&options).arg("update"))
        .context("apt-get update with the backports source failed")
        .and_then(|()| {
            // The target release lets apt take the matching dependencies from backports too.
            let mut install = options.to_vec();
            install.extend(["-t".to_owned(), format!("{codename}-backports")]);
            apt_install(&install, target)
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn apt_install(options: &[String], target: &str) -> Result<()> {
    run(apt()
        .args(options)
        .args(["install", "-y", "--no-install-recommends", "--no-remove"])
        .arg(target))
    .with_context(|| format!("cannot install {target} (apt would have to remove packages?)"))?;
    if installed_version(QEMU)?.is_none() {
        bail!("apt-get reported success but {QEMU} is still not installed");
    }
    Ok(())
}

fn apt() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// The installed version of `package`, or `None` when dpkg does not list it as installed.
fn installed_version(package: &str) -> Result<Option<String>> {
    let out = Command::new("dpkg-query")
        .args([
            "--show",
            "--showformat=${db:Status-Abbrev} ${Version}",
            package,
        ])
        .stderr(Stdio::null())
        .output()
        .context("cannot run dpkg-query: the VM tier needs a Debian host")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .strip_prefix("ii ")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty()))
}

/// The versions in `apt-cache madison` output (`name | version | source`).
fn madison_versions(madison: &str) -> Vec<&str> {
    madison
        .lines()
        .filter_map(|l| l.split('|').nth(1))
        .map(str::trim)
        .collect()
}

fn os_release_field(key: &str) -> Result<String> {
    let path = Path::new("/etc/os-release");
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .with_context(|| format!("{} has no {key}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madison_lines_give_versions() {
        let out = "qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n\
                   qemu-system-x86 | 1:7.2+dfsg-7+deb12u15 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages";
        assert_eq!(
            madison_versions(out),
            ["1:7.2+dfsg-7+deb12u18+b3", "1:7.2+dfsg-7+deb12u15"]
        );
    }

    #[test]
    fn unknown_package_has_no_version() {
        assert_eq!(
            installed_version("no-such-package-strata-xtask").expect("dpkg-query runs"),
            None
        );
    }

    #[test]
    fn installed_package_has_its_version() {
        let v = installed_version("dpkg").expect("dpkg-query runs");
        assert!(v.is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit())));
    }
}
