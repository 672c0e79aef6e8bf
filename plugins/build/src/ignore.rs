//! `.containerignore` / `.dockerignore` matching with Docker/BuildKit semantics.
//!
//! What it does:
//! - Reads an ignore file the way BuildKit's dockerignore reader and
//!   moby/patternmatcher do: a UTF-8 BOM is dropped, lines whose first column
//!   is `#` are comments, other lines are trimmed and blank ones skipped, a
//!   leading `!` marks an exception, patterns are cleaned like Go's
//!   `filepath.Clean` and a leading `/` is dropped (patterns are relative to
//!   the context root). A lone `!` and malformed globs are errors.
//! - Matches like Go's `filepath.Match` extended with `**`: `*` is any run of
//!   non-`/` characters, `?` one non-`/` character, `[...]` a class with ranges
//!   and `^` negation, `\` escapes; `**` spans any number of path segments
//!   (zero included). A pattern matching a directory also matches everything
//!   below it, and the last matching pattern wins (`!x` re-includes).
//! - Answers, for an excluded directory, whether a walker must still descend
//!   because an exception could re-include something below it. This check is
//!   wildcard-aware (unlike Docker's string-prefix test) and errs towards
//!   `true`: it may ask for a useless descent, never skips a needed one.
//!
//! What it deliberately does not do:
//! - No file I/O and no walking; callers pass `/`-separated, context-relative
//!   paths. No Windows separators, no case folding, no POSIX `[[:class:]]`.
//! - No `.gitignore` semantics: a bare name is anchored at the context root
//!   (`foo` does not match `a/foo`) and a trailing `/` does not restrict a
//!   pattern to directories (it is cleaned away, as Docker does).
//! - Known departures from Docker: `[!...]` is also a negated class (Go and
//!   Docker read that `!` literally); `*`/`?` inside brackets are literal
//!   (Docker's regexp translation mangles them); a reversed range such as
//!   `[z-a]` is rejected when parsing rather than when first matched.
//!   Like Docker, bracket classes can match `/`, and a leading `**` followed
//!   only by literal text is a plain suffix test (`**foo` matches `xfoo`).

use std::fmt;

/// An error found while parsing an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreError(pub String);

impl fmt::Display for IgnoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IgnoreError {}

/// A parsed ignore file: an ordered list of patterns and exceptions.
#[derive(Debug, Clone)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// The cleaned pattern text, without the `!` (shown by `Debug`).
    #[allow(dead_code)]
    pattern: String,
    exception: bool,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Tokens(Vec<Token>),
    /// Docker's fast path for `**` + literal text: a bare suffix test.
    Suffix(Vec<char>),
}

