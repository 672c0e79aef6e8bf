//! `storage diff` and `storage commit` of a container of the `layers` fixture after typical
//! changes: add, modify, chmod, hardlink, delete a file, delete directories, replace a
//! directory with a file, and `rm -rf` a directory that has lower content then recreate it
//! (which overlay records as an opaque directory). The diff tar must hold exactly the changed
//! entries with OCI whiteouts; a container of the committed image must show exactly the
//! modified container's tree.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata_tests::{fixtures, require_privileged, tree, Strata};

/// One entry of a diff tar: type flag, link target, content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    kind: tar::EntryType,
    link: Option<String>,
    data: Vec<u8>,
    mode: u32,
}

/// Reads a tar into path (without `./` or trailing `/`) -> entry.
fn read_tar(bytes: &[u8]) -> BTreeMap<String, TarEntry> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().expect("the diff is a tar") {
        let mut e = e.expect("a valid tar entry");
        let path = e
            .path()
            .expect("entry path")
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let link = e
            .link_name()
            .expect("link name")
            .map(|l| l.to_string_lossy().trim_start_matches("./").to_owned());
        let kind = e.header().entry_type();
        let mode = e.header().mode().expect("mode");
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("entry data");
        assert!(
            out.insert(
                path.clone(),
                TarEntry {
                    kind,
                    link,
                    data,
                    mode
                }
            )
            .is_none(),
            "{path} appears twice in the diff"
        );
    }
    out
}

