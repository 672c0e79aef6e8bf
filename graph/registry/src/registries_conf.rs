//! containers-registries.conf(5), version 2: search registries, per-registry `location`,
//! `insecure`, `blocked` and mirrors, and short-name aliases.
//!
//! Files are read from `/etc/containers/registries.conf` and then every
//! `/etc/containers/registries.conf.d/*.conf` in name order; a later file replaces
//! `unqualified-search-registries` when it sets it, replaces `[[registry]]` entries with the
//! same prefix, and adds or replaces aliases. A missing file is an empty configuration.
//!
//! Not supported: the v1 format (`[registries.search]`), `short-name-mode` prompting,
//! `credential-helpers`, per-user files under `$HOME/.config/containers`, and the
//! `pull-from-mirror` setting (`mirror-by-digest-only` is honoured).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};
use crate::reference::{is_domain, Reference};

/// The system configuration file.
pub const DEFAULT_PATH: &str = "/etc/containers/registries.conf";
/// The drop-in directory read after it.
pub const DEFAULT_DROPIN_DIR: &str = "/etc/containers/registries.conf.d";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfFile {
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RegistryEntry>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryEntry {
    /// What references this entry applies to (`example.com/ns`, `*.example.com`); defaults
    /// to `location`.
    #[serde(default)]
    pub prefix: String,
    /// Where matching references are pulled from (replaces the prefix).
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub mirror_by_digest_only: bool,
    #[serde(default)]
    pub mirror: Vec<Mirror>,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Mirror {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
}

/// The merged configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    pub search_registries: Vec<String>,
    pub registries: Vec<RegistryEntry>,
    pub aliases: BTreeMap<String, String>,
}

/// A place to pull a reference from: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference rewritten for this endpoint (mirror host and path).
    pub reference: Reference,
    /// Plain HTTP allowed and TLS verification off (registries.conf `insecure = true`).
    pub insecure: bool,
    /// Whether this is a mirror (pull only) rather than the primary location.
    pub mirror: bool,
}