#[derive(Debug, Clone)]
enum Token {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` before more pattern: empty, or anything ending in `/`.
    DirStar,
    /// `**` at the end of the pattern: anything.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Ignore {
    /// Parses the text of a `.containerignore` / `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            // Comments are recognised before trimming, as in BuildKit.
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let err = |msg: &str| IgnoreError(format!("line {}: {:?}: {}", idx + 1, line, msg));
            // Reader step: split off `!`, clean, make relative to the root.
            let (invert, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut body = if body.is_empty() {
                String::new()
            } else {
                clean(body)
            };
            if body.len() > 1 && body.starts_with('/') {
                body.remove(0);
            }
            // Matcher step: clean again, then take the `!` off for good.
            let full = if invert { format!("!{body}") } else { body };
            let full = clean(full.trim());
            let (exception, pattern) = match full.strip_prefix('!') {
                Some("") => return Err(err("illegal exclusion pattern \"!\"")),
                Some(rest) => (true, rest.to_string()),
                None => (false, full),
            };
            let matcher = compile(&pattern).map_err(|m| err(&m))?;
            rules.push(Rule {
                pattern,
                exception,
                matcher,
            });
        }
        Ok(Ignore { rules })
    }

    /// An ignore list that excludes nothing.
    pub fn empty() -> Ignore {
        Ignore { rules: Vec::new() }
    }

    /// Whether the context-relative path (no leading '/', '/'-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = match normalize(path) {
            Some(p) => p,
            None => return false, // the context root itself is never excluded
        };
        let parents: Vec<usize> = (0..path.len()).filter(|&k| path[k] == '/').collect();
        let mut excluded = false;
        for rule in &self.rules {
            // An exception only matters once excluded, a pattern only before.
            if rule.exception != excluded {
                continue;
            }
            let hit = rule.matcher.matches(&path, false)
                || parents
                    .iter()
                    .any(|&k| rule.matcher.matches(&path[..k], false));
            if hit {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether a walker must descend into this excluded directory because an exception could re-include something below it.
    pub fn must_descend(&self, dir: &str) -> bool {
        let mut prefix = normalize(dir).unwrap_or_default();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        self.rules
            .iter()
            .any(|r| r.exception && r.matcher.matches(&prefix, true))
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// One COPY/ADD source pattern (Go's `filepath.Match` with `**`), matched against whole
/// context-relative paths: unlike an ignore rule it does not match below a matched path.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: Matcher,
}

impl Glob {
    /// Compiles a cleaned, context-relative pattern.
    pub fn new(pattern: &str) -> Result<Glob, IgnoreError> {
        let p = clean(pattern);
        let p = p.trim_start_matches('/');
        compile(p)
            .map(|matcher| Glob { matcher })
            .map_err(|e| IgnoreError(format!("{pattern:?}: {e}")))
    }

    /// Whether the pattern matches exactly this path.
    pub fn matches(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        self.matcher.matches(&s, false)
    }

    /// Whether the pattern could match a path below this directory.
    pub fn could_match_below(&self, dir: &str) -> bool {
        let mut s: Vec<char> = dir.chars().collect();
        if !s.is_empty() {
            s.push('/');
        }
        self.matcher.matches(&s, true)
    }
}

/// Whether a COPY source has glob characters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lexical path cleaning with the rules of Go's `filepath.Clean` (Unix).
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." if out.last().is_some_and(|s| *s != "..") => {
                out.pop();
            }
            ".." if rooted => {}
            s => out.push(s),
        }
    }
    let body = out.join("/");
    if rooted {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

/// Cleans a queried path; `None` for the context root.
fn normalize(path: &str) -> Option<Vec<char>> {
    let p = clean(path);
    let p = p.trim_start_matches('/');
    if p.is_empty() || p == "." {
        None
    } else {
        Some(p.chars().collect())
    }
}

/// Turns a cleaned pattern into a matcher, rejecting what Go's
/// `filepath.Match` rejects as `ErrBadPattern`.
fn compile(pat: &str) -> Result<Matcher, String> {
    let chars: Vec<char> = pat.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i == chars.len() {
                    Token::Rest
                } else {
                    Token::DirStar
                });
            }
            '*' => toks.push(Token::Star),
            '?' => toks.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&e) => {
                    i += 1;
                    toks.push(Token::Lit(e));
                }
                None => return Err("trailing backslash".to_string()),
            },
            '[' => {
                let (tok, next) = parse_class(&chars, i)?;
                toks.push(tok);
                i = next;
            }
            c => toks.push(Token::Lit(c)),
        }
    }
    if let Some(rest) = pat.strip_prefix("**") {
        if !rest.contains(['*', '?', '[', ']', '\\']) {
            return Ok(Matcher::Suffix(rest.chars().collect()));
        }
    }
    Ok(Matcher::Tokens(toks))
}

/// Parses a bracket class whose `[` ends just before `i`.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Token, usize), String> {
    let negated = matches!(chars.get(i), Some('^') | Some('!'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err("unterminated character class".to_string()),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1));
            }
            _ => {}
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
            if hi < lo {
                return Err(format!("invalid class range {lo}-{hi}"));
            }
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: usize) -> Result<(char, usize), String> {
    match chars.get(i) {
        None | Some('-') | Some(']') => Err("malformed character class".to_string()),
        Some('\\') => match chars.get(i + 1) {
            Some(&c) => Ok((c, i + 2)),
            None => Err("unterminated character class".to_string()),
        },
        Some(&c) => Ok((c, i + 1)),
    }
}

impl Matcher {
    /// Whether the pattern matches `s` exactly, or (with `prefix`) whether it
    /// matches some string that starts with `s`.
    fn matches(&self, s: &[char], prefix: bool) -> bool {
        match self {
            Matcher::Suffix(_) if prefix => true,
            Matcher::Suffix(sfx) => {
                s.ends_with(sfx) || (sfx.first() == Some(&'/') && s == &sfx[1..])
            }
            Matcher::Tokens(toks) => run(toks, s, prefix),
        }
    }
}

