//! `docker-archive:FILE[:REF]`, the `docker save` / `docker load` format.
//!
//! ```text
//! FILE (tar)
//! ├── manifest.json     [{"Config": "<hex>.json", "RepoTags": ["name:tag"],
//! │                       "Layers": ["<hex>.tar", ...]}]
//! ├── <hex>.json        the image config (older docker: <hex>.json, newer: blobs/sha256/<hex>)
//! ├── <hex>.tar         layers, UNCOMPRESSED tars (older docker: <id>/layer.tar, maybe symlinks)
//! └── repositories      optional legacy {"name": {"tag": "<id>"}} (read: ignored; not written)
//! ```
//!
//! As a source the archive is presented as a Docker v2s2 manifest whose layer descriptors
//! are the uncompressed tars: digest = diff ID (taken from the config as containers/image
//! does; the copy engine verifies every byte against it), size from the tar header. REF
//! picks an image by `RepoTags` entry (`busybox:latest`) or position (`@0`). As a destination
//! it holds one image, tagged with REF. Multi-image archives are readable, not writable.

mod dest;
mod source;

pub use dest::DockerArchiveDestination;
pub use source::DockerArchiveSource;

use serde::{Deserialize, Serialize};

use crate::error::{ImageError, Result};

/// One image in `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// How a docker-archive REF selects an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveRef {
    /// A repository tag, in familiar form (`busybox:latest`).
    Tag(String),
    /// The N-th image of `manifest.json` (`@N`, sources only).
    Index(usize),
}

impl ArchiveRef {
    /// Parses `name[:tag]` (`:latest` is added) or `@N`. Digests are refused: the format
    /// stores tags only.
    pub fn parse(s: &str) -> Result<ArchiveRef> {
        if let Some(n) = s.strip_prefix('@') {
            return n.parse().map(ArchiveRef::Index).map_err(|_| {
                ImageError::Invalid(format!(
                    "invalid docker-archive reference {s:?}: @N needs a number"
                ))
            });
        }
        if s.is_empty() || s.contains('@') || s.contains(char::is_whitespace) {
            return Err(ImageError::Invalid(format!(
                "invalid docker-archive reference {s:?}: expected name:tag or @N"
            )));
        }
        Ok(ArchiveRef::Tag(familiar(s)))
    }
}

impl std::fmt::Display for ArchiveRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveRef::Tag(t) => f.write_str(t),
            ArchiveRef::Index(n) => write!(f, "@{n}"),
        }
    }
}

/// The familiar form docker shows (`docker.io/library/` dropped, `:latest` added).
pub fn familiar(name: &str) -> String {
    let short = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') {
        short.to_owned()
    } else {
        format!("{short}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            ArchiveRef::parse("busybox").unwrap(),
            ArchiveRef::Tag("busybox:latest".into())
        );
        assert_eq!(
            ArchiveRef::parse("docker.io/library/busybox:1").unwrap(),
            ArchiveRef::Tag("busybox:1".into())
        );
        assert_eq!(
            ArchiveRef::parse("localhost:5000/a/b").unwrap(),
            ArchiveRef::Tag("localhost:5000/a/b:latest".into())
        );
        assert_eq!(ArchiveRef::parse("@2").unwrap(), ArchiveRef::Index(2));
        assert!(ArchiveRef::parse("@x").is_err());
        assert!(ArchiveRef::parse("a@sha256:00").is_err());
    }
}
