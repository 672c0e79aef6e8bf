//! Cache keys of build steps. A key is a digest of everything that determines a step's
//! result: the parent image (its ID is the digest of its config, which names its layers by
//! diff ID, so it stands for the parent layer chain and every config setting a step can see),
//! the instruction after expansion, the build args in scope, heredoc bodies, mount sources,
//! the output format, and for COPY/ADD a digest of the sources' content, modes and owners
//! (not their times). The store keeps `key → image` (`store.cache_lookup`/`cache_record`),
//! so a lookup is one indexed read.
//!
//! Every field goes in length-prefixed with a label, so no two different steps can produce
//! the same byte stream. Bump [`VERSION`] whenever what a step does for the same inputs
//! changes, so old entries stop matching.

use strata_types::{Digest, Hasher};

/// Changes when the meaning of keys changes.
pub const VERSION: &str = "strata-build-cache/1";

/// Builds one key; also remembers the fields in readable form so `--log-level debug` can say
/// what a missed step's key was made of.
#[derive(Debug)]
pub struct KeyBuilder {
    hasher: Hasher,
    pub fields: Vec<(String, String)>,
}

impl KeyBuilder {
    pub fn new(parent: &str, format: &str) -> KeyBuilder {
        let mut k = KeyBuilder {
            hasher: Hasher::new(),
            fields: Vec::new(),
        };
        k.add("version", VERSION);
        k.add("parent", parent);
        k.add("format", format);
        k
    }

    /// Adds one labelled field.
    pub fn add(&mut self, label: &str, value: &str) {
        for part in [label.as_bytes(), value.as_bytes()] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part);
        }
        let shown = if value.len() > 200 {
            let head: String = value.chars().take(200).collect();
            format!("{head}... ({} bytes)", value.len())
        } else {
            value.to_owned()
        };
        self.fields.push((label.to_owned(), shown));
    }

    pub fn finish(self) -> (String, Vec<(String, String)>) {
        let d: Digest = self.hasher.finish();
        (d.as_str().to_owned(), self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[(&str, &str)]) -> String {
        let mut k = KeyBuilder::new("sha256:p", "oci");
        for (l, v) in fields {
            k.add(l, v);
        }
        k.finish().0
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        assert_ne!(key(&[("a", "bc")]), key(&[("ab", "c")]));
        assert_ne!(key(&[("a", "b"), ("c", "")]), key(&[("a", "bc")]));
        assert_eq!(key(&[("a", "b")]), key(&[("a", "b")]));
    }

    #[test]
    fn parent_and_format_are_part_of_the_key() {
        let mut a = KeyBuilder::new("sha256:p", "oci");
        a.add("run", "x");
        let mut b = KeyBuilder::new("sha256:p", "docker");
        b.add("run", "x");
        let mut c = KeyBuilder::new("sha256:q", "oci");
        c.add("run", "x");
        let (a, b, c) = (a.finish().0, b.finish().0, c.finish().0);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
