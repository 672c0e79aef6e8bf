//! From raw text to logical instruction lines, as BuildKit's parser scans.
//!
//! What it does:
//! - [`Source`] hands out raw lines (line endings kept, a leading UTF-8 BOM
//!   dropped) and counts them, so heredoc bodies can be read from the same
//!   position.
//! - [`Reader`] reads parser directives at the top of the file (`escape`,
//!   `syntax`, `check`; names case-insensitive; any other line, comment or
//!   blank line ends them; a repeated one is an error), skips blank lines and
//!   comments (first non-blank character `#`), and joins continuation lines:
//!   a line whose last non-blank (space/tab) character is the escape
//!   character, not itself escaped, continues on the next line. Comment and
//!   blank lines inside a continuation are dropped. Pieces are joined as
//!   Docker does: the escape character and the blanks after it are removed,
//!   nothing is inserted, continuation lines keep their leading blanks.
//!
//! What it deliberately does not do: interpret the instruction text, or warn
//! about empty continuation lines (BuildKit only warns).

use super::ParseError;

/// Raw lines of the file with a 1-based line counter.
pub(super) struct Source<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Source {
            lines: text.split_inclusive('\n').collect(),
            next: 0,
        }
    }

    /// The next raw line, line ending included.
    pub fn next_raw(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next).copied();
        if line.is_some() {
            self.next += 1;
        }
        line
    }

    /// Number of the line last returned by [`Source::next_raw`] (1-based).
    pub fn line_no(&self) -> usize {
        self.next
    }
}

/// An instruction's text with continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Logical {
    pub line: usize,
    pub text: String,
}

/// Produces logical lines, handling directives, comments and continuations.
pub(super) struct Reader<'a> {
    pub src: Source<'a>,
    pub escape: char,
    file: &'a str,
    directives_done: bool,
    seen: Vec<String>,
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// `# name = value` with a name of ASCII letters and digits.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(end);
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((name, value))
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Reader {
            src: Source::new(text),
            escape: '\\',
            file,
            directives_done: false,
            seen: Vec::new(),
        }
    }

    fn check_directive(&mut self, line: &str) -> Result<(), ParseError> {
        if self.directives_done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.directives_done = true;
            return Ok(());
        };
        let key = name.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        let fail = |msg: String| ParseError::new(self.file, self.src.line_no(), "", msg);
        if self.seen.contains(&key) {
            return Err(fail(format!("only one {key} parser directive can be used")));
        }
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(fail(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    )))
                }
            };
        }
        self.seen.push(key);
        Ok(())
    }

    /// Removes a continuation escape: the text before it and `true`, or the
    /// line unchanged and `false`.
    fn continuation<'l>(&self, line: &'l str) -> (&'l str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        if let Some(before) = trimmed.strip_suffix(self.escape) {
            if !before.ends_with(self.escape) {
                return (before, true);
            }
        }
        (line, false)
    }

    /// The next instruction's logical line, or `None` at the end.
    pub fn next_instruction(&mut self) -> Result<Option<Logical>, ParseError> {
        while let Some(raw) = self.src.next_raw() {
            let start = self.src.line_no();
            let first = trim_newline(raw).trim_start();
            self.check_directive(first)?;
            let content = if first.starts_with('#') { "" } else { first };
            let (text, mut more) = self.continuation(content);
            if !more && text.is_empty() {
                continue;
            }
            let mut joined = text.to_string();
            while more {
                let Some(raw) = self.src.next_raw() else {
                    break;
                };
                let line = trim_newline(raw);
                let lead = line.trim_start();
                if lead.is_empty() || lead.starts_with('#') {
                    continue;
                }
                let (piece, cont) = self.continuation(line);
                joined.push_str(piece);
                more = cont;
            }
            return Ok(Some(Logical {
                line: start,
                text: joined,
            }));
        }
        Ok(None)
    }
}
