//! Front-end plugins: finding, checking and loading them, listing them (`strata plugins`),
//! and running their commands.
//!
//! Search path, first match wins for a plugin name (later copies are reported as shadowed):
//!
//! ```text
//! $STRATA_PLUGIN_PATH            colon-separated directories
//! <dir of strata>/lib/strata/plugins
//! <dir of strata>/../lib/strata/plugins   (installed: /usr/bin/strata -> /usr/lib/strata/plugins)
//! /usr/local/lib/strata/plugins
//! /usr/lib/strata/plugins
//! ```
//!
//! Every `*.so` file in those directories is checked before it is loaded (not group or
//! world writable, nor its directory), then its entry table is checked (ABI major version,
//! table size, a run function, command names unique across plugins and not the host's own).
//! A refused plugin is skipped with its reason; `strata plugins` shows it.
//!
//! What this module does not do: unload plugins (they stay loaded for the process's life, so
//! no thread of theirs can outlive their code).

mod host_table;
mod listing;
mod load;
mod methods;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use host_table::run_command;

/// Commands the host itself owns; no plugin may take them.
pub const BUILTIN_COMMANDS: &[&str] = &["storage", "plugins", "help", "unshare"];

/// Which plugin file provides the front ends' well-known commands (for "not installed" hints).
const KNOWN: &[(&str, &str)] = &[
    ("copy", "copy"),
    ("inspect-remote", "copy"),
    ("list-tags", "copy"),
    ("delete", "copy"),
    ("sync", "copy"),
    ("login", "copy"),
    ("logout", "copy"),
    ("build", "build"),
    ("run", "run"),
    ("pull", "run"),
    ("create", "run"),
    ("exec", "run"),
    ("ps", "run"),
    ("logs", "run"),
    ("pod", "run"),
    ("cri", "cri"),
    ("bench", "bench"),
];

/// A plugin that loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Plugin {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub commands: Vec<CommandInfo>,
    #[serde(skip)]
    pub(crate) run: load::Runner,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandInfo {
    pub name: String,
    pub about: String,
}

/// A plugin file that was not loaded, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub path: PathBuf,
    pub reason: String,
}

/// What the search found.
#[derive(Debug, Default, Serialize)]
pub struct Plugins {
    pub search_path: Vec<PathBuf>,
    pub loaded: Vec<Plugin>,
    pub refused: Vec<Refused>,
}

impl Plugins {
    /// Searches the plugin path and loads what passes the checks.
    pub fn discover() -> Plugins {
        let mut p = Plugins {
            search_path: search_path(),
            ..Plugins::default()
        };
        for dir in p.search_path.clone() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "so"))
                .collect();
            files.sort();
            for f in files {
                match load::load(&f) {
                    Ok(plugin) => p.admit(plugin),
                    Err(reason) => {
                        tracing::debug!(plugin = %f.display(), "plugin refused: {reason}");
                        p.refused.push(Refused { path: f, reason });
                    }
                }
            }
        }
        p
    }

    fn admit(&mut self, plugin: Plugin) {
        if let Some(first) = self.loaded.iter().find(|l| l.name == plugin.name) {
            let reason = format!(
                "shadowed: plugin {} is already loaded from {}",
                plugin.name,
                first.path.display()
            );
            self.refused.push(Refused {
                path: plugin.path,
                reason,
            });
            return;
        }
        for c in &plugin.commands {
            if BUILTIN_COMMANDS.contains(&c.name.as_str()) {
                let reason = format!("command {} belongs to strata itself", c.name);
                self.refused.push(Refused {
                    path: plugin.path,
                    reason,
                });
                return;
            }
            if let Some(owner) = self
                .loaded
                .iter()
                .find(|l| l.commands.iter().any(|o| o.name == c.name))
            {
                let reason = format!(
                    "command {} is already provided by plugin {} ({})",
                    c.name,
                    owner.name,
                    owner.path.display()
                );
                self.refused.push(Refused {
                    path: plugin.path,
                    reason,
                });
                return;
            }
        }
        tracing::debug!(plugin = %plugin.name, path = %plugin.path.display(), "plugin loaded");
        self.loaded.push(plugin);
    }

    /// The plugin that provides `command`.
    pub fn owner(&self, command: &str) -> Option<&Plugin> {
        self.loaded
            .iter()
            .find(|p| p.commands.iter().any(|c| c.name == command))
    }

    /// The one-line message for a command no plugin provides.
    pub fn missing(&self, command: &str) -> String {
        let dirs: Vec<String> = self
            .search_path
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        match KNOWN.iter().find(|(c, _)| *c == command) {
            Some((_, plugin)) => {
                let file = format!("libstrata_plugin_{plugin}.so");
                let why = self
                    .refused
                    .iter()
                    .find(|r| r.path.file_name().is_some_and(|n| n == file.as_str()))
                    .map(|r| format!(" ({} was refused: {})", r.path.display(), r.reason))
                    .unwrap_or_default();
                format!(
                    "command {command} is provided by the {plugin} plugin, which is not installed{why}: \
                     install {file} into one of: {}",
                    dirs.join(", ")
                )
            }
            None => format!(
                "unknown command {command}; see strata --help (plugins are searched in: {})",
                dirs.join(", ")
            ),
        }
    }
}

fn search_path() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(v) = std::env::var_os("STRATA_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("lib/strata/plugins"));
        if let Some(prefix) = exe_dir.parent() {
            dirs.push(prefix.join("lib/strata/plugins"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/lib/strata/plugins"));
    dirs.push(PathBuf::from("/usr/lib/strata/plugins"));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}
