//! Bearer tokens (the docker token protocol): `GET realm?service=S&scope=A&scope=B`, with
//! Basic credentials when there are some, answering `{"token"|"access_token", "expires_in"}`.
//! With an identity token (docker's `identitytoken` logins, the CRI's `identity_token`) the
//! request is the OAuth2 form instead (distribution's `oauth.md`): `POST realm` with
//! `grant_type=refresh_token&refresh_token=T&service=S&scope=A B&client_id=...`, answering
//! `{"access_token", "expires_in"}`. Tokens are cached per scope set until shortly before
//! they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::challenge::Challenge;
use crate::client::Client;
use crate::error::{RegistryError, Result};

/// Tokens by scope set.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    fn key(scopes: &[String]) -> String {
        scopes.join(" ")
    }

    fn get(&self, scopes: &[String]) -> Option<String> {
        let map = self.lock();
        map.get(&Self::key(scopes))
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn put(&self, scopes: &[String], token: String, valid_for: Duration) {
        self.lock()
            .insert(Self::key(scopes), (token, Instant::now() + valid_for));
    }

    pub(crate) fn forget(&self, scopes: &[String]) {
        self.lock().remove(&Self::key(scopes));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The OAuth2 client id sent with identity tokens.
const CLIENT_ID: &str = "strata";

/// A token for `scopes`, from the cache or the challenge's realm.
pub(crate) fn fetch(
    client: &Client,
    challenge: &Challenge,
    scopes: &[String],
    repository: Option<&str>,
) -> Result<String> {
    if let Some(t) = client.inner.tokens.get(scopes) {
        return Ok(t);
    }
    let realm = challenge
        .param("realm")
        .ok_or_else(|| client.protocol("GET /v2/", "Bearer challenge without a realm".into()))?;
    let mut query = Vec::new();
    if let Some(service) = challenge.param("service") {
        query.push(format!("service={}", encode(service)));
    }
    for scope in scopes {
        query.push(format!("scope={}", encode(scope)));
    }
    let creds = client.inner.creds.as_ref();
    let identity = creds.and_then(|c| c.identity_token.as_deref());
    // With an identity token: the OAuth2 form. A token server without that endpoint (404,
    // 405: some registries' token servers) gets the GET below instead, with the identity
    // token as the Basic password, as containerd falls back.
    let oauth = match identity {
        Some(refresh) => {
            let mut form = vec![
                "grant_type=refresh_token".to_owned(),
                format!("refresh_token={}", encode(refresh)),
                format!("client_id={}", encode(CLIENT_ID)),
            ];
            if let Some(service) = challenge.param("service") {
                form.push(format!("service={}", encode(service)));
            }
            if !scopes.is_empty() {
                // The scopes space-separated in one value, as OAuth2 has them.
                form.push(format!("scope={}", encode(&scopes.join(" "))));
            }
            let req = ureq::http::Request::post(realm)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.join("&").into_bytes())
                .map_err(|e| client.protocol("token request", e.to_string()))?;
            tracing::debug!(
                realm,
                ?scopes,
                "requesting a registry token with an identity token"
            );
            let resp = client
                .run_raw_bytes(req)
                .map_err(|e| client.transport_error(e, realm))?;
            if matches!(resp.status().as_u16(), 404 | 405) {
                tracing::debug!(realm, "no OAuth2 token endpoint; asking with GET instead");
                None
            } else {
                Some(resp)
            }
        }
        None => None,
    };
    let posted = oauth.is_some();
    let mut resp = match oauth {
        Some(r) => r,
        None => {
            if let Some(c) = creds {
                query.push(format!("account={}", encode(&c.username)));
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            let url = if query.is_empty() {
                realm.to_owned()
            } else {
                format!("{realm}{sep}{}", query.join("&"))
            };
            let mut builder = ureq::http::Request::get(&url);
            if let Some(c) = creds {
                builder = builder.header("authorization", format!("Basic {}", c.basic()));
            }
            let req = builder
                .body(())
                .map_err(|e| client.protocol("token request", e.to_string()))?;
            tracing::debug!(realm, ?scopes, "requesting a registry token");
            client
                .run_raw(req)
                .map_err(|e| client.transport_error(e, realm))?
        }
    };
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_vec()
        .map_err(|e| client.protocol("token request", e.to_string()))?;
    if status == 401 || status == 403 {
        return Err(RegistryError::Unauthorized {
            registry: client.inner.registry.clone(),
            repository: repository.map(str::to_owned),
            detail: format!("the token server {realm} refused the credentials (HTTP {status})"),
            had_credentials: creds.is_some(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(RegistryError::Http {
            registry: client.inner.registry.clone(),
            method: if posted { "POST" } else { "GET" }.into(),
            path: realm.to_owned(),
            status,
            code: None,
            detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
        });
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| client.protocol("token request", format!("invalid JSON: {e}")))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| client.protocol("token request", "no token in the response".into()))?;
    // Docker's default lifetime is 60 s; renew a little early.
    let lifetime = parsed.expires_in.unwrap_or(60).max(60);
    client
        .inner
        .tokens
        .put(scopes, token.clone(), Duration::from_secs(lifetime - 10));
    Ok(token)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_scopes() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(encode("x y~"), "x%20y~");
    }

    #[test]
    fn cache_is_per_scope_set() {
        let c = TokenCache::default();
        let a = vec!["repository:a:pull".to_owned()];
        let b = vec!["repository:b:pull".to_owned()];
        c.put(&a, "ta".into(), Duration::from_secs(60));
        assert_eq!(c.get(&a).as_deref(), Some("ta"));
        assert_eq!(c.get(&b), None);
        c.forget(&a);
        assert_eq!(c.get(&a), None);
        c.put(&b, "tb".into(), Duration::ZERO);
        assert_eq!(c.get(&b), None, "expired tokens are not used");
    }
}
