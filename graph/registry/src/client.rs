//! The blocking registry v2 client for one registry: endpoint detection (HTTPS, or HTTP for
//! an insecure registry), authentication (anonymous, Basic, Bearer tokens), retries, and
//! turning HTTP failures into [`RegistryError`]s.
//!
//! The API calls themselves live next door: manifests in [`crate::manifests`], blob reads
//! in [`crate::blobs`], uploads and mounts in [`crate::upload`], tag listing, catalog and
//! deletion in [`crate::listing`]. A [`Client`] is cheap to clone and safe to share between
//! threads; tokens are cached per scope.
//!
//! Like podman, an insecure registry (`--tls-verify=false` or registries.conf
//! `insecure = true`) is tried over HTTPS without verification first and over plain HTTP
//! only if that fails. Idempotent requests with a replayable body are retried on 5xx and
//! connection errors. Not done: HTTP proxies beyond ureq's own, OAuth2 POST token flow
//! (refresh tokens), registry v1.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::http::{Method, Response};
use ureq::{Body, SendBody};

use crate::auth::{AuthStore, Credentials};
use crate::challenge::Challenge;
use crate::endpoint::Endpoint;
use crate::error::{RegistryError, Result};
use crate::reference::Reference;
use crate::tls::{tls_config, TlsOptions, DEFAULT_CERTS_ROOT, DEFAULT_SYSTEM_ROOTS};
use crate::token::TokenCache;

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));

/// How to reach and authenticate to registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `--tls-verify`: `None` means verify unless registries.conf marks the registry
    /// insecure; `Some(false)` skips verification and allows plain HTTP.
    pub tls_verify: Option<bool>,
    /// registries.conf `insecure` for this registry (set by the transport).
    pub insecure: bool,
    /// Root of the certs.d directories.
    pub certs_root: PathBuf,
    /// `--cert-dir`: replaces `certs_root/HOST`.
    pub cert_dir: Option<PathBuf>,
    /// The system CA bundle.
    pub system_roots: PathBuf,
    /// `--creds`: used instead of the auth files when set.
    pub credentials: Option<Credentials>,
    /// Where credentials are looked up when `credentials` is `None`.
    pub auth: AuthStore,
    /// Retries for idempotent requests (and resumes of a blob stream).
    pub retries: u32,
    /// Upload blobs in chunks of this many bytes (`None`: one monolithic PUT).
    pub chunk_size: Option<u64>,
    /// Pause before the first retry (doubled each time).
    pub retry_delay: Duration,
}

impl Default for ClientOptions {
    /// Verification on, system paths, credentials from the process environment.
    fn default() -> Self {
        ClientOptions {
            tls_verify: None,
            insecure: false,
            certs_root: PathBuf::from(DEFAULT_CERTS_ROOT),
            cert_dir: None,
            system_roots: PathBuf::from(DEFAULT_SYSTEM_ROOTS),
            credentials: None,
            auth: AuthStore::from_env(),
            retries: 3,
            chunk_size: None,
            retry_delay: Duration::from_millis(200),
        }
    }
}

impl ClientOptions {
    /// Whether certificates are verified for this registry.
    pub fn verify(&self) -> bool {
        self.tls_verify.unwrap_or(!self.insecure)
    }
}

/// A client for one registry.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The registry as in references (`docker.io`, `localhost:5000`), for messages.
    pub registry: String,
    /// The host serving the API.
    pub(crate) host: String,
    pub(crate) agent: ureq::Agent,
    pub(crate) allow_http: bool,
    verify: bool,
    certs_dir: String,
    pub creds: Option<Credentials>,
    pub retries: u32,
    pub retry_delay: Duration,
    pub chunk_size: Option<u64>,
    pub(crate) base: Mutex<Option<Endpoint>>,
    pub tokens: TokenCache,
}

/// One request: what, where, with which headers, in which auth scope.
#[derive(Debug)]
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Token scopes, e.g. `repository:a/b:pull`.
    pub scopes: Vec<String>,
    pub repository: Option<&'a str>,
    /// Safe to send again (with a replayable body).
    pub idempotent: bool,
}

/// A request body.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream { reader: &'a mut dyn Read, len: u64 },
}

