//! `store.images` and `store.containers` with their filters (plugin ABI 1.4): what front ends
//! list without a call per object (`strata images` with sizes, the CRI's `ListContainers` by
//! pod and label, `ps` by front end).
//!
//! Filters are applied here; an image filter with names or full IDs looks those up rather
//! than listing every image. A filter field that is empty matches everything.

use std::collections::HashSet;

use strata_graph_store::{normalize_name, Container, Store};
use strata_plugin_api::store as api;
use strata_plugin_api::ErrorKind;
use strata_types::HasKind;

use super::methods::{reply, store_err, CallResult};

/// Whether `id` (`sha256:<hex>` or a bare ID) is named by one of `wanted` (full IDs or
/// prefixes of at least 3 hex digits, with or without `sha256:`).
fn id_matches(id: &str, wanted: &[String]) -> bool {
    let hex = id.trim_start_matches("sha256:");
    wanted.iter().any(|w| {
        let w = w.trim_start_matches("sha256:");
        w.len() >= 3 && hex.starts_with(w)
    })
}

/// The images `filter` selects, with their sizes, digests and repo digests.
pub(super) fn images(store: &Store, filter: &api::ImageFilter) -> CallResult {
    let names: HashSet<String> = filter
        .names
        .iter()
        .map(|n| normalize_name(n).map_err(|e| (ErrorKind::InvalidArgument, e.to_string())))
        .collect::<Result<_, _>>()?;
    let candidates = candidates(store, filter, &names)?;
    // Many images: read every layer once and sum chains in memory, rather than walking
    // each image's chain with a query per layer.
    let mut chains = (candidates.len() > 8)
        .then(|| store.layers().map(Chains::new))
        .transpose()
        .map_err(store_err)?;
    let mut out = Vec::new();
    for i in candidates {
        let id = i.id.0.to_string();
        if !filter.ids.is_empty() && !id_matches(&id, &filter.ids) {
            continue;
        }
        if !names.is_empty() && !i.names.iter().any(|n| names.contains(n)) {
            continue;
        }
        if filter.dangling.is_some_and(|d| d != i.names.is_empty()) {
            continue;
        }
        let (size, layers) = match (&mut chains, &i.top_layer) {
            (_, None) => (0, 0),
            (Some(c), Some(top)) => c.size_and_depth(top),
            (None, Some(_)) => {
                let layers = store.image_layers(&i).map_err(store_err)?;
                (layers.iter().map(|l| l.size).sum(), layers.len())
            }
        };
        let digest = i.manifest_digest.to_string();
        out.push(api::ImageSummary {
            repo_digests: repo_digests(&i.names, &digest),
            size,
            digest: Some(digest),
            top_layer: i.top_layer.as_ref().map(|l| l.0.to_string()),
            layers,
            id,
            names: i.names,
            created: i.created,
        });
    }
    reply(&out)
}

