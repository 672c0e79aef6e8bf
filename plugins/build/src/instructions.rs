//! What each config-only instruction does to the image config (ENV, LABEL, EXPOSE, VOLUME,
//! USER, ENTRYPOINT, CMD, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER), and WORKDIR,
//! which also creates its directory (owned by the current USER).
//!
//! The `created_by` history text is buildah's: `/bin/sh -c #(nop) INSTRUCTION ARGS`.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};

use crate::cache::KeyBuilder;
use crate::commit::{Current, Working};
use crate::config::ImageConfig;
use crate::containerfile::{Command, Form, Healthcheck, Instruction};
use crate::stage::{empty_object, nop, Build, StageState};
use crate::tree::Root;

/// Shell form → the shell plus the text; exec form as it is.
pub fn argv(config: &ImageConfig, form: &Form) -> Vec<String> {
    match form {
        Form::Exec(v) => v.clone(),
        Form::Shell(s) => {
            let mut a = config.shell();
            a.push(s.clone());
            a
        }
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `2h`) in nanoseconds.
pub fn go_duration(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s.trim();
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Some(total as i64)
}

/// Applies a config-only instruction to `config`; returns the history's `created_by`.
pub fn apply(
    b: &mut Build<'_>,
    st: &mut StageState,
    ins: &Instruction,
    config: &mut ImageConfig,
) -> Result<String> {
    let lookup = |n: &str| st.lookup(n);
    let word = |w: &str| b.lexer.process_word(w, &lookup).map_err(|e| b.at(ins, e));
    let text = match &ins.command {
        Command::Env(pairs) => {
            // Every pair sees the environment from before the instruction (Docker).
            let mut set = Vec::new();
            for (k, v) in pairs {
                set.push((word(k)?, word(v)?));
            }
            let mut shown = Vec::new();
            for (k, v) in set {
                config.set_env(&k, &v);
                shown.push(format!("{k}={v}"));
            }
            format!("ENV {}", shown.join(" "))
        }
        Command::Label(pairs) => {
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let (k, v) = (word(k)?, word(v)?);
                config.insert_into("Labels", &k, json!(v));
                shown.push(format!("{k}={v}"));
            }
            format!("LABEL {}", shown.join(" "))
        }
        Command::Expose(ports) => {
            let mut shown = Vec::new();
            for p in ports {
                for p in b
                    .lexer
                    .process_words(p, &lookup)
                    .map_err(|e| b.at(ins, e))?
                {
                    let p = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let valid = !num.is_empty()
                        && num.split('-').all(|n| n.parse::<u16>().is_ok())
                        && matches!(proto, "tcp" | "udp" | "sctp");
                    if !valid {
                        return Err(b.at(ins, format!("invalid port {p:?}")));
                    }
                    // A range is one entry per port (Docker's nat.ParsePortSpecs).
                    let (lo, hi) = match num.split_once('-') {
                        Some((a, z)) => {
                            (a.parse::<u16>().unwrap_or(0), z.parse::<u16>().unwrap_or(0))
                        }
                        None => {
                            let n = num.parse::<u16>().unwrap_or(0);
                            (n, n)
                        }
                    };
                    if lo > hi {
                        return Err(b.at(ins, format!("invalid port range {p:?}")));
                    }
                    for port in lo..=hi {
                        config.insert_into(
                            "ExposedPorts",
                            &format!("{port}/{proto}"),
                            empty_object(),
                        );
                    }
                    shown.push(p);
                }
            }
            format!("EXPOSE {}", shown.join(" "))
        }
        Command::Volume(vols) => {
            let mut shown = Vec::new();
            for v in vols {
                let v = word(v)?;
                if v.trim().is_empty() {
                    return Err(b.at(ins, "VOLUME specified can not be an empty string"));
                }
                config.insert_into("Volumes", &v, empty_object());
                shown.push(v);
            }
            format!("VOLUME {shown:?}")
        }
        Command::User(u) => {
            let u = word(u)?;
            config.set("User", json!(u));
            format!("USER {u}")
        }
        Command::Entrypoint(form) => {
            let a = argv(config, form);
            config.set("Entrypoint", json!(a));
            if !st.cmd_set {
                // An ENTRYPOINT resets a CMD the base image had (Docker).
                config.set("Cmd", Value::Null);
            }
            format!("ENTRYPOINT {a:?}")
        }
        Command::Cmd(form) => {
            let a = argv(config, form);
            config.set("Cmd", json!(a));
            st.cmd_set = true;
            format!("CMD {a:?}")
        }
        Command::Shell(s) => {
            config.set("Shell", json!(s));
            format!("SHELL {s:?}")
        }
        Command::StopSignal(s) => {
            let s = word(s)?;
            config.set("StopSignal", json!(s));
            format!("STOPSIGNAL {s}")
        }
        Command::Healthcheck(h) => {
            match h {
                Healthcheck::None => config.set("Healthcheck", json!({"Test": ["NONE"]})),
                Healthcheck::Check { test } => {
                    let test: Vec<String> = match test {
                        Form::Exec(v) => std::iter::once("CMD".to_owned())
                            .chain(v.iter().cloned())
                            .collect(),
                        Form::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                    };
                    let mut hc = json!({"Test": test});
                    for (flag, field) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start-period", "StartPeriod"),
                        ("start-interval", "StartInterval"),
                    ] {
                        if let Some(Some(v)) = ins.flag(flag) {
                            let ns = go_duration(v)
                                .ok_or_else(|| b.at(ins, format!("invalid --{flag} {v:?}")))?;
                            hc[field] = json!(ns);
                        }
                    }
                    if let Some(Some(r)) = ins.flag("retries") {
                        let r: i64 = r
                            .parse()
                            .map_err(|_| b.at(ins, format!("invalid --retries {r:?}")))?;
                        hc["Retries"] = json!(r);
                    }
                    config.set("Healthcheck", hc);
                }
            }
            ins.original.clone()
        }
        Command::Onbuild(trigger) => {
            let mut list = crate::config::strings(config.json["config"].get("OnBuild"));
            list.push(trigger.original.clone());
            config.set("OnBuild", json!(list));
            ins.original.clone()
        }
        Command::Maintainer(m) => {
            config.set_top("author", json!(m));
            format!("MAINTAINER {m}")
        }
        _ => ins.original.clone(),
    };
    Ok(nop(&text))
}

