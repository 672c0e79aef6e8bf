//! Heredocs (`<<EOF`) as BuildKit's dockerfile frontend reads them.
//!
//! What it does:
//! - [`find_markers`] finds heredoc markers on an instruction's joined line:
//!   the line is split into raw words (quotes and escapes kept, `$VAR` left
//!   alone, always with `\` as escape), and every word that is entirely
//!   `[fd]<<[-]WORD` (no `<` in WORD) is a marker, so `"<<EOF"` in quotes
//!   and `<<<here-strings` are not. A line the word splitter cannot read
//!   (unbalanced quotes) has no markers, as in BuildKit.
//! - [`parse_marker`] reads one marker: the delimiter with quotes removed,
//!   `expand` false if any part was quoted, `chomp` for `<<-`, the fd.
//! - [`read_bodies`] reads the bodies, one after another, from the lines
//!   following the instruction; each ends at the first line equal to its
//!   delimiter (leading tabs ignored on that line, and stripped from the body,
//!   for `<<-`). Line endings are kept in the body.
//!
//! What it deliberately does not do: decide which instructions take heredocs
//! (RUN, COPY, ADD in shell form; the caller knows) or expand bodies. Like
//! BuildKit, a backslash-escaped delimiter (`<<\EOF`) still expands.

use super::lex::{Lexer, Options};
use super::lines::Source;
use super::Heredoc;

/// A heredoc marker read from a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: Option<u32>,
}

const BACKSLASH: Lexer = Lexer { escape: '\\' };

fn unset(_: &str) -> Option<String> {
    None
}

/// Reads `word` as `[fd]<<[-]WORD`, or `None` if it is not a heredoc marker.
pub(super) fn parse_marker(word: &str) -> Option<Marker> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (fd, rest) = word.split_at(digits);
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let opts = Options {
        skip_unset: true,
        ..Options::default()
    };
    let plain = BACKSLASH.scan(rest, &unset, opts).0.ok()?.1;
    let raw_opts = Options {
        raw_quotes: true,
        ..opts
    };
    let raw = BACKSLASH.scan(rest, &unset, raw_opts).0.ok()?.1;
    let [name] = plain.as_slice() else {
        return None;
    };
    let [raw_name] = raw.as_slice() else {
        return None;
    };
    let quotes = |s: &str| s.chars().filter(|&c| c == '"' || c == '\'').count();
    Some(Marker {
        name: name.clone(),
        expand: quotes(name) == quotes(raw_name),
        chomp,
        fd: fd.parse().ok(),
    })
}

/// The heredoc markers on an instruction's (joined) line, in order.
pub(super) fn find_markers(line: &str) -> Vec<Marker> {
    let opts = Options {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        lenient: false,
    };
    match BACKSLASH.scan(line, &unset, opts).0 {
        Ok((_, words)) => words.iter().filter_map(|w| parse_marker(w)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Reads the bodies of `markers` from `src`; on a missing delimiter returns
/// the name of the unterminated heredoc.
pub(super) fn read_bodies(
    markers: Vec<Marker>,
    src: &mut Source<'_>,
) -> Result<Vec<Heredoc>, String> {
    let mut docs = Vec::new();
    for m in markers {
        let mut content = String::new();
        let mut terminated = false;
        while let Some(raw) = src.next_raw() {
            let body_line = if m.chomp {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if body_line.trim_end_matches(['\r', '\n']) == m.name {
                terminated = true;
                break;
            }
            content.push_str(body_line);
        }
        if !terminated {
            return Err(m.name);
        }
        docs.push(Heredoc {
            name: m.name,
            content,
            expand: m.expand,
            chomp: m.chomp,
            file_descriptor: m.fd,
        });
    }
    Ok(docs)
}
