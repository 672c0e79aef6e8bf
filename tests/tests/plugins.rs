//! The plugin host, black-box: an out-of-tree plugin (`tests/plugin-example`, its own cargo
//! workspace depending only on `strata-plugin-api`) is built in several variants and put on
//! `STRATA_PLUGIN_PATH`. The host must load the good one (its command shows in `--help`, runs,
//! reaches the store through the host, logs into the host's log) and refuse the bad ones
//! (wrong ABI version, truncated entry table, missing entry symbol, writable file or
//! directory, a command another plugin owns), each with a reason naming the file, while the
//! rest keep working. Panics stay inside the plugin.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use strata_tests::cli::workspace_dir;
use strata_tests::layout::sample_image;
use strata_tests::{Compression, Strata, TarBuilder};

/// Builds the example plugin with `features` (once per process per variant) and returns a
/// private copy of the `.so`.
fn example(variant: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out_dir = BUILT.get_or_init(|| {
        let ws = workspace_dir();
        let target = ws.join("target/plugin-example");
        let out = target.join("variants");
        std::fs::create_dir_all(&out).expect("create variants dir");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        for v in ["good", "wrong-abi", "truncated", "duplicate"] {
            let mut cmd = Command::new(&cargo);
            cmd.args(["build", "--quiet", "--manifest-path"])
                .arg(ws.join("tests/plugin-example/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .env_remove("RUSTFLAGS");
            if v != "good" {
                cmd.args(["--features", v]);
            }
            let o = cmd.output().expect("run cargo");
            assert!(
                o.status.success(),
                "building the example plugin ({v}) failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::fs::copy(
                target.join("debug/libstrata_plugin_hello.so"),
                out.join(format!("{v}.so")),
            )
            .expect("copy the built plugin");
        }
        out
    });
    out_dir.join(format!("{variant}.so"))
}

/// A fresh directory (mode 0755) holding the given plugin files under the given names.
fn plugin_dir(s: &Strata, name: &str, files: &[(&str, &Path)]) -> PathBuf {
    let dir = s.scratch().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (file, src) in files {
        let dst = dir.join(file);
        std::fs::copy(src, &dst).expect("copy plugin");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

fn with_path(s: &Strata, path: &Path) -> Command {
    let mut c = s.command();
    c.env("STRATA_PLUGIN_PATH", path);
    c
}

fn output(mut c: Command, args: &[&str]) -> (i32, String, String) {
    let o = c.args(args).output().expect("run strata");
    (
        o.status.code().expect("exited"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn plugins_json(s: &Strata, path: &Path) -> Value {
    let (code, out, err) = output(with_path(s, path), &["plugins", "--format", "json"]);
    assert_eq!(code, 0, "strata plugins failed: {err}");
    serde_json::from_str(&out).expect("plugins JSON")
}

#[test]
fn an_out_of_tree_plugin_adds_a_command_that_reaches_the_store() {
    let s = Strata::new("vfs");
    let dir = plugin_dir(&s, "p", &[("libstrata_plugin_hello.so", &example("good"))]);
    let v = plugins_json(&s, &dir);
    let loaded = v["loaded"].as_array().expect("loaded list");
    let hello = loaded
        .iter()
        .find(|p| p["name"] == "hello")
        .unwrap_or_else(|| panic!("hello not loaded: {v:#}"));
    assert_eq!(hello["commands"][0]["name"], "hello");
    assert!(
        v["search_path"][0].as_str() == dir.to_str(),
        "STRATA_PLUGIN_PATH comes first: {v:#}"
    );

    let (code, help, _) = output(with_path(&s, &dir), &["--help"]);
    assert_eq!(code, 0);
    assert!(
        help.lines()
            .any(|l| l.trim_start().starts_with("hello") && l.contains("[plugin hello]")),
        "--help does not list the plugin's command:\n{help}"
    );

    let (code, out, err) = output(with_path(&s, &dir), &["hello", "strata"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "hello, strata, from the hello command of plugin hello"
    );

    // The plugin sees the store the host opened with the global options.
    let layout = sample_image(&s.scratch().join("sample")).expect("sample layout");
    let id = s.load(&layout.oci_ref(), &["--name", "sample"]);
    let (code, out, err) = output(with_path(&s, &dir), &["hello", "--images"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1 images"), "{out}");
    assert!(
        out.contains(&id),
        "the plugin's listing lacks image {id}: {out}"
    );
    assert!(
        out.contains("localhost/sample:latest") || out.contains("sample:latest"),
        "{out}"
    );

    // Its tracing events land in the host's log, filtered by the host's --log-level.
    let (_, _, err) = output(
        with_path(&s, &dir),
        &["--log-level", "warn", "hello", "--log"],
    );
    assert!(
        err.contains("a warning from the hello plugin") && err.contains("answer=42"),
        "{err}"
    );
    let (_, _, err) = output(
        with_path(&s, &dir),
        &["--log-level", "error", "hello", "--log"],
    );
    assert!(
        !err.contains("a warning from the hello plugin"),
        "log level ignored: {err}"
    );

    // Its errors are one line with the kind's exit code.
    let (code, _, err) = output(with_path(&s, &dir), &["hello", "--fail"]);
    assert_eq!(code, 3, "NotFound exits 3: {err}");
    assert_eq!(err.trim(), "strata: error: nothing to greet");
}

#[test]
fn a_panicking_plugin_fails_with_one_line_and_does_not_take_the_host_down() {
    let s = Strata::new("vfs");
    let dir = plugin_dir(&s, "p", &[("libstrata_plugin_hello.so", &example("good"))]);
    let (code, _, err) = output(with_path(&s, &dir), &["hello", "--panic"]);
    assert_eq!(code, 125, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    assert!(
        lines[0].starts_with("strata: error: the plugin panicked: asked to panic"),
        "{err}"
    );
}

#[test]
fn bad_plugins_are_refused_with_a_reason_naming_the_file() {
    let s = Strata::new("vfs");
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists())
    .expect("libz.so.1 (zlib1g) is installed on every Debian");
    let dir = plugin_dir(
        &s,
        "p",
        &[
            ("a-good.so", &example("good")),
            ("b-wrong-abi.so", &example("wrong-abi")),
            ("c-truncated.so", &example("truncated")),
            ("d-not-a-plugin.so", libz),
            ("e-duplicate.so", &example("duplicate")),
            ("f-writable.so", &example("good")),
        ],
    );
    std::fs::set_permissions(
        dir.join("f-writable.so"),
        std::fs::Permissions::from_mode(0o666),
    )
    .expect("chmod");
    // A world-writable directory: everything in it is refused.
    let open_dir = plugin_dir(&s, "open", &[("g-in-open-dir.so", &example("duplicate"))]);
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = std::env::join_paths([&dir, &open_dir]).expect("join");
    let v = plugins_json(&s, Path::new(&path));
    let refused = v["refused"].as_array().expect("refused list").clone();
    let reason = |file: &str| -> String {
        refused
            .iter()
            .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(file)))
            .and_then(|r| r["reason"].as_str())
            .unwrap_or_else(|| panic!("{file} was not refused: {v:#}"))
            .to_owned()
    };
    let check = |file: &str, words: &[&str]| {
        let r = reason(file);
        assert!(
            words.iter().all(|w| r.contains(w)),
            "{file}: reason {r:?} lacks {words:?}"
        );
    };
    check("b-wrong-abi.so", &["ABI 99", "ABI 1"]);
    check("c-truncated.so", &["truncated entry table"]);
    check("d-not-a-plugin.so", &["missing symbol strata_plugin_entry"]);
    check(
        "e-duplicate.so",
        &[
            "command hello is already provided by plugin hello",
            "a-good.so",
        ],
    );
    check("f-writable.so", &["writable", "f-writable.so"]);
    check("g-in-open-dir.so", &["directory", "writable"]);
    let loaded: Vec<&str> = v["loaded"]
        .as_array()
        .expect("loaded")
        .iter()
        .filter_map(|p| p["path"].as_str())
        // The workspace's own plugins, installed next to the binary, load too.
        .filter(|p| p.starts_with(s.base().to_str().expect("utf-8")))
        .collect();
    assert_eq!(
        loaded.len(),
        1,
        "only the good plugin of the test's directories loads: {loaded:?}"
    );
    assert!(loaded[0].ends_with("a-good.so"));

    // The table names every refused file with its reason; the good plugin still works.
    let (code, table, _) = output(with_path(&s, Path::new(&path)), &["plugins"]);
    assert_eq!(code, 0);
    for f in [
        "b-wrong-abi.so",
        "c-truncated.so",
        "d-not-a-plugin.so",
        "f-writable.so",
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.contains(f) && l.contains("refused")),
            "{f} missing from:\n{table}"
        );
    }
    let (code, out, err) = output(with_path(&s, Path::new(&path)), &["hello"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("plugin hello"), "{out}");
}

#[test]
fn a_missing_front_end_says_which_file_to_install() {
    let s = Strata::new("vfs");
    let empty = plugin_dir(&s, "none", &[]);
    // A copy of the binary away from the plugins installed beside it, so that only
    // STRATA_PLUGIN_PATH (empty) is searched.
    let alone = s.scratch().join("alone");
    std::fs::create_dir_all(&alone).expect("mkdir");
    std::fs::copy(strata_tests::cli::strata_bin(), alone.join("strata")).expect("copy strata");
    let bare = |args: &[&str]| {
        let mut c = Command::new(alone.join("strata"));
        c.arg("--root")
            .arg(&s.root)
            .arg("--runroot")
            .arg(&s.runroot)
            .args(["--driver", "vfs"])
            .env("STRATA_CONFIG", &s.config)
            .env("STRATA_PLUGIN_PATH", &empty)
            .env_remove("STRATA_ROOT")
            .env_remove("STRATA_RUNROOT");
        output(c, args)
    };
    let (code, _, err) = bare(&["build", "."]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("provided by the build plugin")
            && err.contains("libstrata_plugin_build.so")
            && err.contains(empty.to_str().expect("utf-8")),
        "{err}"
    );
    let (code, _, err) = bare(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown command frobnicate"), "{err}");
}

#[test]
fn an_out_of_tree_plugin_uses_the_store_methods_of_abi_1_4() {
    let s = Strata::new("vfs");
    let dir = plugin_dir(
        &s,
        "p14",
        &[("libstrata_plugin_hello.so", &example("good"))],
    );
    let call = |args: &[&str]| -> Value {
        let mut all = vec!["hello"];
        all.extend_from_slice(args);
        let (code, out, err) = output(with_path(&s, &dir), &all);
        assert_eq!(code, 0, "hello {args:?}: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out}: {e}"))
    };

    // One layer from a gzip stream, without its diff ID: the store learns it, and a second
    // import reuses the layer.
    let mut tar = TarBuilder::new();
    tar.dir("etc").file("etc/greeting", "hello\n");
    let tar = tar.finish();
    let diff_id = strata_tests::layout::sha256_digest(&tar);
    let gz = Compression::Gzip.compress(&tar);
    let file = s.scratch().join("layer.tar.gz");
    std::fs::write(&file, &gz).expect("write the layer");
    let first = call(&["--import-layer", file.to_str().expect("utf-8")]);
    assert_eq!(first["diff_id"], diff_id, "{first}");
    assert_eq!(
        first["layer"], diff_id,
        "a base layer's chain ID is its diff ID"
    );
    assert_eq!(first["size"], tar.len() as u64);
    assert_eq!(first["extracted"], true);
    let again = call(&["--import-layer", file.to_str().expect("utf-8")]);
    assert_eq!(again["layer"], first["layer"]);
    assert_eq!(again["extracted"], false, "the store had it");
    // A second layer on top of it.
    let mut top = TarBuilder::new();
    top.file("etc/motd", "welcome\n");
    let top_file = s.scratch().join("top.tar");
    std::fs::write(&top_file, top.finish()).expect("write");
    let second = call(&[
        "--import-layer",
        top_file.to_str().expect("utf-8"),
        first["layer"].as_str().expect("chain ID"),
    ]);
    assert_ne!(second["layer"], second["diff_id"], "a chain ID on a parent");
    // A broken stream is refused, with nothing left behind.
    let bad = s.scratch().join("bad.tar.gz");
    std::fs::write(&bad, &gz[..gz.len() / 2]).expect("write");
    let (code, _, err) = output(
        with_path(&s, &dir),
        &["hello", "--import-layer", bad.to_str().expect("utf-8")],
    );
    assert_ne!(code, 0, "a truncated layer must fail: {err}");
    assert!(err.starts_with("strata: error: "), "{err}");

    // Images with sizes and digests in one listing.
    let layout = sample_image(&s.scratch().join("sample")).expect("sample layout");
    let id = s.load(&layout.oci_ref(), &["--name", "sample"]);
    let images = call(&["--images-full"]);
    let img = images
        .as_array()
        .expect("a list")
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {images}"));
    let sizes: u64 = s
        .list("layers")
        .iter()
        .filter(|l| layout.diff_ids.iter().any(|d| l["diff_id"] == *d))
        .map(|l| l["size"].as_u64().expect("size"))
        .sum();
    assert_eq!(img["size"], sizes, "{img}");
    assert_eq!(img["layers"], layout.diff_ids.len());
    let digest = img["digest"]
        .as_str()
        .expect("a manifest digest")
        .to_owned();
    assert_eq!(
        img["repo_digests"],
        json!([format!("sample@{digest}")]),
        "{img}"
    );

    // A front end's metadata beside another's, and containers listed by front end.
    s.create("sample", "c1");
    s.create("sample", "c2");
    let c = call(&["--set-metadata", "c1", "cri", r#"{"pod":"p1"}"#]);
    assert_eq!(c["metadata"]["cri"], json!({"pod": "p1"}), "{c}");
    assert_eq!(call(&["--containers-with", "cri"]), json!(["c1"]));
    assert_eq!(call(&["--containers-with", "nobody"]), json!([]));
    let c = call(&["--set-metadata", "c1", "cri", "null"]);
    assert!(
        c["metadata"].get("cri").is_none(),
        "null removes the key: {c}"
    );
    assert_eq!(call(&["--containers-with", "cri"]), json!([]));
    let (code, _, err) = output(
        with_path(&s, &dir),
        &["hello", "--set-metadata", "nope", "cri", "1"],
    );
    assert_eq!(code, 3, "no such container: {err}");

    // A container of the engine that another front end keeps a record of (as the CRI will)
    // is still the engine's: `ps -a` shows it, and each front end finds its own.
    s.ok(["create", "--name", "web", "sample", "/usr/bin/tool"]);
    call(&["--set-metadata", "web", "cri", r#"{"sandbox":"s1"}"#]);
    assert_eq!(call(&["--containers-with", "cri"]), json!(["web"]));
    assert_eq!(call(&["--containers-with", "engine"]), json!(["web"]));
    let ps = s.json(["ps", "-a", "--format", "json"]);
    let names: Vec<&Value> = ps
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| &c["Names"][0])
        .collect();
    assert_eq!(
        names,
        [&json!("web")],
        "ps -a lists the engine's containers: {ps}"
    );
    assert_eq!(ps[0]["State"], "created");

    // A record the run front end wrote before the engine was its own layer (under `run`, with
    // no security settings) is the engine's too, and keeps running as it was made.
    call(&[
        "--set-metadata",
        "c2",
        "run",
        &json!({ "image_id": id, "args": ["/usr/bin/tool"], "runtime": "crun" }).to_string(),
    ]);
    let old = s.json(["inspect", "--type", "container", "c2"]);
    assert_eq!(
        old[0]["HostConfig"]["SecurityOpt"],
        json!(["seccomp=unconfined", "no-new-privileges"]),
        "{old}"
    );
    let web = s.json(["inspect", "--type", "container", "web"]);
    assert_eq!(web[0]["HostConfig"]["SecurityOpt"], json!([]), "{web}");
    assert_eq!(
        s.json(["ps", "-a", "--format", "json"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
