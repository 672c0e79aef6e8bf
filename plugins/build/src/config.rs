//! The image config a build works on: the base image's config (or a new one for `FROM
//! scratch`) as JSON, changed by each instruction, with the history entries buildah writes
//! (`created_by` text, `empty_layer` flags).
//!
//! The config is kept as a JSON value so fields this code does not know (a base image's
//! `os.version`, `variant`, vendor extensions) pass through untouched. It does not write
//! `rootfs`: the store does that when it records an image.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// The default `PATH` of a RUN when the image sets none (Docker's and buildah's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `--format`: which fields survive (Docker's schema2 keeps `Healthcheck`, `OnBuild`,
/// `Shell`; OCI drops them with a warning, as buildah does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Oci,
    Docker,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Oci => "oci",
            Format::Docker => "docker",
        }
    }
}

/// An image config under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    pub json: Value,
}

impl ImageConfig {
    /// The config of `FROM scratch`: this host's platform, nothing else.
    pub fn scratch() -> ImageConfig {
        let (arch, variant) = strata_types::arch::go_platform();
        // buildah and BuildKit give a scratch image the default PATH.
        let mut j = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Env": [format!("PATH={DEFAULT_PATH}")]},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = variant {
            j["variant"] = json!(v);
        }
        ImageConfig { json: j }
    }

    /// A base image's config text.
    pub fn parse(text: &str) -> Result<ImageConfig> {
        let json: Value = serde_json::from_str(text).context("parse the base image's config")?;
        if !json.is_object() {
            bail!("the base image's config is not a JSON object");
        }
        let mut c = ImageConfig { json };
        c.container_config();
        Ok(c)
    }

    /// The `config` object (created if missing).
    pub fn container_config(&mut self) -> &mut Map<String, Value> {
        let obj = self
            .json
            .as_object_mut()
            .expect("ImageConfig is always a JSON object");
        let c = obj.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        c.as_object_mut().expect("config was just made an object")
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.json.get("config").and_then(|c| c.get(key))
    }

    pub fn env(&self) -> Vec<String> {
        strings(self.get("Env"))
    }

    /// The value of `name` in the config's `Env`.
    pub fn env_value(&self, name: &str) -> Option<String> {
        self.env().iter().rev().find_map(|e| {
            e.split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    }

    /// Sets `name=value` in `Env`, in place if it is there (Docker keeps the order).
    pub fn set_env(&mut self, name: &str, value: &str) {
        let mut env = self.env();
        let entry = format!("{name}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(k, _)| k) == Some(name) || e.as_str() == name)
        {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.container_config().insert("Env".into(), json!(env));
    }

    pub fn user(&self) -> String {
        self.get("User")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// The shell of shell-form instructions: `SHELL`, else `/bin/sh -c`.
    pub fn shell(&self) -> Vec<String> {
        let s = strings(self.get("Shell"));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.container_config().insert(key.into(), value);
    }

    pub fn remove(&mut self, key: &str) {
        self.container_config().remove(key);
    }

    /// Adds keys to an object-valued field (`Labels`, `ExposedPorts`, `Volumes`).
    pub fn insert_into(&mut self, field: &str, key: &str, value: Value) {
        let c = self.container_config();
        let m = c.entry(field).or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        m.as_object_mut()
            .expect("made an object above")
            .insert(key.into(), value);
    }

    /// Sets a top-level field (`author`, `created`).
    pub fn set_top(&mut self, key: &str, value: Value) {
        self.json
            .as_object_mut()
            .expect("ImageConfig is always a JSON object")
            .insert(key.into(), value);
    }

    /// Appends a history entry and sets `created`.
    pub fn add_history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        let mut h = json!({"created": created, "created_by": created_by});
        if empty_layer {
            h["empty_layer"] = json!(true);
        }
        self.set_top("created", json!(created));
        let obj = self
            .json
            .as_object_mut()
            .expect("ImageConfig is always a JSON object");
        let hist = obj.entry("history").or_insert_with(|| json!([]));
        if !hist.is_array() {
            *hist = json!([]);
        }
        hist.as_array_mut().expect("made an array above").push(h);
    }

    /// Drops what the format cannot carry (OCI: `Healthcheck`, `OnBuild`, `Shell`), with the
    /// warnings buildah prints; returns the warnings.
    pub fn fit_format(&mut self, format: Format) -> Vec<String> {
        let mut warnings = Vec::new();
        if format == Format::Docker {
            return warnings;
        }
        let c = self.container_config();
        for (key, what) in [
            ("Healthcheck", "HEALTHCHECK"),
            ("OnBuild", "ONBUILD"),
            ("Shell", "SHELL"),
        ] {
            if c.remove(key).is_some() {
                warnings.push(format!(
                    "{what} is not supported for OCI image format and will be ignored; \
                     use --format docker to keep it"
                ));
            }
        }
        warnings
    }

    /// The config's exact text as the store records it (its digest is the image ID).
    pub fn to_text(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.json)?)
    }
}

/// The strings of a JSON array (non-strings skipped); empty for anything else.
pub fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub use strata_types::time::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_replaced_in_place() {
        let mut c = ImageConfig::scratch();
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3");
        assert_eq!(c.env()[1..], ["A=3", "B=2"]);
        assert!(
            c.env()[0].starts_with("PATH="),
            "scratch has the default PATH"
        );
        assert_eq!(c.env_value("A").as_deref(), Some("3"));
    }

    #[test]
    fn oci_drops_docker_only_fields() {
        let mut c = ImageConfig::scratch();
        c.set("Shell", json!(["/bin/bash", "-c"]));
        c.set("Healthcheck", json!({"Test": ["NONE"]}));
        let mut d = c.clone();
        assert_eq!(c.fit_format(Format::Oci).len(), 2);
        assert!(c.json["config"].get("Shell").is_none());
        assert!(d.fit_format(Format::Docker).is_empty());
        assert!(d.json["config"].get("Shell").is_some());
    }
}
