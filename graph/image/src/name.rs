//! Image names as skopeo spells them (`TRANSPORT:DETAILS`) and opening them.
//!
//! `oci:`, `oci-archive:`, `docker-archive:` and `dir:` are opened here. `docker://` and
//! `store:` are only recognised: [`ImageName::Docker`] / [`ImageName::Store`] carry the rest
//! of the string and the caller dispatches them (to the registry crate and the store front
//! end), so this crate depends on neither.
//!
//! As in containers/image, the path ends at the first `:` after the transport (paths with
//! `:` in them cannot be named, as with skopeo).

use std::fmt;
use std::path::PathBuf;

use crate::dir::{DirDestination, DirSource};
use crate::docker_archive::{ArchiveRef, DockerArchiveDestination, DockerArchiveSource};
use crate::error::{ImageError, Result};
use crate::manifest::Flavor;
use crate::oci::{
    validate_reference, OciArchiveDestination, OciArchiveSource, OciDestination, OciSource,
};
use crate::transport::{ImageDestination, ImageSource};

/// The transports [`parse_transport`] knows, as users type them.
pub const KNOWN_TRANSPORTS: &[&str] = &[
    "docker://",
    "oci:",
    "oci-archive:",
    "docker-archive:",
    "dir:",
    "store:",
];

/// A parsed image name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageName {
    /// `oci:DIR[:REF]`
    Oci {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:name:tag | :@N]`
    DockerArchive {
        file: PathBuf,
        reference: Option<ArchiveRef>,
    },
    /// `dir:DIR`
    Dir { dir: PathBuf },
    /// `docker://REFERENCE`: `reference` is what follows `docker://`.
    Docker { reference: String },
    /// `store:REFERENCE` (also `containers-storage:`): `reference` is what follows the colon.
    Store { reference: String },
}

/// Parses `TRANSPORT:DETAILS`.
pub fn parse_transport(s: &str) -> Result<ImageName> {
    let (scheme, rest) = s.split_once(':').ok_or_else(|| unknown(s))?;
    let need = |what: &str| {
        ImageError::Invalid(format!(
            "invalid image name {s:?}: {what} is missing after {scheme}:"
        ))
    };
    let path_and_ref = |rest: &str| -> Result<(PathBuf, Option<String>)> {
        let (path, r) = match rest.split_once(':') {
            Some((p, r)) => (p, Some(r.to_owned())),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(need("a path"));
        }
        if r.as_deref() == Some("") {
            return Err(need("the reference after the path"));
        }
        Ok((PathBuf::from(path), r))
    };
    match scheme {
        "oci" | "oci-archive" => {
            let (path, reference) = path_and_ref(rest)?;
            if let Some(r) = &reference {
                validate_reference(r)?;
            }
            Ok(if scheme == "oci" {
                ImageName::Oci {
                    dir: path,
                    reference,
                }
            } else {
                ImageName::OciArchive {
                    file: path,
                    reference,
                }
            })
        }
        "docker-archive" => {
            let (file, r) = path_and_ref(rest)?;
            let reference = r.as_deref().map(ArchiveRef::parse).transpose()?;
            Ok(ImageName::DockerArchive { file, reference })
        }
        "dir" => {
            if rest.is_empty() {
                return Err(need("a directory"));
            }
            Ok(ImageName::Dir {
                dir: PathBuf::from(rest),
            })
        }
        "docker" => {
            let reference = rest.strip_prefix("//").ok_or_else(|| {
                ImageError::Invalid(format!("invalid image name {s:?}: write docker://NAME"))
            })?;
            if reference.is_empty() {
                return Err(need("an image reference"));
            }
            Ok(ImageName::Docker {
                reference: reference.to_owned(),
            })
        }
        "store" | "containers-storage" => {
            if rest.is_empty() {
                return Err(need("an image reference"));
            }
            Ok(ImageName::Store {
                reference: rest.to_owned(),
            })
        }
        _ => Err(unknown(s)),
    }
}

fn unknown(s: &str) -> ImageError {
    ImageError::Invalid(format!(
        "invalid image name {s:?}: unknown transport; expected one of {}",
        KNOWN_TRANSPORTS.join(", ")
    ))
}

impl ImageName {
    /// Opens this name as a source. `docker://` and `store:` are the caller's to open.
    pub fn open_source(&self) -> Result<Box<dyn ImageSource>> {
        Ok(match self {
            ImageName::Oci { dir, reference } => {
                Box::new(OciSource::open(dir, reference.as_deref())?)
            }
            ImageName::OciArchive { file, reference } => {
                Box::new(OciArchiveSource::open(file, reference.as_deref())?)
            }
            ImageName::DockerArchive { file, reference } => {
                Box::new(DockerArchiveSource::open(file, reference.as_ref())?)
            }
            ImageName::Dir { dir } => Box::new(DirSource::open(dir)?),
            ImageName::Docker { .. } | ImageName::Store { .. } => return Err(not_here(self)),
        })
    }

