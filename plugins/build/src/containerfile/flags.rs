//! Instruction flags (`--name=value`, `--name`) as BuildKit reads them.
//!
//! What it does:
//! - [`extract`] takes the leading words that start with `--` off an
//!   instruction's argument text, like the parser's `extractBuilderFlags`:
//!   quotes are removed and a backslash escapes the next character (always
//!   a backslash, even when the escape directive picks the backtick), a lone
//!   `--` ends the flags.
//! - [`validate`] checks them against the flags each instruction accepts
//!   (BuildKit's `BFlags`): unknown and duplicate flags, string flags
//!   without `=value`, boolean flags with a value other than true/false.
//!
//! What it deliberately does not do: interpret values. `--mount` specs,
//! `--chmod` modes, durations and platforms are kept as written (after quote
//! removal) for the executor, which also expands variables in them.

use super::Flag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--name` or `--name=true|false`.
    Bool,
    /// `--name=value`, once.
    Str,
    /// `--name=value`, repeatable.
    Multi,
}

fn accepted(keyword: &str) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match keyword {
        "FROM" => &[("platform", Str)],
        "RUN" => &[
            ("mount", Multi),
            ("network", Str),
            ("security", Str),
            ("device", Multi),
        ],
        "COPY" => &[
            ("from", Str),
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Multi),
        ],
        "ADD" => &[
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("keep-git-dir", Bool),
            ("checksum", Str),
            ("unpack", Bool),
            ("exclude", Multi),
        ],
        "HEALTHCHECK" => &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
        _ => &[],
    }
}

/// Splits the leading `--flag` words (unquoted) off `rest`; returns them and
/// the remaining argument text.
pub(super) fn extract(rest: &str) -> (Vec<String>, &str) {
    let chars: Vec<(usize, char)> = rest.char_indices().collect();
    let offset = |i: usize| chars.get(i).map_or(rest.len(), |&(o, _)| o);
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|&(_, c)| c.is_whitespace()) {
            i += 1;
        }
        if i == chars.len() {
            return (words, "");
        }
        if !rest[offset(i)..].starts_with("--") {
            return (words, &rest[offset(i)..]);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&(_, c)) = chars.get(i) {
            i += 1;
            if quote.is_none() && c.is_whitespace() {
                i -= 1;
                break;
            }
            if quote == Some(c) {
                quote = None;
            } else if quote.is_none() && (c == '\'' || c == '"') {
                quote = Some(c);
            } else if c == '\\' {
                match chars.get(i) {
                    Some(&(_, n)) => {
                        word.push(n);
                        i += 1;
                    }
                    None => quote = None,
                }
            } else {
                word.push(c);
            }
        }
        if word == "--" {
            return (words, &rest[offset(i)..]);
        }
        words.push(word);
    }
}

/// Checks the extracted flag words against what `keyword` accepts.
pub(super) fn validate(keyword: &str, words: &[String]) -> Result<Vec<Flag>, String> {
    let spec = accepted(keyword);
    let mut flags: Vec<Flag> = Vec::new();
    for word in words {
        let body = word.strip_prefix("--").unwrap_or(word);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(format!("unknown flag: --{name}"));
        };
        if kind != Kind::Multi && flags.iter().any(|f| f.name == name) {
            return Err(format!("duplicate flag specified: --{name}"));
        }
        match (kind, value) {
            (Kind::Bool, Some("")) | (Kind::Str | Kind::Multi, None) => {
                return Err(format!("missing a value on flag: --{name}"));
            }
            (Kind::Bool, Some(v))
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
            {
                return Err(format!(
                    "expecting boolean value for flag --{name}, not: {v}"
                ));
            }
            _ => {}
        }
        flags.push(Flag {
            name: name.to_string(),
            value: value.map(str::to_string),
        });
    }
    Ok(flags)
}
