//! What a container takes from its image's config when the caller says nothing else: the
//! entrypoint and command, environment, working directory, user and stop signal.

use crate::error::{Context, Result};

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
}