/// The absolute, cleaned path of `p` relative to the working directory `wd`.
pub fn absolute(wd: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("{}/{p}", if wd.is_empty() { "/" } else { wd })
    };
    let mut out: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// WORKDIR: sets the working directory and creates it (owned by the current USER) when the
/// image lacks it; a step that creates nothing records the config alone.
pub fn workdir(b: &mut Build<'_>, st: &mut StageState, ins: &Instruction) -> Result<()> {
    let Command::Workdir(w) = &ins.command else {
        unreachable!("workdir() is called for WORKDIR");
    };
    let w = b
        .lexer
        .process_word(w, &|n: &str| st.lookup(n))
        .map_err(|e| b.at(ins, e))?;
    let path = absolute(&st.cur.config.workdir(), &w);
    b.progress.step(&ins.original);
    let started = Instant::now();
    let mut config = st.cur.config.clone();
    config.set("WorkingDir", json!(path));
    let created_by = nop(&format!("WORKDIR {path}"));
    let mut key: KeyBuilder = b.key(st, ins);
    key.add("path", &path);
    key.add("user", &config.user());
    let Some(key) = b.lookup(st, key, started)? else {
        return Ok(());
    };
    let mut work = Working::new(b.store, &st.cur.id, &ins.original)?;
    let root_path = work.root()?;
    let user = config.user();
    let owner = if user.is_empty() {
        (0, 0)
    } else {
        crate::copy::chown(&root_path, &user).map_err(|e| b.at(ins, format!("{e:#}")))?
    };
    {
        let root = Root::open(&root_path)?;
        root.mkdir_all(&path, owner)
            .map_err(|e| b.at(ins, format!("{e:#}")))?;
    }
    let changed = work.changed()?;
    config.add_history(&b.created(), &created_by, !changed);
    let id = if changed {
        work.commit(&config)?
    } else {
        drop(work);
        crate::commit::record_config(b.store, &st.cur.layers, &mut config, b.opts.format)?
    };
    let cur: Current = b.load(&id)?;
    b.record(st, &key, cur, started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("30s"), Some(30_000_000_000));
        assert_eq!(go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration("500ms"), Some(500_000_000));
        assert_eq!(go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration("10"), None);
        assert_eq!(go_duration("x"), None);
    }

    #[test]
    fn paths_are_made_absolute_and_clean() {
        assert_eq!(absolute("", "app"), "/app");
        assert_eq!(absolute("/app", "sub/../x"), "/app/x");
        assert_eq!(absolute("/app", "/abs"), "/abs");
        assert_eq!(absolute("/a", "../../.."), "/");
    }
}
