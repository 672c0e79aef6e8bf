//! Blob reads: HEAD (does the registry have it?) and GET as a stream.
//!
//! [`BlobReader`] never holds more than one read buffer of the blob. When the connection
//! drops or ends early it reopens it with `Range: bytes=N-` (a few times, with backoff) and
//! carries on from byte N. At the end it checks the size and digest; a mismatch is the
//! error of the final `read` (an `io::Error` carrying a [`RegistryError`] of kind
//! `Corrupt`, see [`RegistryError::from_io`]).

use std::io::{self, Read};

use strata_types::{Digest, Hasher};
use ureq::http::Method;
use ureq::BodyReader;

use crate::client::{Client, Payload, Req};
use crate::error::{RegistryError, Result};
use crate::manifests::header;

impl Client {
    /// `HEAD /v2/<repository>/blobs/<digest>`: `Some(size)` if the registry has the blob.
    pub fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<Option<u64>> {
        let req = self.blob_req(Method::HEAD, repository, digest, "pull")?;
        let resp = self.send(&req, Payload::Empty)?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let resp = self.expect_status(&req, resp, &[200], None)?;
        Ok(Some(
            header(&resp, "content-length")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        ))
    }

    /// `GET /v2/<repository>/blobs/<digest>` as a verifying, resuming stream. `size` is
    /// the expected size if known (from the manifest).
    pub fn blob(&self, repository: &str, digest: &Digest, size: Option<u64>) -> Result<BlobReader> {
        self.blob_with(repository, digest, size, true)
    }

    /// [`Client::blob`] without the digest check (sizes are still checked), for callers that
    /// hash the stream themselves anyway, such as the copy engine: hashing twice costs a
    /// core's worth of SHA-256 on fast pulls.
    pub fn blob_unverified(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobReader> {
        self.blob_with(repository, digest, size, false)
    }

    fn blob_with(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        verify: bool,
    ) -> Result<BlobReader> {
        let mut reader = BlobReader {
            client: self.clone(),
            repository: repository.to_owned(),
            digest: digest.clone(),
            size,
            body: None,
            offset: 0,
            hasher: verify.then(Hasher::new),
            resumes: 0,
            done: false,
        };
        reader.open()?;
        Ok(reader)
    }

    fn blob_req<'a>(
        &self,
        method: Method,
        repository: &'a str,
        digest: &Digest,
        actions: &str,
    ) -> Result<Req<'a>> {
        Ok(Req {
            method,
            url: self.url(&format!("{repository}/blobs/{digest}"))?,
            headers: Vec::new(),
            scopes: vec![format!("repository:{repository}:{actions}")],
            repository: Some(repository),
            idempotent: true,
        })
    }
}

/// A blob being downloaded; see the module docs.
pub struct BlobReader {
    client: Client,
    repository: String,
    digest: Digest,
    size: Option<u64>,
    body: Option<BodyReader<'static>>,
    offset: u64,
    /// `None` when the caller verifies the digest itself.
    hasher: Option<Hasher>,
    resumes: u32,
    done: bool,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("registry", &self.client.registry())
            .field("repository", &self.repository)
            .field("digest", &self.digest)
            .field("offset", &self.offset)
            .field("resumes", &self.resumes)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// How many times the download was resumed after a dropped connection.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// The blob's size, if known (from the manifest or the first response).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    fn what(&self) -> String {
        format!("blob {}@{}", self.repository, self.digest)
    }

    /// Opens (or reopens at `offset`) the download.
    fn open(&mut self) -> Result<()> {
        let mut req = self
            .client
            .blob_req(Method::GET, &self.repository, &self.digest, "pull")?;
        if self.offset > 0 {
            req.headers
                .push(("range", format!("bytes={}-", self.offset)));
        }
        let resp = self.client.send(&req, Payload::Empty)?;
        let name = format!("{}@{}", self.repository, self.digest);
        let resp = self
            .client
            .expect_status(&req, resp, &[200, 206], Some(("blob", &name)))?;
        let status = resp.status().as_u16();
        let length: Option<u64> = header(&resp, "content-length").and_then(|s| s.parse().ok());
        let mut body = resp.into_body().into_reader();
        if status == 200 {
            if self.size.is_none() {
                self.size = length;
            }
            if self.offset > 0 {
                // The registry ignored the Range: skip what we already have.
                tracing::debug!(blob = %self.digest, "registry ignored Range; skipping");
                let skipped = io::copy(&mut (&mut body).take(self.offset), &mut io::sink())
                    .map_err(|source| self.transfer(source))?;
                if skipped != self.offset {
                    return Err(self.transfer(io::ErrorKind::UnexpectedEof.into()));
                }
            }
        }
        self.body = Some(body);
        Ok(())
    }

    fn transfer(&self, source: io::Error) -> RegistryError {
        RegistryError::Transfer {
            registry: self.client.registry().to_owned(),
            what: self.what(),
            source,
        }
    }

    /// Checks size and digest at the end of the stream.
    fn finish(&mut self) -> io::Result<usize> {
        self.done = true;
        if let Some(expected) = self.size {
            if expected != self.offset {
                return Err(RegistryError::SizeMismatch {
                    registry: self.client.registry().to_owned(),
                    what: self.what(),
                    expected,
                    actual: self.offset,
                }
                .into_io());
            }
        }
        let Some(hasher) = self.hasher.take() else {
            return Ok(0);
        };
        let actual = hasher.finish();
        if actual != self.digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.client.registry().to_owned(),
                what: self.what(),
                expected: self.digest.to_string(),
                actual: actual.to_string(),
            }
            .into_io());
        }
        Ok(0)
    }

    /// Drops the broken connection and reopens at the current offset, if retries remain.
    fn resume(&mut self, cause: io::Error) -> io::Result<()> {
        self.body = None;
        if self.resumes >= self.client.inner.retries {
            return Err(self.transfer(cause).into_io());
        }
        tracing::info!(blob = %self.digest, offset = self.offset, error = %cause,
            "blob download interrupted; resuming");
        self.client.backoff(self.resumes);
        self.resumes += 1;
        self.open().map_err(RegistryError::into_io)
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.body.is_none() {
                self.open().map_err(RegistryError::into_io)?;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) => match self.size {
                    Some(size) if self.offset < size => {
                        self.resume(io::ErrorKind::UnexpectedEof.into())?;
                    }
                    _ => return self.finish(),
                },
                Ok(n) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&buf[..n]);
                    }
                    self.offset += n as u64;
                    if let Some(size) = self.size.filter(|s| self.offset > *s) {
                        self.done = true;
                        return Err(RegistryError::SizeMismatch {
                            registry: self.client.registry().to_owned(),
                            what: self.what(),
                            expected: size,
                            actual: self.offset,
                        }
                        .into_io());
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(e)?,
            }
        }
    }
}
