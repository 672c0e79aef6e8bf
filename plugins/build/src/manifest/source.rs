//! A manifest list as a copy source: its index is the top-level manifest, and each entry's
//! manifest and blobs come from the source the entry was added from. The copy engine copies
//! it whole (`all`), rewriting the index when it recompresses an image on the way.

use std::collections::HashMap;
use std::io::Read;

use anyhow::Result;
use strata_graph_image::manifest::{classify, parse_manifest, ManifestKind};
use strata_graph_image::{Descriptor, ImageError, ImageSource, RawManifest};
use strata_plugin_api::Host;
use strata_plugin_transfer::ends::{open_source, RemoteOptions};
use strata_types::Digest;

use super::list::{List, OCI_INDEX};

pub struct ListSource {
    name: String,
    index: RawManifest,
    /// Each entry's manifest and the source its blobs come from.
    manifests: HashMap<String, (RawManifest, usize)>,
    sources: Vec<Box<dyn ImageSource>>,
    blobs: HashMap<String, usize>,
}

impl std::fmt::Debug for ListSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListSource")
            .field("name", &self.name)
            .finish()
    }
}

impl ListSource {
    /// Opens every entry's source and reads its manifest (checked against the entry's digest).
    pub fn open(host: &Host, l: &List, o: &RemoteOptions) -> Result<ListSource> {
        let mut s = ListSource {
            name: l.name.clone(),
            index: RawManifest {
                bytes: l.bytes()?.0,
                media_type: OCI_INDEX.to_owned(),
            },
            manifests: HashMap::new(),
            sources: Vec::new(),
            blobs: HashMap::new(),
        };
        for d in &l.index.manifests {
            let from = l
                .sources
                .get(d.digest.as_str())
                .cloned()
                .unwrap_or_default();
            // `NAME@sha256:...` is an entry of NAME's index.
            let (name, entry) = match from.rsplit_once("@sha256:") {
                Some((n, hex)) => (n.to_owned(), Some(Digest::parse(&format!("sha256:{hex}"))?)),
                None => (from.clone(), None),
            };
            let src = open_source(host, &name, o)
                .map_err(|e| anyhow::anyhow!("{}: entry {}: {e}", l.name, d.digest.as_str()))?;
            let raw = match &entry {
                Some(e) => src.manifest_by_digest(e),
                None => src.manifest(),
            }
            .map_err(|e| anyhow::anyhow!("{}: entry {}: {e}", l.name, d.digest.as_str()))?;
            if Digest::of(&raw.bytes) != d.digest {
                anyhow::bail!(
                    "{}: entry {} changed since it was added ({} now has another manifest); add it again",
                    l.name,
                    d.digest.as_str(),
                    name
                );
            }
            if classify(&raw)? != ManifestKind::Image {
                anyhow::bail!("{}: entry {} is not an image", l.name, d.digest.as_str());
            }
            let m = parse_manifest(&raw.bytes)?;
            let i = s.sources.len();
            s.blobs.insert(m.config.digest.as_str().to_owned(), i);
            for layer in &m.layers {
                s.blobs.insert(layer.digest.as_str().to_owned(), i);
            }
            s.manifests.insert(d.digest.as_str().to_owned(), (raw, i));
            s.sources.push(src);
        }
        Ok(s)
    }
}

impl ImageSource for ListSource {
    fn manifest(&self) -> strata_graph_image::Result<RawManifest> {
        Ok(self.index.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> strata_graph_image::Result<RawManifest> {
        self.manifests
            .get(digest.as_str())
            .map(|(m, _)| m.clone())
            .ok_or_else(|| ImageError::NotFound {
                what: "manifest list entry",
                name: format!("{} in {}", digest.as_str(), self.name),
            })
    }

    fn blob(&self, desc: &Descriptor) -> strata_graph_image::Result<Box<dyn Read + Send>> {
        match self.blobs.get(desc.digest.as_str()) {
            Some(i) => self.sources[*i].blob(desc),
            None => Err(ImageError::NotFound {
                what: "blob",
                name: format!("{} in {}", desc.digest.as_str(), self.name),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("manifest list {}", self.name)
    }
}
