//! CNI network configuration lists: the unit a runtime runs, plugin by plugin (spec 1.0.0,
//! "Network Configuration Lists"), read from standard files or built in code.
//!
//! Files follow libcni's conventions, which CRI-O and containerd use for `/etc/cni/net.d`:
//!
//! ```text
//! /etc/cni/net.d/
//! ├── 10-mynet.conflist   a list: { "cniVersion", "name", "plugins": [ {...}, ... ] }
//! ├── 20-other.conf       one plugin: { "cniVersion", "name", "type", ... } (a list of one)
//! └── 30-more.json        the same as .conf
//! ```
//!
//! Files are taken in lexical order of their names; the first valid one is the default
//! network. A file that cannot be read or parsed, or that lacks a name or plugin types, is
//! skipped and reported (as CRI-O and containerd log and skip it), so one broken file does not
//! take the node's networking down.
//!
//! Running a list injects into each plugin's configuration the list's `name` and
//! `cniVersion`, the previous plugin's result as `prevResult` (see `attach`), and the runtime's
//! arguments under `runtimeConfig` for exactly the capabilities the plugin declares (libcni's
//! rule: `"capabilities": {"portMappings": true}` receives `runtimeConfig.portMappings`).
//!
//! Versions: lists of CNI 0.3.0, 0.3.1, 0.4.0 and 1.0.0 are run (their results name the
//! container's interfaces and addresses the same way, which is all `result` reads); a list of
//! another version, or of none, is refused (and skipped in a directory).
//!
//! What it does not do: convert results between versions, `disableCheck`/`disableGC` (CHECK
//! and GC are not run), or watch the directory for changes (callers load again when they
//! want the current files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{NetworkError, PortMapping};

/// The file name extensions libcni reads, in no particular order.
pub const EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// The CNI versions whose lists are run.
pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// A network configuration list: its plugins, run in order on ADD and in reverse on DEL.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub cni_version: String,
    /// The network's name; it appears in plugin state (IPAM leases, iptables comments).
    pub name: String,
    /// The plugins' configurations, each a JSON object with at least `type`.
    pub plugins: Vec<Value>,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
}

/// What a runtime passes to the plugins that declare the matching capability.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    /// Published ports (the `portMappings` capability, served by `portmap`).
    pub port_mappings: Vec<PortMapping>,
    /// Other capability arguments by name (`bandwidth`, `ipRanges`, `dns`, ...), passed as
    /// given.
    pub other: BTreeMap<String, Value>,
}

impl RuntimeConfig {
    /// Published ports only.
    pub fn ports(ports: &[PortMapping]) -> RuntimeConfig {
        RuntimeConfig {
            port_mappings: ports.to_vec(),
            other: BTreeMap::new(),
        }
    }

    fn capability(&self, name: &str) -> Option<Value> {
        if name == "portMappings" {
            return Some(Value::Array(
                self.port_mappings
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "hostPort": p.host_port,
                            "containerPort": p.container_port,
                            "protocol": p.protocol.as_str(),
                            "hostIP": p.host_ip.as_deref().unwrap_or(""),
                        })
                    })
                    .collect(),
            ));
        }
        self.other.get(name).cloned()
    }
}

/// A file of a configuration directory that was skipped, and why.
#[derive(Debug)]
pub struct Skipped {
    pub path: PathBuf,
    pub error: NetworkError,
}

impl NetworkList {
    /// A list from its parts; fails like a file with the same content would.
    pub fn new(
        cni_version: &str,
        name: &str,
        plugins: Vec<Value>,
    ) -> Result<NetworkList, NetworkError> {
        let list = NetworkList {
            cni_version: cni_version.into(),
            name: name.into(),
            plugins,
            source: None,
        };
        list.validate()?;
        Ok(list)
    }

