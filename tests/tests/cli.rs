//! Black-box behaviour of the `strata storage` command line: exit codes by error kind, one-line
//! errors, JSON output of every listing, settings precedence (flag > environment > config
//! file), refusal to open a store with another driver, and `storage info`.
//!
//! These tests use the vfs driver and never mount, so they need no root.

use std::path::Path;

use serde_json::Value;
use strata_tests::layout::sample_image;
use strata_tests::Strata;

/// A vfs store holding the sample image as `sample`.
fn store_with_sample() -> (Strata, String) {
    let s = Strata::new("vfs");
    let layout = sample_image(&s.scratch().join("sample")).expect("write sample layout");
    let id = s.load(&layout.oci_ref(), &["--name", "sample"]);
    assert_eq!(id, layout.config, "the image ID is the config digest");
    (s, id)
}

/// Asserts `stderr` is exactly one line `strata: error: ...` containing `needle`.
fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    assert!(
        lines[0].starts_with("strata: error: "),
        "error line lacks the prefix: {stderr}"
    );
    assert!(
        lines[0].contains(needle),
        "error line does not mention {needle:?}: {stderr}"
    );
}

#[test]
fn not_found_exits_3() {
    let (s, _) = store_with_sample();
    for args in [
        vec!["storage", "create", "nosuch"],
        vec!["storage", "mount", "nosuch"],
        vec!["storage", "umount", "nosuch"],
        vec!["storage", "rm", "nosuch"],
        vec!["storage", "rmi", "nosuch"],
        vec!["storage", "tag", "nosuch", "other"],
        vec![
            "storage",
            "save",
            "nosuch",
            "oci:/nonexistent-dir-for-strata-test",
        ],
    ] {
        let (code, err) = s.fail(&args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert_one_line_error(&err, "nosuch");
    }
    // A reference the layout does not have.
    let (code, err) = s.fail([
        "storage",
        "load",
        &format!("oci:{}:nope", s.scratch().join("sample").display()),
    ]);
    assert_eq!(code, 3, "{err}");
    assert_one_line_error(&err, "nope");
}

#[test]
fn rmi_of_an_image_in_use_exits_6() {
    let (s, id) = store_with_sample();
    s.create("sample", "user");
    let (code, err) = s.fail(["storage", "rmi", "sample"]);
    assert_eq!(code, 6, "{err}");
    assert_one_line_error(&err, "user");
    assert_eq!(s.list("images").len(), 1, "the image must still be there");
    s.ok(["storage", "rm", "user"]);
    assert_eq!(s.ok(["storage", "rmi", "sample"]).trim(), id);
    assert!(s.list("images").is_empty());
    assert!(
        s.list("layers").is_empty(),
        "rmi removes the layers only the image used"
    );
}

#[test]
fn duplicate_container_name_exits_4() {
    let (s, _) = store_with_sample();
    let first = s.create("sample", "dup");
    let (code, err) = s.fail(["storage", "create", "sample", "--name", "dup"]);
    assert_eq!(code, 4, "{err}");
    assert_one_line_error(&err, "dup");
    let cs = s.list("containers");
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0]["id"], first.as_str());
    s.assert_clean();
}

