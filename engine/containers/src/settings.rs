//! The engine's settings: `STRATA_RUNTIME`, else `runtime` in `run.toml`
//! (`/etc/strata/run.toml` for root, `$XDG_CONFIG_HOME/strata/run.toml` for other users and
//! rootless mode, where the euid is 0 inside the user namespace), else crun.
//!
//! ```toml
//! runtime = "runc"
//! ```

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunConfig {
    runtime: Option<String>,
}

fn config_path() -> Option<PathBuf> {
    if rustix::process::geteuid().is_root() && !crate::rootless::in_user_namespace() {
        return Some(PathBuf::from("/etc/strata/run.toml"));
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("strata/run.toml"))
}

fn file_config() -> RunConfig {
    let Some(p) = config_path() else {
        return RunConfig::default();
    };
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %p.display(), error = %e, "ignoring unreadable run.toml");
            RunConfig::default()
        }),
        Err(_) => RunConfig::default(),
    }
}

/// The OCI runtime when `--runtime` is not given.
pub fn default_runtime() -> String {
    std::env::var("STRATA_RUNTIME")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| file_config().runtime)
        .unwrap_or_else(|| crate::runtime::DEFAULT_RUNTIME.to_owned())
}
