//! Endpoint detection: the first request to a registry pings `GET /v2/` to learn its
//! scheme (HTTPS, or plain HTTP for an insecure registry whose HTTPS fails, as podman does)
//! and its authentication challenge (none, Basic or Bearer). The result is cached in the
//! [`Client`] for its lifetime; a registry that changes either mid-session is not followed.

use crate::challenge::Challenge;
use crate::client::{retryable, Client};
use crate::error::{RegistryError, Result};

/// Where and how a registry answers.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `https://host[:port]` or `http://...`.
    pub base: String,
    /// The challenge of an anonymous `GET /v2/` (`None`: no authentication).
    pub challenge: Option<Challenge>,
}

impl Client {
    /// The base URL (`https://host`) and the registry's challenge, detected once.
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        if let Some(ep) = self.lock_base().clone() {
            return Ok(ep);
        }
        let https = format!("https://{}", self.inner.host);
        // Where plain HTTP is allowed, HTTPS is only a probe: a plain-HTTP registry fails
        // the TLS handshake every time, so retrying it with backoff would only add seconds.
        let https_retries = if self.inner.allow_http {
            0
        } else {
            self.inner.retries
        };
        let ep = match self.ping(&https, https_retries) {
            Ok(challenge) => Endpoint {
                base: https,
                challenge,
            },
            Err(
                e @ (RegistryError::Connect { .. } | RegistryError::UntrustedCertificate { .. }),
            ) if self.inner.allow_http => {
                let http = format!("http://{}", self.inner.host);
                tracing::debug!(registry = %self.inner.registry, error = %e,
                    "HTTPS failed on an insecure registry; trying plain HTTP");
                match self.ping(&http, self.inner.retries) {
                    Ok(challenge) => Endpoint {
                        base: http,
                        challenge,
                    },
                    Err(_) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        *self.lock_base() = Some(ep.clone());
        Ok(ep)
    }

    fn lock_base(&self) -> std::sync::MutexGuard<'_, Option<Endpoint>> {
        self.inner
            .base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `GET /v2/` without credentials: `Ok(None)` when open, `Ok(Some)` with the challenge.
    fn ping(&self, base: &str, retries: u32) -> Result<Option<Challenge>> {
        let url = format!("{base}/v2/");
        let mut attempt = 0;
        loop {
            let req = ureq::http::Request::get(&url)
                .body(())
                .map_err(|e| self.protocol("ping", e.to_string()))?;
            match self.inner.agent.run(req) {
                Ok(resp) if resp.status().as_u16() == 401 => {
                    let challenges: Vec<Challenge> = resp
                        .headers()
                        .get_all("www-authenticate")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(crate::challenge::parse)
                        .collect();
                    let pick = challenges
                        .iter()
                        .find(|c| c.is_bearer())
                        .or_else(|| challenges.iter().find(|c| c.is_basic()))
                        .cloned();
                    return match pick {
                        Some(c) => Ok(Some(c)),
                        None => Err(self.protocol(
                            "GET /v2/",
                            "401 without a Basic or Bearer challenge".into(),
                        )),
                    };
                }
                Ok(resp) if resp.status().is_success() => return Ok(None),
                Ok(resp) if resp.status().is_server_error() && attempt < retries => {}
                Ok(resp) => {
                    return Err(RegistryError::Http {
                        registry: self.inner.registry.clone(),
                        method: "GET".into(),
                        path: "/v2/".into(),
                        status: resp.status().as_u16(),
                        code: None,
                        detail: "not a registry v2 endpoint".into(),
                    })
                }
                Err(e) if retryable(&e) && attempt < retries => {}
                Err(e) => return Err(self.transport_error(e, &url)),
            }
            self.backoff(attempt);
            attempt += 1;
        }
    }
}
