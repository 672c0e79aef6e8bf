//! `oci-archive:FILE[:REF]`: an OCI layout inside a tar file.
//!
//! The source never extracts: it indexes the tar once and serves blobs as bounded readers
//! over the file ([`TarIndex`]). The destination builds the layout in a temporary directory
//! next to FILE and, at commit, writes the tar to a temporary file and renames it over FILE.
//! Adding an image to an existing archive is deliberately not supported: FILE is replaced,
//! as skopeo does.

use std::io::Read;
use std::path::{Path, PathBuf};

use strata_types::Digest;

use super::{LayoutSource, OciDestination};
use crate::error::{ImageError, Result};
use crate::tar_index::TarIndex;
use crate::tar_write::{parent_dir, TarFileWriter};
use crate::transport::{Descriptor, ImageDestination, ImageSource, RawManifest};

/// An `oci-archive:FILE[:REF]` source.
#[derive(Debug)]
pub struct OciArchiveSource(LayoutSource<TarIndex>);

impl OciArchiveSource {
    /// Indexes `file` and opens the image `reference` names.
    pub fn open(file: &Path, reference: Option<&str>) -> Result<OciArchiveSource> {
        let index = TarIndex::open(file)?;
        Ok(OciArchiveSource(LayoutSource::new(
            index,
            "oci-archive",
            reference,
        )?))
    }
}

impl ImageSource for OciArchiveSource {
    fn manifest(&self) -> Result<RawManifest> {
        self.0.manifest()
    }
    fn manifest_by_digest(&self, digest: &Digest) -> Result<RawManifest> {
        self.0.manifest_by_digest(digest)
    }
    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        self.0.blob(desc)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// An `oci-archive:FILE[:REF]` destination.
#[derive(Debug)]
pub struct OciArchiveDestination {
    file: PathBuf,
    reference: Option<String>,
    // Field order matters: the layout writer is dropped before its directory.
    layout: OciDestination,
    staging: tempfile::TempDir,
}

impl OciArchiveDestination {
    /// Prepares to write `file` (replaced at commit).
    pub fn open(file: &Path, reference: Option<&str>) -> Result<OciArchiveDestination> {
        let dir = parent_dir(file);
        if file.is_dir() {
            return Err(ImageError::Invalid(format!(
                "{} is a directory, not an archive file",
                file.display()
            )));
        }
        let staging = tempfile::Builder::new()
            .prefix(".tmp-oci-archive-")
            .tempdir_in(dir)
            .map_err(ImageError::io("create staging directory in", dir))?;
        let layout = OciDestination::open(staging.path(), reference)?;
        Ok(OciArchiveDestination {
            file: file.to_owned(),
            reference: reference.map(str::to_owned),
            layout,
            staging,
        })
    }
}

impl ImageDestination for OciArchiveDestination {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.layout.has_blob(desc)
    }

    fn put_blob(&self, desc: &Descriptor, data: &mut dyn Read) -> Result<()> {
        self.layout.put_blob(desc, data)
    }

    fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()> {
        self.layout.put_manifest(manifest, instance)
    }

    fn commit(&self) -> Result<()> {
        self.layout.commit()?;
        let root = self.staging.path();
        let mut tar = TarFileWriter::create(&self.file)?;
        tar.add_file("oci-layout", &root.join("oci-layout"))?;
        tar.add_file("index.json", &root.join("index.json"))?;
        tar.add_dir("blobs")?;
        let blobs = root.join("blobs");
        let mut algs: Vec<_> = read_dir_names(&blobs)?;
        algs.sort();
        for alg in algs {
            tar.add_dir(&format!("blobs/{alg}"))?;
            let mut names = read_dir_names(&blobs.join(&alg))?;
            names.sort();
            for name in names.iter().filter(|n| !n.starts_with('.')) {
                tar.add_file(&format!("blobs/{alg}/{name}"), &blobs.join(&alg).join(name))?;
            }
        }
        tar.finish()
    }

    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("oci-archive:{}:{r}", self.file.display()),
            None => format!("oci-archive:{}", self.file.display()),
        }
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(ImageError::io("list", dir))? {
        let e = e.map_err(ImageError::io("list", dir))?;
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}