impl Client {
    /// A client for `reference`'s registry, with credentials from `opts` (or looked up in
    /// the auth files for the reference's repository).
    pub fn for_reference(reference: &Reference, opts: &ClientOptions) -> Result<Client> {
        let creds = match &opts.credentials {
            Some(c) if c.applies_to(reference.registry()) => Some(c.clone()),
            _ => opts.auth.lookup(&reference.name())?,
        };
        Client::with_credentials(reference.registry(), reference.api_host(), creds, opts)
    }

    /// A client for `registry` (`HOST[:PORT]` as in references), with credentials from
    /// `opts` or the auth files' entry for the registry.
    pub fn new(registry: &str, opts: &ClientOptions) -> Result<Client> {
        let reference = Reference::parse_name_or_ref(&format!("{registry}/x"))?;
        let creds = match &opts.credentials {
            Some(c) if c.applies_to(reference.registry()) => Some(c.clone()),
            _ => opts.auth.lookup(reference.registry())?,
        };
        Client::with_credentials(reference.registry(), reference.api_host(), creds, opts)
    }

    fn with_credentials(
        registry: &str,
        host: &str,
        creds: Option<Credentials>,
        opts: &ClientOptions,
    ) -> Result<Client> {
        let tls_opts = TlsOptions {
            verify: opts.verify(),
            certs_root: opts.certs_root.clone(),
            cert_dir: opts.cert_dir.clone(),
            system_roots: opts.system_roots.clone(),
        };
        let tls = tls_config(registry, &tls_opts)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(USER_AGENT)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Ok(Client {
            inner: Arc::new(Inner {
                registry: registry.to_owned(),
                host: host.to_owned(),
                agent,
                allow_http: !opts.verify(),
                verify: opts.verify(),
                certs_dir: tls_opts.host_dir(registry).display().to_string(),
                creds,
                retries: opts.retries,
                retry_delay: opts.retry_delay,
                chunk_size: opts.chunk_size,
                base: Mutex::new(None),
                tokens: TokenCache::default(),
            }),
        })
    }

    /// The registry this client talks to (as in references).
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// Checks that the registry answers and accepts the credentials (`GET /v2/`, and a
    /// token request when it uses tokens): what `login` does before saving them.
    pub fn check_login(&self) -> Result<()> {
        let ep = self.endpoint()?;
        let req = Req {
            method: Method::GET,
            url: format!("{}/v2/", ep.base),
            headers: Vec::new(),
            scopes: Vec::new(),
            repository: None,
            idempotent: true,
        };
        if ep.challenge.as_ref().is_some_and(Challenge::is_bearer) && self.inner.creds.is_none() {
            return Err(RegistryError::Unauthorized {
                registry: self.inner.registry.clone(),
                repository: None,
                detail: "no credentials given".into(),
                had_credentials: false,
            });
        }
        let resp = self.send(&req, Payload::Empty)?;
        self.expect_status(&req, resp, &[200], None).map(|_| ())
    }

    /// The URL of an API path under `/v2/`.
    pub(crate) fn url(&self, path: &str) -> Result<String> {
        Ok(format!("{}/v2/{path}", self.endpoint()?.base))
    }

