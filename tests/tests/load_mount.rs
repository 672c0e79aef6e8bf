//! Loading the fixture images and mounting a container of each must give exactly the tree the
//! reference tool (`umoci unpack`) makes: same paths, types, modes, owners, xattrs, contents,
//! symlink targets, device numbers, hardlinks and file mtimes. Runs on overlay and vfs, for
//! plain gzip OCI images, zstd, Docker v2s2 media types, both platforms of a multi-arch index,
//! and a 200-layer image.
//!
//! Reference trees exist for `busybox`, `layers` and `deep`; `zstd` and `multiarch` hold
//! busybox's layer and `docker` holds `layers`' layers, so they are compared with those.

use strata_tests::{fixtures, require_privileged, tree, Strata};

/// Loads fixture `image` (with `extra` load arguments), checks the image ID and layer count,
/// mounts a container and compares it with `reference`'s unpacked tree; then unmounts and
/// checks the store.
fn load_and_compare(driver: &str, image: &str, reference: &str, platform: Option<&str>) {
    let s = Strata::new(driver);
    let mut extra = vec!["--name", image];
    if let Some(p) = platform {
        extra.extend(["--platform", p]);
    }
    let id = s.load(&fixtures::oci(image), &extra);
    assert_eq!(
        id,
        fixtures::config_digest(image, platform),
        "[{driver}] {image}: the image ID is the config digest"
    );
    let want_layers = fixtures::manifest(image, platform)["layers"]
        .as_array()
        .expect("layers")
        .len();
    assert_eq!(
        s.list("layers").len(),
        want_layers,
        "[{driver}] {image}: layer count"
    );
    s.create(image, "c");
    let mp = s.mount("c");
    let diffs = tree::compare(&fixtures::reference_rootfs(reference), &mp);
    assert!(
        diffs.is_empty(),
        "[{driver}] {image}: the mounted container differs from umoci's {reference} tree in {} ways:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    s.ok(["storage", "umount", "c"]);
    assert!(
        strata_tests::cli::mounts_below(&s.runroot).is_empty(),
        "[{driver}] umount left mounts"
    );
    s.assert_clean();
    let content = s.json(["storage", "fsck", "--content", "--format", "json"]);
    assert_eq!(
        content["problems"],
        serde_json::json!([]),
        "[{driver}] {image}: fsck --content: {content:#}"
    );
}

macro_rules! compare_tests {
    ($($name:ident: $driver:literal, $image:literal, $reference:literal, $platform:expr;)*) => {$(
        #[test]
        fn $name() {
            if !require_privileged(concat!("load_mount::", stringify!($name)), "overlay mounts and root-owned extraction") {
                return;
            }
            load_and_compare($driver, $image, $reference, $platform);
        }
    )*};
}

compare_tests! {
    busybox_overlay: "overlay", "busybox", "busybox", None;
    busybox_vfs: "vfs", "busybox", "busybox", None;
    layers_overlay: "overlay", "layers", "layers", None;
    layers_vfs: "vfs", "layers", "layers", None;
    zstd_overlay: "overlay", "zstd", "busybox", None;
    zstd_vfs: "vfs", "zstd", "busybox", None;
    docker_overlay: "overlay", "docker", "layers", None;
    docker_vfs: "vfs", "docker", "layers", None;
    multiarch_amd64_overlay: "overlay", "multiarch", "busybox", Some("linux/amd64");
    multiarch_arm64_vfs: "vfs", "multiarch", "busybox", Some("linux/arm64");
}

#[test]
fn multiarch_platforms_pick_different_configs() {
    if !require_privileged(
        "load_mount::multiarch_platforms_pick_different_configs",
        "overlay mounts",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let src = fixtures::oci("multiarch");
    let amd = s.load(
        &src,
        &["--platform", "linux/amd64", "--name", "multi-amd64"],
    );
    let arm = s.load(
        &src,
        &["--platform", "linux/arm64", "--name", "multi-arm64"],
    );
    assert_eq!(
        amd,
        fixtures::config_digest("multiarch", Some("linux/amd64"))
    );
    assert_eq!(
        arm,
        fixtures::config_digest("multiarch", Some("linux/arm64"))
    );
    assert_ne!(amd, arm, "the two platforms have different configs");
    assert_eq!(
        fixtures::config("multiarch", Some("linux/arm64"))["architecture"],
        "arm64"
    );
    assert_eq!(s.list("images").len(), 2);
    assert_eq!(
        s.list("layers").len(),
        1,
        "both platforms share their one layer, stored once"
    );
    let (code, err) = s.fail(["storage", "load", &src, "--platform", "linux/s390x"]);
    assert_eq!(code, 3, "a platform the index lacks is not found: {err}");
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64"),
        "the error names the platform and what exists: {err}"
    );
    s.assert_clean();
}

#[test]
fn deep_image_shows_every_layer() {
    if !require_privileged("load_mount::deep_image_shows_every_layer", "overlay mounts") {
        return;
    }
    let s = Strata::new("overlay");
    s.load(&fixtures::oci("deep"), &["--name", "deep"]);
    assert_eq!(s.list("layers").len(), 200);
    s.create("deep", "c");
    let mp = s.mount("c");
    let mut names: Vec<u32> = std::fs::read_dir(mp.join("layers"))
        .expect("list /layers")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("numeric name")
        })
        .collect();
    names.sort_unstable();
    // Layer k adds /layers/k; every 10th layer k deletes /layers/(k-5).
    let want: Vec<u32> = (1..=200).filter(|k| k % 10 != 5).collect();
    assert_eq!(names, want);
    let diffs = tree::compare(&fixtures::reference_rootfs("deep"), &mp);
    assert!(
        diffs.is_empty(),
        "the deep container differs from umoci's tree:\n{}",
        diffs.join("\n")
    );
    for k in [1, 4, 6, 100, 199, 200] {
        assert_eq!(
            std::fs::read_to_string(mp.join(format!("layers/{k}"))).expect("read"),
            format!("layer {k}\n")
        );
    }
    // The container is writable on top of 200 layers.
    std::fs::write(mp.join("layers/new"), b"top").expect("write in the container");
    std::fs::remove_file(mp.join("layers/1")).expect("delete a lower file");
    s.ok(["storage", "umount", "c"]);
    let mp = s.mount("c");
    assert!(
        mp.join("layers/new").is_file() && !mp.join("layers/1").exists(),
        "changes survive a remount"
    );
    s.assert_clean();
}
