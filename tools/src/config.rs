//! Global settings: `--root`, `--runroot`, `--driver`, `--storage-opt`, resolved with the
//! precedence flag > `STRATA_*` environment variable > TOML config file > built-in default.
//!
//! Defaults follow containers/storage: root uses `/var/lib/strata` and `/run/strata`; other
//! users `$XDG_DATA_HOME/strata` (else `~/.local/share/strata`) and `$XDG_RUNTIME_DIR/strata`
//! (else `/tmp/strata-<uid>`). The default driver is `overlay` for root and `vfs` otherwise
//! (kernel overlay needs a user namespace, which the plumbing commands do not set up).
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
    /// Storage driver: overlay or vfs
    #[arg(long, global = true, env = "STRATA_DRIVER", value_name = "NAME")]
    pub driver: Option<String>,
    /// Driver option as KEY=VALUE (repeatable)
    #[arg(long = "storage-opt", global = true, value_name = "KEY=VALUE")]
    pub storage_opts: Vec<String>,
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
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub driver: String,
    pub driver_options: Vec<(String, String)>,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
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
        let uid = rustix::process::geteuid().as_raw();
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
                env_path("XDG_RUNTIME_DIR")
                    .map(|d| d.join("strata"))
                    .unwrap_or_else(|| PathBuf::from(format!("/tmp/strata-{uid}")))
            }
        });
        let driver = args.driver.clone().or(file.driver).unwrap_or_else(|| {
            if is_root() {
                "overlay".into()
            } else {
                "vfs".into()
            }
        });
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
        })
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&p).with_context(|| format!("cannot resolve path {}", p.display()))
}
