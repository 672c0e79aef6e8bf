//! Several `strata` processes sharing one store at once: concurrent loads of the same image
//! (all succeed, one image results, and every layer is extracted exactly once across all
//! processes, counted from the "layer extracted" info log lines), and concurrent container
//! create/mount/umount/rm cycles. Afterwards the store is consistent and gc finds nothing.
//!
//! It does not measure speed: overlap is made likely by starting all processes together, and
//! correctness must hold however they interleave.

use std::process::Output;

use strata_tests::{fixtures, require_privileged, Strata};

/// Starts `n` loads of fixture `image` at once and returns their outputs.
fn load_at_once(s: &Strata, image: &str, n: usize) -> Vec<Output> {
    let src = fixtures::oci(image);
    let children: Vec<_> = (0..n)
        .map(|_| {
            s.spawn([
                "--log-level",
                "info",
                "storage",
                "load",
                src.as_str(),
                "--name",
                image,
            ])
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait for strata"))
        .collect()
}

fn concurrent_loads(test: &str, driver: &str, n: usize) {
    if !require_privileged(test, "overlay mounts and root-owned extraction") {
        return;
    }
    let s = Strata::new(driver);
    let image = "layers";
    let outs = load_at_once(&s, image, n);
    let mut extracted = 0;
    for (i, o) in outs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "load #{i} of {n} failed ({}): {err}",
            o.status
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            fixtures::config_digest(image, None),
            "load #{i} printed the image ID"
        );
        extracted += err
            .lines()
            .filter(|l| l.contains("layer extracted"))
            .count();
    }
    let images = s.list("images");
    assert_eq!(
        images.len(),
        1,
        "{n} loads of one image made {} images",
        images.len()
    );
    let layers = s.list("layers").len();
    let want = fixtures::manifest(image, None)["layers"]
        .as_array()
        .expect("manifest layers")
        .len();
    assert_eq!(layers, want, "the store has every layer of the image, once");
    assert_eq!(
        extracted, layers,
        "{n} concurrent loads extracted {extracted} layers for a {layers}-layer image"
    );
    s.assert_clean();
    s.ok(["storage", "gc"]);
    s.assert_clean();
    assert_eq!(s.driver_keys(), s.known_keys());
}

/// Many processes opening a brand-new store at the same moment (each creates the layout, the
/// metastore and the driver's home if missing): all must succeed.
fn fresh_store_opened_at_once(test: &str, driver: &str) {
    if !require_privileged(test, "the overlay driver's home checks") {
        return;
    }
    for round in 0..10 {
        let s = Strata::new(driver);
        let children: Vec<_> = (0..8)
            .map(|_| s.spawn(["storage", "info", "--format", "json"]))
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let o = c.wait_with_output().expect("wait for strata");
            assert!(
                o.status.success(),
                "round {round}: opener #{i} of 8 failed on a fresh {driver} store: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        s.assert_clean();
    }
}

#[test]
fn fresh_store_opened_at_once_overlay() {
    fresh_store_opened_at_once("concurrency::fresh_store_opened_at_once_overlay", "overlay");
}

#[test]
fn fresh_store_opened_at_once_vfs() {
    fresh_store_opened_at_once("concurrency::fresh_store_opened_at_once_vfs", "vfs");
}

#[test]
fn two_loads_at_once_overlay() {
    concurrent_loads("concurrency::two_loads_at_once_overlay", "overlay", 2);
}

#[test]
fn eight_loads_at_once_overlay() {
    concurrent_loads("concurrency::eight_loads_at_once_overlay", "overlay", 8);
}

#[test]
fn eight_loads_at_once_vfs() {
    concurrent_loads("concurrency::eight_loads_at_once_vfs", "vfs", 8);
}

#[test]
fn eight_container_lifecycles_at_once() {
    if !require_privileged(
        "concurrency::eight_container_lifecycles_at_once",
        "overlay mounts",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    s.load(&fixtures::oci("busybox"), &["--name", "busybox"]);
    let rounds = 3;
    std::thread::scope(|scope| {
        for w in 0..8 {
            let s = &s;
            scope.spawn(move || {
                for r in 0..rounds {
                    let name = format!("w{w}-{r}");
                    let id = s.create("busybox", &name);
                    let mp = s.mount(&name);
                    assert!(
                        mp.ends_with(&id),
                        "{name}: mount point {} is not <runroot>/mounts/<id>",
                        mp.display()
                    );
                    assert!(
                        mp.join("bin").is_dir(),
                        "{name}: the mounted tree lacks /bin"
                    );
                    std::fs::write(mp.join(format!("{name}.txt")), name.as_bytes())
                        .expect("write into the container");
                    assert_eq!(s.mount(&name), mp, "{name}: mount is idempotent");
                    s.ok(["storage", "umount", &name]);
                    let mp = s.mount(&name);
                    assert_eq!(
                        std::fs::read_to_string(mp.join(format!("{name}.txt"))).expect("read back"),
                        name
                    );
                    s.ok(["storage", "rm", &name]);
                }
            });
        }
    });
    assert!(s.list("containers").is_empty());
    let left = strata_tests::cli::mounts_below(&s.runroot);
    assert!(left.is_empty(), "still mounted: {left:?}");
    s.assert_clean();
    s.ok(["storage", "gc"]);
    s.assert_clean();
    assert_eq!(s.driver_keys(), s.known_keys());
    assert_eq!(s.list("images").len(), 1);
}
