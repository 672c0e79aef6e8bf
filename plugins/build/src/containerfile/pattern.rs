//! Shell wildcard patterns for `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/r}`.
//!
//! What it does: `*` (any run of characters), `?` (one character) and the
//! escape character (next character literal), matched against whole strings;
//! shortest/longest prefix and suffix removal; replacement of the first or
//! every leftmost-longest match.
//!
//! What it deliberately does not do: bracket classes (`[a-z]`, not supported
//! by BuildKit either), anchors (`/#`, `/%`), or empty-pattern replacement
//! (BuildKit's regexp-based version would insert at empty matches; here an
//! empty pattern and empty matches replace nothing).

/// A shell pattern element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
    Star,
    One,
    Lit(char),
}

pub(super) fn tokens(pattern: &str, escape: char) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        out.push(match c {
            '*' => Tok::Star,
            '?' => Tok::One,
            c if c == escape => Tok::Lit(it.next().unwrap_or(c)),
            c => Tok::Lit(c),
        });
    }
    out
}

/// Whole-string wildcard match (iterative, backtracking to the last `*`).
fn glob(p: &[Tok], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Tok::Star) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(Tok::One) => {
                pi += 1;
                si += 1;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|t| *t == Tok::Star)
}

/// `#`/`##` (prefix) and `%`/`%%` (suffix) removal.
pub(super) fn trim_match(value: &str, toks: &[Tok], greedy: bool, prefix: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    // Candidate lengths of the removed part, shortest first unless greedy.
    let mut lens: Vec<usize> = (0..=n).collect();
    if greedy {
        lens.reverse();
    }
    for len in lens {
        let (cut, keep) = if prefix {
            (&chars[..len], &chars[len..])
        } else {
            (&chars[n - len..], &chars[..n - len])
        };
        if glob(toks, cut) {
            return keep.iter().collect();
        }
    }
    value.to_string()
}

/// Replaces the first (or every) leftmost-longest non-empty match.
pub(super) fn replace_matches(value: &str, toks: &[Tok], repl: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut done = toks.is_empty();
    while i < chars.len() && !done {
        match (i + 1..=chars.len())
            .rev()
            .find(|&e| glob(toks, &chars[i..e]))
        {
            Some(end) => {
                out.push_str(repl);
                i = end;
                done = !all;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out.extend(&chars[i..]);
    out
}
