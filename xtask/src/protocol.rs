//! The plugin protocol check (run by `cargo xtask test`): `plugins/api/PROTOCOL.md` must name
//! every store method of `plugins/api/src/store.rs` with the minor version that brought it,
//! every request and reply type with exactly its fields, and the current ABI version of
//! `plugins/api/src/abi.rs`, which must be the newest method's.
//!
//! It reads the Rust source as text (the shapes it needs are simple and written one way: `pub
//! const NAME: &str = "store.x";`, the `METHODS` table, `pub struct Name { pub field: T, }`),
//! so it needs no build of the API crate.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Methods (name → minor), types (name → fields) and the ABI minor version.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contract {
    pub methods: BTreeMap<String, u32>,
    pub types: BTreeMap<String, Vec<String>>,
    pub abi_minor: u32,
}

/// What the Rust source declares.
pub fn from_source(store_rs: &str, abi_rs: &str) -> Result<Contract> {
    let mut consts = BTreeMap::new();
    for line in store_rs.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("pub const ") {
            if let Some((name, value)) = rest.split_once(": &str = ") {
                let value = value.trim_end_matches(';').trim_matches('"');
                if value.starts_with("store.") {
                    consts.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }
    let table = store_rs
        .split_once("pub const METHODS: &[(&str, u32)] = &[")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(t, _)| t)
        .context("store.rs has no METHODS table")?;
    let mut methods = BTreeMap::new();
    for entry in table.split("),") {
        let entry = entry.trim().trim_start_matches('(').trim_end_matches(')');
        if entry.is_empty() {
            continue;
        }
        let (name, minor) = entry
            .split_once(',')
            .with_context(|| format!("METHODS entry {entry:?}"))?;
        let method = consts
            .get(name.trim())
            .with_context(|| format!("METHODS names {} but no such constant", name.trim()))?;
        let minor: u32 = minor
            .trim()
            .parse()
            .with_context(|| format!("METHODS entry {entry:?}: bad minor version"))?;
        methods.insert(method.clone(), minor);
    }
    for (c, m) in &consts {
        if !methods.contains_key(m) {
            bail!("store.rs: method {m} ({c}) is missing from the METHODS table");
        }
    }
    let mut types = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in store_rs.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or_default()
                .to_owned();
            if rest.trim_end().ends_with("{}") {
                types.insert(name, Vec::new());
            } else {
                current = Some((name, Vec::new()));
            }
            continue;
        }
        if let Some((_, fields)) = current.as_mut() {
            if line == "}" {
                let (name, fields) = current.take().expect("inside a struct");
                types.insert(name, fields);
            } else if let Some(f) = line.strip_prefix("    pub ") {
                if let Some((field, _)) = f.split_once(':') {
                    fields.push(field.trim().to_owned());
                }
            }
        }
    }
    let abi_minor = abi_rs
        .lines()
        .find_map(|l| l.trim().strip_prefix("pub const ABI_MINOR: u32 = "))
        .and_then(|v| v.trim_end_matches(';').parse().ok())
        .context("abi.rs has no ABI_MINOR")?;
    Ok(Contract {
        methods,
        types,
        abi_minor,
    })
}

/// What PROTOCOL.md documents.
pub fn from_document(doc: &str) -> Result<Contract> {
    let mut methods = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut abi_minor = None;
    let mut current: Option<(String, Vec<String>)> = None;
    for line in doc.lines() {
        if let Some(v) = line.strip_prefix("Current version: **1.") {
            abi_minor = v
                .trim_end_matches("**")
                .split("**")
                .next()
                .and_then(|m| m.parse().ok());
        }
        if line.starts_with('#') {
            if let Some((name, fields)) = current.take() {
                types.insert(name, fields);
            }
        }
        if let Some(rest) = line.strip_prefix("### `store.") {
            let (name, version) = rest
                .split_once("` (1.")
                .with_context(|| format!("PROTOCOL.md: heading {line:?} needs (1.N)"))?;
            let minor = version
                .trim_end_matches(')')
                .parse()
                .with_context(|| format!("PROTOCOL.md: heading {line:?}: bad version"))?;
            methods.insert(format!("store.{name}"), minor);
        } else if let Some(rest) = line.strip_prefix("#### `") {
            current = Some((rest.trim_end_matches('`').to_owned(), Vec::new()));
        } else if let Some((_, fields)) = current.as_mut() {
            if let Some(cell) = line.strip_prefix("| `") {
                if let Some((field, _)) = cell.split_once('`') {
                    fields.push(field.to_owned());
                }
            }
        }
    }
    if let Some((name, fields)) = current.take() {
        types.insert(name, fields);
    }
    Ok(Contract {
        methods,
        types,
        abi_minor: abi_minor.context("PROTOCOL.md has no `Current version: **1.N**` line")?,
    })
}

