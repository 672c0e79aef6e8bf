//! Privileged tier: network namespaces pinned at a path (run as root).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use strata_mount::{create_netns, is_mounted, remove_netns};
use strata_types::{ErrorKind, HasKind};

fn gate(test: &str) -> bool {
    strata_tests::require_privileged(test, "network namespaces pinned by bind mounts")
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-netns-")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

/// (device, inode) of the namespace a path designates.
fn ns_id(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

fn mountinfo_mentions(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(path.to_str().unwrap()))
}

#[test]
fn a_created_namespace_is_new_empty_and_removable() {
    if !gate("mount::netns::a_created_namespace_is_new_empty_and_removable") {
        return;
    }
    let t = tmp();
    let path = t.path().join("netns/strata-test");
    let ours_before = ns_id(Path::new("/proc/thread-self/ns/net"));

    create_netns(&path).unwrap();
    let guard = Cleanup(&path);
    assert!(is_mounted(&path).unwrap());
    let host = ns_id(Path::new("/proc/self/ns/net"));
    let created = ns_id(&path);
    assert_eq!(
        created.0, host.0,
        "the file is not a namespace (not on nsfs)"
    );
    assert_ne!(created.1, host.1, "the pinned namespace is the host's");
    assert_eq!(
        ns_id(Path::new("/proc/thread-self/ns/net")),
        ours_before,
        "the calling thread moved"
    );

    let out = Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let links: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(':').nth(1).unwrap().trim().to_string())
        .collect();
    assert_eq!(links, ["lo"]);

    drop(guard);
    assert!(!path.exists());
    assert!(!mountinfo_mentions(&path));
    remove_netns(&path).unwrap(); // idempotent
}

#[test]
fn creating_over_a_pinned_namespace_is_refused() {
    if !gate("mount::netns::creating_over_a_pinned_namespace_is_refused") {
        return;
    }
    let t = tmp();
    let path = t.path().join("ns");
    create_netns(&path).unwrap();
    let _guard = Cleanup(&path);
    let first = ns_id(&path);
    let e = create_netns(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
    assert_eq!(ns_id(&path), first, "the first namespace was replaced");
}

#[test]
fn a_leftover_file_is_reused_and_a_missing_path_removes_fine() {
    if !gate("mount::netns::a_leftover_file_is_reused_and_a_missing_path_removes_fine") {
        return;
    }
    let t = tmp();
    let path = t.path().join("ns");
    remove_netns(&path).unwrap();
    std::fs::write(&path, "").unwrap();
    create_netns(&path).unwrap();
    let _guard = Cleanup(&path);
    assert!(is_mounted(&path).unwrap());
    let two = t.path().join("ns2");
    create_netns(&two).unwrap();
    let _guard2 = Cleanup(&two);
    assert_ne!(ns_id(&path), ns_id(&two), "two creations share a namespace");
}

/// Removes the namespace even when an assertion fails.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        remove_netns(self.0).unwrap();
    }
}
