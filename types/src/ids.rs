//! Identifier newtypes. A layer is identified by its chain ID, an image by its config digest,
//! a container by 64 random hex digits.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher};

/// A layer's identity: its chain ID (OCI image spec): `chain(L0) = diff(L0)`,
/// `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayerId(pub Digest);

impl LayerId {
    /// The chain ID of a layer with `diff_id` on top of `parent`.
    pub fn chain(parent: Option<&LayerId>, diff_id: &Digest) -> LayerId {
        match parent {
            None => LayerId(diff_id.clone()),
            Some(p) => {
                let mut h = Hasher::new();
                h.update(p.0.as_str().as_bytes());
                h.update(b" ");
                h.update(diff_id.as_str().as_bytes());
                LayerId(h.finish())
            }
        }
    }

    /// The chain IDs of every layer of an image, bottom first.
    pub fn chain_all(diff_ids: &[Digest]) -> Vec<LayerId> {
        let mut out: Vec<LayerId> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = LayerId::chain(out.last(), d);
            out.push(next);
        }
        out
    }

    pub fn digest(&self) -> &Digest {
        &self.0
    }
}

/// An image's identity: the digest of its config blob.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub Digest);

impl ImageId {
    pub fn digest(&self) -> &Digest {
        &self.0
    }
}

/// A container's identity: 64 lowercase hex digits, random.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    /// Accepts exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<ContainerId> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| ContainerId(s.to_owned()))
    }

    /// Builds an ID from 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> ContainerId {
        ContainerId(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

macro_rules! display_via {
    ($t:ty, |$v:ident| $inner:expr) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $v = self;
                f.write_str($inner)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $v = self;
                write!(f, "{}({})", stringify!($t), $inner)
            }
        }
    };
}

display_via!(LayerId, |l| l.0.as_str());
display_via!(ImageId, |i| i.0.as_str());
display_via!(ContainerId, |c| c.0.as_str());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_of_base_layer_is_its_diff_id() {
        let d = Digest::of(b"layer");
        assert_eq!(LayerId::chain(None, &d).0, d);
    }

    #[test]
    fn chain_id_matches_spec_formula() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let ids = LayerId::chain_all(&[a.clone(), b.clone()]);
        let expect = Digest::of(format!("{} {}", a, b).as_bytes());
        assert_eq!(ids[1].0, expect);
    }

    #[test]
    fn container_id_validation() {
        assert!(ContainerId::parse(&"a".repeat(64)).is_some());
        assert!(ContainerId::parse(&"A".repeat(64)).is_none());
        assert!(ContainerId::parse("abc").is_none());
    }
}
