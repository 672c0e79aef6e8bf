//! A real container registry for tests: Debian's `docker-registry` (distribution 2.8) on a
//! free port of 127.0.0.1, with its own temporary config and storage, optionally over TLS
//! (a test CA made with `openssl`), with htpasswd Basic auth (bcrypt via `htpasswd -B`), or
//! with token auth backed by a real token server ([`token::TokenServer`]).
//!
//! A missing `/usr/bin/docker-registry`, `htpasswd` or `openssl` fails the test with the
//! package to install; nothing is skipped. The registry process is killed (by its PID) and
//! reaped on drop. Deletion is enabled so tests can delete manifests.
//!
//! ```text
//! TMP/
//!   config.yml          registry configuration
//!   registry.log        its stdout and stderr
//!   storage/docker/registry/v2/blobs/sha256/XX/HEX/data
//!   ca.crt server.crt   TLS material (tls: true)
//!   token.crt           token-signing certificate (token_auth: true)
//!   htpasswd
//!   certs.d/127.0.0.1:PORT/ca.crt   a ready-made certs.d root trusting the CA
//! ```

mod pki;
pub mod token;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use token::TokenServer;

/// The registry binary (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How to run the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate from a test CA (see [`Registry::certs_root`]).
    pub tls: bool,
    /// Require this user and password: with Basic auth (htpasswd), or through the token
    /// server when `token_auth` is set.
    pub htpasswd: Option<(String, String)>,
    /// Use token auth (needs `htpasswd` for the user the token server accepts).
    pub token_auth: bool,
    /// The token server has no OAuth2 endpoint (`POST` answers 404) and takes the user's
    /// identity token as a Basic password instead, as some registries' token servers do.
    pub token_without_oauth: bool,
}

/// A running registry; stopped on drop.
#[derive(Debug)]
pub struct Registry {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Child,
    tls: bool,
    ca_cert: Option<PathBuf>,
    token: Option<TokenServer>,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers.
    pub fn start(opts: RegistryOptions) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install the Debian package `docker-registry` \
             (cargo xtask setup does)"
        );
        assert!(
            !opts.token_auth || opts.htpasswd.is_some(),
            "token_auth needs htpasswd credentials for the token server"
        );
        let dir = tempfile::tempdir().expect("registry temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("registry storage dir");
        let tls_files = opts.tls.then(|| pki::make_tls(dir.path()));
        let mut auth = String::new();
        let mut token = None;
        if let Some((user, pass)) = &opts.htpasswd {
            if opts.token_auth {
                let signer = pki::make_token_signer(dir.path());
                let server = TokenServer::start_with(
                    &signer.key_der,
                    &signer.cert_der,
                    user,
                    pass,
                    !opts.token_without_oauth,
                );
                auth = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    signer.cert_pem.display()
                );
                token = Some(server);
            } else {
                let path = dir.path().join("htpasswd");
                write_htpasswd(&path, user, pass);
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                    path.display()
                );
            }
        }
        // A freshly bound ephemeral port can be taken by someone else before the registry
        // binds it; start again on another port if the registry exits early.
        let scheme = if opts.tls { "https" } else { "http" };
        let mut attempt = 0;
        let (child, addr) = loop {
            attempt += 1;
            let addr = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                 delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: {addr}\n  secret: strata-test-secret\n",
                storage.display()
            );
            if let Some(t) = &tls_files {
                let _ = write!(
                    config,
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    t.server_cert.display(),
                    t.server_key.display()
                );
            }
            config.push_str(&auth);
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("registry log");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            match wait_ready(&mut child, &format!("{scheme}://{addr}/v2/")) {
                Ok(()) => break (child, addr),
                Err(exited) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !exited || attempt >= 5 {
                        panic!(
                            "docker-registry did not become ready:\n{}",
                            std::fs::read_to_string(&log_path).unwrap_or_default()
                        );
                    }
                }
            }
        };
        let reg = Registry {
            dir,
            addr,
            child,
            tls: opts.tls,
            ca_cert: tls_files.map(|t| t.ca_cert),
            token,
        };
        reg.write_certs_root();
        reg
    }

    fn write_certs_root(&self) {
        if let Some(ca) = &self.ca_cert {
            let d = self.certs_root().join(self.host());
            std::fs::create_dir_all(&d).expect("certs.d dir");
            std::fs::copy(ca, d.join("ca.crt")).expect("copy CA into certs.d");
        }
    }

    /// `127.0.0.1:PORT`, as it appears in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The test CA's certificate (TLS registries).
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// A certs.d root whose `127.0.0.1:PORT/ca.crt` trusts this registry (TLS registries;
    /// an empty directory otherwise).
    pub fn certs_root(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// The registry's storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the bytes of the blob with this sha256 hex digest.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The token server (token-auth registries).
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` (`GET /v2/`) until it answers 200 or 401. `Err(true)` if the process exited.
fn wait_ready(child: &mut Child, url: &str) -> Result<(), bool> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .build()
        .new_agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(true);
        }
        if let Ok(resp) = agent.get(url).call() {
            if matches!(resp.status().as_u16(), 200 | 401) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(false)
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

fn write_htpasswd(path: &Path, user: &str, pass: &str) {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run htpasswd (install the Debian package `apache2-utils`): {e}")
        });
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, out.stdout).expect("write htpasswd");
}
