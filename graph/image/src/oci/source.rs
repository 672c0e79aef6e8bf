//! Reading an OCI layout (directory or indexed tar) as an [`ImageSource`].

use std::io::Read;
use std::path::Path;

use strata_types::Digest;

use super::{blob_path, DirFiles, LayoutFiles, REF_NAME_ANNOTATION};
use crate::error::{ImageError, Result};
use crate::manifest::{classify, effective_media_type, parse_index};
use crate::transport::{Descriptor, ImageSource, RawManifest};

/// An image in an OCI layout, selected from `index.json` by reference.
#[derive(Debug)]
pub struct LayoutSource<F> {
    files: F,
    transport: &'static str,
    reference: Option<String>,
    top: RawManifest,
}

/// An `oci:DIR[:REF]` source.
pub type OciSource = LayoutSource<DirFiles>;

impl OciSource {
    /// Opens `oci:DIR[:REF]`.
    pub fn open(dir: &Path, reference: Option<&str>) -> Result<OciSource> {
        if !dir.is_dir() {
            return Err(ImageError::NotFound {
                what: "OCI layout directory",
                name: dir.display().to_string(),
            });
        }
        LayoutSource::new(DirFiles(dir.to_owned()), "oci", reference)
    }
}

impl<F: LayoutFiles> LayoutSource<F> {
    /// Opens the image `reference` names in the layout `files`.
    pub fn new(files: F, transport: &'static str, reference: Option<&str>) -> Result<Self> {
        files.read_small("oci-layout").map_err(|e| match e {
            ImageError::Io { .. } | ImageError::NotFound { .. } => ImageError::Invalid(format!(
                "{} is not an OCI image layout (no oci-layout file)",
                files.location()
            )),
            e => e,
        })?;
        let index = parse_index(&files.read_small("index.json")?)?;
        let name_of = |d: &Descriptor| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .cloned()
        };
        let names: Vec<String> = index.manifests.iter().filter_map(name_of).collect();
        let desc = match reference {
            Some(r) => index
                .manifests
                .iter()
                .find(|d| name_of(d).as_deref() == Some(r))
                .ok_or_else(|| ImageError::NotFound {
                    what: "image",
                    name: format!(
                        "{r:?} in {}:{} (references there: {})",
                        transport,
                        files.location(),
                        list(&names)
                    ),
                })?,
            None => match index.manifests.as_slice() {
                [only] => only,
                [] => {
                    return Err(ImageError::NotFound {
                        what: "image",
                        name: format!("in {transport}:{} (index.json is empty)", files.location()),
                    })
                }
                many => {
                    return Err(ImageError::Invalid(format!(
                        "{transport}:{} holds {} images; name one as {transport}:PATH:REF \
                         (references there: {})",
                        files.location(),
                        many.len(),
                        list(&names)
                    )))
                }
            },
        };
        let bytes = read_verified(&files, &desc.digest)?;
        let top = RawManifest {
            bytes,
            media_type: desc.media_type.clone(),
        };
        Ok(LayoutSource {
            files,
            transport,
            reference: reference.map(str::to_owned),
            top,
        })
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn read_verified(files: &dyn LayoutFiles, digest: &Digest) -> Result<Vec<u8>> {
    let bytes = files.read_small(&blob_path(digest))?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("manifest in {}", files.location()),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(bytes)
}

impl<F: LayoutFiles> ImageSource for LayoutSource<F> {
    fn manifest(&self) -> Result<RawManifest> {
        Ok(self.top.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest> {
        let bytes = read_verified(&self.files, digest)?;
        let probe = RawManifest {
            bytes,
            media_type: String::new(),
        };
        let kind = classify(&probe)?;
        let media_type = effective_media_type(&probe.bytes, kind);
        Ok(RawManifest {
            bytes: probe.bytes,
            media_type,
        })
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        self.files.open(&blob_path(&desc.digest))
    }

    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("{}:{}:{r}", self.transport, self.files.location()),
            None => format!("{}:{}", self.transport, self.files.location()),
        }
    }
}
