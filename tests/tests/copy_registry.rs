//! `strata copy` and the registry commands against a real registry (Debian's
//! `docker-registry`, started per test on 127.0.0.1): pushes real skopeo reads, pulls of what
//! real skopeo pushed mount as umoci's tree, registry -> store -> registry keeps the config and
//! diff IDs, basic and token auth, TLS with a custom CA, `login`/`logout`, `list-tags`,
//! `delete`, `sync`, and corrupt blobs or manifests that leave the store unchanged.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;
use strata_tests::registry::{Registry, RegistryOptions};
use strata_tests::{fixtures, require_privileged, Strata};

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("string").to_owned())
        .collect()
}

fn remote_config(reference: &str, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", "--config"];
    args.extend_from_slice(extra);
    args.push(reference);
    serde_json::from_str(&skopeo(&args)).expect("config JSON")
}

fn one_line(err: &str) -> &str {
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("strata: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{err}");
    lines[0]
}

/// skopeo pushes, strata pulls into the store (mounts as umoci's tree); strata pushes the
/// stored image to another repository and skopeo sees the same config and diff IDs;
/// list-tags, inspect-remote, sync and delete see what a user expects.
#[test]
fn registry_round_trips_with_skopeo_on_the_other_end() {
    if !require_privileged(
        "copy_registry::registry_round_trips_with_skopeo_on_the_other_end",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let reg = Registry::start(RegistryOptions::default());
    let host = reg.host();
    let s = Strata::new("overlay");
    let pushed_by_skopeo = format!("docker://{host}/skopeo/layers:1");
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &fixtures::oci("layers"),
        &pushed_by_skopeo,
    ]);
    let want = diff_ids(&fixtures::config("layers", None));

    let id = s.ok([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &pushed_by_skopeo,
        "store:layers",
    ]);
    assert_eq!(
        id.trim(),
        fixtures::config_digest("layers", None),
        "image ID = config digest"
    );
    s.assert_mounts_as("layers", "layers", "c1");

    // Within one registry, blobs are mounted from the source repository, not uploaded again.
    s.ok([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &pushed_by_skopeo,
        &format!("docker://{host}/mounted/layers:1"),
    ]);
    let log = reg.log();
    assert!(
        log.contains("/v2/mounted/layers/blobs/uploads/?") && log.contains("mount=sha256"),
        "no cross-repository mount request in the registry log:\n{log}"
    );
    assert!(
        !log.contains("PATCH /v2/mounted/layers/blobs/uploads/")
            && !log.contains("PUT /v2/mounted/layers/blobs/uploads/"),
        "layer bytes were uploaded again instead of mounted"
    );

    // store -> registry (strata pushes), read back by skopeo.
    let pushed_by_strata = format!("docker://{host}/strata/layers:2");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "store:layers",
        &pushed_by_strata,
    ]);
    let config = remote_config(&pushed_by_strata, &["--tls-verify=false"]);
    assert_eq!(
        diff_ids(&config),
        want,
        "diff IDs survive registry -> store -> registry"
    );
    assert_eq!(
        config,
        fixtures::config("layers", None),
        "the config is unchanged"
    );
    // skopeo can copy what we pushed, and strata reads it back into another store.
    let out = s.scratch().join("from-skopeo");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &pushed_by_strata,
        &format!("oci:{}:x", out.display()),
    ]);
    let s2 = Strata::new("vfs");
    let id2 = s2.ok([
        "copy",
        "--quiet",
        &format!("oci:{}:x", out.display()),
        "store:again",
    ]);
    assert_eq!(id2.trim(), id.trim(), "the image ID survives every hop");

    // busybox as a second tag of the same repository, then the registry commands.
    let repo = format!("{host}/strata/layers");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &fixtures::oci("busybox"),
        &format!("docker://{repo}:3"),
    ]);
    let tags: Value = serde_json::from_str(&s.ok([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]))
    .expect("JSON");
    assert_eq!(tags["Repository"], repo.as_str());
    let mut t: Vec<&str> = tags["Tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    t.sort_unstable();
    assert_eq!(t, ["2", "3"]);
    let info: Value = serde_json::from_str(&s.ok([
        "inspect-remote",
        "--tls-verify=false",
        &format!("docker://{repo}:3"),
    ]))
    .expect("JSON");
    assert_eq!(info["Name"], repo.as_str());
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1));
    let raw = s.ok([
        "inspect-remote",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:3"),
    ]);
    let skopeo_raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:3"),
    ]);
    assert_eq!(raw, skopeo_raw, "--raw prints the manifest bytes as stored");

    // sync: every tag into one OCI layout.
    let mirror = s.scratch().join("mirror");
    s.ok([
        "sync",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{repo}"),
        &format!("oci:{}", mirror.display()),
    ]);
    for tag in ["2", "3"] {
        let c = remote_config(&format!("oci:{}:{tag}", mirror.display()), &[]);
        assert!(!diff_ids(&c).is_empty(), "tag {tag} synced");
    }

    // delete removes the tag's manifest; the other tag stays.
    s.ok([
        "delete",
        "--tls-verify=false",
        &format!("docker://{repo}:3"),
    ]);
    let tags: Value = serde_json::from_str(&s.ok([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]))
    .expect("JSON");
    let t: Vec<&str> = tags["Tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(t, ["2"], "after delete");
    let (code, err) = s.fail([
        "inspect-remote",
        "--tls-verify=false",
        &format!("docker://{repo}:3"),
    ]);
    assert_eq!(code, 3, "a deleted image is not found: {err}");
    s.assert_clean();
}

