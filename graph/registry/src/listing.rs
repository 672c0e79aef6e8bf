//! Listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, following `Link: <...>;
//! rel="next"` pagination with an optional page size (`n`).

use serde::Deserialize;
use ureq::http::Method;

use crate::client::{Client, Payload, Req};
use crate::error::Result;
use crate::manifests::header;

#[derive(Debug, Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

impl Client {
    /// Every tag of `repository`, in the registry's order, fetched `page_size` at a time.
    pub fn tags(&self, repository: &str, page_size: Option<usize>) -> Result<Vec<String>> {
        let first = with_n(self.url(&format!("{repository}/tags/list"))?, page_size);
        let scope = format!("repository:{repository}:pull");
        let mut out = Vec::new();
        self.paginate(first, scope, Some(repository), |body| {
            let page: TagsPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            out.extend(page.tags.unwrap_or_default());
            Ok(())
        })?;
        Ok(out)
    }

    /// Every repository of the registry (`_catalog`; many public registries refuse it).
    pub fn catalog(&self, page_size: Option<usize>) -> Result<Vec<String>> {
        let first = with_n(self.url("_catalog")?, page_size);
        let mut out = Vec::new();
        self.paginate(first, "registry:catalog:*".into(), None, |body| {
            let page: CatalogPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            out.extend(page.repositories.unwrap_or_default());
            Ok(())
        })?;
        Ok(out)
    }

    fn paginate(
        &self,
        first: String,
        scope: String,
        repository: Option<&str>,
        mut each: impl FnMut(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let mut url = Some(first);
        let mut pages = 0usize;
        while let Some(u) = url.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(self.protocol(&u, "pagination does not end".into()));
            }
            let req = Req {
                method: Method::GET,
                url: u,
                headers: vec![("accept", "application/json".into())],
                scopes: vec![scope.clone()],
                repository,
                idempotent: true,
            };
            let resp = self.send(&req, Payload::Empty)?;
            let what = repository.map(|r| ("repository", r));
            let mut resp = self.expect_status(&req, resp, &[200], what)?;
            let next = header(&resp, "link").and_then(|l| next_link(&l));
            let body = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_vec()
                .map_err(|e| self.protocol(&req.url, e.to_string()))?;
            each(&body).map_err(|e| self.protocol(&req.url, format!("invalid JSON: {e}")))?;
            url = match next {
                Some(n) => Some(self.resolve_location(&n)?),
                None => None,
            };
        }
        Ok(())
    }
}

fn with_n(url: String, page_size: Option<usize>) -> String {
    match page_size {
        Some(n) => format!("{url}?n={n}"),
        None => url,
    }
}

/// The target of `rel="next"` in a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=t2&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=t2&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
