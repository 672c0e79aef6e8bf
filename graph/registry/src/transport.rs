//! The `docker://` transport: [`DockerSource`] and [`DockerDestination`] implement the image
//! crate's transport traits over the registry [`Client`], plus the repository-level helpers
//! the copy plugin's `list-tags` and `delete` use.
//!
//! A source tries registries.conf mirrors first, then the registry itself, and stays with
//! the first endpoint whose manifest it could fetch. A destination pushes to the registry
//! (never to mirrors), mounts blobs from other repositories of the same registry when told
//! about them (`mount_from`), and tags the top-level manifest last, so a registry never shows
//! a manifest before its blobs. Signatures (sigstore attachments, lookaside) are not handled.

use std::io::Read;

use strata_graph_image::{Descriptor, ImageDestination, ImageError, ImageSource, RawManifest};
use strata_types::{Digest, HasKind};

use crate::client::{Client, ClientOptions};
use crate::error::{RegistryError, Result};
use crate::reference::Reference;
use crate::registries_conf::{Endpoint, RegistriesConf};

/// Options for the docker transport.
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    /// How to reach registries (TLS, credentials, retries, chunking).
    pub client: ClientOptions,
    /// registries.conf (mirrors, relocation, `insecure`, `blocked`); `None` uses none.
    pub registries: Option<RegistriesConf>,
    /// Repositories of the destination registry that may already hold the blobs (e.g. the
    /// source repository when copying within one registry): blobs are mounted from them.
    pub mount_from: Vec<String>,
    /// Page size for tag listings (`None`: the registry's default).
    pub page_size: Option<usize>,
}

impl DockerOptions {
    fn pull_endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>> {
        match &self.registries {
            Some(conf) => conf.pull_endpoints(reference),
            None => Ok(vec![plain_endpoint(reference)]),
        }
    }

    fn push_endpoint(&self, reference: &Reference) -> Result<Endpoint> {
        match &self.registries {
            Some(conf) => conf.push_endpoint(reference),
            None => Ok(plain_endpoint(reference)),
        }
    }

    fn client_for(&self, endpoint: &Endpoint) -> Result<Client> {
        let opts = ClientOptions {
            insecure: endpoint.insecure,
            ..self.client.clone()
        };
        Client::for_reference(&endpoint.reference, &opts)
    }
}

fn plain_endpoint(reference: &Reference) -> Endpoint {
    Endpoint {
        reference: reference.clone(),
        insecure: false,
        mirror: false,
    }
}

/// Reads an image from a registry.
#[derive(Debug)]
pub struct DockerSource {
    reference: Reference,
    endpoint: Reference,
    client: Client,
    manifest: RawManifest,
    digest: Digest,
}