    /// Parses a `.conflist` (or, when `single` is true, a `.conf`/`.json` holding one
    /// plugin).
    pub fn parse(
        bytes: &[u8],
        single: bool,
        source: Option<&Path>,
    ) -> Result<NetworkList, NetworkError> {
        let at = || {
            source
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default()
        };
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| NetworkError::InvalidConfig(format!("{}not JSON ({e})", at())))?;
        let Value::Object(obj) = v else {
            return Err(NetworkError::InvalidConfig(format!(
                "{}not a JSON object",
                at()
            )));
        };
        let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
        let name = text("name").unwrap_or_default();
        let cni_version = text("cniVersion").unwrap_or_default();
        let plugins = if single {
            let mut plugin = obj.clone();
            plugin.remove("name");
            plugin.remove("cniVersion");
            vec![Value::Object(plugin)]
        } else {
            match obj.get("plugins") {
                Some(Value::Array(p)) => p.clone(),
                _ => {
                    return Err(NetworkError::InvalidConfig(format!(
                        "{}no \"plugins\" array (a single plugin belongs in a .conf file)",
                        at()
                    )))
                }
            }
        };
        let list = NetworkList {
            cni_version,
            name,
            plugins,
            source: source.map(Path::to_path_buf),
        };
        list.validate()
            .map_err(|e| NetworkError::InvalidConfig(format!("{}{}", at(), strip(&e))))?;
        Ok(list)
    }

    /// Reads one file (`.conflist`, `.conf` or `.json`).
    pub fn load(path: &Path) -> Result<NetworkList, NetworkError> {
        let single = path.extension().is_some_and(|e| e == "conf" || e == "json");
        let bytes = std::fs::read(path).map_err(NetworkError::io("read", path))?;
        NetworkList::parse(&bytes, single, Some(path))
    }

    /// Every valid list in `dir`, in file-name order, with the files that were skipped. A
    /// missing directory holds none.
    pub fn load_dir(dir: &Path) -> Result<(Vec<NetworkList>, Vec<Skipped>), NetworkError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(e) => return Err(NetworkError::io("read directory", dir)(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
            })
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let (mut lists, mut skipped) = (Vec::new(), Vec::new());
        for path in files {
            match NetworkList::load(&path) {
                Ok(l) => lists.push(l),
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "skipping CNI configuration");
                    skipped.push(Skipped { path, error });
                }
            }
        }
        Ok((lists, skipped))
    }

    /// The network named `name` in `dir`, or with `None` the default one (the first valid
    /// file).
    pub fn find_in(dir: &Path, name: Option<&str>) -> Result<NetworkList, NetworkError> {
        let (lists, skipped) = NetworkList::load_dir(dir)?;
        let why = || {
            if skipped.is_empty() {
                String::new()
            } else {
                let s: Vec<String> = skipped
                    .iter()
                    .map(|s| format!("{} ({})", s.path.display(), strip(&s.error)))
                    .collect();
                format!("; skipped: {}", s.join(", "))
            }
        };
        match name {
            None => lists.into_iter().next().ok_or_else(|| {
                NetworkError::NoNetwork(format!(
                    "no CNI network configuration in {}{}",
                    dir.display(),
                    why()
                ))
            }),
            Some(n) => lists.into_iter().find(|l| l.name == n).ok_or_else(|| {
                NetworkError::NoNetwork(format!(
                    "no CNI network named {n} in {}{}",
                    dir.display(),
                    why()
                ))
            }),
        }
    }

    fn validate(&self) -> Result<(), NetworkError> {
        let bad = |why: String| Err(NetworkError::InvalidConfig(why));
        if self.name.is_empty() {
            return bad("the network has no \"name\"".into());
        }
        if !VERSIONS.contains(&self.cni_version.as_str()) {
            return bad(format!(
                "network {} has cniVersion {:?}; supported are {}",
                self.name,
                self.cni_version,
                VERSIONS.join(", ")
            ));
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return bad(format!(
                "network name {:?} must be letters, digits, `_`, `.` and `-`",
                self.name
            ));
        }
        if self.plugins.is_empty() {
            return bad(format!("network {} has no plugins", self.name));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let ty = p.get("type").and_then(Value::as_str).unwrap_or_default();
            let safe = !ty.is_empty()
                && !ty.starts_with('.')
                && ty
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !safe {
                return bad(format!(
                    "plugin {i} of network {} has no usable \"type\" (a plugin file name)",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// Each plugin's configuration as it is run: the list's name and version, and the runtime
    /// arguments of the capabilities it declares.
    pub fn plugin_configs(&self, rt: &RuntimeConfig) -> Vec<Value> {
        self.plugins
            .iter()
            .map(|p| {
                let mut conf: Map<String, Value> = p.as_object().cloned().unwrap_or_default();
                conf.insert("cniVersion".into(), self.cni_version.clone().into());
                conf.insert("name".into(), self.name.clone().into());
                let declared: Vec<String> = conf
                    .get("capabilities")
                    .and_then(Value::as_object)
                    .map(|c| {
                        c.iter()
                            .filter(|(_, on)| on.as_bool() == Some(true))
                            .map(|(k, _)| k.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut runtime = Map::new();
                for cap in declared {
                    if let Some(v) = rt.capability(&cap) {
                        runtime.insert(cap, v);
                    }
                }
                if !runtime.is_empty() {
                    conf.insert("runtimeConfig".into(), Value::Object(runtime));
                }
                Value::Object(conf)
            })
            .collect()
    }

    /// Whether the list has a `bridge` plugin that NATs outbound traffic (its masquerade rule
    /// needs cleaning when the namespace is gone before DEL; see `masquerade`).
    pub(crate) fn masquerades(&self) -> bool {
        self.plugins.iter().any(|p| {
            p.get("type").and_then(Value::as_str) == Some("bridge")
                && p.get("ipMasq").and_then(Value::as_bool) == Some(true)
        })
    }
}

/// An error's message without its "invalid network configuration: " prefix.
fn strip(e: &NetworkError) -> String {
    match e {
        NetworkError::InvalidConfig(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::Protocol;
    use serde_json::json;

    const CONFLIST: &str = r#"{
        "cniVersion": "1.0.0",
        "name": "mynet",
        "plugins": [
            { "type": "bridge", "bridge": "cni0", "ipMasq": true,
              "ipam": { "type": "host-local", "subnet": "10.22.0.0/16" } },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "firewall", "capabilities": { "portMappings": false } }
        ]
    }"#;

    #[test]
    fn a_conflist_runs_with_name_version_and_declared_capabilities_only() {
        let list = NetworkList::parse(CONFLIST.as_bytes(), false, None).unwrap();
        assert_eq!(list.name, "mynet");
        assert!(list.masquerades());
        let rt = RuntimeConfig::ports(&[PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        }]);
        let confs = list.plugin_configs(&rt);
        assert_eq!(confs.len(), 3);
        for c in &confs {
            assert_eq!(c["name"], "mynet");
            assert_eq!(c["cniVersion"], "1.0.0");
        }
        assert!(confs[0].get("runtimeConfig").is_none());
        assert_eq!(
            confs[1]["runtimeConfig"]["portMappings"],
            json!([{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "" }])
        );
        assert!(
            confs[2].get("runtimeConfig").is_none(),
            "a capability set to false is not declared"
        );
    }

    #[test]
    fn a_single_plugin_file_is_a_list_of_one() {
        let conf = r#"{ "cniVersion": "1.0.0", "name": "lo", "type": "loopback" }"#;
        let list = NetworkList::parse(conf.as_bytes(), true, None).unwrap();
        assert_eq!(list.plugins, vec![json!({ "type": "loopback" })]);
        assert!(!list.masquerades());
    }

    #[test]
    fn broken_lists_are_refused_with_the_reason() {
        let cases: &[(&str, bool, &str)] = &[
            ("not json", false, "not JSON"),
            ("[]", false, "not a JSON object"),
            (
                r#"{"name":"x","type":"bridge"}"#,
                false,
                "no \"plugins\" array",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
                false,
                "has no plugins",
            ),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
                false,
                "no \"name\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"x","plugins":[{}]}"#,
                false,
                "no usable \"type\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}"#,
                false,
                "no usable \"type\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"a b","type":"bridge"}"#,
                true,
                "must be letters",
            ),
            (
                r#"{"cniVersion":"2.0.0","name":"x","type":"bridge"}"#,
                true,
                "cniVersion \"2.0.0\"",
            ),
        ];
        for (text, single, why) in cases {
            let e = NetworkList::parse(text.as_bytes(), *single, Some(Path::new("/x.conf")))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains("/x.conf"), "{text}: {e}");
        }
    }

    #[test]
    fn a_directory_gives_its_valid_lists_in_file_order_and_says_what_it_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("20-mynet.conflist"), CONFLIST).unwrap();
        std::fs::write(
            dir.path().join("10-broken.conflist"),
            r#"{"name":"broken"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("30-lo.conf"),
            r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("README"), "not a network").unwrap();
        let (lists, skipped) = NetworkList::load_dir(dir.path()).unwrap();
        let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["mynet", "lo"]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].path.ends_with("10-broken.conflist"));
        assert_eq!(
            NetworkList::find_in(dir.path(), None).unwrap().name,
            "mynet"
        );
        assert_eq!(
            NetworkList::find_in(dir.path(), Some("lo")).unwrap().name,
            "lo"
        );
        let e = NetworkList::find_in(dir.path(), Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no CNI network named nope") && e.contains("10-broken.conflist"),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        let e = NetworkList::find_in(&empty.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CNI network configuration"), "{e}");
    }
}