/// The images a filter can select: those its names or full IDs name, found one lookup each
/// (ImageStatus by name costs the same with 2 or 2000 images), else every image. In the
/// store's listing order (creation, then ID).
fn candidates(
    store: &Store,
    filter: &api::ImageFilter,
    names: &HashSet<String>,
) -> Result<Vec<strata_graph_store::Image>, (ErrorKind, String)> {
    let full_ids = !filter.ids.is_empty()
        && filter.ids.iter().all(|w| {
            let hex = w.trim_start_matches("sha256:");
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
    let keys: Vec<&String> = if !names.is_empty() {
        names.iter().collect()
    } else if full_ids {
        filter.ids.iter().collect()
    } else {
        return store.images().map_err(store_err);
    };
    let mut found: Vec<strata_graph_store::Image> = Vec::new();
    for k in keys {
        match store.image(k) {
            Ok(i) if !found.iter().any(|f| f.id == i.id) => found.push(i),
            Ok(_) => {}
            Err(e) if e.kind() == strata_types::ErrorKind::NotFound => {}
            Err(e) => return Err(store_err(e)),
        }
    }
    found.sort_by(|a, b| (a.created, &a.id.0).cmp(&(b.created, &b.id.0)));
    Ok(found)
}

/// Every layer's size and parent, for summing image chains in memory.
struct Chains {
    layers: std::collections::HashMap<strata_types::LayerId, (u64, Option<strata_types::LayerId>)>,
    /// Sums found so far: (bytes, layers) of a chain by its top.
    done: std::collections::HashMap<strata_types::LayerId, (u64, usize)>,
}

impl Chains {
    fn new(layers: Vec<strata_graph_store::Layer>) -> Chains {
        Chains {
            layers: layers
                .into_iter()
                .map(|l| (l.id, (l.size, l.parent)))
                .collect(),
            done: std::collections::HashMap::new(),
        }
    }

    /// The total size and depth of the chain under `top` (a missing record ends it, as
    /// `fsck` reports such chains).
    fn size_and_depth(&mut self, top: &strata_types::LayerId) -> (u64, usize) {
        let mut path = Vec::new();
        let mut cur = Some(top.clone());
        let mut base = (0, 0);
        while let Some(id) = cur {
            if let Some(d) = self.done.get(&id) {
                base = *d;
                break;
            }
            let Some((size, parent)) = self.layers.get(&id) else {
                break;
            };
            path.push((id.clone(), *size));
            cur = parent.clone();
            if path.len() > 4096 {
                break;
            }
        }
        for (id, size) in path.into_iter().rev() {
            base = (base.0 + size, base.1 + 1);
            self.done.insert(id, base);
        }
        base
    }
}

/// `repository@digest` for each repository among `names` (`repo:tag` or `repo@digest`),
/// each once, as podman's `RepoDigests`.
fn repo_digests(names: &[String], digest: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let repo = match n.split_once('@') {
            Some((repo, _)) => repo,
            None => match n.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo,
                _ => n.as_str(),
            },
        };
        let rd = format!("{repo}@{digest}");
        if !out.contains(&rd) {
            out.push(rd);
        }
    }
    out
}

/// The containers `filter` selects.
pub(super) fn containers(
    store: &Store,
    filter: &api::ContainerFilter,
) -> Result<Vec<Container>, (ErrorKind, String)> {
    let image = match &filter.image {
        Some(name) => match store.image(name) {
            Ok(i) => Some(i.id),
            // No such image: no container of it (the CRI lists nothing, it does not fail).
            Err(e) if e.kind() == strata_types::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(store_err(e)),
        },
        None => None,
    };
    let mut out = Vec::new();
    for c in store.containers().map_err(store_err)? {
        if !filter.ids.is_empty() && !id_matches(c.id.as_str(), &filter.ids) {
            continue;
        }
        if !filter.names.is_empty() && !filter.names.contains(&c.name) {
            continue;
        }
        if image.as_ref().is_some_and(|i| *i != c.image) {
            continue;
        }
        if !filter.metadata_keys.is_empty()
            && !filter
                .metadata_keys
                .iter()
                .any(|k| c.metadata.get(k).is_some())
        {
            continue;
        }
        if !filter
            .metadata
            .iter()
            .all(|m| c.metadata.pointer(&m.pointer) == Some(&m.value))
        {
            continue;
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_by_prefix_with_or_without_the_algorithm() {
        let id = "sha256:0123456789abcdef";
        assert!(id_matches(id, &["0123".into()]));
        assert!(id_matches(id, &["sha256:0123456789abcdef".into()]));
        assert!(!id_matches(id, &["01".into()]), "too short to be a prefix");
        assert!(!id_matches(id, &["4567".into()]));
    }

    #[test]
    fn repo_digests_name_each_repository_once() {
        let names = [
            "docker.io/library/busybox:latest".to_owned(),
            "docker.io/library/busybox:1.36".to_owned(),
            "localhost:5000/busybox".to_owned(),
        ];
        assert_eq!(
            repo_digests(&names, "sha256:abc"),
            [
                "docker.io/library/busybox@sha256:abc",
                "localhost:5000/busybox@sha256:abc"
            ]
        );
    }
}
