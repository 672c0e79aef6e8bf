//! TLS trust for one registry: the system CA bundle plus the containers-certs.d(5) directory
//! of that registry (`/etc/containers/certs.d/HOST[:PORT]/`): `*.crt` files are extra CAs,
//! `*.cert` + `*.key` pairs are client certificates. A `--cert-dir` replaces the per-host
//! directory.
//!
//! Verification is on unless the caller turns it off for this registry. Not done here:
//! `/etc/docker/certs.d` (docker's own directory), certificate revocation.

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::error::{RegistryError, Result};

/// The default certs.d root.
pub const DEFAULT_CERTS_ROOT: &str = "/etc/containers/certs.d";
/// The Debian/Ubuntu system CA bundle.
pub const DEFAULT_SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where a registry's trust comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Verify the server certificate (podman's `--tls-verify`).
    pub verify: bool,
    /// Root of the per-registry directories (`/etc/containers/certs.d`).
    pub certs_root: PathBuf,
    /// Replaces `certs_root/HOST` (skopeo's `--cert-dir`).
    pub cert_dir: Option<PathBuf>,
    /// The system CA bundle (PEM); when missing, the built-in Mozilla roots are used.
    pub system_roots: PathBuf,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            verify: true,
            certs_root: PathBuf::from(DEFAULT_CERTS_ROOT),
            cert_dir: None,
            system_roots: PathBuf::from(DEFAULT_SYSTEM_ROOTS),
        }
    }
}

impl TlsOptions {
    /// The directory consulted for `host` (`HOST[:PORT]` as in references).
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.cert_dir
            .clone()
            .unwrap_or_else(|| self.certs_root.join(host))
    }
}

/// Builds the TLS configuration for `host`.
pub fn tls_config(host: &str, opts: &TlsOptions) -> Result<TlsConfig> {
    let dir = opts.host_dir(host);
    let (extra_cas, client_cert) = read_host_dir(&dir)?;
    let mut builder = TlsConfig::builder().client_cert(client_cert);
    if !opts.verify {
        return Ok(builder.disable_verification(true).build());
    }
    let mut roots = match std::fs::read(&opts.system_roots) {
        Ok(pem) => certs_from_pem(&pem, &opts.system_roots)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(RegistryError::io("read", &opts.system_roots)(e)),
    };
    if roots.is_empty() && extra_cas.is_empty() {
        tracing::debug!(bundle = %opts.system_roots.display(),
            "no system CA bundle; using the built-in Mozilla roots");
        builder = builder.root_certs(RootCerts::WebPki);
    } else {
        roots.extend(extra_cas);
        builder = builder.root_certs(RootCerts::new_with_certs(&roots));
    }
    Ok(builder.build())
}

type HostDir = (Vec<Certificate<'static>>, Option<ClientCert>);

fn read_host_dir(dir: &Path) -> Result<HostDir> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(RegistryError::io("read directory", dir)(e)),
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut cas = Vec::new();
    let mut client = None;
    for path in files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let pem = std::fs::read(&path).map_err(RegistryError::io("read", &path))?;
                cas.extend(certs_from_pem(&pem, &path)?);
            }
            Some("cert") => {
                let key_path = path.with_extension("key");
                let pem = std::fs::read(&path).map_err(RegistryError::io("read", &path))?;
                let chain = certs_from_pem(&pem, &path)?;
                let key_pem = std::fs::read(&key_path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        bad(
                            &key_path,
                            "missing: a client certificate *.cert needs its *.key",
                        )
                    } else {
                        RegistryError::io("read", &key_path)(e)
                    }
                })?;
                let key = PrivateKey::from_pem(&key_pem)
                    .map_err(|e| bad(&key_path, &format!("not a PEM private key: {e}")))?;
                if client.is_some() {
                    tracing::warn!(cert = %path.display(), "several client certificates; using the first");
                } else {
                    client = Some(ClientCert::new_with_certs(&chain, key));
                }
            }
            Some("key") if !path.with_extension("cert").exists() => {
                return Err(bad(
                    &path,
                    "a client key *.key needs its certificate *.cert",
                ));
            }
            _ => {}
        }
    }
    Ok((cas, client))
}

fn certs_from_pem(pem: &[u8], path: &Path) -> Result<Vec<Certificate<'static>>> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad(path, &format!("invalid PEM: {e}"))),
        }
    }
    Ok(out)
}

fn bad(path: &Path, reason: &str) -> RegistryError {
    RegistryError::InvalidConfig {
        what: "TLS file",
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_dir_replaces_the_host_directory() {
        let o = TlsOptions::default();
        assert_eq!(
            o.host_dir("localhost:5000"),
            Path::new("/etc/containers/certs.d/localhost:5000")
        );
        let o = TlsOptions {
            cert_dir: Some("/x".into()),
            ..o
        };
        assert_eq!(o.host_dir("localhost:5000"), Path::new("/x"));
    }

    #[test]
    fn key_without_cert_and_bad_pem_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("client.key"), "x").expect("write");
        let o = TlsOptions {
            cert_dir: Some(dir.path().to_path_buf()),
            ..TlsOptions::default()
        };
        let e = tls_config("h", &o).expect_err("lone key");
        assert!(e.to_string().contains("client.key"), "{e}");

        std::fs::remove_file(dir.path().join("client.key")).expect("rm");
        std::fs::write(
            dir.path().join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = tls_config("h", &o).expect_err("bad pem");
        assert!(e.to_string().contains("ca.crt"), "{e}");
    }

    #[test]
    fn missing_directory_is_fine() {
        let o = TlsOptions {
            cert_dir: Some("/nonexistent/strata-certs".into()),
            ..TlsOptions::default()
        };
        assert!(tls_config("h", &o).is_ok());
    }
}
