//! What a container takes from its image's config when the caller says nothing else (the
//! entrypoint and command, environment, working directory, user and stop signal), and the
//! other way round: a container's settings written into an image config for a commit.

use serde_json::{json, Value};

use crate::config::ContainerConfig;
use crate::error::{Context, Error, Result};

/// The parts of an image config a container starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: String,
    pub user: String,
    pub stop_signal: String,
}

impl ImageDefaults {
    /// Reads them from an image config (OCI or Docker JSON).
    pub fn from_config(config: &str) -> Result<ImageDefaults> {
        let v: serde_json::Value =
            serde_json::from_str(config).context("parse the image config")?;
        let c = &v["config"];
        let strings = |k: &str| -> Vec<String> {
            c[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
        Ok(ImageDefaults {
            env: strings("Env"),
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            workdir: string("WorkingDir"),
            user: string("User"),
            stop_signal: string("StopSignal"),
        })
    }
}

/// Writes `run`'s settings into the image config `config` as its defaults (`Entrypoint`,
/// `Cmd`, `Env`, `WorkingDir`, `User`, `StopSignal`, `Labels`), so that running the committed
/// image with no arguments does what the container did; `base` is what the container's image
/// had, to keep its entrypoint when the container's command starts with it (podman's commit).
pub fn apply_container_settings(
    config: &mut Value,
    run: &ContainerConfig,
    base: &ImageDefaults,
) -> Result<()> {
    let c = config
        .as_object_mut()
        .ok_or_else(|| Error::invalid("the image config is not a JSON object"))?
        .entry("config")
        .or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    let ep = &base.entrypoint;
    if !ep.is_empty() && run.args.starts_with(ep) {
        c["Entrypoint"] = json!(ep);
        c["Cmd"] = json!(run.args[ep.len()..]);
    } else {
        if let Some(o) = c.as_object_mut() {
            o.remove("Entrypoint");
        }
        c["Cmd"] = json!(run.args);
    }
    c["Env"] = json!(run.env);
    if !run.workdir.is_empty() {
        c["WorkingDir"] = json!(run.workdir);
    }
    if !run.user.is_empty() {
        c["User"] = json!(run.user);
    }
    if !run.stop_signal.is_empty() {
        c["StopSignal"] = json!(run.stop_signal);
    }
    if !run.labels.is_empty() {
        if !c["Labels"].is_object() {
            c["Labels"] = json!({});
        }
        for (k, v) in &run.labels {
            c["Labels"][k] = json!(v);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_config_section() {
        let d = ImageDefaults::from_config(
            r#"{"config":{"Env":["A=1"],"Entrypoint":["/e"],"Cmd":["c"],"WorkingDir":"/w","User":"u","StopSignal":"SIGINT"}}"#,
        )
        .unwrap();
        assert_eq!(d.env, ["A=1"]);
        assert_eq!((d.entrypoint[0].as_str(), d.cmd[0].as_str()), ("/e", "c"));
        assert_eq!(
            (d.workdir.as_str(), d.user.as_str(), d.stop_signal.as_str()),
            ("/w", "u", "SIGINT")
        );
        assert_eq!(
            ImageDefaults::from_config("{}").unwrap(),
            ImageDefaults::default()
        );
        assert!(ImageDefaults::from_config("nope").is_err());
    }

    #[test]
    fn a_containers_settings_become_the_images_defaults() {
        let base = ImageDefaults {
            entrypoint: vec!["/e".into()],
            ..ImageDefaults::default()
        };
        let run = ContainerConfig {
            args: vec!["/e".into(), "x".into()],
            env: vec!["A=1".into()],
            workdir: "/w".into(),
            labels: vec![("k".into(), "v".into())],
            ..ContainerConfig::default()
        };
        let mut config = json!({"config": {"Cmd": ["old"], "Labels": {"a": "b"}}});
        apply_container_settings(&mut config, &run, &base).unwrap();
        assert_eq!(
            config["config"],
            json!({"Entrypoint": ["/e"], "Cmd": ["x"], "Env": ["A=1"], "WorkingDir": "/w",
                   "Labels": {"a": "b", "k": "v"}})
        );
        let other = ContainerConfig {
            args: vec!["sh".into()],
            ..ContainerConfig::default()
        };
        apply_container_settings(&mut config, &other, &base).unwrap();
        assert!(config["config"].get("Entrypoint").is_none(), "{config}");
        assert!(apply_container_settings(&mut json!([]), &other, &base).is_err());
    }
}