    /// Opens this name as a destination. `docker://` and `store:` are the caller's to open.
    pub fn open_destination(&self) -> Result<Box<dyn ImageDestination>> {
        Ok(match self {
            ImageName::Oci { dir, reference } => {
                Box::new(OciDestination::open(dir, reference.as_deref())?)
            }
            ImageName::OciArchive { file, reference } => {
                Box::new(OciArchiveDestination::open(file, reference.as_deref())?)
            }
            ImageName::DockerArchive { file, reference } => {
                let tag = match reference {
                    None => None,
                    Some(ArchiveRef::Tag(t)) => Some(t.as_str()),
                    Some(ArchiveRef::Index(_)) => {
                        return Err(ImageError::Invalid(format!(
                        "{self}: @N selects an image to read; name the image to write as name:tag"
                    )))
                    }
                };
                Box::new(DockerArchiveDestination::open(file, tag)?)
            }
            ImageName::Dir { dir } => Box::new(DirDestination::open(dir)?),
            ImageName::Docker { .. } | ImageName::Store { .. } => return Err(not_here(self)),
        })
    }
}

impl ImageName {
    /// The manifest flavour this destination can hold, if it is restricted: OCI layouts
    /// (`oci:`, `oci-archive:`) hold OCI manifests only (skopeo ignores other entries).
    /// Callers pass it as [`CopyOptions::format`](crate::CopyOptions::format) unless the
    /// user chose one.
    pub fn required_format(&self) -> Option<Flavor> {
        match self {
            ImageName::Oci { .. } | ImageName::OciArchive { .. } => Some(Flavor::Oci),
            _ => None,
        }
    }
}

fn not_here(name: &ImageName) -> ImageError {
    ImageError::Unsupported(format!(
        "{name}: this transport is opened by its own crate, not strata-graph-image"
    ))
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, t: &str, p: &PathBuf, r: Option<String>| match r {
            Some(r) => write!(f, "{t}:{}:{r}", p.display()),
            None => write!(f, "{t}:{}", p.display()),
        };
        match self {
            ImageName::Oci { dir, reference } => with(f, "oci", dir, reference.clone()),
            ImageName::OciArchive { file, reference } => {
                with(f, "oci-archive", file, reference.clone())
            }
            ImageName::DockerArchive { file, reference } => with(
                f,
                "docker-archive",
                file,
                reference.as_ref().map(|r| r.to_string()),
            ),
            ImageName::Dir { dir } => write!(f, "dir:{}", dir.display()),
            ImageName::Docker { reference } => write!(f, "docker://{reference}"),
            ImageName::Store { reference } => write!(f, "store:{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            parse_transport("oci:/tmp/l:v1").unwrap(),
            ImageName::Oci {
                dir: "/tmp/l".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            parse_transport("oci-archive:a.tar").unwrap(),
            ImageName::OciArchive {
                file: "a.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            parse_transport("docker-archive:/x.tar:busybox:1.36").unwrap(),
            ImageName::DockerArchive {
                file: "/x.tar".into(),
                reference: Some(ArchiveRef::Tag("busybox:1.36".into()))
            }
        );
        assert_eq!(
            parse_transport("docker-archive:/x.tar:@1").unwrap(),
            ImageName::DockerArchive {
                file: "/x.tar".into(),
                reference: Some(ArchiveRef::Index(1))
            }
        );
        assert_eq!(
            parse_transport("dir:/d").unwrap(),
            ImageName::Dir { dir: "/d".into() }
        );
        assert_eq!(
            parse_transport("docker://quay.io/a/b:c").unwrap(),
            ImageName::Docker {
                reference: "quay.io/a/b:c".into()
            }
        );
        assert_eq!(
            parse_transport("store:busybox").unwrap(),
            ImageName::Store {
                reference: "busybox".into()
            }
        );
    }

    #[test]
    fn round_trips_through_display() {
        for s in [
            "oci:/a:b",
            "oci-archive:f.tar",
            "docker-archive:f:@3",
            "dir:/x",
            "docker://a/b",
        ] {
            assert_eq!(parse_transport(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn errors_are_clear() {
        let e = parse_transport("ftp:/x").unwrap_err().to_string();
        assert!(
            e.contains("unknown transport") && e.contains("oci-archive:"),
            "{e}"
        );
        assert!(parse_transport("busybox")
            .unwrap_err()
            .to_string()
            .contains("docker://"));
        assert!(parse_transport("oci:").is_err());
        assert!(parse_transport("oci:/x:").is_err());
        assert!(parse_transport("docker:busybox").is_err());
        assert!(parse_transport("dir:").is_err());
    }
}
