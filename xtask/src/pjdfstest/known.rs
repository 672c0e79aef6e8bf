//! `xtask/pjdfstest-known.toml`: the pjdfstest tests strata-fuse-overlay is allowed to fail
//! although the kernel overlay passes them, each with the reason:
//!
//! ```toml
//! [[known]]
//! test = "chmod::eloop_comp"
//! reason = "why it fails and what would fix it"
//! ```
//!
//! It reads only that shape of TOML (an array of tables with two string keys; basic or
//! literal one-line strings, comments, blank lines), so that xtask needs no TOML library; any
//! other line is an error naming its line number.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Test name to reason.
pub type Known = BTreeMap<String, String>;

/// Reads the list; a missing file is an empty list.
pub fn load(path: &Path) -> Result<Known> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Known::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// One `[[known]]` table being read.
#[derive(Debug, Default)]
struct Entry {
    line: usize,
    test: Option<String>,
    reason: Option<String>,
}

fn parse(text: &str) -> Result<Known> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[[known]]" {
            entries.push(Entry {
                line: n,
                ..Entry::default()
            });
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {n}: expected `[[known]]` or `key = \"value\"`, found `{line}`");
        };
        let Some(entry) = entries.last_mut() else {
            bail!("line {n}: `{}` outside a [[known]] table", key.trim());
        };
        let value = string(value.trim()).with_context(|| format!("line {n}"))?;
        let slot = match key.trim() {
            "test" => &mut entry.test,
            "reason" => &mut entry.reason,
            other => bail!("line {n}: unknown key `{other}` (expected `test` or `reason`)"),
        };
        if slot.replace(value).is_some() {
            bail!(
                "line {n}: `{}` given twice in one [[known]] table",
                key.trim()
            );
        }
    }
    let mut known = Known::new();
    for e in entries {
        let (Some(test), Some(reason)) = (e.test, e.reason) else {
            bail!(
                "the [[known]] table at line {} needs both `test` and `reason`",
                e.line
            );
        };
        if reason.trim().is_empty() {
            bail!(
                "the [[known]] entry for {test} (line {}) gives no reason",
                e.line
            );
        }
        if known.insert(test.clone(), reason).is_some() {
            bail!("{test} is listed twice (again at line {})", e.line);
        }
    }
    Ok(known)
}

/// A one-line TOML string (`"basic"` with escapes, or `'literal'`), optionally followed by a
/// comment.
fn string(text: &str) -> Result<String> {
    let mut chars = text.chars();
    let quote = chars.next().filter(|c| *c == '"' || *c == '\'');
    let Some(quote) = quote else {
        bail!("expected a quoted string, found `{text}`");
    };
    let mut out = String::new();
    loop {
        match chars.next() {
            None => bail!("unterminated string `{text}`"),
            Some(c) if c == quote => break,
            Some('\\') if quote == '"' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => bail!("unsupported escape `\\{}`", other.unwrap_or(' ')),
            },
            Some(c) => out.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        bail!("unexpected `{rest}` after the string");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_with_comments_and_escapes() {
        let known = parse(
            "# header\n\n[[known]]\ntest = \"chmod::eloop_comp\"  # trailing\n\
             reason = \"ENOENT on a \\\"fresh\\\" dir\"\n\n[[known]]\n\
             reason = 'literal \\ kept'\ntest = 'link::x'\n",
        )
        .expect("valid");
        assert_eq!(known.len(), 2);
        assert_eq!(known["chmod::eloop_comp"], "ENOENT on a \"fresh\" dir");
        assert_eq!(known["link::x"], "literal \\ kept");
    }

    #[test]
    fn empty_file_is_an_empty_list() {
        assert!(parse("# nothing known yet\n").expect("valid").is_empty());
    }

    #[test]
    fn entry_without_reason_is_refused() {
        let err = parse("[[known]]\ntest = \"a\"\n").expect_err("no reason");
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = parse("[[known]]\ntest = \"a\"\nreason = \" \"\n").expect_err("blank reason");
        assert!(err.to_string().contains("no reason"), "{err}");
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let err = parse("[[known]]\ntest = a\n").expect_err("unquoted");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let err = parse("test = \"a\"\n").expect_err("outside a table");
        assert!(err.to_string().contains("outside"), "{err}");
        let err = parse("[[known]]\nname = \"a\"\n").expect_err("unknown key");
        assert!(err.to_string().contains("unknown key `name`"), "{err}");
        let err = parse("[known]\n").expect_err("wrong header");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn duplicates_are_refused() {
        let entry = "[[known]]\ntest = \"a\"\nreason = \"r\"\n";
        let err = parse(&format!("{entry}{entry}")).expect_err("listed twice");
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