/// Makes the changes in the mounted container at `mp`.
fn change(mp: &Path) {
    let d = mp.join("data");
    std::fs::write(d.join("added.txt"), b"added\n").expect("add");
    std::fs::hard_link(d.join("added.txt"), d.join("added-link")).expect("hardlink");
    std::fs::write(d.join("hello.txt"), b"hello modified\n").expect("modify");
    std::fs::set_permissions(d.join("chmod-me"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    std::fs::remove_file(d.join("owned")).expect("delete a file");
    std::fs::remove_dir(d.join("private-dir")).expect("delete an empty dir");
    std::fs::remove_dir_all(d.join("long")).expect("delete a dir tree");
    std::fs::remove_dir(d.join("setgid-dir")).expect("delete a dir");
    std::fs::write(d.join("setgid-dir"), b"a file now\n").expect("replace the dir with a file");
    std::fs::remove_dir_all(d.join("opaque")).expect("rm -rf a dir with lower content");
    std::fs::create_dir(d.join("opaque")).expect("recreate it");
    std::fs::write(d.join("opaque/fresh"), b"fresh\n").expect("new content");
}

fn diff_and_commit(driver: &str) {
    let s = Strata::new(driver);
    s.load(&fixtures::oci("layers"), &["--name", "layers"]);
    s.create("layers", "c");
    let mp = s.mount("c");
    change(&mp);

    let out = s.scratch().join("diff.tar");
    s.ok(["storage", "diff", "c", "-o", out.to_str().expect("utf-8")]);
    let bytes = std::fs::read(&out).expect("read the diff");
    let stdout = s
        .command()
        .args(["storage", "diff", "c", "-o", "-"])
        .output()
        .expect("run");
    assert!(stdout.status.success());
    assert_eq!(
        stdout.stdout, bytes,
        "[{driver}] diff to stdout and to a file are the same bytes"
    );
    let entries = read_tar(&bytes);
    let shown: Vec<String> = entries
        .iter()
        .map(|(p, e)| format!("{p} {:?}", e.kind))
        .collect();
    let files = |p: &str| {
        entries
            .get(p)
            .unwrap_or_else(|| panic!("[{driver}] the diff lacks {p}: {shown:#?}"))
    };

    // The two new hardlinks: the first in the tar carries the data, the other links to it.
    let (a, b) = (files("data/added.txt"), files("data/added-link"));
    let linked = |e: &TarEntry, f: &TarEntry, target: &str| {
        e.kind == tar::EntryType::Regular
            && e.data == b"added\n"
            && f.kind == tar::EntryType::Link
            && f.link.as_deref() == Some(target)
    };
    assert!(
        linked(a, b, "data/added.txt") || linked(b, a, "data/added-link"),
        "[{driver}] the new hardlinks stay linked in the diff: {a:?} {b:?}"
    );
    assert_eq!(files("data/hello.txt").data, b"hello modified\n");
    assert_eq!(files("data/chmod-me").mode & 0o7777, 0o640);
    for gone in ["owned", "private-dir", "long"] {
        let wh = format!("data/.wh.{gone}");
        assert!(
            files(&wh).kind == tar::EntryType::Regular,
            "[{driver}] {wh} is a regular whiteout file"
        );
    }
    assert_eq!(files("data/setgid-dir").kind, tar::EntryType::Regular);
    assert_eq!(files("data/setgid-dir").data, b"a file now\n");
    assert_eq!(files("data/opaque/fresh").data, b"fresh\n");
    let opaque = entries.contains_key("data/opaque/.wh..wh..opq");
    let individual = ["new1", "newdir", "added-later"]
        .iter()
        .all(|n| entries.contains_key(&format!("data/opaque/.wh.{n}")));
    if driver == "overlay" {
        assert!(
            opaque,
            "[overlay] a recreated directory is opaque in the diff: {shown:#?}"
        );
    } else {
        assert!(
            opaque || individual,
            "[{driver}] the recreated directory's old content is whited out: {shown:#?}"
        );
    }
    // Nothing unchanged is in the diff: only these entries (and their parent directories).
    let mut expected: Vec<String> = [
        "data/added.txt",
        "data/added-link",
        "data/hello.txt",
        "data/chmod-me",
        "data/.wh.owned",
        "data/.wh.private-dir",
        "data/.wh.long",
        "data/setgid-dir",
        "data/opaque/fresh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if opaque {
        expected.push("data/opaque/.wh..wh..opq".into());
    } else {
        expected.extend(
            ["new1", "newdir", "added-later"]
                .iter()
                .map(|n| format!("data/opaque/.wh.{n}")),
        );
    }
    let extra: Vec<&String> = entries
        .iter()
        .filter(|(p, e)| e.kind != tar::EntryType::Directory && !expected.contains(p))
        .map(|(p, _)| p)
        .collect();
    assert!(
        extra.is_empty(),
        "[{driver}] unchanged entries in the diff: {extra:?}"
    );
    let dirs: Vec<&String> = entries
        .iter()
        .filter(|(_, e)| e.kind == tar::EntryType::Directory)
        .map(|(p, _)| p)
        .collect();
    assert!(
        dirs.iter()
            .all(|d| ["", "data", "data/opaque"].contains(&d.as_str())),
        "[{driver}] unexpected directories: {dirs:?}"
    );

    let layers_before = s.list("layers").len();
    let img2 = s.ok(["storage", "commit", "c", "img2"]).trim().to_owned();
    assert!(
        img2.starts_with("sha256:"),
        "commit prints an image ID: {img2}"
    );
    assert_eq!(
        s.list("layers").len(),
        layers_before + 1,
        "[{driver}] commit adds one layer"
    );
    let images = s.list("images");
    let rec = images
        .iter()
        .find(|i| i["id"] == img2.as_str())
        .expect("the committed image is listed");
    assert!(
        rec["names"]
            .as_array()
            .expect("names")
            .iter()
            .any(|n| n == "img2:latest"),
        "{rec}"
    );

    s.create("img2", "c2");
    let mp2 = s.mount("c2");
    let diffs = tree::compare(&mp, &mp2);
    assert!(
        diffs.is_empty(),
        "[{driver}] a container of the committed image differs from the modified one:\n{}",
        diffs.join("\n")
    );
    // The committed image saves to a layout skopeo reads and reloads elsewhere unchanged.
    let saved = format!("oci:{}:img2", s.scratch().join("saved").display());
    s.ok(["storage", "save", "img2", &saved]);
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--config", &saved])
        .output()
        .expect("run skopeo");
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(
        strata_tests::layout::sha256_digest(&inspect.stdout),
        img2,
        "[{driver}] the saved config is the committed one"
    );
    let fresh = Strata::new(driver);
    assert_eq!(
        fresh.load(&saved, &["--name", "img2"]),
        img2,
        "[{driver}] the saved commit reloads with its ID"
    );
    fresh.create("img2", "c3");
    let diffs = tree::compare(&mp, &fresh.mount("c3"));
    assert!(
        diffs.is_empty(),
        "[{driver}] the reloaded commit differs from the modified container:\n{}",
        diffs.join("\n")
    );
    drop(fresh);
    // A fresh container has no changes.
    let empty = s.scratch().join("empty.tar");
    s.ok([
        "storage",
        "diff",
        "c2",
        "-o",
        empty.to_str().expect("utf-8"),
    ]);
    let entries = read_tar(&std::fs::read(&empty).expect("read"));
    assert!(
        entries.is_empty(),
        "[{driver}] a fresh container's diff is empty: {entries:?}"
    );
    s.ok(["storage", "rm", "c", "c2"]);
    s.assert_clean();
    let content = s.json(["storage", "fsck", "--content", "--format", "json"]);
    assert_eq!(
        content["problems"],
        serde_json::json!([]),
        "[{driver}] {content:#}"
    );
}

#[test]
fn diff_and_commit_overlay() {
    if !require_privileged("diff_commit::diff_and_commit_overlay", "overlay mounts") {
        return;
    }
    diff_and_commit("overlay");
}

#[test]
fn diff_and_commit_vfs() {
    if !require_privileged(
        "diff_commit::diff_and_commit_vfs",
        "root-owned files and mounts",
    ) {
        return;
    }
    diff_and_commit("vfs");
}
