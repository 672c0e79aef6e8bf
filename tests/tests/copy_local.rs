//! `strata copy` between the store and the local transports (`oci:`, `oci-archive:`,
//! `docker-archive:`, `dir:`), black-box through the installed copy plugin: round trips keep
//! the image ID (config digest) and diff IDs, what we write is what real `skopeo` reads, the
//! mounted result is umoci's tree, and a corrupt source leaves the store as it was.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use strata_tests::{fixtures, require_privileged, Strata};

fn diff_ids_of_image(s: &Strata, image: &str) -> Vec<String> {
    // Layers of the image, bottom first, from the store's listing.
    let layers = s.list("layers");
    let img = s
        .list("images")
        .into_iter()
        .find(|i| {
            i["names"].as_array().is_some_and(|n| {
                n.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.starts_with(image)))
            })
        })
        .unwrap_or_else(|| panic!("image {image} not in the store"));
    let mut out = Vec::new();
    let mut cur = img["top_layer"].as_str().map(str::to_owned);
    while let Some(id) = cur {
        let l = layers
            .iter()
            .find(|l| l["id"] == id.as_str())
            .expect("layer listed");
        out.push(l["diff_id"].as_str().expect("diff id").to_owned());
        cur = l["parent"].as_str().map(str::to_owned);
    }
    out.reverse();
    out
}

fn skopeo_inspect(name: &str) -> Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--config", name])
        .output()
        .expect("run skopeo (installed by cargo xtask setup)");
    assert!(
        out.status.success(),
        "skopeo inspect --config {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo JSON")
}

fn config_diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("string").to_owned())
        .collect()
}

/// oci -> store -> every local transport -> store again: same image ID, same diff IDs, real
/// skopeo reads each intermediate form, and the final image mounts as umoci's tree.
#[test]
fn store_round_trips_through_every_local_transport() {
    if !require_privileged(
        "copy_local::store_round_trips_through_every_local_transport",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let out = s.ok(["copy", "--quiet", &fixtures::oci("layers"), "store:layers"]);
    let id = out.trim().trim_start_matches("sha256:").to_owned();
    assert_eq!(
        format!("sha256:{id}"),
        fixtures::config_digest("layers", None),
        "the image ID is the config digest"
    );
    let want = config_diff_ids(&fixtures::config("layers", None));
    assert_eq!(diff_ids_of_image(&s, "layers"), want);
    let scratch = s.scratch();
    let targets = [
        format!("oci:{}:v1", scratch.join("layout").display()),
        format!("oci-archive:{}:v1", scratch.join("image.tar").display()),
        format!(
            "docker-archive:{}:example.com/layers:v1",
            scratch.join("docker.tar").display()
        ),
        format!("dir:{}", scratch.join("dir").display()),
    ];
    for (i, t) in targets.iter().enumerate() {
        s.ok(["copy", "--quiet", "store:layers", t.as_str()]);
        let config = skopeo_inspect(t);
        assert_eq!(
            config_diff_ids(&config),
            want,
            "{t}: diff IDs as skopeo sees them"
        );
        let name = format!("again{i}");
        let out = s.ok(["copy", "--quiet", t.as_str(), &format!("store:{name}")]);
        assert_eq!(
            out.trim(),
            format!("sha256:{id}"),
            "{t}: the image ID survives the round trip"
        );
        assert_eq!(
            diff_ids_of_image(&s, &name),
            want,
            "{t}: diff IDs in the store"
        );
    }
    // The same image under five names, stored once.
    assert_eq!(s.list("images").len(), 1, "one image, many names");
    assert_eq!(s.list("layers").len(), want.len(), "layers stored once");
    s.assert_mounts_as("again3", "layers", "c");
    s.assert_clean();
}

/// Real skopeo writes, we read: skopeo copies the fixture to docker-archive: and dir:, we
/// copy those into the store, and the container is umoci's tree.
#[test]
fn images_written_by_skopeo_load_through_copy() {
    if !require_privileged(
        "copy_local::images_written_by_skopeo_load_through_copy",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let scratch = s.scratch();
    for (i, dst) in [
        format!(
            "docker-archive:{}:skopeo/busybox:1",
            scratch.join("b.tar").display()
        ),
        format!("dir:{}", scratch.join("bdir").display()),
    ]
    .iter()
    .enumerate()
    {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", &fixtures::oci("busybox"), dst])
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.ok(["copy", "--quiet", dst.as_str(), &format!("store:bb{i}")]);
        s.assert_mounts_as(&format!("bb{i}"), "busybox", &format!("c{i}"));
    }
    s.assert_clean();
}

/// A layer blob that does not match its digest: the copy fails naming the digest, and the
/// store gains nothing (no image, no layer, fsck clean, no garbage).
#[test]
fn a_corrupt_source_leaves_the_store_unchanged() {
    if !require_privileged(
        "copy_local::a_corrupt_source_leaves_the_store_unchanged",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let layout = s.scratch().join("bad");
    copy_dir(&fixtures::layout_dir("layers"), &layout);
    let manifest = fixtures::manifest("layers", None);
    let digest = manifest["layers"][1]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).expect("read blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).expect("corrupt blob");
    let (code, err) = s.fail([
        "copy",
        "--quiet",
        &format!("oci:{}:latest", layout.display()),
        "store:bad",
    ]);
    assert!(
        err.contains("digest") && err.lines().filter(|l| !l.trim().is_empty()).count() == 1,
        "one error line about the digest: {err}"
    );
    assert_ne!(code, 0);
    assert!(s.list("images").is_empty(), "no image was recorded");
    s.assert_clean();
}

/// `--all` cannot go into the store (it holds one platform per image); the error says so and
/// nothing is stored.
#[test]
fn all_platforms_into_the_store_is_refused() {
    let s = Strata::new("vfs");
    let (code, err) = s.fail(["copy", "--all", &fixtures::oci("multiarch"), "store:multi"]);
    assert_eq!(code, 8, "unsupported exits 8: {err}");
    assert!(err.contains("--all"), "{err}");
    assert!(s.list("images").is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}