/// Basic auth: a wrong password is a clear one-line error (exit 6) and stores nothing; the
/// right one works; `login` stores it (mode 0600) and later copies use it; `logout` forgets.
#[test]
fn basic_auth_login_and_logout() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("alice".into(), "s3cret".into())),
        ..RegistryOptions::default()
    });
    let host = reg.host();
    let s = Strata::new("vfs");
    let dst = format!("docker://{host}/private/busybox:1");
    let (code, err) = s.fail([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wrong",
        &fixtures::oci("busybox"),
        &dst,
    ]);
    let line = one_line(&err);
    assert!(
        line.contains(&host) && line.to_lowercase().contains("password"),
        "{line}"
    );
    assert_eq!(code, 6, "{err}");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &fixtures::oci("busybox"),
        &dst,
    ]);

    let authfile = s.scratch().join("auth/auth.json");
    let mut login = s.command();
    login
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "--password-stdin",
            "--authfile",
        ])
        .arg(&authfile)
        .arg(&host)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().expect("spawn login");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"s3cret\n")
            .expect("write password");
    }
    let out = child.wait_with_output().expect("login");
    assert!(
        out.status.success(),
        "login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&authfile)
        .expect("auth.json written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "credentials file mode");
    let text = std::fs::read_to_string(&authfile).expect("read auth.json");
    assert!(text.contains(&host), "{text}");

    let af = authfile.to_str().expect("utf-8");
    s.ok([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--authfile",
        af,
        &dst,
        "store:private",
    ]);
    assert_eq!(s.list("images").len(), 1);
    s.ok(["logout", "--authfile", af, &host]);
    let (code, err) = s.fail([
        "inspect-remote",
        "--tls-verify=false",
        "--authfile",
        af,
        &dst,
    ]);
    assert_eq!(code, 6, "after logout the registry refuses: {err}");

    // A wrong password at login is refused and nothing is stored.
    let (code, err) = s.fail([
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "nope",
        "--authfile",
        af,
        &host,
    ]);
    assert_eq!(code, 6, "{err}");
    let text = std::fs::read_to_string(&authfile).unwrap_or_default();
    assert!(
        !text.contains("nope") && !text.contains(&host),
        "a failed login stored credentials: {text}"
    );
}

/// Token auth (a real token server the registry trusts): the challenge flow works with the
/// right credentials and fails clearly with wrong ones.
#[test]
fn token_auth_flow() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("bob".into(), "pw".into())),
        token_auth: true,
        ..RegistryOptions::default()
    });
    let host = reg.host();
    let s = Strata::new("vfs");
    let dst = format!("docker://{host}/tok/busybox:1");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:pw",
        &fixtures::oci("busybox"),
        &dst,
    ]);
    s.ok([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        "bob:pw",
        &dst,
        "store:tok",
    ]);
    assert_eq!(s.list("images").len(), 1);
    let (code, err) = s.fail([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        "bob:bad",
        &dst,
        "store:tok2",
    ]);
    assert_eq!(code, 6, "{err}");
    one_line(&err);
}

/// An auth.json entry with an `identitytoken` (what `docker login` stores for an identity
/// provider): bearer tokens come from the OAuth2 form with that refresh token, and a wrong
/// one fails as unauthorized.
#[test]
fn identity_tokens_from_auth_files_are_traded_for_bearer_tokens() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("bob".into(), "pw".into())),
        token_auth: true,
        ..RegistryOptions::default()
    });
    let host = reg.host();
    let tokens = reg.token_server().expect("a token server");
    let s = Strata::new("vfs");
    let dst = format!("docker://{host}/idt/busybox:1");
    let authfile = s.scratch().join("auth.json");
    let write_auth = |token: &str| {
        std::fs::write(
            &authfile,
            serde_json::json!({"auths": {host.clone(): {"auth": "", "identitytoken": token}}})
                .to_string(),
        )
        .expect("auth.json");
    };
    write_auth(&tokens.identity_token());
    let af = authfile.to_str().expect("utf-8");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--authfile",
        af,
        &fixtures::oci("busybox"),
        &dst,
    ]);
    s.ok([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--authfile",
        af,
        &dst,
        "store:idt",
    ]);
    assert_eq!(s.list("images").len(), 1);
    let posts: Vec<String> = tokens
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST "))
        .collect();
    assert!(
        !posts.is_empty()
            && posts.iter().all(|p| p.contains("grant_type=refresh_token")
                && p.contains("scope=repository%3Aidt%2Fbusybox%3A")),
        "the token server saw: {:?}",
        tokens.requests()
    );
    write_auth("not-the-token");
    let (code, err) = s.fail([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--authfile",
        af,
        &dst,
        "store:idt2",
    ]);
    assert_eq!(code, 6, "{err}");
    one_line(&err);
}

