//! HTTPS against a real registry with a certificate from a test CA: trusted through a
//! certs.d directory (or `--cert-dir`), refused with a clear message when not trusted, and
//! accepted with verification off.

mod common;

use common::{image, options, pull_and_compare, push, reference};
use strata_graph_registry::{Client, DockerDestination, DockerSource, RegistryError};
use strata_tests::registry::{Registry, RegistryOptions};
use strata_types::{ErrorKind, HasKind};

fn tls_registry() -> Registry {
    Registry::start(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    })
}

#[test]
fn trusted_through_certs_d() {
    let reg = tls_registry();
    let opts = options(&reg);
    assert_eq!(opts.client.tls_verify, None, "verification on by default");
    let img = image(10, &[4096]);
    let r = reference(&reg, "secure/app:1");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push over HTTPS");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);

    // --cert-dir names the directory directly.
    let mut opts = options(&reg);
    opts.client.certs_root = "/nonexistent".into();
    opts.client.cert_dir = Some(reg.certs_root().join(reg.host()));
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);
}

#[test]
fn untrusted_certificate_fails_clearly_unless_verification_is_off() {
    let reg = tls_registry();
    let empty = tempfile::tempdir().expect("tempdir");
    let mut opts = options(&reg);
    opts.client.certs_root = empty.path().to_path_buf();

    let client = Client::new(&reg.host(), &opts.client).expect("client");
    let e = client.check_login().expect_err("untrusted CA");
    assert!(
        matches!(e, RegistryError::UntrustedCertificate { .. }),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let msg = e.to_string();
    assert!(msg.contains(&reg.host()), "{msg}");
    assert!(msg.contains("--tls-verify=false"), "{msg}");
    assert!(
        msg.contains(&format!("{}/{}/ca.crt", empty.path().display(), reg.host())),
        "{msg}"
    );

    let img = image(11, &[100]);
    let r = reference(&reg, "secure/app:1");
    let dest = DockerDestination::open(&r, &opts).expect("dest");
    let e = push(&dest, &img).expect_err("push to an untrusted registry");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("--tls-verify=false"), "{e}");

    opts.client.tls_verify = Some(false);
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push unverified");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);
}
