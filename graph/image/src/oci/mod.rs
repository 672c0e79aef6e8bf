//! The OCI image layout, as a directory (`oci:DIR[:REF]`) or a tar of one
//! (`oci-archive:FILE[:REF]`).
//!
//! ```text
//! DIR/                                  (image layout version 1.0.0)
//! ├── oci-layout                        {"imageLayoutVersion":"1.0.0"}
//! ├── index.json                        OCI index; each entry may carry the annotation
//! │                                     org.opencontainers.image.ref.name = REF
//! └── blobs/
//!     └── sha256/
//!         └── <64 hex>                  manifests, indexes, configs, layers
//! ```
//!
//! REF selects the `index.json` entry with that `ref.name`. Without REF a source needs an
//! index with exactly one entry; a destination adds an unnamed entry. A destination with REF
//! replaces the entry of that name and keeps the others. Garbage collection of blobs no
//! longer referenced is deliberately not done (skopeo does not either).

mod archive;
mod dest;
mod source;

use std::io::Read;
use std::path::PathBuf;

pub use archive::{OciArchiveDestination, OciArchiveSource};
pub use dest::OciDestination;
pub use source::{LayoutSource, OciSource};

use crate::error::{ImageError, Result};
use crate::tar_index::{TarIndex, SMALL_LIMIT};
use strata_types::Digest;

/// The annotation naming an `index.json` entry.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The content of `oci-layout` this crate writes.
pub const LAYOUT_FILE_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The relative path of a blob in a layout.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

/// Read access to the files of a layout, wherever it is stored.
pub trait LayoutFiles: Send + Sync {
    /// Opens the file at `rel` (a layout-relative path).
    fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>>;
    /// Reads a small file (manifest, config, `index.json`) whole.
    fn read_small(&self, rel: &str) -> Result<Vec<u8>>;
    /// How the layout is spelled for messages.
    fn location(&self) -> String;
}

/// A layout in a directory.
#[derive(Debug, Clone)]
pub struct DirFiles(pub PathBuf);

impl LayoutFiles for DirFiles {
    fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.0.join(rel);
        let f = std::fs::File::open(&p).map_err(ImageError::io("open", &p))?;
        Ok(Box::new(f))
    }

    fn read_small(&self, rel: &str) -> Result<Vec<u8>> {
        let p = self.0.join(rel);
        let f = std::fs::File::open(&p).map_err(ImageError::io("open", &p))?;
        let mut out = Vec::new();
        f.take(SMALL_LIMIT + 1)
            .read_to_end(&mut out)
            .map_err(ImageError::io("read", &p))?;
        if out.len() as u64 > SMALL_LIMIT {
            return Err(ImageError::Invalid(format!(
                "{} is too large for a manifest or config",
                p.display()
            )));
        }
        Ok(out)
    }

    fn location(&self) -> String {
        self.0.display().to_string()
    }
}

impl LayoutFiles for TarIndex {
    fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_member(rel)?))
    }

    fn read_small(&self, rel: &str) -> Result<Vec<u8>> {
        TarIndex::read_small(self, rel)
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }
}

/// Checks a layout reference (skopeo's rule: not empty, no `/`-only oddities, printable).
pub fn validate_reference(reference: &str) -> Result<()> {
    let ok = !reference.is_empty()
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:@/+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ImageError::Invalid(format!(
            "invalid image reference {reference:?} in an OCI layout: use letters, digits and ._-:@/+"
        )))
    }
}