    /// Resolves an upload `Location` header against the endpoint.
    pub(crate) fn resolve_location(&self, location: &str) -> Result<String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(location.to_owned());
        }
        let base = self.endpoint()?.base;
        Ok(match location.strip_prefix('/') {
            Some(rest) => format!("{base}/{rest}"),
            None => format!("{base}/v2/{location}"),
        })
    }

    pub(crate) fn backoff(&self, attempt: u32) {
        std::thread::sleep(self.inner.retry_delay * 2u32.saturating_pow(attempt.min(6)));
    }

    /// Sends a request with authentication, retrying what can be retried. Returns any
    /// HTTP status; see [`Client::expect_status`].
    pub(crate) fn send(&self, req: &Req<'_>, mut payload: Payload<'_>) -> Result<Response<Body>> {
        let ep = self.endpoint()?;
        let replayable = req.idempotent && !matches!(payload, Payload::Stream { .. });
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            let auth = self.auth_header(ep.challenge.as_ref(), &req.scopes, req.repository)?;
            let mut builder = ureq::http::Request::builder()
                .method(req.method.clone())
                .uri(&req.url);
            for (k, v) in &req.headers {
                builder = builder.header(*k, v);
            }
            if let Some(a) = auth {
                builder = builder.header("authorization", a);
            }
            let built = |e: ureq::http::Error| self.protocol(&req.url, e.to_string());
            let result = match &mut payload {
                Payload::Empty => self.inner.agent.run(builder.body(()).map_err(built)?),
                Payload::Bytes(b) => self.inner.agent.run(builder.body(*b).map_err(built)?),
                Payload::Stream { reader, len } => {
                    let body = SendBody::from_reader(&mut **reader);
                    let request = builder
                        .header("content-length", len.to_string())
                        .body(body)
                        .map_err(built)?;
                    self.inner.agent.run(request)
                }
            };
            match result {
                Ok(resp)
                    if resp.status().as_u16() == 401
                        && !reauthenticated
                        && replayable
                        && ep.challenge.as_ref().is_some_and(Challenge::is_bearer) =>
                {
                    // The token may have expired or lack a scope: fetch a fresh one once.
                    self.inner.tokens.forget(&req.scopes);
                    reauthenticated = true;
                }
                Ok(resp)
                    if resp.status().is_server_error()
                        && replayable
                        && attempt < self.inner.retries =>
                {
                    tracing::debug!(url = %req.url, status = resp.status().as_u16(), "retrying");
                    self.backoff(attempt);
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if retryable(&e) && replayable && attempt < self.inner.retries => {
                    tracing::debug!(url = %req.url, error = %e, "retrying");
                    self.backoff(attempt);
                    attempt += 1;
                }
                Err(ureq::Error::Io(source)) if matches!(payload, Payload::Stream { .. }) => {
                    // The body's reader failed (or the connection did mid-body): keep the
                    // reader's error so its kind survives (e.g. a digest mismatch).
                    return Err(RegistryError::Transfer {
                        registry: self.inner.registry.clone(),
                        what: format!("{} {}", req.method, req.url),
                        source,
                    });
                }
                Err(e) => return Err(self.transport_error(e, &req.url)),
            }
        }
    }

    fn auth_header(
        &self,
        challenge: Option<&Challenge>,
        scopes: &[String],
        repository: Option<&str>,
    ) -> Result<Option<String>> {
        let registry_token = self
            .inner
            .creds
            .as_ref()
            .and_then(|c| c.registry_token.as_deref());
        match challenge {
            None => Ok(None),
            // A registry token is the bearer token itself.
            Some(_) if registry_token.is_some() => {
                Ok(registry_token.map(|t| format!("Bearer {t}")))
            }
            Some(c) if c.is_bearer() => {
                let token = crate::token::fetch(self, c, scopes, repository)?;
                Ok(Some(format!("Bearer {token}")))
            }
            Some(_) => Ok(self
                .inner
                .creds
                .as_ref()
                .map(|c| format!("Basic {}", c.basic()))),
        }
    }

    /// Runs a raw request with the client's agent (token requests).
    pub(crate) fn run_raw(
        &self,
        req: ureq::http::Request<()>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        self.inner.agent.run(req)
    }

    /// Runs a raw request with a small body (the OAuth2 token form).
    pub(crate) fn run_raw_bytes(
        &self,
        req: ureq::http::Request<Vec<u8>>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        self.inner.agent.run(req)
    }

    pub(crate) fn transport_error(&self, e: ureq::Error, url: &str) -> RegistryError {
        let detail = e.to_string();
        // rustls reports trust failures as `invalid peer certificate: ...`, sometimes
        // wrapped in an I/O error; ureq does not expose a typed variant for both.
        let tls_trust = matches!(&e, ureq::Error::Rustls(_) | ureq::Error::Io(_))
            && detail.contains("peer certificate");
        let mut detail = detail.strip_prefix("io: ").unwrap_or(&detail).to_owned();
        if url.starts_with("https://") && detail.contains("InvalidContentType") {
            detail.push_str(
                " (the server does not speak TLS; for a plain-HTTP registry pass \
                 --tls-verify=false or set insecure = true in registries.conf)",
            );
        }
        if tls_trust && self.inner.verify {
            return RegistryError::UntrustedCertificate {
                registry: self.inner.registry.clone(),
                detail,
                certs_dir: self.inner.certs_dir.clone(),
            };
        }
        RegistryError::Connect {
            registry: self.inner.registry.clone(),
            url: url.to_owned(),
            detail,
        }
    }

    pub(crate) fn protocol(&self, what: &str, reason: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.inner.registry.clone(),
            what: what.to_owned(),
            reason,
        }
    }
}

/// Connection-level failures worth another attempt.
pub(crate) fn retryable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
    )
}
