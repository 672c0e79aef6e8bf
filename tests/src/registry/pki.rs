//! Test certificates made with the `openssl` CLI: a CA, a server certificate for
//! 127.0.0.1/localhost signed by it, and a self-signed token-signing certificate (ECDSA
//! P-256 throughout). Test-only keys with a two-day lifetime; nothing here is for production.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files written by [`make_tls`].
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Files written by [`make_token_signer`].
#[derive(Debug, Clone)]
pub struct SignerFiles {
    /// The certificate the registry trusts (`rootcertbundle`), PEM.
    pub cert_pem: PathBuf,
    /// PKCS#8 DER private key.
    pub key_der: Vec<u8>,
    /// The certificate, DER (for the JWT `x5c` header).
    pub cert_der: Vec<u8>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl (install the Debian package `openssl`): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const CA_CONF: &str = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = CNAME\n\
[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign,digitalSignature\n\
subjectKeyIdentifier = hash\n";

const SERVER_EXT: &str = "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n\
subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n";

fn self_signed(dir: &Path, name: &str, cn: &str) {
    let conf = format!("{name}.cnf");
    std::fs::write(dir.join(&conf), CA_CONF.replace("CNAME", cn)).expect("write openssl config");
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-config",
            &conf,
            "-extensions",
            "v3_ca",
        ],
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost in `dir`.
pub fn make_tls(dir: &Path) -> TlsFiles {
    self_signed(dir, "ca", "strata-test-ca");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "server.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("server.ext"), SERVER_EXT).expect("write openssl extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    TlsFiles {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    }
}

/// A self-signed token-signing certificate and its key in `dir`.
pub fn make_token_signer(dir: &Path) -> SignerFiles {
    self_signed(dir, "token", "strata-test-token-issuer");
    let cert_pem = dir.join("token.crt");
    let key_pem = std::fs::read_to_string(dir.join("token.key")).expect("read token key");
    let cert = std::fs::read_to_string(&cert_pem).expect("read token cert");
    SignerFiles {
        key_der: pem_to_der(&key_pem, "PRIVATE KEY"),
        cert_der: pem_to_der(&cert, "CERTIFICATE"),
        cert_pem,
    }
}

/// The DER body of the first PEM block labelled `label`.
fn pem_to_der(pem: &str, label: &str) -> Vec<u8> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .unwrap_or_else(|| panic!("no {label} in PEM"))
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("unterminated {label}"))
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM body is base64")
}
