//! `store.images` and `store.containers` with their filters (plugin ABI 1.4): what front ends
//! list without a call per object (`strata images` with sizes, the CRI's `ListContainers` by
//! pod and label, `ps` by front end).
//!
//! Filters are applied here, over the store's listing, which reads every row anyway; a
//! filter field that is empty matches everything.

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
    let mut out = Vec::new();
    for i in store.images().map_err(store_err)? {
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
        let layers = store.image_layers(&i).map_err(store_err)?;
        let digest = i.manifest_digest.to_string();
        out.push(api::ImageSummary {
            repo_digests: repo_digests(&i.names, &digest),
            size: layers.iter().map(|l| l.size).sum(),
            digest: Some(digest),
            top_layer: i.top_layer.as_ref().map(|l| l.0.to_string()),
            layers: layers.len(),
            id,
            names: i.names,
            created: i.created,
        });
    }
    reply(&out)
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
