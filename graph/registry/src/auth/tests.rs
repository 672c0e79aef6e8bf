//! Unit tests for auth.json lookup, login and logout.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn env(dir: &Path) -> AuthEnv {
    AuthEnv {
        registry_auth_file: None,
        xdg_runtime_dir: Some(dir.join("run")),
        home: Some(dir.join("home")),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn login_writes_0600_and_keeps_other_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = AuthStore::new(env(dir.path()), None);
    let path = dir.path().join("run/containers/auth.json");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &path,
        r#"{"auths":{"quay.io":{"auth":"cTpw"}},"credHelpers":{"x.io":"helper"}}"#,
    )
    .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let written = store
        .login("localhost:5000", &Credentials::new("alice", "s3:cret"))
        .expect("login");
    assert_eq!(written, path);
    assert_eq!(mode(&path), 0o600, "existing file's mode is fixed");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(doc["credHelpers"]["x.io"], "helper");
    assert_eq!(doc["auths"]["quay.io"]["auth"], "cTpw");
    assert_eq!(
        store.lookup("localhost:5000/a/b").expect("lookup"),
        Some(Credentials::new("alice", "s3:cret"))
    );
    assert_eq!(
        store.lookup("quay.io/x").expect("lookup"),
        Some(Credentials::new("q", "p"))
    );

    store.logout("localhost:5000").expect("logout");
    assert_eq!(store.lookup("localhost:5000").expect("lookup"), None);
    assert!(store.lookup("quay.io").expect("lookup").is_some());
    let e = store.logout("localhost:5000").expect_err("not logged in");
    assert!(
        e.to_string().contains("not logged in to localhost:5000"),
        "{e}"
    );

    store.logout_all().expect("logout all");
    assert_eq!(store.lookup("quay.io").expect("lookup"), None);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn new_file_creates_parents_with_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = AuthEnv {
        xdg_runtime_dir: None,
        ..env(dir.path())
    };
    let store = AuthStore::new(e, None);
    let p = store
        .login("docker.io", &Credentials::new("u", "p"))
        .expect("login");
    assert_eq!(p, dir.path().join("home/.config/containers/auth.json"));
    assert_eq!(mode(&p), 0o600);

    let explicit = dir.path().join("deep/er/auth.json");
    let store = AuthStore::new(env(dir.path()), Some(explicit.clone()));
    assert_eq!(
        store
            .login("h:1", &Credentials::new("u", "p"))
            .expect("login"),
        explicit
    );
    assert_eq!(mode(&explicit), 0o600);
    assert_eq!(store.read_paths(), [explicit]);
}

#[test]
fn lookup_order_specificity_and_legacy_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).expect("mkdir");
    let enc = |u: &str, p: &str| Credentials::new(u, p).encoded();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"example.com":{{"auth":"{}"}}}}}}"#,
            enc("hub", "1"),
            enc("docker-cfg", "2")
        ),
    )
    .expect("write");
    std::fs::create_dir_all(home.join(".config/containers")).expect("mkdir");
    std::fs::write(
        home.join(".config/containers/auth.json"),
        format!(
            r#"{{"auths":{{"example.com":{{"auth":"{}"}},"example.com/team":{{"auth":"{}"}}}}}}"#,
            enc("general", "3"),
            enc("team", "4")
        ),
    )
    .expect("write");
    let store = AuthStore::new(env(dir.path()), None);
    let user = |n: &str| store.lookup(n).expect("lookup").map(|c| c.username);
    assert_eq!(user("docker.io/library/busybox").as_deref(), Some("hub"));
    assert_eq!(user("example.com/team/app").as_deref(), Some("team"));
    assert_eq!(user("example.com/other/app").as_deref(), Some("general"));
    assert_eq!(user("example.com/teamx").as_deref(), Some("general"));
    assert_eq!(user("elsewhere.io"), None);

    // $REGISTRY_AUTH_FILE comes first.
    let raf = dir.path().join("raf.json");
    std::fs::write(
        &raf,
        format!(
            r#"{{"auths":{{"example.com":{{"auth":"{}"}}}}}}"#,
            enc("raf", "5")
        ),
    )
    .expect("write");
    let store = AuthStore::new(
        AuthEnv {
            registry_auth_file: Some(raf.clone()),
            ..env(dir.path())
        },
        None,
    );
    assert_eq!(
        store
            .lookup("example.com/team/app")
            .expect("lookup")
            .map(|c| c.username),
        Some("raf".into())
    );
    assert_eq!(store.write_path().expect("path"), raf);
}

#[test]
fn creds_flag_and_key_normalization() {
    assert_eq!(
        Credentials::parse("me:pa:ss").expect("valid"),
        Credentials::new("me", "pa:ss")
    );
    assert!(Credentials::parse(":x").is_err());
    assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
    assert_eq!(normalize_key("http://myhost:5000/v2/"), "myhost:5000");
    assert_eq!(normalize_key("quay.io/ns/"), "quay.io/ns");
    assert!(!format!("{:?}", Credentials::new("u", "secret")).contains("secret"));
}

#[test]
fn malformed_file_names_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("auth.json");
    std::fs::write(&p, "{not json").expect("write");
    let store = AuthStore::new(AuthEnv::default(), Some(p.clone()));
    let e = store.lookup("x.io").expect_err("malformed");
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");
}

#[test]
fn identity_tokens_are_read_with_their_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("auth.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"auths":{{"example.com":{{"auth":"{}","identitytoken":"refresh-1"}},"other.io":{{"identitytoken":"refresh-2"}}}}}}"#,
            Credentials::new("<token>", "").encoded()
        ),
    )
    .expect("write");
    let store = AuthStore::new(env(dir.path()), Some(file));
    let c = store
        .lookup("example.com/app")
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (c.username.as_str(), c.identity_token.as_deref()),
        ("<token>", Some("refresh-1"))
    );
    let c = store
        .lookup("other.io/app")
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (c.username.as_str(), c.identity_token.as_deref()),
        ("", Some("refresh-2"))
    );
    assert!(
        !format!("{c:?}").contains("refresh-2"),
        "tokens never reach logs"
    );
}

#[test]
fn credentials_scoped_to_a_registry_and_basic_with_an_identity_token() {
    let c = Credentials::new("u", "p").for_registry("https://index.docker.io/v1/");
    assert_eq!(c.registry.as_deref(), Some("docker.io"));
    assert!(c.applies_to("docker.io") && !c.applies_to("quay.io"));
    let c = Credentials::new("u", "p").for_registry("http://127.0.0.1:5000");
    assert!(c.applies_to("127.0.0.1:5000") && !c.applies_to("127.0.0.1"));
    assert!(Credentials::new("u", "p").applies_to("anywhere.io"));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(Credentials::new("u", "p").basic(), b64("u:p"));
    assert_eq!(
        Credentials::with_identity_token("<token>", "refresh").basic(),
        b64("<token>:refresh")
    );
}