impl RegistriesConf {
    /// Reads the system configuration and its drop-ins, or only the file
    /// `$CONTAINERS_REGISTRIES_CONF` names (as containers/image does).
    pub fn load_default() -> Result<RegistriesConf> {
        if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|p| !p.is_empty()) {
            return RegistriesConf::load(Path::new(&p), None);
        }
        RegistriesConf::load(Path::new(DEFAULT_PATH), Some(Path::new(DEFAULT_DROPIN_DIR)))
    }

    /// Reads `path` (if it exists) and then `dropin_dir/*.conf` in name order.
    pub fn load(path: &Path, dropin_dir: Option<&Path>) -> Result<RegistriesConf> {
        let mut conf = RegistriesConf::default();
        let mut files = vec![path.to_path_buf()];
        if let Some(dir) = dropin_dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut dropins: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                        .collect();
                    dropins.sort();
                    files.extend(dropins);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegistryError::io("read directory", dir)(e)),
            }
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => conf.merge_str(&text, &file)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegistryError::io("read", &file)(e)),
            }
        }
        Ok(conf)
    }

    /// Merges one file's contents (`origin` names it in errors).
    pub fn merge_str(&mut self, text: &str, origin: &Path) -> Result<()> {
        let bad = |reason: String| RegistryError::InvalidConfig {
            what: "registries.conf",
            path: origin.to_path_buf(),
            reason,
        };
        let file: ConfFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if let Some(search) = file.unqualified_search_registries {
            self.search_registries = search;
        }
        for mut entry in file.registry {
            if entry.prefix.is_empty() {
                entry.prefix = entry.location.clone();
            }
            if entry.prefix.is_empty() {
                return Err(bad("a [[registry]] needs a prefix or a location".into()));
            }
            if entry.prefix.starts_with("*.") && !entry.location.is_empty() {
                return Err(bad(format!(
                    "wildcard prefix {} cannot have a location",
                    entry.prefix
                )));
            }
            self.registries.retain(|e| e.prefix != entry.prefix);
            self.registries.push(entry);
        }
        for (name, target) in file.aliases {
            Reference::parse_name_or_ref(&target)
                .map_err(|e| bad(format!("alias {name:?}: {e}")))?;
            self.aliases.insert(name, target);
        }
        Ok(())
    }

    /// The `[[registry]]` entry with the longest prefix matching `reference`.
    pub fn find(&self, reference: &Reference) -> Option<&RegistryEntry> {
        let name = reference.name();
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, &name))
            .max_by_key(|e| e.prefix.len())
    }

    /// Whether the registry `host` (as in references) is marked insecure.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, host))
            .max_by_key(|e| e.prefix.len())
            .is_some_and(|e| e.insecure)
    }

    /// Where to pull `reference` from: mirrors first, then the (possibly relocated)
    /// registry. Fails when the registry is blocked.
    pub fn pull_endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>> {
        let Some(entry) = self.find(reference) else {
            return Ok(vec![Endpoint {
                reference: reference.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(RegistryError::Blocked {
                registry: reference.registry().to_owned(),
                reference: reference.to_string(),
            });
        }
        let mut out = Vec::new();
        let by_digest = reference.digest().is_some();
        if by_digest || !entry.mirror_by_digest_only {
            for m in &entry.mirror {
                out.push(Endpoint {
                    reference: rewrite(reference, &entry.prefix, &m.location)?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        out.push(self.push_endpoint(reference)?);
        Ok(out)
    }

    /// Where to push `reference` (no mirrors). Fails when the registry is blocked.
    pub fn push_endpoint(&self, reference: &Reference) -> Result<Endpoint> {
        match self.find(reference) {
            None => Ok(Endpoint {
                reference: reference.clone(),
                insecure: false,
                mirror: false,
            }),
            Some(e) if e.blocked => Err(RegistryError::Blocked {
                registry: reference.registry().to_owned(),
                reference: reference.to_string(),
            }),
            Some(e) => Ok(Endpoint {
                reference: if e.location.is_empty() {
                    reference.clone()
                } else {
                    rewrite(reference, &e.prefix, &e.location)?
                },
                insecure: e.insecure,
                mirror: false,
            }),
        }
    }

    /// Resolves a name a user typed (`podman pull NAME`) to candidate references, in the
    /// order to try them: a qualified name is itself; a short name is its alias if there
    /// is one, else the name in each search registry.
    pub fn candidates(&self, input: &str) -> Result<Vec<Reference>> {
        if !Reference::is_short_name(input) {
            return Ok(vec![Reference::parse(input)?]);
        }
        // Validate the short name itself first (tag syntax, lowercase...).
        let parsed = Reference::parse(input)?;
        let short = match parsed.repository().strip_prefix("library/") {
            Some(rest) if !input.starts_with("library/") => rest.to_owned(),
            _ => parsed.repository().to_owned(),
        };
        let suffix = match (parsed.tag(), parsed.digest()) {
            (_, Some(d)) if input.contains('@') => format!("@{d}"),
            (Some(t), _) => format!(":{t}"),
            _ => String::new(),
        };
        if let Some(target) = self.aliases.get(&short) {
            return Ok(vec![Reference::parse(&format!("{target}{suffix}"))?]);
        }
        if self.search_registries.is_empty() {
            return Err(RegistryError::ShortName {
                name: input.to_owned(),
                reason: "no unqualified-search-registries are defined in registries.conf; \
                         use a fully qualified name such as docker.io/library/NAME"
                    .into(),
            });
        }
        self.search_registries
            .iter()
            .map(|reg| Reference::parse(&format!("{reg}/{short}{suffix}")))
            .collect()
    }
}

/// containers/image's prefix rule: the prefix matches whole path components, or
/// `*.domain` matches any sub-domain's host.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = name.split('/').next().unwrap_or(name);
        return host.ends_with(&format!(".{domain}"));
    }
    match name.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', ':', '@']),
        None => false,
    }
}

fn rewrite(reference: &Reference, prefix: &str, location: &str) -> Result<Reference> {
    if prefix.starts_with("*.") {
        return Ok(reference.clone());
    }
    let name = reference.name();
    let rest = name.strip_prefix(prefix).unwrap_or("");
    let new_name = format!("{location}{rest}");
    let (registry, repository) = match new_name.split_once('/') {
        Some((first, repo)) if is_domain(first) => (first.to_owned(), repo.to_owned()),
        _ => {
            return Err(RegistryError::InvalidReference {
                input: new_name.clone(),
                reason: format!("location {location:?} does not start with a registry host"),
            })
        }
    };
    // Re-validate the rewritten name through the parser.
    Reference::parse_name_or_ref(&format!("{registry}/{repository}"))?;
    Ok(reference.with_name(registry, repository))
}

#[cfg(test)]
mod tests;
