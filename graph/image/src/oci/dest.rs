//! Writing an OCI layout directory as an [`ImageDestination`].
//!
//! Blobs and manifests go straight into `blobs/sha256/` (each via temp file + rename, so a
//! blob file is complete or absent); the image becomes visible only when [`commit`] rewrites
//! `index.json` atomically. A failed copy may leave unreferenced blobs, never an entry.
//! Concurrent writers to one layout are deliberately not serialised (skopeo does not either):
//! the last `index.json` wins. Docker v2s2 manifests are refused (skopeo would not see them
//! in a layout): the copy engine converts them when asked with `CopyOptions::format`.
//!
//! [`commit`]: ImageDestination::commit

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::{json, Value};
use strata_types::Digest;

use super::{blob_path, validate_reference, LAYOUT_FILE_CONTENT, REF_NAME_ANNOTATION};
use crate::atomic;
use crate::error::{ImageError, Result};
use crate::manifest::{flavor_of, media_type, Flavor};
use crate::transport::{Descriptor, ImageDestination, RawManifest};

/// An `oci:DIR[:REF]` destination.
#[derive(Debug)]
pub struct OciDestination {
    root: PathBuf,
    reference: Option<String>,
    top: Mutex<Option<Descriptor>>,
}

impl OciDestination {
    /// Opens (creating on first write) the layout at `root`.
    pub fn open(root: &Path, reference: Option<&str>) -> Result<OciDestination> {
        if let Some(r) = reference {
            validate_reference(r)?;
        }
        if root.exists() && !root.is_dir() {
            return Err(ImageError::Invalid(format!(
                "{} exists and is not a directory",
                root.display()
            )));
        }
        Ok(OciDestination {
            root: root.to_owned(),
            reference: reference.map(str::to_owned),
            top: Mutex::new(None),
        })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.root.join(blob_path(digest))
    }

    fn new_entry(&self) -> Result<Descriptor> {
        let mut entry = self
            .top
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                ImageError::Invalid(format!(
                    "nothing to commit to {}: no manifest was written",
                    self.describe()
                ))
            })?;
        if let Some(r) = &self.reference {
            let mut ann = BTreeMap::new();
            ann.insert(REF_NAME_ANNOTATION.to_owned(), r.clone());
            entry.annotations = Some(ann);
        }
        Ok(entry)
    }

    fn merged_index(&self, entry: &Descriptor) -> Result<Value> {
        let path = self.root.join("index.json");
        let mut index = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                ImageError::Invalid(format!("{} is not valid JSON: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []})
            }
            Err(e) => return Err(ImageError::io("read", &path)(e)),
        };
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| {
                ImageError::Invalid(format!("{} has no manifests array", path.display()))
            })?;
        let name_of = |v: &Value| {
            v.get("annotations")
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let digest = entry.digest.as_str();
        manifests.retain(|v| match &self.reference {
            Some(r) => name_of(v).as_deref() != Some(r.as_str()),
            None => {
                !(name_of(v).is_none() && v.get("digest").and_then(Value::as_str) == Some(digest))
            }
        });
        manifests
            .push(serde_json::to_value(entry).map_err(|e| ImageError::Invalid(e.to_string()))?);
        Ok(index)
    }
}

impl ImageDestination for OciDestination {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(std::fs::metadata(self.blob_file(&desc.digest))
            .map(|m| m.is_file() && m.len() == desc.size)
            .unwrap_or(false))
    }

    fn put_blob(&self, desc: &Descriptor, data: &mut dyn Read) -> Result<()> {
        atomic::write_stream(&self.blob_file(&desc.digest), data)?;
        Ok(())
    }

    fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()> {
        if flavor_of(&manifest.media_type) != Flavor::Oci {
            return Err(ImageError::Unsupported(format!(
                "{} holds OCI manifests only, not {}; copy with the OCI format \
                 (CopyOptions::format, see ImageName::required_format)",
                self.describe(),
                manifest.media_type
            )));
        }
        let digest = Digest::of(&manifest.bytes);
        atomic::write_bytes(&self.blob_file(&digest), &manifest.bytes)?;
        if instance.is_none() {
            *self.top.lock().unwrap_or_else(PoisonError::into_inner) = Some(Descriptor {
                media_type: manifest.media_type.clone(),
                digest,
                size: manifest.bytes.len() as u64,
                annotations: None,
                platform: None,
            });
        }
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        let entry = self.new_entry()?;
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            atomic::write_bytes(&layout, LAYOUT_FILE_CONTENT)?;
        }
        let index = self.merged_index(&entry)?;
        let bytes = serde_json::to_vec(&index).map_err(|e| ImageError::Invalid(e.to_string()))?;
        atomic::write_bytes(&self.root.join("index.json"), &bytes)?;
        tracing::debug!(dest = %self.describe(), digest = %entry.digest, "committed OCI layout");
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("oci:{}:{r}", self.root.display()),
            None => format!("oci:{}", self.root.display()),
        }
    }
}
