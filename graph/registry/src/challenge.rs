//! `WWW-Authenticate` challenges (RFC 7235) as registries send them:
//! `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`
//! or `Basic realm="Registry"`.
//!
//! Parameter values may be quoted strings containing commas and escaped quotes. Only the
//! schemes registries use (Basic, Bearer) are interpreted by the client; others are parsed
//! and then ignored.

use std::collections::BTreeMap;

/// One authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`basic`, `bearer`).
    pub scheme: String,
    /// Parameters, with lower-cased names.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn is_bearer(&self) -> bool {
        self.scheme == "bearer"
    }

    pub fn is_basic(&self) -> bool {
        self.scheme == "basic"
    }
}

/// Parses one header value, which may hold several challenges.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let token = p.token();
        if token.is_empty() {
            break;
        }
        p.skip(|b| b == b' ' || b == b'\t');
        if p.peek() == Some(b'=') {
            // `name=value` belongs to the current challenge.
            p.i += 1;
            p.skip(|b| b == b' ' || b == b'\t');
            let value = p.value();
            if let Some(c) = out.last_mut() {
                c.params.insert(token.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|b| !matches!(b, b' ' | b'\t' | b',' | b'=' | b'"'));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn value(&mut self) -> String {
        if self.peek() != Some(b'"') {
            return self.token();
        }
        self.i += 1;
        let mut v = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(b),
            }
        }
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_comma_in_scope() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].is_bearer());
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:library/busybox:pull,push")
        );
    }

    #[test]
    fn basic_and_multiple_challenges() {
        let c = parse(r#"Basic realm="Registry Realm""#);
        assert!(c[0].is_basic());
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        let c = parse(r#"Basic realm=x, BEARER realm="r\"q", error=invalid_token"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("x"));
        assert!(c[1].is_bearer());
        assert_eq!(c[1].param("realm"), Some("r\"q"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
    }

    #[test]
    fn garbage_is_harmless() {
        assert!(parse("").is_empty());
        let c = parse(r#"=x, "unterminated"#);
        assert!(c.iter().all(|c| c.params.is_empty()));
    }
}