/// A token server without the OAuth2 endpoint (POST answers 404): the identity token goes
/// as the Basic password of a GET instead (containerd's fallback).
#[test]
fn identity_tokens_fall_back_to_basic_without_an_oauth_endpoint() {
    let reg = Registry::start(RegistryOptions {
        htpasswd: Some(("bob".into(), "pw".into())),
        token_auth: true,
        token_without_oauth: true,
        ..RegistryOptions::default()
    });
    let host = reg.host();
    let tokens = reg.token_server().expect("a token server");
    let s = Strata::new("vfs");
    let authfile = s.scratch().join("auth.json");
    std::fs::write(
        &authfile,
        serde_json::json!({"auths": {host.clone(): {"identitytoken": tokens.identity_token()}}})
            .to_string(),
    )
    .expect("auth.json");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--authfile",
        authfile.to_str().expect("utf-8"),
        &fixtures::oci("busybox"),
        &format!("docker://{host}/fallback/busybox:1"),
    ]);
    let seen = tokens.requests();
    assert!(
        seen.iter().any(|r| r == "POST refused")
            && seen
                .iter()
                .any(|r| r.contains("scope=repository%3Afallback")),
        "the token server saw: {seen:?}"
    );
}

/// TLS with a custom CA: trusted through --cert-dir it works; untrusted it fails naming the
/// fix; with verification off it works.
#[test]
fn tls_with_a_custom_ca() {
    let reg = Registry::start(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let host = reg.host();
    let s = Strata::new("vfs");
    let dst = format!("docker://{host}/tls/busybox:1");
    let (code, err) = s.fail(["copy", "--quiet", &fixtures::oci("busybox"), &dst]);
    let line = one_line(&err);
    assert!(
        line.contains("tls-verify") || line.contains("certs.d"),
        "the error says how to fix it: {line}"
    );
    assert_eq!(code, 9, "{err}");
    let cert_dir = reg.certs_root().join(&host);
    let cd = cert_dir.to_str().expect("utf-8");
    s.ok([
        "copy",
        "--quiet",
        "--dest-cert-dir",
        cd,
        &fixtures::oci("busybox"),
        &dst,
    ]);
    s.ok(["copy", "--quiet", "--src-cert-dir", cd, &dst, "store:viaca"]);
    s.ok([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &dst,
        "store:noverify",
    ]);
    assert_eq!(s.list("images").len(), 1, "one image under two names");
}

/// A registry serving a corrupted layer blob, and a manifest that does not match the digest
/// it was asked for: clear errors, nothing in the store, no garbage.
#[test]
fn corrupt_registry_content_leaves_the_store_unchanged() {
    if !require_privileged(
        "copy_registry::corrupt_registry_content_leaves_the_store_unchanged",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let reg = Registry::start(RegistryOptions::default());
    let host = reg.host();
    let s = Strata::new("overlay");
    let img = format!("docker://{host}/bad/layers:1");
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &fixtures::oci("layers"),
        &img,
    ]);
    let manifest = fixtures::manifest("layers", None);

    // A tampered manifest, fetched by its digest.
    let mdigest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &img,
    ]);
    let mdigest = mdigest.trim().to_owned();
    let mpath = reg.blob_data(mdigest.trim_start_matches("sha256:"));
    let original = std::fs::read(&mpath).expect("manifest in the registry");
    let mut tampered = original.clone();
    let at = tampered.len() - 2;
    tampered.insert(at, b' ');
    std::fs::write(&mpath, &tampered).expect("tamper");
    let (code, err) = s.fail([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{host}/bad/layers@{mdigest}"),
        "store:x",
    ]);
    assert_eq!(code, 10, "corrupt exits 10: {err}");
    assert!(one_line(&err).contains("digest"), "{err}");
    std::fs::write(&mpath, &original).expect("restore");

    // A corrupted layer blob.
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .expect("digest")
        .trim_start_matches("sha256:")
        .to_owned();
    let lpath = reg.blob_data(&layer);
    let mut bytes = std::fs::read(&lpath).expect("layer in the registry");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&lpath, bytes).expect("corrupt");
    let (code, err) = s.fail(["copy", "--quiet", "--src-tls-verify=false", &img, "store:x"]);
    assert!(
        one_line(&err).contains("digest") || err.contains("corrupt"),
        "{err}"
    );
    assert_ne!(code, 0);
    assert!(s.list("images").is_empty(), "no partial image");
    s.assert_clean();
    // And nothing half-written into an OCI layout either.
    let layout = s.scratch().join("out");
    let (_, err) = s.fail([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &img,
        &format!("oci:{}:1", layout.display()),
    ]);
    one_line(&err);
    assert!(
        !layout.join("index.json").exists(),
        "a failed copy wrote index.json"
    );
}
