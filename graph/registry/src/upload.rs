//! Blob uploads: cross-repository mounts, monolithic uploads (POST, then PUT with the whole
//! body) and chunked uploads (POST, PATCH each chunk with `Content-Range`, then
//! `PUT ?digest=`). Bodies stream from a `Read`; nothing holds a whole blob or chunk.
//!
//! A streamed body cannot be replayed, so a failed PATCH or PUT fails the upload; the caller
//! (the copy engine) decides whether to start over. Not done: resuming an interrupted upload
//! session (`GET` on the upload URL), and the single-request `POST ?digest=` form.

use std::io::Read;

use strata_types::Digest;
use ureq::http::Method;

use crate::client::{Client, Payload, Req};
use crate::error::{RegistryError, Result};
use crate::manifests::header;
use crate::token::encode;

/// What a mount request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The blob is now in the repository.
    Mounted,
    /// The registry could not mount it and opened an upload session instead (HTTP 202).
    UploadStarted(String),
}

impl Client {
    /// Tries to mount `digest` from `from` (another repository of this registry) into
    /// `repository`: `POST /v2/<repository>/blobs/uploads/?mount=<digest>&from=<from>`.
    pub fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<MountOutcome> {
        let req = Req {
            method: Method::POST,
            url: self.url(&format!(
                "{repository}/blobs/uploads/?mount={}&from={}",
                encode(digest.as_str()),
                encode(from)
            ))?,
            headers: Vec::new(),
            scopes: vec![
                format!("repository:{repository}:pull,push"),
                format!("repository:{from}:pull"),
            ],
            repository: Some(repository),
            idempotent: true,
        };
        let resp = self.send(&req, Payload::Bytes(&[]))?;
        let resp = self.expect_status(&req, resp, &[201, 202], None)?;
        if resp.status().as_u16() == 201 {
            tracing::debug!(%digest, from, to = repository, "blob mounted");
            return Ok(MountOutcome::Mounted);
        }
        let location = self.location(&resp, repository)?;
        Ok(MountOutcome::UploadStarted(location))
    }

    /// Uploads a blob of `size` bytes, streaming it from `data`. Chunked when the client's
    /// `chunk_size` is set and smaller than the blob, monolithic otherwise.
    pub fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        let location = self.start_upload(repository)?;
        self.upload_to(repository, &location, digest, size, data)
    }

    /// Puts a blob unless the repository has it; mounts it from one of `mount_from` (other
    /// repositories of this registry) if possible; uploads it otherwise. Returns whether
    /// bytes were sent.
    pub fn put_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
        mount_from: &[String],
    ) -> Result<bool> {
        for from in mount_from.iter().filter(|f| f.as_str() != repository) {
            match self.mount_blob(repository, digest, from) {
                Ok(MountOutcome::Mounted) => return Ok(false),
                Ok(MountOutcome::UploadStarted(location)) => {
                    self.upload_to(repository, &location, digest, size, data)?;
                    return Ok(true);
                }
                Err(e) => tracing::debug!(error = %e, from, "mount failed; uploading"),
            }
        }
        self.upload_blob(repository, digest, size, data)?;
        Ok(true)
    }

    /// `POST /v2/<repository>/blobs/uploads/`: opens an upload session.
    pub fn start_upload(&self, repository: &str) -> Result<String> {
        let req = self.upload_req(
            Method::POST,
            self.url(&format!("{repository}/blobs/uploads/"))?,
            repository,
        );
        let resp = self.send(&req, Payload::Bytes(&[]))?;
        let resp = self.expect_status(&req, resp, &[202], None)?;
        self.location(&resp, repository)
    }

    fn upload_to(
        &self,
        repository: &str,
        location: &str,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        let mut location = location.to_owned();
        let chunk = self.inner.chunk_size.filter(|c| *c > 0 && *c < size);
        let mut final_body: Option<u64> = Some(size);
        if let Some(chunk) = chunk {
            let mut offset = 0u64;
            while offset < size {
                let len = chunk.min(size - offset);
                let mut req = self.upload_req(Method::PATCH, location.clone(), repository);
                req.headers
                    .push(("content-type", "application/octet-stream".into()));
                req.headers
                    .push(("content-range", format!("{offset}-{}", offset + len - 1)));
                let mut part = (&mut *data).take(len);
                let resp = self.send(
                    &req,
                    Payload::Stream {
                        reader: &mut part,
                        len,
                    },
                )?;
                let resp = self.expect_status(&req, resp, &[202, 204], None)?;
                location = self.location(&resp, repository)?;
                if let Some(range) = header(&resp, "range") {
                    check_range(&range, offset + len).map_err(|reason| {
                        self.protocol(&format!("upload of {digest} to {repository}"), reason)
                    })?;
                }
                offset += len;
            }
            final_body = None;
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", encode(digest.as_str()));
        let mut req = self.upload_req(Method::PUT, url, repository);
        req.headers
            .push(("content-type", "application/octet-stream".into()));
        let resp = match final_body {
            Some(len) => self.send(&req, Payload::Stream { reader: data, len })?,
            None => self.send(&req, Payload::Bytes(&[]))?,
        };
        let resp = self.expect_status(&req, resp, &[201, 204], None);
        match resp {
            Ok(_) => {
                tracing::debug!(%digest, repository, size, chunked = chunk.is_some(), "blob uploaded");
                Ok(())
            }
            Err(RegistryError::Http {
                status: 400,
                code: Some(code),
                detail,
                registry,
                method,
                path,
            }) if code == "DIGEST_INVALID" || code == "SIZE_INVALID" => {
                Err(RegistryError::DigestMismatch {
                    registry,
                    what: format!(
                        "upload of blob {digest} to {repository} ({method} {path}: {detail})"
                    ),
                    expected: digest.to_string(),
                    actual: "different content".into(),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn upload_req<'a>(&self, method: Method, url: String, repository: &'a str) -> Req<'a> {
        Req {
            method,
            url,
            headers: Vec::new(),
            scopes: vec![format!("repository:{repository}:pull,push")],
            repository: Some(repository),
            idempotent: true,
        }
    }

    fn location(
        &self,
        resp: &ureq::http::Response<ureq::Body>,
        repository: &str,
    ) -> Result<String> {
        let loc = header(resp, "location").ok_or_else(|| {
            self.protocol(
                &format!("upload to {repository}"),
                "no Location header".into(),
            )
        })?;
        self.resolve_location(&loc)
    }
}

/// Checks the registry's `Range: 0-N` after a chunk: it must have everything up to `end`.
fn check_range(range: &str, end: u64) -> std::result::Result<(), String> {
    let r = range.trim().trim_start_matches("bytes=");
    let last = r
        .split_once('-')
        .and_then(|(_, last)| last.parse::<u64>().ok())
        .ok_or_else(|| format!("invalid Range header {range:?}"))?;
    if last + 1 == end {
        Ok(())
    } else {
        Err(format!(
            "registry has bytes {range} after sending up to byte {end}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_checks() {
        assert!(check_range("0-99", 100).is_ok());
        assert!(check_range("bytes=0-99", 100).is_ok());
        assert!(check_range("0-49", 100).is_err());
        assert!(check_range("garbage", 100).is_err());
    }
}