#[test]
fn invalid_arguments_exit_5_and_usage_errors_2() {
    let (s, _) = store_with_sample();
    let (code, err) = s.fail(["storage", "create", "sample", "--name", "bad name!"]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "bad name!");
    let (code, err) = s.fail([
        "storage",
        "load",
        &format!("oci:{}", s.scratch().join("sample").display()),
        "--platform",
        "linux",
    ]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "linux");
    let (code, err) = s.fail(["storage", "frobnicate"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = s.fail(["storage", "save", "sample", "oci:x", "--compress", "lz4"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn names_get_latest_and_resolve_by_id_prefix() {
    let (s, id) = store_with_sample();
    s.ok(["storage", "tag", "sample", "other", "repo/x:v1"]);
    let images = s.list("images");
    let names: Vec<&str> = images[0]["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["sample:latest", "other:latest", "repo/x:v1"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let hex = id.strip_prefix("sha256:").expect("sha256 ID");
    let c = s.create(&hex[..12], "by-prefix");
    assert_eq!(s.list("containers")[0]["id"], c.as_str());
    s.create("other:latest", "by-name");
}

#[test]
fn every_listing_parses_as_json() {
    let (s, id) = store_with_sample();
    let cid = s.create("sample", "c1");

    let info = s.json(["storage", "info", "--format", "json"]);
    for k in [
        "root",
        "runroot",
        "driver",
        "format_version",
        "images",
        "layers",
        "containers",
    ] {
        assert!(info.get(k).is_some(), "info lacks {k}: {info:#}");
    }

    let images = s.list("images");
    assert_eq!(images.len(), 1);
    for k in ["id", "names", "top_layer", "manifest_digest", "created"] {
        assert!(images[0].get(k).is_some(), "image lacks {k}: {images:#?}");
    }
    assert_eq!(images[0]["id"], id.as_str());

    let layers = s.list("layers");
    assert_eq!(layers.len(), 2);
    for k in [
        "id",
        "parent",
        "diff_id",
        "blob_digest",
        "blob_size",
        "compression",
        "size",
        "created",
    ] {
        assert!(
            layers.iter().all(|l| l.get(k).is_some()),
            "a layer lacks {k}: {layers:#?}"
        );
    }
    let compressions: Vec<&str> = layers
        .iter()
        .filter_map(|l| l["compression"].as_str())
        .collect();
    assert!(
        compressions.contains(&"gzip") && compressions.contains(&"zstd"),
        "{compressions:?}"
    );
    assert_eq!(
        images[0]["top_layer"],
        layers
            .iter()
            .find(|l| !l["parent"].is_null())
            .expect("a child layer")["id"]
    );

    let cs = s.list("containers");
    assert_eq!(cs.len(), 1);
    for k in ["id", "name", "image", "parent_layer", "created", "metadata"] {
        assert!(cs[0].get(k).is_some(), "container lacks {k}: {cs:#?}");
    }
    assert_eq!(cs[0]["id"], cid.as_str());
    assert_eq!(cs[0]["name"], "c1");
    assert_eq!(cs[0]["image"], id.as_str());

    let gc = s.json(["storage", "gc", "--format", "json"]);
    for k in [
        "layers",
        "orphan_payloads",
        "orphan_tarsplits",
        "blobs",
        "staging",
        "temp_files",
        "mountpoints",
    ] {
        assert_eq!(gc[k], 0, "gc of a clean store removed {k}: {gc:#}");
    }
    let fsck = s.fsck();
    assert_eq!(fsck["problems"], serde_json::json!([]), "{fsck:#}");
    assert_eq!(fsck["garbage"], serde_json::json!([]), "{fsck:#}");
    assert_eq!(fsck["checked_layers"], 2, "{fsck:#}");
    assert_eq!(fsck["checked_images"], 1, "{fsck:#}");
    assert_eq!(fsck["checked_containers"], 1, "{fsck:#}");
    let content = s.json(["storage", "fsck", "--content", "--format", "json"]);
    assert_eq!(content["problems"], serde_json::json!([]), "{content:#}");
}

#[test]
fn info_reports_the_store() {
    let (s, _) = store_with_sample();
    s.create("sample", "c1");
    let info = s.json(["storage", "info", "--format", "json"]);
    assert_eq!(info["root"], s.root.to_str().expect("utf-8 path"));
    assert_eq!(info["runroot"], s.runroot.to_str().expect("utf-8 path"));
    assert_eq!(info["driver"]["name"], "vfs");
    assert_eq!(
        info["driver"]["home"],
        s.driver_home().to_str().expect("utf-8 path")
    );
    assert!(
        info["format_version"].as_i64().is_some_and(|v| v >= 1),
        "{info:#}"
    );
    assert_eq!(
        (
            info["images"].clone(),
            info["layers"].clone(),
            info["containers"].clone()
        ),
        (1.into(), 2.into(), 1.into())
    );
    let table = s.ok(["storage", "info"]);
    assert!(
        table.contains(&format!("root: {}", s.root.display())),
        "{table}"
    );
    assert!(table.contains("driver: vfs"), "{table}");
    assert!(table.contains("images: 1"), "{table}");
}

/// Runs `storage info --format json` with `cmd`'s settings.
fn info(cmd: &mut std::process::Command) -> Value {
    let out = cmd
        .args(["storage", "info", "--format", "json"])
        .output()
        .expect("run strata");
    assert!(
        out.status.success(),
        "storage info failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("info JSON")
}

fn write_config(path: &Path, root: &Path, driver: &str) {
    std::fs::write(
        path,
        format!(
            "root = {:?}\nrunroot = {:?}\ndriver = {driver:?}\n",
            root.display().to_string(),
            root.with_extension("run").display().to_string()
        ),
    )
    .expect("write config");
}

#[test]
fn root_flag_beats_environment_beats_config_file() {
    let s = Strata::new("vfs");
    let base = s.scratch();
    let (file_root, env_root, flag_root, other_root) = (
        base.join("file"),
        base.join("env"),
        base.join("flag"),
        base.join("other"),
    );
    let cfg = base.join("a.toml");
    write_config(&cfg, &file_root, "vfs");

    let v = info(s.bare_command().env("STRATA_CONFIG", &cfg));
    assert_eq!(
        v["root"],
        file_root.to_str().expect("utf-8"),
        "config file root"
    );
    assert_eq!(
        v["runroot"],
        file_root.with_extension("run").to_str().expect("utf-8")
    );
    assert_eq!(v["driver"]["name"], "vfs", "config file driver");

    let v = info(
        s.bare_command()
            .env("STRATA_CONFIG", &cfg)
            .env("STRATA_ROOT", &env_root),
    );
    assert_eq!(
        v["root"],
        env_root.to_str().expect("utf-8"),
        "STRATA_ROOT beats the config file"
    );

    let v = info(
        s.bare_command()
            .env("STRATA_CONFIG", &cfg)
            .env("STRATA_ROOT", &env_root)
            .arg("--root")
            .arg(&flag_root),
    );
    assert_eq!(
        v["root"],
        flag_root.to_str().expect("utf-8"),
        "--root beats STRATA_ROOT"
    );

    // --config beats STRATA_CONFIG.
    let other_cfg = base.join("b.toml");
    write_config(&other_cfg, &other_root, "vfs");
    let v = info(
        s.bare_command()
            .env("STRATA_CONFIG", &cfg)
            .arg("--config")
            .arg(&other_cfg),
    );
    assert_eq!(
        v["root"],
        other_root.to_str().expect("utf-8"),
        "--config beats STRATA_CONFIG"
    );

    // STRATA_DRIVER beats the config file's driver; --driver beats STRATA_DRIVER.
    let out = s
        .bare_command()
        .env("STRATA_CONFIG", &cfg)
        .env("STRATA_DRIVER", "nosuchdriver")
        .args(["storage", "info"])
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "STRATA_DRIVER must override the config file's vfs"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuchdriver"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = info(
        s.bare_command()
            .env("STRATA_CONFIG", &cfg)
            .env("STRATA_DRIVER", "nosuchdriver")
            .args(["--driver", "vfs"]),
    );
    assert_eq!(v["driver"]["name"], "vfs", "--driver beats STRATA_DRIVER");
}

/// `--max-layer-size` beats `STRATA_MAX_LAYER_SIZE` beats the config file's `max_layer_size`
/// beats the 256 GiB default; sizes take binary suffixes; a bad size is a usage error.
#[test]
fn max_layer_size_comes_from_flag_environment_config_or_default() {
    let s = Strata::new("vfs");
    let v = info(&mut s.command());
    assert_eq!(v["max_layer_size"], 256u64 << 30, "the default is 256 GiB");
    let cfg = s.scratch().join("size.toml");
    std::fs::write(&cfg, "max_layer_size = \"3G\"\n").expect("write config");
    let v = info(s.command().arg("--config").arg(&cfg));
    assert_eq!(v["max_layer_size"], 3u64 << 30, "config file");
    let v = info(
        s.command()
            .arg("--config")
            .arg(&cfg)
            .env("STRATA_MAX_LAYER_SIZE", "2048K"),
    );
    assert_eq!(
        v["max_layer_size"],
        2048u64 << 10,
        "environment beats config"
    );
    let v = info(
        s.command()
            .args(["--max-layer-size", "512MiB"])
            .env("STRATA_MAX_LAYER_SIZE", "2048K"),
    );
    assert_eq!(v["max_layer_size"], 512u64 << 20, "flag beats environment");
    let out = s
        .command()
        .args(["--max-layer-size", "lots", "storage", "info"])
        .output()
        .expect("run strata");
    assert_eq!(out.status.code(), Some(2), "a bad size is a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid size"), "{err}");
    std::fs::write(&cfg, "max_layer_size = 0\n").expect("write config");
    let (code, err) = s.fail(["--config", cfg.to_str().expect("utf-8"), "storage", "info"]);
    assert_ne!(code, 0);
    assert_one_line_error(&err, "max_layer_size");
}

#[test]
fn bad_config_files_are_reported_with_their_path() {
    let s = Strata::new("vfs");
    let cfg = s.scratch().join("bad.toml");
    std::fs::write(&cfg, "rooot = \"/x\"\n").expect("write");
    let out = s
        .bare_command()
        .arg("--config")
        .arg(&cfg)
        .args(["storage", "info"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_one_line_error(&err, cfg.to_str().expect("utf-8"));
    let missing = s.scratch().join("missing.toml");
    let out = s
        .bare_command()
        .arg("--config")
        .arg(&missing)
        .args(["storage", "info"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert_one_line_error(
        &String::from_utf8_lossy(&out.stderr),
        missing.to_str().expect("utf-8"),
    );
}

#[test]
fn a_store_refuses_another_driver() {
    let (s, _) = store_with_sample();
    let out = s
        .bare_command()
        .arg("--root")
        .arg(&s.root)
        .arg("--runroot")
        .arg(&s.runroot)
        .args(["--driver", "overlay", "storage", "images"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert_one_line_error(&err, "created with the vfs driver");
    // The store is untouched and still opens with its own driver.
    assert_eq!(s.list("images").len(), 1);
    s.assert_clean();
}

#[test]
fn an_unknown_driver_does_not_claim_a_new_store() {
    let s = Strata::new("vfs");
    let out = s
        .bare_command()
        .arg("--root")
        .arg(&s.root)
        .arg("--runroot")
        .arg(&s.runroot)
        .args(["--driver", "nosuchdriver", "storage", "info"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(8),
        "unsupported driver exits 8: {err}"
    );
    assert_one_line_error(&err, "nosuchdriver");
    // A typo must not make the store unusable with the right driver.
    let info = s.json(["storage", "info", "--format", "json"]);
    assert_eq!(info["driver"]["name"], "vfs");
}

#[test]
fn fsck_with_problems_exits_6_and_repair_fixes_them() {
    let (s, _) = store_with_sample();
    s.create("sample", "c1");
    let layers = s.list("layers");
    let top = layers
        .iter()
        .find(|l| !l["parent"].is_null())
        .expect("top layer");
    let hex = top["id"]
        .as_str()
        .expect("id")
        .trim_start_matches("sha256:")
        .to_owned();
    std::fs::remove_file(s.root.join("tarsplit").join(format!("{hex}.tsz")))
        .expect("remove tar-split record");
    let out = s.run(["storage", "fsck", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .expect("fsck prints its JSON report even when it fails");
    assert_eq!(
        out.status.code(),
        Some(6),
        "fsck with problems exits 6: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems = report["problems"].as_array().expect("problems");
    assert!(
        problems
            .iter()
            .any(|p| p["object"].as_str().is_some_and(|o| o.contains(&hex))),
        "{report:#}"
    );
    let repaired = s.json(["storage", "fsck", "--repair", "--format", "json"]);
    assert!(
        !repaired["repaired"]
            .as_array()
            .expect("repaired")
            .is_empty(),
        "{repaired:#}"
    );
    // The broken layer, the image on it and the container on that are gone; the rest is clean.
    assert!(s.list("containers").is_empty());
    assert!(s.list("images").is_empty());
    s.assert_clean();
    assert_eq!(s.driver_keys(), s.known_keys());
}

#[test]
fn rmi_keeps_layers_other_images_share() {
    let (s, _) = store_with_sample();
    // Another image on the same base layer, with its own top layer.
    let base = {
        let mut t = strata_tests::TarBuilder::new();
        t.dir("etc")
            .file("etc/hostname", b"sample\n")
            .dir("usr")
            .dir("usr/bin");
        t.file_mode("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
            .symlink("usr/bin/alias", "tool");
        t.finish()
    };
    let top = strata_tests::TarBuilder::new()
        .file("etc/other", b"other\n")
        .finish();
    let other = strata_tests::LayoutBuilder::new()
        .layer(strata_tests::LayerSpec::tar(base).compressed(strata_tests::Compression::Gzip))
        .layer(strata_tests::LayerSpec::tar(top))
        .write(&s.scratch().join("other"))
        .expect("write layout");
    s.load(&other.oci_ref(), &["--name", "other"]);
    assert_eq!(
        s.list("layers").len(),
        3,
        "the shared base layer is stored once"
    );
    s.ok(["storage", "rmi", "sample"]);
    assert_eq!(
        s.list("layers").len(),
        2,
        "rmi keeps the base layer the other image uses"
    );
    s.create("other", "c");
    let content = s.json(["storage", "fsck", "--content", "--format", "json"]);
    assert_eq!(content["problems"], serde_json::json!([]), "{content:#}");
    s.assert_clean();
    assert_eq!(s.driver_keys(), s.known_keys());
}
