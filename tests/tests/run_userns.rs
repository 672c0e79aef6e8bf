//! `--userns`, black-box, as root on crun and runc: containers in their own user namespace
//! (`auto`, `keep-id`) see the image's owners without a chown copy, get disjoint id blocks from
//! the `containers` ranges of /etc/subuid and /etc/subgid (test setup adds podman's usual
//! `containers:2147483647:2147483648` when the machine has none), and what they write comes
//! back with image ids through `diff` and `commit`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_tests::cli::mounts_below;
use strata_tests::containers::busybox_store;
use strata_tests::{require_privileged, Strata};

const RUNTIMES: &[&str] = &["crun", "runc"];

/// The first `containers` range of a subordinate-id file.
fn containers_range(file: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(file).expect("read subordinate id file");
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == "containers")
                .then(|| Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?)))?
        })
        .unwrap_or_else(|| {
            panic!("{file} has no `containers` range: `cargo xtask test` adds one (setup)")
        })
}

/// `/proc/self/uid_map` of a container's process, as (inside, outside, count).
fn uid_map(s: &Strata, name: &str) -> (u64, u64, u64) {
    let out = s.ok(["exec", name, "cat", "/proc/self/uid_map"]);
    let f: Vec<u64> = out
        .split_whitespace()
        .map(|n| n.parse().expect("uid_map numbers"))
        .collect();
    assert_eq!(f.len(), 3, "one range expected: {out}");
    (f[0], f[1], f[2])
}

/// The busybox binary in the store's overlay layers (the image's own file on disk).
fn image_busybox_on_disk(s: &Strata) -> std::path::PathBuf {
    let layers = s.root.join("overlay").join("layers");
    std::fs::read_dir(&layers)
        .expect("overlay layers dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("diff/bin/busybox"))
        .find(|p| p.exists())
        .expect("busybox in a layer")
}

#[test]
fn privileged_userns_auto_shifts_ids_without_copying_and_keeps_blocks_apart() {
    if !require_privileged(
        "run_userns::privileged_userns_auto_shifts_ids_without_copying_and_keeps_blocks_apart",
        "idmapped overlay layers, user namespaces and OCI runtimes",
    ) {
        return;
    }
    let (sub_start, sub_count) = containers_range("/etc/subuid");
    let s = busybox_store();
    for rt in RUNTIMES {
        let (a, b) = (format!("auto-a-{rt}"), format!("auto-b-{rt}"));
        for (name, mode) in [(&a, "auto"), (&b, "auto:size=2048")] {
            s.ok([
                "run",
                "-d",
                "--name",
                name,
                "--runtime",
                rt,
                "--network",
                "none",
                "--userns",
                mode,
                "busybox",
                "sleep",
                "300",
            ]);
        }
        let (ia, oa, ca) = uid_map(&s, &a);
        let (ib, ob, cb) = uid_map(&s, &b);
        assert_eq!((ia, ca, ib, cb), (0, 65536, 0, 2048), "{rt}: sizes");
        for (o, c) in [(oa, ca), (ob, cb)] {
            assert!(
                o >= sub_start && o + c <= sub_start + sub_count,
                "{rt}: block {o}+{c} is outside the containers range {sub_start}+{sub_count}"
            );
        }
        assert!(oa + ca <= ob || ob + cb <= oa, "{rt}: blocks overlap");
        let insp = s.json(["inspect", "--type", "container", &a]);
        assert_eq!(
            insp[0]["HostConfig"]["IDMappings"]["UidMap"][0],
            format!("0:{oa}:65536"),
            "{rt}: inspect shows the map"
        );

        // Inside: the image's owners, and root can work on its own files.
        let out = s.ok([
            "exec",
            &a,
            "sh",
            "-c",
            "id -u; stat -c '%u:%g' /bin/busybox /etc/passwd /; \
             echo x > /etc/new && chown 1000:1000 /etc/new && stat -c '%u:%g' /etc/new",
        ]);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["0", "0:0", "0:0", "0:0", "1000:1000"],
            "{rt}: owners inside the container"
        );
        // On disk: the image's file is untouched (no chown copy), the container's own file
        // carries its host id.
        let on_disk = image_busybox_on_disk(&s);
        assert_eq!(std::fs::metadata(&on_disk).unwrap().uid(), 0, "{rt}");
        // Through diff and commit, the layer records image ids again.
        let changes = s.ok(["diff", &a]);
        assert!(changes.contains("A /etc/new"), "{rt}: {changes}");
        let img = format!("localhost/userns-commit-{rt}");
        s.ok(["commit", &a, &img]);
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            &img,
            "stat",
            "-c",
            "%u:%g",
            "/etc/new",
        ]);
        assert_eq!(out.trim(), "1000:1000", "{rt}: committed owner");

        // A stopped and restarted container keeps its block.
        s.ok(["stop", "-t", "0", &a]);
        s.ok(["start", &a]);
        assert_eq!(uid_map(&s, &a).1, oa, "{rt}: block kept across restarts");
        s.ok(["rm", "-f", &a, &b]);
        s.ok(["rmi", &img]);
    }
    assert!(
        mounts_below(&s.runroot).is_empty(),
        "mounts left: {:?}",
        mounts_below(&s.runroot)
    );
}

#[test]
fn privileged_userns_auto_reaches_the_bridge_and_keep_id_maps_every_id() {
    if !require_privileged(
        "run_userns::privileged_userns_auto_reaches_the_bridge_and_keep_id_maps_every_id",
        "user namespaces, CNI bridge networking and OCI runtimes",
    ) {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
        // The bridge's namespace belongs to the host's user namespace: the container still
        // gets its address (and sysfs is the host's, bind-mounted).
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--userns",
            "auto",
            "busybox",
            "sh",
            "-c",
            "cat /proc/self/uid_map; ip -4 addr show eth0",
        ]);
        assert!(
            out.lines()
                .next()
                .is_some_and(|l| !l.trim().starts_with("0 0 ")),
            "{rt}: not the host's map: {out}"
        );
        assert!(
            out.contains("inet 10.89.0."),
            "{rt}: no bridge address: {out}"
        );

        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "--userns",
            "keep-id",
            "busybox",
            "sh",
            "-c",
            "cat /proc/self/uid_map; id -u",
        ]);
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(f, ["0", "0", "4294967295", "0"], "{rt}: keep-id as root");
    }
    assert!(mounts_below(&s.runroot).is_empty());
}

#[test]
fn privileged_userns_modes_that_cannot_work_are_refused_clearly() {
    if !require_privileged(
        "run_userns::privileged_userns_modes_that_cannot_work_are_refused_clearly",
        "the run plugin as root",
    ) {
        return;
    }
    let s = busybox_store();
    for (mode, says) in [
        ("nomap", "only supported in rootless mode"),
        ("auto:size=0", "size must be a positive number"),
        ("ns:/proc/1/ns/user", "not supported yet"),
        ("sideways", "unknown mode"),
    ] {
        let (code, err) = s.fail(["run", "--rm", "--userns", mode, "busybox", "true"]);
        assert_ne!(code, 0);
        assert!(err.contains(says), "--userns {mode}: {err}");
    }
    assert!(
        s.list("containers").is_empty(),
        "a refused run created nothing"
    );
    assert!(Path::new("/etc/subgid").exists());
}
