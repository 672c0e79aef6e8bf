//! Shell-word processing with BuildKit's `shell.Lex` semantics.
//!
//! What it does: quote removal and variable substitution of one
//! Containerfile word, the way the dockerfile frontend processes ENV/ARG/
//! LABEL values, COPY/ADD paths, WORKDIR, USER, EXPOSE, FROM images and flag
//! values:
//! - `'...'` is literal; `"..."` is literal except for `$` expansion and the
//!   escape character before `"`, `$` or itself; outside quotes the escape
//!   character (`\`, or the `# escape=` one) makes the next character literal
//!   (a trailing escape is dropped).
//! - `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//!   `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`, the BuildKit pattern forms
//!   `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`,
//!   `${VAR/pat/repl}` and `${VAR//pat/repl}` (`*` and `?` wildcards), with
//!   nested expansion inside `word`. Unset variables expand to "".
//!   `$` not followed by a name is literal.
//! - [`Lexer::process_words`] splits on unquoted whitespace after expansion
//!   (text coming from a variable is split, quoted text is not).
//!
//! What it deliberately does not do: it is not a shell. No command
//! substitution, arithmetic, globbing, tilde or brace expansion, no `IFS`,
//! no `${#VAR}` length or `${VAR:off:len}` substrings (errors, as in
//! BuildKit). RUN/CMD/ENTRYPOINT shell text is never passed through it. An
//! empty `/` pattern replaces nothing and empty pattern matches are skipped;
//! escapes in a `/` replacement are removed. `${...}` nested more than 200
//! deep is an error (BuildKit has no such limit).

use super::pattern;

/// BuildKit-compatible shell-word processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character: `\` or the `# escape=` directive's.
    pub escape: char,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer { escape: '\\' }
    }
}

/// Internal switches, mirroring BuildKit's `RawQuotes`, `RawEscapes` and
/// `SkipUnsetEnv`; `lenient` makes `${VAR?}` succeed (for [`Lexer::referenced`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Options {
    pub raw_quotes: bool,
    pub raw_escapes: bool,
    pub skip_unset: bool,
    pub lenient: bool,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;
type Out = (String, Vec<String>);

impl Lexer {
    /// Quote removal plus variable expansion of one word (the whole string
    /// is one word; whitespace kept).
    ///
    /// # Errors
    ///
    /// Unbalanced quotes, malformed or unsupported `${...}` forms and
    /// `${VAR?msg}` with VAR unset (or empty for `:?`), as a message.
    pub fn process_word(&self, word: &str, env: Env<'_>) -> Result<String, String> {
        self.scan(word, env, Options::default()).0.map(|(w, _)| w)
    }

    /// Variable expansion that keeps quotes and escapes as they are: what an unquoted
    /// heredoc's body gets in COPY/ADD (BuildKit's `ExpandRaw`).
    ///
    /// # Errors
    ///
    /// Malformed `${...}` forms and `${VAR?msg}` with VAR unset.
    pub fn expand_raw(&self, word: &str, env: Env<'_>) -> Result<String, String> {
        let opts = Options {
            raw_quotes: true,
            raw_escapes: true,
            ..Options::default()
        };
        self.scan(word, env, opts).0.map(|(w, _)| w)
    }

    /// Same, but split into words on unquoted whitespace.
    ///
    /// # Errors
    ///
    /// As [`Lexer::process_word`].
    pub fn process_words(&self, word: &str, env: Env<'_>) -> Result<Vec<String>, String> {
        self.scan(word, env, Options::default()).0.map(|(_, ws)| ws)
    }

    /// Names of variables the word references, in order of first use
    /// (including those only used inside a `${X:-$Y}` default). Special
    /// parameters (`$1`, `$@`, ...) are left out; on a syntax error the names
    /// seen before it are returned.
    #[must_use]
    pub fn referenced(&self, word: &str) -> Vec<String> {
        let none = |_: &str| None;
        let opts = Options {
            lenient: true,
            ..Options::default()
        };
        self.scan(word, &none, opts).1
    }

    /// Runs the processor; returns the result and the names looked up.
    pub(super) fn scan(
        &self,
        word: &str,
        env: Env<'_>,
        opts: Options,
    ) -> (Result<Out, String>, Vec<String>) {
        let mut st = State {
            chars: word.chars().collect(),
            pos: 0,
            escape: self.escape,
            opts,
            raw_escapes: opts.raw_escapes,
            env,
            names: Vec::new(),
            depth: 0,
        };
        let res = st
            .stop_on(None, opts.raw_escapes)
            .map_err(|e| format!("failed to process {word:?}: {e}"));
        (res, st.names)
    }
}