/// Dynamic programme over (token, position): row `next[j]` says whether the
/// tokens after the current one match `s[j..]`. Linear in |tokens| * |s|.
fn run(toks: &[Token], s: &[char], prefix: bool) -> bool {
    let n = s.len();
    let mut next: Vec<bool> = (0..=n).map(|j| j == n).collect();
    for tok in toks.iter().rev() {
        let mut cur = vec![false; n + 1];
        let mut dir_ahead = false; // some k >= j with s[k] == '/' and next[k + 1]
        for j in (0..=n).rev() {
            let c = s.get(j).copied();
            let one = |ok: bool| ok && next[j + 1];
            let v = match tok {
                Token::Lit(l) => c == Some(*l) && next[j + 1],
                Token::One => c.is_some_and(|c| c != '/') && next[j + 1],
                Token::Class { negated, ranges } => c.is_some_and(|c| {
                    one(ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                }),
                Token::Star => next[j] || (c.is_some_and(|c| c != '/') && cur[j + 1]),
                Token::Rest => prefix || next[j] || (c.is_some() && cur[j + 1]),
                Token::DirStar => {
                    if c == Some('/') && next[j + 1] {
                        dir_ahead = true;
                    }
                    prefix || next[j] || dir_ahead
                }
            };
            // In prefix mode any remaining tokens can match some continuation.
            cur[j] = v || (prefix && j == n);
        }
        next = cur;
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn comments_and_blank_lines() {
        let i = ig("\u{feff}# a comment\n\n   \n\t\n*.md\r\n");
        assert_eq!(i.rules.len(), 1);
        assert!(i.is_excluded("README.md"));
        // Only column-0 `#` is a comment, as in BuildKit.
        let i = ig("  # x");
        assert_eq!(i.rules[0].pattern, "# x");
        assert!(i.is_excluded("# x"));
        assert!(ig("").is_empty() && ig("# only\n").is_empty());
        assert!(Ignore::empty().is_empty() && !Ignore::empty().is_excluded("a"));
    }

    #[test]
    fn star_md() {
        let i = ig("*.md");
        assert!(i.is_excluded("README.md") && i.is_excluded(".md"));
        assert!(!i.is_excluded("docs/a.md") && !i.is_excluded("a.mdx"));
        assert!(i.is_excluded("x.md/inner/file")); // parent matched
    }

    #[test]
    fn double_star_prefix() {
        let i = ig("**/*.go");
        assert!(i.is_excluded("main.go") && i.is_excluded("a/b/c.go"));
        assert!(!i.is_excluded("main.rs") && !i.is_excluded("a/go"));
        let all = ig("**");
        assert!(all.is_excluded("x") && all.is_excluded("x/y/z"));
    }

    #[test]
    fn double_star_suffix() {
        let i = ig("docs/**");
        assert!(i.is_excluded("docs/a") && i.is_excluded("docs/a/b"));
        assert!(!i.is_excluded("docs") && !i.is_excluded("docsx/a"));
    }

    #[test]
    fn double_star_middle() {
        let i = ig("a/**/b");
        for p in ["a/b", "a/x/b", "a/x/y/b", "a/b/c"] {
            assert!(i.is_excluded(p), "{p}");
        }
        for p in ["a/xb", "b", "x/a/b", "a/x/bc"] {
            assert!(!i.is_excluded(p), "{p}");
        }
    }

    #[test]
    fn docker_suffix_fast_path() {
        let i = ig("**foo");
        assert!(i.is_excluded("xfoo") && i.is_excluded("a/foo"));
        let i = ig("**/foo");
        assert!(i.is_excluded("foo") && i.is_excluded("a/b/foo"));
        assert!(!i.is_excluded("xfoo"));
    }

    #[test]
    fn exception_reincludes() {
        let i = ig("*.md\n!important.md");
        assert!(!i.is_excluded("important.md"));
        assert!(i.is_excluded("other.md"));
    }

    #[test]
    fn last_match_wins() {
        assert!(ig("!a.txt\n*.txt").is_excluded("a.txt"));
        assert!(ig("*.txt\n!a.txt\na.txt").is_excluded("a.txt"));
        assert!(!ig("*.txt\na.txt\n!a.txt").is_excluded("a.txt"));
        assert!(!ig("a\n!a/b").is_excluded("a/b/c"));
    }

    #[test]
    fn directory_pattern_excludes_children() {
        for text in ["foo", "foo/", "/foo/"] {
            let i = ig(text);
            assert!(
                i.is_excluded("foo") && i.is_excluded("foo/bar/baz"),
                "{text}"
            );
            assert!(
                !i.is_excluded("foobar") && !i.is_excluded("x/foo"),
                "{text}"
            );
        }
    }

    #[test]
    fn classes() {
        let i = ig("[a-c].txt");
        assert!(i.is_excluded("a.txt") && i.is_excluded("c.txt"));
        assert!(!i.is_excluded("d.txt") && !i.is_excluded("ab.txt"));
        for text in ["[^a]", "[!a]"] {
            let i = ig(text);
            assert!(i.is_excluded("b") && !i.is_excluded("a"), "{text}");
        }
        let i = ig("[xa-c\\]]z");
        assert!(i.is_excluded("xz") && i.is_excluded("bz") && i.is_excluded("]z"));
        assert!(!i.is_excluded("dz"));
    }

    #[test]
    fn question_mark() {
        let i = ig("?.txt\na?b");
        assert!(i.is_excluded("a.txt") && i.is_excluded("é.txt") && i.is_excluded("axb"));
        assert!(!i.is_excluded("ab.txt") && !i.is_excluded(".txt") && !i.is_excluded("a/b"));
    }

    #[test]
    fn escapes() {
        let i = ig("\\*.txt\na\\[b\nc\\?");
        assert!(i.is_excluded("*.txt") && !i.is_excluded("a.txt"));
        assert!(i.is_excluded("a[b") && i.is_excluded("c?") && !i.is_excluded("cx"));
    }

    #[test]
    fn leading_slash_and_dot() {
        let i = ig("/foo\n./bar/../baz\na//b/\n! /x/./y");
        let pats: Vec<&str> = i.rules.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(pats, ["foo", "baz", "a/b", "x/y"]);
        assert!(i.rules[3].exception);
        assert!(i.is_excluded("foo") && i.is_excluded("baz") && i.is_excluded("a/b/c"));
        assert!(i.is_excluded("./foo/x") && i.is_excluded("/foo"));
        assert!(!i.is_excluded("bar") && !i.is_excluded(".") && !i.is_excluded(""));
    }

    #[test]
    fn must_descend_with_exception() {
        let i = ig("build\n!build/keep.txt");
        assert!(i.is_excluded("build") && i.must_descend("build"));
        assert!(!i.is_excluded("build/keep.txt"));
        assert!(i.is_excluded("build/other") && i.is_excluded("build/sub/keep.txt"));
        assert!(!i.must_descend("build/sub") && !i.must_descend("other"));
        assert!(!ig("build").must_descend("build"));
        let i = ig("*\n!**/keep");
        assert!(i.must_descend("any/deep/dir") && !i.is_excluded("any/deep/keep"));
        let i = ig("build\n!build/*/keep");
        assert!(i.must_descend("build/x") && !i.must_descend("build/x/y"));
        assert!(!i.must_descend("buildx"));
        assert!(ig("a\n!a*/keep").must_descend("a"));
        // `!a*` re-includes `a` itself, so `a` is never an excluded dir.
        assert!(!ig("a\n!a*").is_excluded("a/x"));
    }

    #[test]
    fn star_does_not_cross_slash() {
        let i = ig("a*c");
        assert!(i.is_excluded("abc") && i.is_excluded("ac"));
        assert!(!i.is_excluded("ab/c"));
        let i = ig("a/*");
        assert!(i.is_excluded("a/b") && i.is_excluded("a/b/c") && !i.is_excluded("a"));
        // `*` matches every top-level name, hence everything through parents.
        assert!(ig("*").is_excluded("x/y"));
        assert!(!ig("*/b").is_excluded("b") && ig("*/b").is_excluded("a/b"));
    }

    #[test]
    fn globs_match_whole_paths() {
        let g = Glob::new("src/*.txt").unwrap();
        assert!(g.matches("src/a.txt"));
        assert!(!g.matches("src/a.txt/b"));
        assert!(!g.matches("src/sub/a.txt"));
        assert!(g.could_match_below("src"));
        assert!(!g.could_match_below("other"));
        let g = Glob::new("**/*.rs").unwrap();
        assert!(g.matches("a/b/c.rs"));
        assert!(g.matches("c.rs"));
        assert!(has_glob("a*") && !has_glob("plain/path"));
    }

    #[test]
    fn errors() {
        for bad in [
            "!", "  !  ", "! /", "[a", "a\\", "[]", "[^]", "[a-]", "[-a]", "[z-a]",
        ] {
            assert!(Ignore::parse(bad).is_err(), "{bad:?}");
        }
        let e = Ignore::parse("ok\n[oops").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        assert!(Ignore::parse("]\n!!x\na]b").is_ok());
        assert!(ig("!!x").rules[0].exception && ig("!!x").rules[0].pattern == "!x");
    }
}
