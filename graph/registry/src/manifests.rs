//! Manifest calls: GET (by tag or digest, verifying the digest when fetched by digest), HEAD,
//! PUT and DELETE, with the Accept headers for OCI manifests and indexes and Docker schema 2
//! manifests and manifest lists.
//!
//! Docker schema 1 manifests are not asked for (their digests need JWS handling).

use strata_types::Digest;
use ureq::http::{Method, Response};
use ureq::Body;

use crate::client::{Client, Payload, Req};
use crate::error::{RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest types asked for, in preference order.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest accepted (containers/image's limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A fetched manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// The digest of `bytes` (verified against the request when fetched by digest).
    pub digest: Digest,
    /// What the registry said in `Docker-Content-Digest`, if anything.
    pub registry_digest: Option<Digest>,
}

/// What a HEAD told about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

impl Client {
    /// `GET /v2/<repository>/manifests/<reference>` (a tag or a digest).
    pub fn manifest(&self, repository: &str, reference: &str) -> Result<Manifest> {
        let req = self.manifest_req(Method::GET, repository, reference, true)?;
        let resp = self.send(&req, Payload::Empty)?;
        let mut resp = self.expect_status(
            &req,
            resp,
            &[200],
            Some(("manifest", &format!("{repository}:{reference}"))),
        )?;
        let registry_digest = header_digest(&resp);
        let header_type = header(&resp, "content-type");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST_SIZE)
            .read_to_vec()
            .map_err(|e| {
                self.protocol(
                    &format!("manifest {repository}:{reference}"),
                    format!("cannot read the body (at most {MAX_MANIFEST_SIZE} bytes): {e}"),
                )
            })?;
        let digest = Digest::of(&bytes);
        if let Ok(expected) = Digest::parse(reference) {
            if digest != expected {
                return Err(RegistryError::DigestMismatch {
                    registry: self.registry().to_owned(),
                    what: format!("manifest {repository}@{expected}"),
                    expected: expected.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let media_type = media_type_of(header_type.as_deref(), &bytes);
        Ok(Manifest {
            bytes,
            media_type,
            digest,
            registry_digest,
        })
    }

    /// `HEAD /v2/<repository>/manifests/<reference>`: the digest the registry stores it
    /// under (what `delete` needs), without downloading it.
    pub fn manifest_head(&self, repository: &str, reference: &str) -> Result<ManifestHead> {
        let req = self.manifest_req(Method::HEAD, repository, reference, true)?;
        let resp = self.send(&req, Payload::Empty)?;
        let resp = self.expect_status(
            &req,
            resp,
            &[200],
            Some(("manifest", &format!("{repository}:{reference}"))),
        )?;
        Ok(ManifestHead {
            digest: header_digest(&resp),
            media_type: header(&resp, "content-type"),
            size: header(&resp, "content-length").and_then(|s| s.parse().ok()),
        })
    }

    /// `PUT /v2/<repository>/manifests/<reference>`; returns the digest the registry
    /// reports (or the digest of `bytes`).
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let mut req = self.manifest_req(Method::PUT, repository, reference, false)?;
        req.headers.push(("content-type", media_type.to_owned()));
        let resp = self.send(&req, Payload::Bytes(bytes))?;
        let resp = self.expect_status(&req, resp, &[200, 201, 202], None)?;
        Ok(header_digest(&resp).unwrap_or_else(|| Digest::of(bytes)))
    }

    /// `DELETE /v2/<repository>/manifests/<digest>`. Registries delete by digest only;
    /// see [`Client::delete_tag`] for a tag.
    pub fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<()> {
        let req = self.manifest_req(Method::DELETE, repository, digest.as_str(), false)?;
        let resp = self.send(&req, Payload::Empty)?;
        match self.expect_status(
            &req,
            resp,
            &[200, 202],
            Some(("manifest", &format!("{repository}@{digest}"))),
        ) {
            Err(RegistryError::Http {
                status: 405,
                registry,
                ..
            }) => Err(RegistryError::Http {
                registry,
                method: "DELETE".into(),
                path: format!("/v2/{repository}/manifests/{digest}"),
                status: 405,
                code: Some("UNSUPPORTED".into()),
                detail: "the registry does not allow deleting images (storage.delete.enabled)"
                    .into(),
            }),
            other => other.map(|_| ()),
        }
    }

    /// Resolves `tag` to the digest the registry stores and deletes that manifest (and
    /// with it every tag pointing at it, as the registry API does). Returns the digest.
    pub fn delete_tag(&self, repository: &str, tag: &str) -> Result<Digest> {
        let head = self.manifest_head(repository, tag)?;
        let digest = match head.digest {
            Some(d) => d,
            None => self.manifest(repository, tag)?.digest,
        };
        self.delete_manifest(repository, &digest)?;
        Ok(digest)
    }

    fn manifest_req<'a>(
        &self,
        method: Method,
        repository: &'a str,
        reference: &str,
        read: bool,
    ) -> Result<Req<'a>> {
        let actions = match method {
            Method::GET | Method::HEAD => "pull",
            Method::DELETE => "delete",
            _ => "pull,push",
        };
        let mut headers = Vec::new();
        if read {
            headers.push(("accept", ACCEPT.to_owned()));
        }
        Ok(Req {
            idempotent: true,
            url: self.url(&format!("{repository}/manifests/{reference}"))?,
            method,
            headers,
            scopes: vec![format!("repository:{repository}:{actions}")],
            repository: Some(repository),
        })
    }
}

pub(crate) fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

pub(crate) fn header_digest(resp: &Response<Body>) -> Option<Digest> {
    header(resp, "docker-content-digest").and_then(|d| Digest::parse(&d).ok())
}

/// The media type from the Content-Type header, or from the document when the registry
/// sends a generic type.
fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> String {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    if let Some(ct) = ct {
        return ct;
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(mt) = doc.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_owned();
    }
    if doc.get("manifests").is_some() {
        OCI_INDEX.to_owned()
    } else {
        OCI_MANIFEST.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_falls_back_to_the_document() {
        assert_eq!(media_type_of(Some(DOCKER_MANIFEST), b"{}"), DOCKER_MANIFEST);
        assert_eq!(
            media_type_of(
                Some("application/json; charset=utf-8"),
                br#"{"mediaType":"x/y"}"#
            ),
            "x/y"
        );
        assert_eq!(media_type_of(None, br#"{"manifests":[]}"#), OCI_INDEX);
        assert_eq!(media_type_of(None, br#"{"layers":[]}"#), OCI_MANIFEST);
    }
}