/// Accumulates the word list of `process_words`.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if !ch.is_whitespace() {
            self.add_raw_char(ch);
        } else if self.in_word && !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
            self.in_word = false;
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct State<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    opts: Options,
    raw_escapes: bool,
    env: Env<'a>,
    names: Vec<String>,
    /// Current `${...}` nesting, bounded by [`MAX_DEPTH`].
    depth: usize,
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

/// Deepest `${...}` nesting accepted (keeps recursion off the stack limit).
const MAX_DEPTH: usize = 200;

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end of input.
    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<Out, String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let res = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        res
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<Out, String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' | '"' => {
                    let v = if ch == '\'' {
                        self.single_quote()?
                    } else {
                        self.double_quote()?
                    };
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.pos += 1;
                    if ch != self.escape {
                        words.add_char(ch);
                        result.push(ch);
                        continue;
                    }
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    let Some(next) = self.next() else { break };
                    words.add_raw_char(next);
                    result.push(next);
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c != self.escape {
                        out.push(c);
                        continue;
                    }
                    match self.peek() {
                        // A lone escape before the end: dropped; the loop
                        // then reports the missing quote.
                        None => {}
                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                            if self.raw_escapes {
                                out.push(c);
                            }
                            self.pos += 1;
                            out.push(n);
                        }
                        Some(_) => out.push(c),
                    }
                }
            }
        }
    }

    /// Reads a variable name: digits, one special parameter, or an
    /// identifier made of letters, digits and `_`.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    name.push(d);
                    self.pos += 1;
                }
                break;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                name.push(ch);
                break;
            }
            if !(ch.is_alphabetic() || ch.is_numeric() || ch == '_') {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        if !name.is_empty()
            && !self.names.contains(&name)
            && name.starts_with(|c: char| c.is_alphabetic() || c == '_')
        {
            self.names.push(name.clone());
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        if self.depth >= MAX_DEPTH {
            return Err("syntax error: substitutions nested too deeply".into());
        }
        self.depth += 1;
        let res = self.braced();
        self.depth -= 1;
        res
    }

    /// `${...}` after the opening brace.
    fn braced(&mut self) -> Result<String, String> {
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let (op, null_is_unset) = match self.next() {
            None => return Err(MISSING_BRACE.into()),
            Some('}') => {
                return Ok(match self.lookup(&name) {
                    Some(v) => v,
                    None if self.opts.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            Some(':') => (self.next(), true),
            Some(c @ ('+' | '-' | '?' | '#' | '%')) => (Some(c), false),
            Some('/') => return self.replace(&name),
            Some(c) => return Err(format!("unsupported modifier ({c}) in substitution")),
        };
        let op_text = format!(
            "{}{}",
            if null_is_unset { ":" } else { "" },
            op.map(String::from).unwrap_or_default()
        );
        let raw = matches!(op, Some('#' | '%'));
        let word = match self.stop_on(Some('}'), raw) {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let value = self.lookup(&name);
        if self.opts.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{op_text}{word}}}"));
        }
        let empty = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            Some('-') => Ok(if empty {
                word
            } else {
                value.unwrap_or_default()
            }),
            Some('+') => Ok(if empty { String::new() } else { word }),
            Some('?') if empty && !self.opts.lenient => {
                let why = if value.is_none() {
                    "is not allowed to be unset"
                } else {
                    "is not allowed to be empty"
                };
                Err(format!(
                    "{name}: {}",
                    if word.is_empty() { why } else { &word }
                ))
            }
            Some('?') => Ok(value.unwrap_or_default()),
            Some(c @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(c) {
                    Some(p) => (true, p),
                    None => (false, word.as_str()),
                };
                let toks = pattern::tokens(pat, self.escape);
                Ok(pattern::trim_match(&value, &toks, greedy, c == '#'))
            }
            _ => Err(format!("unsupported modifier ({op_text}) in substitution")),
        }
    }

    /// `${VAR/pat/repl}` and `${VAR//pat/repl}` (after the first `/`).
    fn replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = match self.stop_on(Some('/'), true) {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => {
                return Err("syntax error: missing '/' in ${}".into())
            }
            Err(e) => return Err(e),
        };
        let repl = match self.stop_on(Some('}'), true) {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let Some(value) = self.lookup(name) else {
            if self.opts.skip_unset {
                let slash = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slash}{pattern}/{repl}}}"));
            }
            return Ok(String::new());
        };
        let repl: String = pattern::tokens(&repl, self.escape)
            .into_iter()
            .map(|t| match t {
                pattern::Tok::Star => '*',
                pattern::Tok::One => '?',
                pattern::Tok::Lit(c) => c,
            })
            .collect();
        Ok(pattern::replace_matches(
            &value,
            &pattern::tokens(&pattern, self.escape),
            &repl,
            all,
        ))
    }
}