/// The differences between the source and the document, one line each.
pub fn differences(source: &Contract, doc: &Contract) -> Vec<String> {
    let mut out = Vec::new();
    let newest = source.methods.values().copied().max().unwrap_or(0);
    if source.abi_minor != newest {
        out.push(format!(
            "abi.rs says ABI_MINOR = {}, but the newest method is of 1.{newest}",
            source.abi_minor
        ));
    }
    if doc.abi_minor != source.abi_minor {
        out.push(format!(
            "PROTOCOL.md says the current version is 1.{}, abi.rs 1.{}",
            doc.abi_minor, source.abi_minor
        ));
    }
    for (m, v) in &source.methods {
        match doc.methods.get(m) {
            None => out.push(format!("method {m} (1.{v}) is not documented")),
            Some(d) if d != v => out.push(format!(
                "method {m} is of 1.{v} in store.rs, 1.{d} in PROTOCOL.md"
            )),
            _ => {}
        }
    }
    for m in doc.methods.keys() {
        if !source.methods.contains_key(m) {
            out.push(format!(
                "PROTOCOL.md documents {m}, which store.rs does not have"
            ));
        }
    }
    for (t, fields) in &source.types {
        match doc.types.get(t) {
            None => out.push(format!("type {t} is not documented")),
            Some(d) if d != fields => out.push(format!(
                "type {t} has fields {fields:?} in store.rs, {d:?} in PROTOCOL.md"
            )),
            _ => {}
        }
    }
    for t in doc.types.keys() {
        if !source.types.contains_key(t) {
            out.push(format!(
                "PROTOCOL.md documents type {t}, which store.rs does not have"
            ));
        }
    }
    out
}

/// Checks the workspace's API crate against its document.
pub fn check(root: &Path) -> Result<()> {
    let api = root.join("plugins/api");
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
    let source = from_source(
        &read(&api.join("src/store.rs"))?,
        &read(&api.join("src/abi.rs"))?,
    )?;
    let doc = from_document(&read(&api.join("PROTOCOL.md"))?)?;
    let diffs = differences(&source, &doc);
    if !diffs.is_empty() {
        bail!(
            "plugins/api/PROTOCOL.md does not match the API:\n  {}\nupdate the document with the change \
             (and the ABI minor version if a method was added)",
            diffs.join("\n  ")
        );
    }
    eprintln!(
        "xtask: plugin protocol 1.{}: {} methods and {} types documented",
        source.abi_minor,
        source.methods.len(),
        source.types.len()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STORE: &str = r#"
pub const A: &str = "store.a";
pub const B: &str = "store.b";
pub const METHODS: &[(&str, u32)] = &[
    (A, 0),
    (B, 2),
];
pub struct Req {
    pub name: String,
    /// doc
    #[serde(default)]
    pub more: Vec<String>,
}
pub struct Empty {}
"#;
    const ABI: &str = "pub const ABI_MINOR: u32 = 2;\n";
    const DOC: &str = "Current version: **1.2**\n### `store.a` (1.0)\n### `store.b` (1.2)\n## Types\n#### `Req`\n| Field | Type |\n|---|---|\n| `name` | string |\n| `more` | [string] |\n#### `Empty`\n";

    #[test]
    fn a_matching_document_passes() {
        let s = from_source(STORE, ABI).unwrap();
        assert_eq!(s.methods.len(), 2);
        assert_eq!(s.types["Req"], ["name", "more"]);
        assert_eq!(s.types["Empty"], Vec::<String>::new());
        let d = from_document(DOC).unwrap();
        assert_eq!(differences(&s, &d), Vec::<String>::new());
    }

    #[test]
    fn drift_is_reported() {
        let s = from_source(STORE, ABI).unwrap();
        let d = from_document(
            &DOC.replace("(1.2)", "(1.1)")
                .replace("| `more` | [string] |\n", ""),
        )
        .unwrap();
        let diffs = differences(&s, &d);
        assert!(
            diffs.iter().any(|l| l.contains("store.b is of 1.2")),
            "{diffs:?}"
        );
        assert!(diffs.iter().any(|l| l.contains("type Req")), "{diffs:?}");
        let newer = from_source(&STORE.replace("(B, 2)", "(B, 3)"), ABI).unwrap();
        let diffs = differences(&newer, &from_document(DOC).unwrap());
        assert!(
            diffs.iter().any(|l| l.contains("ABI_MINOR = 2")),
            "{diffs:?}"
        );
        assert!(from_source(&STORE.replace("    (B, 2),\n", ""), ABI).is_err());
    }

    #[test]
    fn the_workspace_api_matches_its_document() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        check(root).unwrap();
    }
}
