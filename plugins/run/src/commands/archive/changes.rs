//! `--change` for `import` and `commit`: Dockerfile instructions applied to an image config,
//! as podman takes them (`--change 'CMD ["sh"]'`, `--change CMD=sh`, `--change ENV=A=b`).
//!
//! Supported: `CMD`, `ENTRYPOINT` (JSON array, or a shell form run with `/bin/sh -c`),
//! `ENV` (`K=V ...` or `K V`), `WORKDIR`, `USER`, `LABEL` (`K=V ...`), `EXPOSE`
//! (`80`, `53/udp`), `STOPSIGNAL`, `VOLUME` (JSON array or paths). Others (`ONBUILD`, `RUN`,
//! ...) are refused: they cannot be applied to a config.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// Applies `changes` in order to `config` (a whole image config; its `config` object is
/// created if missing).
pub fn apply(config: &mut Value, changes: &[String]) -> Result<()> {
    for change in changes {
        apply_one(config, change).with_context(|| format!("invalid --change {change:?}"))?;
    }
    Ok(())
}

fn apply_one(config: &mut Value, change: &str) -> Result<()> {
    let change = change.trim();
    let split = change
        .find(|c: char| c == '=' || c.is_whitespace())
        .context("expected INSTRUCTION VALUE or INSTRUCTION=VALUE")?;
    let (instr, value) = (&change[..split], change[split + 1..].trim());
    let c = section(config)?;
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => {
            c.insert("Cmd".into(), json!(command(value)?));
        }
        "ENTRYPOINT" => {
            c.insert("Entrypoint".into(), json!(command(value)?));
        }
        "ENV" => {
            let mut env: Vec<String> = strings(c.get("Env"));
            for (k, v) in pairs(value, true)? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
            }
            c.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let labels = object(c, "Labels")?;
            for (k, v) in pairs(value, false)? {
                labels.insert(k, json!(v));
            }
        }
        "WORKDIR" => {
            c.insert("WorkingDir".into(), json!(value));
        }
        "USER" => {
            c.insert("User".into(), json!(value));
        }
        "STOPSIGNAL" => {
            c.insert("StopSignal".into(), json!(value));
        }
        "EXPOSE" => {
            let ports = object(c, "ExposedPorts")?;
            for p in value.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_owned()
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, json!({}));
            }
        }
        "VOLUME" => {
            let paths: Vec<String> = if value.starts_with('[') {
                serde_json::from_str(value).context("expected a JSON array of paths")?
            } else {
                value.split_whitespace().map(str::to_owned).collect()
            };
            let vols = object(c, "Volumes")?;
            for p in paths {
                vols.insert(p, json!({}));
            }
        }
        other => bail!(
            "{other} cannot be applied to an image config (supported: CMD, ENTRYPOINT, ENV, \
             EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
        ),
    }
    Ok(())
}

fn section(config: &mut Value) -> Result<&mut Map<String, Value>> {
    let top = config
        .as_object_mut()
        .context("the image config is not a JSON object")?;
    let c = top.entry("config").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c.as_object_mut()
        .context("the image config's config is not an object")
}

fn object<'a>(c: &'a mut Map<String, Value>, key: &str) -> Result<&'a mut Map<String, Value>> {
    let v = c.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut()
        .with_context(|| format!("the image config's {key} is not an object"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON array (exec form) or a shell command (shell form).
fn command(value: &str) -> Result<Vec<String>> {
    if value.starts_with('[') {
        serde_json::from_str(value).context("expected a JSON array of strings")
    } else if value.is_empty() {
        bail!("empty command")
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), value.into()])
    }
}

/// `K=V K2="v 2"` pairs, or (when `legacy` allows it) the old `K V...` form.
fn pairs(value: &str, legacy: bool) -> Result<Vec<(String, String)>> {
    let first = value.split_whitespace().next().unwrap_or_default();
    if legacy && !first.contains('=') {
        let rest = value[first.len()..].trim();
        if first.is_empty() {
            bail!("expected KEY=VALUE");
        }
        return Ok(vec![(first.to_owned(), rest.to_owned())]);
    }
    let mut out = Vec::new();
    for word in words(value) {
        let (k, v) = word
            .split_once('=')
            .with_context(|| format!("expected KEY=VALUE, got {word:?}"))?;
        if k.is_empty() {
            bail!("empty key in {word:?}");
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Splits on whitespace outside double quotes, dropping the quotes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted, mut any) = (String::new(), false, false);
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut c = json!({"config": {"Env": ["PATH=/bin", "A=1"]}});
        let changes: Vec<String> = changes.iter().map(|s| (*s).to_owned()).collect();
        apply(&mut c, &changes).unwrap();
        c["config"].clone()
    }

    #[test]
    fn commands_take_exec_and_shell_forms_with_either_separator() {
        let c = applied(&[r#"CMD ["echo", "hi"]"#, "ENTRYPOINT=/bin/run me"]);
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/run me"]));
    }

    #[test]
    fn env_replaces_and_adds_in_both_forms() {
        let c = applied(&["ENV A=2 B=\"x y\"", "ENV C three words", "env=D=4"]);
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=2", "B=x y", "C=three words", "D=4"])
        );
    }

    #[test]
    fn other_fields_land_where_podman_puts_them() {
        let c = applied(&[
            "WORKDIR /srv",
            "USER 1000:1000",
            "LABEL a=b",
            "EXPOSE 80 53/udp",
            "STOPSIGNAL SIGINT",
            r#"VOLUME ["/data"]"#,
        ]);
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["Labels"], json!({"a": "b"}));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["Volumes"], json!({"/data": {}}));
    }

    #[test]
    fn unsupported_or_malformed_changes_are_refused() {
        let mut c = json!({});
        for bad in [
            "RUN echo",
            "CMD",
            "CMD [1, 2]",
            "LABEL novalue",
            "ONBUILD x",
        ] {
            assert!(apply(&mut c, &[bad.to_owned()]).is_err(), "{bad} accepted");
        }
    }
}
