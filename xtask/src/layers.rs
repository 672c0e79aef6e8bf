//! The layering check (run by `cargo xtask test`): the top-level folders are the dependency
//! order (ARCHITECTURE.md), and no crate depends on a crate of a folder above its own.
//!
//! ```text
//! types  <  mount  <  drivers  <  graph  <  engine  <  plugins  <  tools  <  benches, tests, xtask
//! ```
//!
//! Only normal dependencies count. Crates that serve tests alone (every crate depending on
//! them does so as a dev-dependency: the driver conformance suite, the test harness) may reach
//! up, as tests do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The folders in dependency order, lowest first; crates of one rank may depend on each
/// other.
pub const ORDER: &[&[&str]] = &[
    &["types"],
    &["mount"],
    &["drivers"],
    &["graph"],
    &["engine"],
    &["plugins"],
    &["tools"],
    &["benches", "tests", "xtask"],
];

fn rank(folder: &str) -> Option<usize> {
    ORDER.iter().position(|r| r.contains(&folder))
}

#[derive(Debug)]
struct Member {
    folder: String,
    normal: Vec<String>,
    dev: Vec<String>,
}

fn deps(table: Option<&toml::Value>) -> Vec<String> {
    table
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.keys()
                .filter(|k| k.starts_with("strata-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn members(root: &Path) -> Result<BTreeMap<String, Member>> {
    let read = |p: &Path| -> Result<toml::Value> {
        let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
        toml::from_str(&text).with_context(|| format!("parse {}", p.display()))
    };
    let ws = read(&root.join("Cargo.toml"))?;
    let list = ws
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(toml::Value::as_array)
        .context("Cargo.toml has no workspace members")?;
    let mut out = BTreeMap::new();
    for m in list.iter().filter_map(toml::Value::as_str) {
        let dir = PathBuf::from(m);
        let manifest = read(&root.join(&dir).join("Cargo.toml"))?;
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{m}/Cargo.toml has no package name"))?
            .to_owned();
        let folder = dir
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(
            name,
            Member {
                folder,
                normal: deps(manifest.get("dependencies")),
                dev: deps(manifest.get("dev-dependencies")),
            },
        );
    }
    Ok(out)
}

/// Every dependency that runs up the folder order, as `crate (folder) -> crate (folder)`.
fn violations(members: &BTreeMap<String, Member>) -> Result<Vec<String>> {
    // Crates only ever depended on as dev-dependencies serve tests alone.
    let used_normally: BTreeSet<&str> = members
        .values()
        .flat_map(|m| m.normal.iter().map(String::as_str))
        .collect();
    let test_only = |name: &str| {
        !used_normally.contains(name) && members.values().any(|m| m.dev.iter().any(|d| d == name))
    };
    let mut out = Vec::new();
    for (name, m) in members {
        let own = rank(&m.folder).with_context(|| {
            format!(
                "{name} lives in {}/, which the layer order does not name",
                m.folder
            )
        })?;
        if test_only(name) {
            continue;
        }
        for d in &m.normal {
            let Some(dep) = members.get(d) else { continue };
            let theirs = rank(&dep.folder).unwrap_or(usize::MAX);
            if theirs > own {
                out.push(format!("{name} ({}/) -> {d} ({}/)", m.folder, dep.folder));
            }
        }
    }
    Ok(out)
}

/// Checks the workspace.
pub fn check(root: &Path) -> Result<()> {
    let members = members(root)?;
    let bad = violations(&members)?;
    if !bad.is_empty() {
        bail!(
            "dependencies run up the folder order ({}):\n  {}\nmove what both need down a layer \
             (plain data into types/)",
            ORDER
                .iter()
                .map(|r| r.join(", "))
                .collect::<Vec<_>>()
                .join(" < "),
            bad.join("\n  ")
        );
    }
    eprintln!(
        "xtask: layering: {} crates, no dependency runs up the folder order",
        members.len()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn member(folder: &str, normal: &[&str], dev: &[&str]) -> Member {
        Member {
            folder: folder.into(),
            normal: normal.iter().map(|s| s.to_string()).collect(),
            dev: dev.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn upward_dependencies_are_found_and_test_support_is_exempt() {
        let mut m = BTreeMap::new();
        m.insert("strata-types".into(), member("types", &[], &[]));
        m.insert(
            "strata-mount".into(),
            member("mount", &["strata-types"], &[]),
        );
        m.insert(
            "strata-graph-x".into(),
            member("graph", &["strata-mount"], &[]),
        );
        m.insert(
            "strata-driver-conformance".into(),
            member("drivers", &["strata-graph-x"], &[]),
        );
        m.insert(
            "strata-driver-y".into(),
            member("drivers", &["strata-types"], &["strata-driver-conformance"]),
        );
        assert_eq!(violations(&m).unwrap(), Vec::<String>::new());
        m.insert(
            "strata-bad".into(),
            member("mount", &["strata-graph-x"], &[]),
        );
        assert_eq!(
            violations(&m).unwrap(),
            ["strata-bad (mount/) -> strata-graph-x (graph/)"]
        );
    }

    #[test]
    fn the_workspace_keeps_its_layers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        check(root).unwrap();
    }
}
