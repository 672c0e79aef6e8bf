//! Authentication against a real registry: htpasswd Basic auth and the token flow with a
//! real token configuration (the registry verifies JWTs signed by the test token server).

mod common;

use common::{image, options, pull_and_compare, push, reference};
use strata_graph_image::ImageError;
use strata_graph_registry::{
    AuthEnv, AuthStore, Client, Credentials, DockerDestination, DockerOptions, DockerSource,
};
use strata_tests::registry::{Registry, RegistryOptions};
use strata_types::{ErrorKind, HasKind};

fn with_creds(reg: &Registry, user: &str, pass: &str) -> DockerOptions {
    let mut o = options(reg);
    o.client.credentials = Some(Credentials::new(user, pass));
    o
}

fn push_err(reg: &Registry, opts: &DockerOptions) -> ImageError {
    let img = image(20, &[10]);
    let dest = DockerDestination::open(&reference(reg, "auth/app:1"), opts).expect("dest");
    push(&dest, &img).expect_err("push must fail")
}

fn assert_unauthorized(e: &ImageError, host: &str, hint: &str) {
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{msg}");
    assert!(msg.contains("unauthorized"), "{msg}");
    assert!(msg.contains(host), "{msg}");
    assert!(msg.contains(hint), "{msg}");
}

#[test]
fn basic_auth() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("alice".into(), "right-pass".into())),
        ..RegistryOptions::default()
    });
    let e = push_err(&reg, &options(&reg));
    assert_unauthorized(&e, &reg.host(), "log in first");
    let e = push_err(&reg, &with_creds(&reg, "alice", "wrong"));
    assert_unauthorized(&e, &reg.host(), "check the username and password");

    let bad = Client::new(&reg.host(), &with_creds(&reg, "alice", "wrong").client).expect("client");
    let e = bad.check_login().expect_err("wrong password");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);

    let opts = with_creds(&reg, "alice", "right-pass");
    Client::new(&reg.host(), &opts.client)
        .expect("client")
        .check_login()
        .expect("right password");
    let img = image(21, &[3000]);
    let r = reference(&reg, "auth/app:1");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);
}

#[test]
fn credentials_from_an_auth_file_written_by_login() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("bob".into(), "pw".into())),
        ..RegistryOptions::default()
    });
    let home = tempfile::tempdir().expect("tempdir");
    let store = AuthStore::new(
        AuthEnv {
            home: Some(home.path().to_path_buf()),
            ..AuthEnv::default()
        },
        None,
    );
    store
        .login(&reg.host(), &Credentials::new("bob", "pw"))
        .expect("login");
    let mut opts = options(&reg);
    opts.client.auth = store.clone();
    let img = image(22, &[10]);
    let r = reference(&reg, "from/file:1");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);

    store.logout(&reg.host()).expect("logout");
    opts.client.auth = store;
    let e = DockerSource::open(&r, &opts).expect_err("logged out");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
}

#[test]
fn token_auth() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("carol".into(), "tok-pass".into())),
        token_auth: true,
        ..RegistryOptions::default()
    });
    let e = push_err(&reg, &options(&reg));
    assert_unauthorized(&e, &reg.host(), "log in first");
    let e = push_err(&reg, &with_creds(&reg, "carol", "nope"));
    assert_unauthorized(&e, &reg.host(), "check the username and password");
    let e = Client::new(&reg.host(), &with_creds(&reg, "carol", "nope").client)
        .expect("client")
        .check_login()
        .expect_err("wrong password");
    assert!(
        e.to_string().contains("check the username and password"),
        "{e}"
    );

    let opts = with_creds(&reg, "carol", "tok-pass");
    Client::new(&reg.host(), &opts.client)
        .expect("client")
        .check_login()
        .expect("right password");
    let img = image(23, &[2000, 10]);
    let r = reference(&reg, "tok/app:1");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);

    let requests = reg.token_server().expect("token server").requests();
    assert!(
        requests
            .iter()
            .any(|q| q.contains("scope=repository%3Atok%2Fapp%3Apull%2Cpush")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|q| q.contains("service=strata-test-registry") && q.contains("account=carol")),
        "{requests:?}"
    );
}
