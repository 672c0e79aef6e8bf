//! The tiny JSON reader behind exec form (`RUN ["a", "b"]`).
//!
//! What it does: decides, like Go's `encoding/json` does for the dockerfile
//! frontend, whether an argument text is a JSON array of strings, an array
//! holding something other than strings (an error in Docker), or not JSON at
//! all (Docker then falls back to shell form). Strings are decoded with all
//! JSON escapes, `\uXXXX` surrogate pairs included; a lone surrogate becomes
//! U+FFFD as in Go.
//!
//! What it deliberately does not do: build values other than strings. Numbers,
//! objects, `true`/`false`/`null` and nested arrays are only validated so the
//! three outcomes can be told apart. Nesting deeper than 512 is "not JSON".

/// Outcome of [`parse_string_array`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JsonArray {
    /// A valid array whose elements are all strings.
    Strings(Vec<String>),
    /// A valid JSON array with a non-string element.
    NotStrings,
    /// Not a JSON array (shell form for Docker).
    Invalid,
}

const MAX_DEPTH: usize = 512;

/// Parses `text` (leading whitespace allowed) as a JSON array of strings.
pub(super) fn parse_string_array(text: &str) -> JsonArray {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.skip_unicode_space();
    match p.top() {
        Some((items, true)) if p.at_end() => JsonArray::Strings(items),
        Some((_, false)) if p.at_end() => JsonArray::NotStrings,
        _ => JsonArray::Invalid,
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_unicode_space(&mut self) {
        let rest = &self.s[self.i..];
        self.i += rest.len() - rest.trim_start().len();
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// The top-level array: its strings and whether all elements were strings.
    fn top(&mut self) -> Option<(Vec<String>, bool)> {
        if !self.eat(b'[') {
            return None;
        }
        let mut items = Vec::new();
        let mut all_strings = true;
        if self.eat(b']') {
            return Some((items, true));
        }
        loop {
            self.ws();
            if self.b.get(self.i) == Some(&b'"') {
                items.push(self.string()?);
            } else {
                self.value()?;
                all_strings = false;
            }
            if self.eat(b']') {
                return Some((items, all_strings));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Validates any JSON value.
    fn value(&mut self) -> Option<()> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.string().map(|_| ()),
            b'[' => self.container(b']', false),
            b'{' => self.container(b'}', true),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn container(&mut self, close: u8, object: bool) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if !self.eat(close) {
            loop {
                if object {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                }
                self.value()?;
                if self.eat(close) {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// Decodes a string starting at its opening quote.
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        let mut start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    out.push_str(&self.s[start..self.i]);
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(&self.s[start..self.i]);
                    self.i += 1;
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    });
                    start = self.i;
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// After `\u`: one code point, joining a surrogate pair when present.
    fn unicode_escape(&mut self) -> Option<char> {
        let cp = self.hex4()?;
        if (0xD800..0xDC00).contains(&cp) && self.s[self.i..].starts_with("\\u") {
            let save = self.i;
            self.i += 2;
            match self.hex4() {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    let joined = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    return Some(char::from_u32(joined).unwrap_or('\u{fffd}'));
                }
                _ => self.i = save,
            }
        }
        Some(char::from_u32(cp).unwrap_or('\u{fffd}'))
    }
}
