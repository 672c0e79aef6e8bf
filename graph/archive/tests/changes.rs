//! `write_changes`: a change list over an upper tree becomes a layer that, applied on a copy
//! of the lower tree, reproduces the upper tree; the output is deterministic and readable by
//! GNU tar.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use strata_graph_archive::{write_changes, Change, ChangeKind, WhiteoutFormat};
use strata_types::Digest;

fn long_dir() -> String {
    format!("new/{}/{}", "a".repeat(120), "b".repeat(140))
}

/// Builds `lower` and `upper` (= lower plus modifications) under `base`.
fn trees(base: &Path) -> (PathBuf, PathBuf) {
    let lower = base.join("lower");
    let upper = base.join("upper");
    sh(&format!(
        r#"
        mkdir -p {lower} && cd {lower}
        mkdir -p etc usr/bin var/cache dir-to-delete
        printf '127.0.0.1\n' > etc/hosts; printf 'root:x:0:0\n' > etc/passwd
        printf 'tool v1' > usr/bin/tool; chmod 755 usr/bin/tool
        printf a > var/cache/a; printf b > var/cache/b; printf x > dir-to-delete/inner
        printf bye > todelete; ln -s etc/hosts link
        cp -a {lower} {upper} && cd {upper}
        printf 'tool v2, longer' > usr/bin/tool; chown 1000:1001 usr/bin/tool; chmod 4755 usr/bin/tool
        setfattr -n security.capability -v 0x010000020a000000000000000000000000000000 usr/bin/tool
        rm todelete; rm -r dir-to-delete
        rm var/cache/a var/cache/b; printf c > var/cache/c
        mkdir -p {long}
        printf f > new/f1; ln new/f1 new/f2; mkfifo new/fifo; setfattr -n user.x -v 'y z' new/f1
        ln -s {target} new/longlink
        printf deep > {long}/{leaf}
        rm link; ln -s etc/passwd link
        touch -d '2023-05-06 07:08:09.5' new/f1
        "#,
        lower = lower.display(),
        upper = upper.display(),
        long = long_dir(),
        target = "t/".repeat(80),
        leaf = "c".repeat(90),
    ));
    (lower, upper)
}

fn change_list() -> Vec<Change> {
    let m = |p: &str| Change {
        path: p.into(),
        kind: ChangeKind::Modified,
    };
    let long = long_dir();
    let mut v = vec![
        Change {
            path: "dir-to-delete".into(),
            kind: ChangeKind::Deleted,
        },
        m("link"),
        m("new"),
    ];
    let mut acc = String::from("new");
    for comp in long.split('/').skip(1) {
        acc = format!("{acc}/{comp}");
        v.push(m(&acc));
    }
    v.push(m(&format!("{long}/{}", "c".repeat(90))));
    v.extend([
        m("new/f1"),
        m("new/f2"),
        m("new/fifo"),
        m("new/longlink"),
        Change {
            path: "todelete".into(),
            kind: ChangeKind::Deleted,
        },
        m("usr/bin/tool"),
        Change {
            path: "var/cache".into(),
            kind: ChangeKind::Opaque,
        },
        m("var/cache/c"),
    ]);
    v
}

#[test]
fn changes_applied_on_the_lower_tree_give_the_upper_tree() {
    let base = tempfile::tempdir().unwrap();
    let (lower, upper) = trees(base.path());
    let changes = change_list();

    let mut layer = Vec::new();
    let (digest, size) = write_changes(&changes, &upper, &mut layer).unwrap();
    assert_eq!(digest, Digest::of(&layer));
    assert_eq!(size, layer.len() as u64);

    let mut again = Vec::new();
    write_changes(&changes, &upper, &mut again).unwrap();
    assert!(again == layer, "same tree and list give the same bytes");

    let applied = base.path().join("applied");
    sh(&format!("cp -a {} {}", lower.display(), applied.display()));
    let (res, split) = apply_ok(&layer, &applied, WhiteoutFormat::Apply);
    assert_eq!(res.diff_id, digest);

    let mut want = snapshot(&upper);
    let mut got = snapshot(&applied);
    // Directories that are not in the layer keep whatever mtime replacing their children gave
    // them (as with containers/storage); the root is not part of a layer at all.
    let listed: Vec<String> = changes
        .iter()
        .map(|c| c.path.to_string_lossy().into_owned())
        .collect();
    for tree in [&mut want, &mut got] {
        tree.remove(".");
        for (path, node) in tree.iter_mut() {
            if node.kind == 'd' && !listed.contains(path) {
                node.mtime = 0;
            }
        }
    }
    assert_same_tree(&want, &got);
    assert!(export(&split, &applied).2 == layer);
}

#[test]
fn layer_entries_are_what_oci_tools_expect() {
    let base = tempfile::tempdir().unwrap();
    let (_, upper) = trees(base.path());
    let mut layer = Vec::new();
    write_changes(&change_list(), &upper, &mut layer).unwrap();

    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&layer[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let kind = e.header().entry_type();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        names.push((e.path().unwrap().to_string_lossy().into_owned(), kind, link));
    }
    let has = |n: &str, k: tar::EntryType| names.iter().any(|(p, kk, _)| p == n && *kk == k);
    assert!(
        has(".wh.dir-to-delete", tar::EntryType::Regular),
        "{names:?}"
    );
    assert!(has(".wh.todelete", tar::EntryType::Regular));
    assert!(
        has("var/cache/", tar::EntryType::Directory),
        "directories end with /"
    );
    assert!(has("var/cache/.wh..wh..opq", tar::EntryType::Regular));
    let f2 = names.iter().find(|(p, _, _)| p == "new/f2").unwrap();
    assert_eq!(
        (f2.1, f2.2.as_deref()),
        (tar::EntryType::Link, Some("new/f1")),
        "second link becomes a hardlink entry"
    );
    let opq = names
        .iter()
        .position(|(p, _, _)| p == "var/cache/.wh..wh..opq")
        .unwrap();
    assert_eq!(
        names[opq - 1].0,
        "var/cache/",
        "the marker follows its directory"
    );

    // GNU tar reads it, long names and xattrs included.
    let path = base.path().join("layer.tar");
    std::fs::write(&path, &layer).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-tvvf"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&format!("{}/{}", long_dir(), "c".repeat(90))),
        "{listing}"
    );
    assert!(listing.contains("new/f2 link to new/f1"), "{listing}");
    assert!(listing.contains("security.capability"), "{listing}");
}

#[test]
fn missing_source_paths_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let changes = [Change {
        path: "nope/file".into(),
        kind: ChangeKind::Modified,
    }];
    let err = write_changes(&changes, dir.path(), std::io::sink()).unwrap_err();
    assert!(err.to_string().contains("nope/file"), "{err}");
    assert_eq!(
        strata_types::HasKind::kind(&err),
        strata_types::ErrorKind::NotFound
    );
}
