//! Turning a registry's unexpected HTTP status into a [`RegistryError`]: the status, the
//! registry's JSON error (`{"errors":[{"code","message","detail"}]}`) and the object
//! (repository, manifest, blob) it was about.

use serde::Deserialize;
use ureq::http::Response;
use ureq::Body;

use crate::client::{Client, Req};
use crate::error::{RegistryError, Result};

/// The most of an error body we read.
const MAX_ERROR_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Debug, Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

/// The registry's explanation of an error: `(first code, "code: message; ...")`.
fn explain(body: &[u8]) -> (Option<String>, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.errors.is_empty() => {
            let text = b
                .errors
                .iter()
                .map(|e| {
                    let mut s = format!("{}: {}", e.code.to_lowercase(), e.message);
                    // Short details help (`{"Tag":"x"}`); long ones (the access list of
                    // an auth failure) are noise.
                    let detail = e.detail.as_ref().filter(|d| !d.is_null() && !d.is_array());
                    if let Some(d) = detail.map(ToString::to_string).filter(|d| d.len() <= 80) {
                        s.push_str(&format!(" ({d})"));
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join("; ");
            (Some(b.errors[0].code.clone()), text)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let short: String = text.chars().take(200).collect();
            (None, short)
        }
    }
}

impl Client {
    /// Returns `resp` if its status is one of `ok`, else the error it stands for.
    /// `not_found` names the object a 404 is about (`("manifest", "a/b:tag")`).
    pub(crate) fn expect_status(
        &self,
        req: &Req<'_>,
        mut resp: Response<Body>,
        ok: &[u16],
        not_found: Option<(&'static str, &str)>,
    ) -> Result<Response<Body>> {
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY)
            .read_to_vec()
            .unwrap_or_default();
        Err(self.status_error(req, status, &body, not_found))
    }

    fn status_error(
        &self,
        req: &Req<'_>,
        status: u16,
        body: &[u8],
        not_found: Option<(&'static str, &str)>,
    ) -> RegistryError {
        let (code, detail) = explain(body);
        let registry = self.inner.registry.clone();
        match (status, not_found) {
            (401 | 403, _) => RegistryError::Unauthorized {
                registry,
                repository: req.repository.map(str::to_owned),
                detail: if detail.is_empty() {
                    if status == 401 {
                        "authentication required".into()
                    } else {
                        "access denied".into()
                    }
                } else {
                    detail
                },
                had_credentials: self.inner.creds.is_some(),
            },
            (404, Some((what, name))) => RegistryError::NotFound {
                registry,
                what,
                name: name.to_owned(),
                detail,
            },
            _ => RegistryError::Http {
                registry,
                method: req.method.to_string(),
                path: path_of(&req.url),
                status,
                code,
                detail,
            },
        }
    }
}

/// The path and query of a URL, for messages.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].to_owned(),
        None => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_registry_errors() {
        let (code, text) = explain(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        );
        assert_eq!(code.as_deref(), Some("MANIFEST_UNKNOWN"));
        assert_eq!(text, r#"manifest_unknown: manifest unknown ({"Tag":"x"})"#);
        let (code, text) = explain(b"  plain text  ");
        assert_eq!(code, None);
        assert_eq!(text, "plain text");
        assert_eq!(path_of("https://h:5/v2/a/b?x=1"), "/v2/a/b?x=1");
    }
}
