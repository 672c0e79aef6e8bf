//! Global settings: `--root`, `--runroot`, `--driver`, `--storage-opt`, resolved with the
//! precedence flag > `STRATA_*` environment variable > TOML config file > built-in default.
//!
//! Defaults follow containers/storage: root uses `/var/lib/strata` and `/run/strata`; rootless
//! users `$XDG_DATA_HOME/strata` (else `~/.local/share/strata`) and `$XDG_RUNTIME_DIR/strata`
//! (else `/tmp/strata-<uid>`, with the uid from outside the user namespace). The default
//! driver is `overlay`: for rootless users inside their user namespace (`userxattr`, see
//! `crate::rootless`); `vfs` only for a rootless process outside one, or on kernels before
//! 5.11, which cannot mount overlay in a user namespace.
//!
//! "Rootless" is read from `/proc/self/uid_map` (not the identity map), not from the euid,
//! which is 0 inside the namespace.
//!
//! The config file is `--config FILE`, else `$STRATA_CONFIG`, else `/etc/strata/strata.toml`
//! for root and `$XDG_CONFIG_HOME/strata/strata.toml` otherwise; a missing default file is fine:
//! ```toml
//! root = "/var/lib/strata"
//! runroot = "/run/strata"
//! driver = "overlay"
//! storage_opts = ["key=value"]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Store root directory for persistent data
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Directory for transient state (mount points)
    #[arg(long, global = true, env = "STRATA_RUNROOT", value_name = "DIR")]
    pub runroot: Option<PathBuf>,
    /// Storage driver: overlay, fuse-overlay, vfs, btrfs (the store must be on btrfs) or devicemapper
    /// (a thin pool: `--storage-opt dm.thinpooldev=NAME`, or loop files in the store)
    #[arg(long, global = true, env = "STRATA_DRIVER", value_name = "NAME")]
    pub driver: Option<String>,
    /// Driver option as KEY=VALUE (repeatable)
    #[arg(long = "storage-opt", global = true, value_name = "KEY=VALUE")]
    pub storage_opts: Vec<String>,
    /// Refuse layers that expand to more than SIZE uncompressed (bytes, or with a K, M, G or T
    /// suffix, powers of 1024); a guard against decompression bombs [default: 256G]
    #[arg(long, global = true, env = "STRATA_MAX_LAYER_SIZE", value_name = "SIZE", value_parser = parse_size)]
    pub max_layer_size: Option<u64>,
    /// Configuration file (TOML)
    #[arg(long, global = true, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace (or set STRATA_LOG)
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    root: Option<PathBuf>,
    runroot: Option<PathBuf>,
    driver: Option<String>,
    #[serde(default)]
    storage_opts: Vec<String>,
    #[serde(default, deserialize_with = "de_size")]
    max_layer_size: Option<u64>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub driver: String,
    pub driver_options: Vec<(String, String)>,
    pub max_layer_size: u64,
}

fn is_root() -> bool {
    !crate::rootless::is_rootless()
}

/// The kernel's release as (major, minor), from `/proc/sys/kernel/osrelease`.
fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The default driver: overlay; for a rootless user whose kernel cannot mount overlay in a
/// user namespace (before 5.11, or no overlayfs at all), fuse-overlay over the same layout
/// when `/dev/fuse` is open to the user and the server is installed; vfs otherwise.
fn default_driver() -> &'static str {
    if is_root() {
        return "overlay";
    }
    let kernel_overlay = kernel_version().is_some_and(|v| v >= (5, 11))
        && std::fs::read_to_string("/proc/filesystems").is_ok_and(|l| {
            l.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        });
    if crate::rootless::in_user_namespace() && kernel_overlay {
        "overlay"
    } else if crate::rootless::in_user_namespace() && fuse_usable() {
        "fuse-overlay"
    } else {
        "vfs"
    }
}

/// Whether this user can serve a FUSE overlay: `/dev/fuse` read-write and the server found.
fn fuse_usable() -> bool {
    rustix::fs::access(
        "/dev/fuse",
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
    )
    .is_ok()
        && strata_mount::fuse_server_binary().is_ok()
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn default_config_path() -> Option<PathBuf> {
    if is_root() {
        Some(PathBuf::from("/etc/strata/strata.toml"))
    } else {
        env_path("XDG_CONFIG_HOME")
            .or_else(|| env_path("HOME").map(|h| h.join(".config")))
            .map(|d| d.join("strata/strata.toml"))
    }
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings> {
        let file = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", p.display()))?
            }
            None => match default_config_path() {
                Some(p) if p.exists() => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read config file {}", p.display()))?;
                    toml::from_str(&text)
                        .with_context(|| format!("invalid config file {}", p.display()))?
                }
                _ => FileConfig::default(),
            },
        };
        let uid = crate::rootless::host_uid();
        let root = args.root.clone().or(file.root).unwrap_or_else(|| {
            if is_root() {
                PathBuf::from("/var/lib/strata")
            } else {
                env_path("XDG_DATA_HOME")
                    .or_else(|| env_path("HOME").map(|h| h.join(".local/share")))
                    .unwrap_or_else(|| PathBuf::from(format!("/tmp/strata-{uid}-data")))
                    .join("strata")
            }
        });
        let runroot = args.runroot.clone().or(file.runroot).unwrap_or_else(|| {
            if is_root() {
                PathBuf::from("/run/strata")
            } else {
                crate::rootless::runtime_dir(uid)
            }
        });
        let driver = args
            .driver
            .clone()
            .or(file.driver)
            .unwrap_or_else(|| default_driver().into());
        let mut driver_options = Vec::new();
        for opt in file.storage_opts.iter().chain(&args.storage_opts) {
            match opt.split_once('=') {
                Some((k, v)) if !k.is_empty() => driver_options.push((k.to_owned(), v.to_owned())),
                _ => bail!("invalid --storage-opt {opt:?}: expected KEY=VALUE"),
            }
        }
        Ok(Settings {
            root: absolute(root)?,
            runroot: absolute(runroot)?,
            driver,
            driver_options,
            max_layer_size: args
                .max_layer_size
                .or(file.max_layer_size)
                .unwrap_or(strata_graph_store::DEFAULT_MAX_LAYER_SIZE),
        })
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&p).with_context(|| format!("cannot resolve path {}", p.display()))
}

/// Parses a size: bytes, or a number with a K, M, G or T suffix (powers of 1024; an optional
/// trailing `B` or `iB` is accepted, so `512M`, `512MiB` and `512MB` all mean 512 MiB).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: use bytes or a number with K, M, G or T"))?;
    if n == 0 {
        return Err(format!("invalid size {s:?}: must be more than zero"));
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::Bytes(0)) => Err(serde::de::Error::custom(
            "max_layer_size must be more than zero",
        )),
        Some(Size::Bytes(n)) => Ok(Some(n)),
        Some(Size::Text(t)) => parse_size(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::{kernel_version, parse_size};

    #[test]
    fn the_kernel_version_is_read() {
        let v = kernel_version().expect("a Linux kernel release");
        assert!(v >= (3, 0), "{v:?}");
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
