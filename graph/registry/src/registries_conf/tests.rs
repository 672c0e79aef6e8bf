//! Unit tests for registries.conf parsing, merging, endpoints and short-name resolution.

use super::*;

const CONF: &str = r#"
unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.example.com:5000/hub"
insecure = true
[[registry.mirror]]
location = "mirror2.example.com"

[[registry]]
location = "localhost:5000"
insecure = true

[[registry]]
prefix = "example.com/blocked"
blocked = true

[[registry]]
prefix = "example.com/moved"
location = "new.example.com/here"

[[registry]]
prefix = "*.internal.test"
insecure = true

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"myapp" = "quay.io/team/myapp"
"#;

fn conf() -> RegistriesConf {
    let mut c = RegistriesConf::default();
    c.merge_str(CONF, Path::new("test.conf"))
        .expect("valid conf");
    c
}

fn r(s: &str) -> Reference {
    Reference::parse(s).expect(s)
}

#[test]
fn mirrors_come_first_with_rewritten_names() {
    let eps = conf().pull_endpoints(&r("busybox:1")).expect("endpoints");
    let names: Vec<String> = eps.iter().map(|e| e.reference.to_string()).collect();
    assert_eq!(
        names,
        [
            "mirror.example.com:5000/hub/library/busybox:1",
            "mirror2.example.com/library/busybox:1",
            "docker.io/library/busybox:1",
        ]
    );
    assert_eq!(
        eps.iter()
            .map(|e| (e.insecure, e.mirror))
            .collect::<Vec<_>>(),
        [(true, true), (false, true), (false, false)]
    );
}

#[test]
fn location_insecure_and_blocked() {
    let c = conf();
    let eps = c
        .pull_endpoints(&r("localhost:5000/a/b"))
        .expect("endpoints");
    assert_eq!(eps.len(), 1);
    assert!(eps[0].insecure);
    assert!(c.is_insecure("localhost:5000"));
    assert!(!c.is_insecure("localhost:5001"));
    assert!(c.is_insecure("foo.internal.test"));

    let e = c
        .pull_endpoints(&r("example.com/blocked/x"))
        .expect_err("blocked");
    assert!(e.to_string().contains("blocked"), "{e}");
    // A prefix matches whole components only.
    assert!(c.pull_endpoints(&r("example.com/blockedx/y")).is_ok());

    let moved = c
        .push_endpoint(&r("example.com/moved/app:2"))
        .expect("endpoint");
    assert_eq!(moved.reference.to_string(), "new.example.com/here/app:2");
}

#[test]
fn short_names_resolve_alias_then_search() {
    let c = conf();
    let fedora = c.candidates("fedora:39").expect("alias");
    assert_eq!(fedora.len(), 1);
    assert_eq!(
        fedora[0].to_string(),
        "registry.fedoraproject.org/fedora:39"
    );

    let bb: Vec<String> = c
        .candidates("busybox")
        .expect("search")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        bb,
        [
            "registry.fedoraproject.org/busybox:latest",
            "docker.io/library/busybox:latest"
        ]
    );
    let q = c.candidates("quay.io/x/y:3").expect("qualified");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].to_string(), "quay.io/x/y:3");

    let empty = RegistriesConf::default();
    let e = empty
        .candidates("busybox")
        .expect_err("no search registries");
    assert!(
        e.to_string().contains("unqualified-search-registries"),
        "{e}"
    );
}

#[test]
fn dropins_override_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("registries.conf");
    std::fs::write(&main, CONF).expect("write");
    let d = dir.path().join("registries.conf.d");
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::write(
        d.join("10-a.conf"),
        "unqualified-search-registries = [\"quay.io\"]\n[[registry]]\nlocation = \"localhost:5000\"\ninsecure = false\n",
    )
    .expect("write");
    std::fs::write(
        d.join("20-b.conf"),
        "[aliases]\n\"fedora\" = \"quay.io/fedora/fedora\"\n",
    )
    .expect("write");
    std::fs::write(d.join("ignored.txt"), "not toml [").expect("write");
    let c = RegistriesConf::load(&main, Some(&d)).expect("load");
    assert_eq!(c.search_registries, ["quay.io"]);
    assert!(!c.is_insecure("localhost:5000"));
    assert_eq!(c.aliases["fedora"], "quay.io/fedora/fedora");
    assert_eq!(c.aliases["myapp"], "quay.io/team/myapp");

    let none = RegistriesConf::load(&dir.path().join("missing.conf"), None).expect("missing ok");
    assert_eq!(none, RegistriesConf::default());
}

#[test]
fn invalid_files_name_the_path() {
    let mut c = RegistriesConf::default();
    let e = c
        .merge_str("[[registry]]\ninsecure = true\n", Path::new("/etc/x.conf"))
        .expect_err("no prefix");
    assert!(e.to_string().contains("/etc/x.conf"), "{e}");
    let e = c
        .merge_str(
            "unqualified-search-registries = 3",
            Path::new("/etc/y.conf"),
        )
        .expect_err("bad type");
    assert!(e.to_string().contains("/etc/y.conf"), "{e}");
}

#[test]
fn mirror_by_digest_only_skips_tags() {
    let mut c = RegistriesConf::default();
    c.merge_str(
        "[[registry]]\nlocation = \"quay.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.example.com\"\n",
        Path::new("x"),
    )
    .expect("valid");
    assert_eq!(c.pull_endpoints(&r("quay.io/a:1")).expect("eps").len(), 1);
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let eps = c
        .pull_endpoints(&r(&format!("quay.io/a@{d}")))
        .expect("eps");
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[0].reference.to_string(), format!("m.example.com/a@{d}"));
}