impl DockerSource {
    /// Finds the image (mirrors first) and fetches its top-level manifest.
    pub fn open(reference: &Reference, opts: &DockerOptions) -> Result<DockerSource> {
        let mut last_err = None;
        for endpoint in opts.pull_endpoints(reference)? {
            let attempt = opts.client_for(&endpoint).and_then(|client| {
                let r = &endpoint.reference;
                let m = client.manifest(r.repository(), &r.manifest_ref())?;
                Ok((client, m))
            });
            match attempt {
                Ok((client, m)) => {
                    tracing::debug!(image = %reference, from = %endpoint.reference, "pulling");
                    return Ok(DockerSource {
                        reference: reference.clone(),
                        endpoint: endpoint.reference,
                        client,
                        manifest: RawManifest {
                            bytes: m.bytes,
                            media_type: m.media_type,
                        },
                        digest: m.digest,
                    });
                }
                Err(e) => {
                    if endpoint.mirror {
                        tracing::info!(mirror = %endpoint.reference, error = %e,
                            "mirror failed; trying the next source");
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| RegistryError::InvalidReference {
            input: reference.to_string(),
            reason: "no pull sources".into(),
        }))
    }

    /// The reference the user asked for.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Where the image actually came from (a mirror, or the registry).
    pub fn pulled_from(&self) -> &Reference {
        &self.endpoint
    }

    /// The digest of the top-level manifest.
    pub fn manifest_digest(&self) -> &Digest {
        &self.digest
    }

    /// The client for the endpoint in use.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl ImageSource for DockerSource {
    fn manifest(&self) -> strata_graph_image::Result<RawManifest> {
        Ok(self.manifest.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> strata_graph_image::Result<RawManifest> {
        let m = self
            .client
            .manifest(self.endpoint.repository(), digest.as_str())
            .map_err(|e| image_error(&e))?;
        Ok(RawManifest {
            bytes: m.bytes,
            media_type: m.media_type,
        })
    }

    fn blob(&self, desc: &Descriptor) -> strata_graph_image::Result<Box<dyn Read + Send>> {
        let reader = self
            .client
            // The copy engine verifies every blob it reads (ImageSource's contract).
            .blob_unverified(self.endpoint.repository(), &desc.digest, Some(desc.size))
            .map_err(|e| image_error(&e))?;
        Ok(Box::new(reader))
    }

    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }
}

/// Writes an image to a registry.
#[derive(Debug)]
pub struct DockerDestination {
    reference: Reference,
    endpoint: Reference,
    client: Client,
    mount_from: Vec<String>,
}

impl DockerDestination {
    /// Prepares a push to `reference` (no request is made yet).
    pub fn open(reference: &Reference, opts: &DockerOptions) -> Result<DockerDestination> {
        let endpoint = opts.push_endpoint(reference)?;
        let client = opts.client_for(&endpoint)?;
        Ok(DockerDestination {
            reference: reference.clone(),
            endpoint: endpoint.reference,
            client,
            mount_from: opts.mount_from.clone(),
        })
    }

    /// The client for the destination registry.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl ImageDestination for DockerDestination {
    fn has_blob(&self, desc: &Descriptor) -> strata_graph_image::Result<bool> {
        self.client
            .blob_exists(self.endpoint.repository(), &desc.digest)
            .map(|size| size.is_some())
            .map_err(|e| image_error(&e))
    }

    fn put_blob(&self, desc: &Descriptor, data: &mut dyn Read) -> strata_graph_image::Result<()> {
        self.client
            .put_blob(
                self.endpoint.repository(),
                &desc.digest,
                desc.size,
                data,
                &self.mount_from,
            )
            .map(|_| ())
            .map_err(|e| image_error(&e))
    }

    fn put_manifest(
        &self,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> strata_graph_image::Result<()> {
        let target = match (instance, self.endpoint.tag(), self.endpoint.digest()) {
            (Some(d), _, _) => d.to_string(),
            (None, Some(tag), _) => tag.to_owned(),
            (None, None, Some(d)) => {
                let actual = Digest::of(&manifest.bytes);
                if &actual != d {
                    return Err(ImageError::Invalid(format!(
                        "cannot push to {}: the manifest's digest is {actual}",
                        self.reference
                    )));
                }
                d.to_string()
            }
            (None, None, None) => "latest".to_owned(),
        };
        self.client
            .put_manifest(
                self.endpoint.repository(),
                &target,
                &manifest.bytes,
                &manifest.media_type,
            )
            .map(|_| ())
            .map_err(|e| image_error(&e))
    }

    fn commit(&self) -> strata_graph_image::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }
}

/// The tags of `reference`'s repository (`skopeo list-tags`).
pub fn list_tags(reference: &Reference, opts: &DockerOptions) -> Result<Vec<String>> {
    let endpoint = opts.push_endpoint(reference)?;
    let client = opts.client_for(&endpoint)?;
    client.tags(endpoint.reference.repository(), opts.page_size)
}

/// Deletes the manifest `reference` names (by digest, or the digest its tag points at) and
/// so every tag of it (`skopeo delete`). Returns the deleted digest.
pub fn delete_image(reference: &Reference, opts: &DockerOptions) -> Result<Digest> {
    let endpoint = opts.push_endpoint(reference)?;
    let client = opts.client_for(&endpoint)?;
    let r = &endpoint.reference;
    match (r.digest(), r.tag()) {
        (Some(d), _) => client
            .delete_manifest(r.repository(), d)
            .map(|()| d.clone()),
        (None, Some(tag)) => client.delete_tag(r.repository(), tag),
        (None, None) => client.delete_tag(r.repository(), "latest"),
    }
}

/// Converts a registry error for the image crate, keeping the kind of an error that came
/// from the caller's stream (e.g. the copy engine's digest check).
pub fn image_error(e: &RegistryError) -> ImageError {
    if let RegistryError::Transfer { source, .. } = e {
        if let Some(inner) = source
            .get_ref()
            .and_then(|i| i.downcast_ref::<ImageError>())
        {
            return ImageError::Transport {
                kind: inner.kind(),
                message: e.to_string(),
            };
        }
    }
    ImageError::transport(e)
}
