//! Synthetic bench images (`plugins/benchkit`, issue 16): a generated image is a valid OCI
//! layout that the store loads (image ID = config digest) and mounts to exactly the tree the
//! reference tool, `umoci unpack`, makes of it: whiteouts applied, duplicated contents
//! intact, sizes as the spec says; and the same spec generates the same digests again.

use strata_plugin_benchkit::synth::{self, Spec};
use strata_tests::{require_privileged, tree, Strata};

#[test]
fn synthetic_images_load_and_mount_as_umoci_unpacks_them() {
    if !require_privileged(
        "bench_images::synthetic_images_load_and_mount_as_umoci_unpacks_them",
        "overlay mounts and umoci unpack as root",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let spec: Spec = "layers=4,files=60,dirs=6,size=0..32k,dup=0.3,whiteouts=0.15,seed=5"
        .parse()
        .expect("spec");
    let dir = s.scratch().join("synth");
    let img = synth::generate(&spec, &dir, "latest").expect("generate");
    let again =
        synth::generate(&spec, &s.scratch().join("synth-again"), "latest").expect("generate again");
    assert_eq!(img, again, "the same spec makes the same image");

    let id = s.load(
        &format!("oci:{}:latest", dir.display()),
        &["--name", "synth"],
    );
    assert_eq!(id, img.config.as_str(), "the image ID is the config digest");
    assert_eq!(s.list("layers").len(), 4);
    s.create("synth", "c");
    let mp = s.mount("c");

    let bundle = s.scratch().join("bundle");
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", dir.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci (apt-get install umoci)");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diffs = tree::compare(&bundle.join("rootfs"), &mp);
    assert!(
        diffs.is_empty(),
        "the mounted synthetic image differs from umoci's tree in {} ways:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    let files = walkdir::WalkDir::new(&mp)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count();
    let deleted: u32 = img.layers.iter().map(|l| l.whiteouts).sum();
    assert_eq!(
        files as u32,
        4 * 60 - deleted,
        "every file but the deleted ones"
    );
    assert!(deleted > 0, "the spec asked for whiteouts");
    s.ok(["storage", "umount", "c"]);
    s.assert_clean();
}

/// `strata bench images`: the same spec gives the same digests, another seed others; the
/// layout is one skopeo (the reference tool) reads with the digest Strata printed; bad specs
/// and used directories are refused with the right exit codes.
#[test]
fn bench_images_is_deterministic_and_readable_by_skopeo() {
    let s = Strata::new("vfs");
    let gen = |name: &str, spec: &str| {
        let out = s.scratch().join(name);
        s.json([
            "bench",
            "images",
            "--synthetic",
            spec,
            "-o",
            &out.display().to_string(),
            "--format",
            "json",
        ])
    };
    let a = gen(
        "a",
        "layers=2,files=30,size=100..10k,dup=0.2,whiteouts=0.1,seed=3",
    );
    let b = gen(
        "b",
        "layers=2,files=30,size=100..10k,dup=0.2,whiteouts=0.1,seed=3",
    );
    let c = gen(
        "c",
        "layers=2,files=30,size=100..10k,dup=0.2,whiteouts=0.1,seed=4",
    );
    assert_eq!(a["manifest"], b["manifest"], "{a:#}");
    assert_ne!(a["manifest"], c["manifest"]);
    assert_eq!(a["layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(a["layers"][1]["whiteouts"], 3, "10% of 30 files: {a:#}");

    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", s.scratch().join("a").display()))
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = strata_types::Digest::of(&out.stdout);
    assert_eq!(
        a["manifest"],
        manifest.as_str(),
        "skopeo reads the same manifest"
    );

    let (code, err) = s.fail([
        "bench",
        "images",
        "--synthetic",
        "layers=2",
        "-o",
        &s.scratch().join("a").display().to_string(),
    ]);
    assert_eq!(code, 4, "a used directory is refused: {err}");
    let (code, err) = s.fail([
        "bench",
        "images",
        "--synthetic",
        "layers=2,colour=blue",
        "-o",
        &s.scratch().join("d").display().to_string(),
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("colour"), "the error names the bad key: {err}");
}

/// `strata bench compare`: a 50% slower measurement is a regression (exit 1 with
/// `--fail-on-regression`), an unchanged one is not, and a file whose summary was edited to
/// disagree with its samples is refused.
#[test]
fn bench_compare_marks_significant_changes() {
    use strata_plugin_benchkit::results::{Machine, Measurement, ResultFile, SCHEMA};
    let s = Strata::new("vfs");
    let base: Vec<f64> = (0..30).map(|i| 0.1 + f64::from(i % 5) * 0.001).collect();
    let slow: Vec<f64> = base.iter().map(|x| x * 1.5).collect();
    let file = |pull: Vec<f64>| ResultFile {
        schema: SCHEMA.into(),
        started: "2026-12-07T16:00:00Z".into(),
        machine: Machine::this(),
        settings: Default::default(),
        measurements: vec![
            Measurement::new("pull", "strata", "s", pull).expect("samples"),
            Measurement::new("rmi", "strata", "s", base.clone()).expect("samples"),
        ],
        skipped: Vec::new(),
    };
    let dir = s.scratch();
    std::fs::create_dir_all(&dir).expect("scratch");
    let (before, after) = (dir.join("before.json"), dir.join("after.json"));
    std::fs::write(
        &before,
        serde_json::to_vec(&file(base.clone())).expect("json"),
    )
    .expect("w");
    std::fs::write(&after, serde_json::to_vec(&file(slow)).expect("json")).expect("w");
    let (b, a) = (before.display().to_string(), after.display().to_string());
    let v = s.json(["bench", "compare", &b, &a, "--format", "json"]);
    assert_eq!(v["rows"][0]["key"], "pull [strata]", "{v:#}");
    assert_eq!(v["rows"][0]["verdict"], "regression", "{v:#}");
    assert_eq!(v["rows"][1]["verdict"], "no-change", "{v:#}");
    let table = s.ok(["bench", "compare", &b, &a]);
    assert!(table.contains("REGRESSION"), "{table}");
    let (code, _) = s.fail(["bench", "compare", &b, &a, "--fail-on-regression"]);
    assert_eq!(code, 1);
    s.ok(["bench", "compare", &b, &b, "--fail-on-regression"]);

    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&after).expect("read")).expect("json");
    forged["measurements"][0]["summary"]["median"] = 0.1.into();
    std::fs::write(&after, forged.to_string()).expect("write");
    let (code, err) = s.fail(["bench", "compare", &b, &a]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("does not match"), "{err}");
}
