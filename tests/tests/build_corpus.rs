//! The build front end against buildah: every Containerfile of `tests/build-corpus/` is built
//! by Strata and, where the case says `compare = true`, by buildah 1.28 (`bud --layers`) from
//! the same base images (the busybox and layers fixtures, made offline). Their image configs
//! (minus `created`, history, rootfs and buildah's version label) and merged root filesystems
//! (type, mode, owner, size, content, link target, xattrs) must be equal. Cases buildah cannot
//! build (heredocs, `--parents`, `--exclude`, Docker semantics buildah lacks) check Strata's
//! result against expectations written in their `case.toml`; failure cases must fail at the
//! line they name and leave no container or mount behind.
//!
//! The corpus format is described in `tests/build-corpus/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use strata_tests::buildah::Buildah;
use strata_tests::cli::{mounts_below, workspace_dir};
use strata_tests::tree::{compare_with, CompareOptions};
use strata_tests::{fixtures, require_privileged, Strata};

#[derive(Debug)]
struct Case {
    name: String,
    dir: PathBuf,
    spec: toml::Table,
}

fn cases() -> Vec<Case> {
    let root = workspace_dir().join("tests/build-corpus");
    let mut out: Vec<Case> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("case.toml").is_file())
        .map(|e| {
            let text = std::fs::read_to_string(e.path().join("case.toml")).expect("read case.toml");
            Case {
                name: e.file_name().to_string_lossy().into_owned(),
                dir: e.path(),
                spec: text
                    .parse()
                    .unwrap_or_else(|err| panic!("{}/case.toml: {err}", e.path().display())),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A copy of the case directory with its `setup.sh` run in it.
fn prepare(case: &Case, into: &Path) -> PathBuf {
    let dir = into.join(&case.name);
    let st = Command::new("cp")
        .arg("-a")
        .arg(&case.dir)
        .arg(&dir)
        .status()
        .expect("run cp");
    assert!(st.success(), "copy {}", case.dir.display());
    if dir.join("setup.sh").is_file() {
        let out = Command::new("bash")
            .arg("setup.sh")
            .current_dir(&dir)
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}: setup.sh failed:\n{}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(dir.join("setup.sh")).expect("remove setup.sh");
    }
    std::fs::remove_file(dir.join("case.toml")).expect("remove case.toml");
    dir
}

fn args(case: &Case) -> Vec<String> {
    let mut a = vec!["--network".to_owned(), "none".to_owned()];
    if let Some(list) = case.spec.get("args").and_then(|v| v.as_array()) {
        a.extend(
            list.iter()
                .map(|v| v.as_str().expect("args are strings").to_owned()),
        );
    }
    a
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).expect("TOML converts to JSON")
}

/// Strata's image config (`config` object) without buildah's version label.
fn strata_config(s: &Strata, image: &str) -> Value {
    let v = s.json(["inspect", "--type", "image", image]);
    v[0]["Config"].clone()
}

fn normalize(mut c: Value) -> Value {
    if let Some(labels) = c.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove("io.buildah.version");
    }
    if let Some(o) = c.as_object_mut() {
        // Empty and absent are the same setting.
        o.retain(|_, v| {
            !(v.is_null()
                || v == &Value::Array(vec![])
                || v == &Value::Object(Default::default())
                || v == &Value::String(String::new()))
        });
    }
    c
}

fn check_files(case: &Case, root: &Path, problems: &mut Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    for f in case
        .spec
        .get("file")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let path = f["path"].as_str().expect("file.path");
        let p = root.join(path.trim_start_matches('/'));
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            problems.push(format!("{path}: missing"));
            continue;
        };
        if let Some(kind) = f.get("kind").and_then(|v| v.as_str()) {
            let got = if md.is_dir() {
                "dir"
            } else if md.file_type().is_symlink() {
                "symlink"
            } else {
                "file"
            };
            if got != kind {
                problems.push(format!("{path}: a {got}, expected a {kind}"));
            }
        }
        if let Some(c) = f.get("content").and_then(|v| v.as_str()) {
            match std::fs::read(&p) {
                Ok(got) if got == c.as_bytes() => {}
                Ok(got) => problems.push(format!(
                    "{path}: content {:?}, expected {c:?}",
                    String::from_utf8_lossy(&got)
                )),
                Err(e) => problems.push(format!("{path}: cannot read: {e}")),
            }
        }
        if let Some(m) = f.get("mode").and_then(|v| v.as_str()) {
            let want = u32::from_str_radix(m, 8).expect("mode is octal");
            if md.mode() & 0o7777 != want {
                problems.push(format!(
                    "{path}: mode {:o}, expected {m}",
                    md.mode() & 0o7777
                ));
            }
        }
        for (k, got) in [("uid", md.uid()), ("gid", md.gid())] {
            if let Some(want) = f.get(k).and_then(|v| v.as_integer()) {
                if i64::from(got) != want {
                    problems.push(format!("{path}: {k} {got}, expected {want}"));
                }
            }
        }
        if let Some(t) = f.get("target").and_then(|v| v.as_str()) {
            match std::fs::read_link(&p) {
                Ok(got) if got == Path::new(t) => {}
                other => problems.push(format!("{path}: link target {other:?}, expected {t}")),
            }
        }
    }
    for a in case
        .spec
        .get("absent")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let path = a["path"].as_str().expect("absent.path");
        if std::fs::symlink_metadata(root.join(path.trim_start_matches('/'))).is_ok() {
            problems.push(format!("{path}: present, expected absent"));
        }
    }
}

#[test]
fn privileged_corpus_builds_like_buildah() {
    if !require_privileged(
        "privileged_corpus_builds_like_buildah",
        "builds run containers and mount overlays",
    ) {
        return;
    }
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the corpus has {} cases, fewer than 40",
        cases.len()
    );
    let s = Strata::new("overlay");
    for (layout, name) in [
        ("busybox", "localhost/busybox:latest"),
        ("layers", "localhost/layers:latest"),
    ] {
        let id = s.load(&format!("{}:latest", fixtures::oci(layout)), &[]);
        s.ok(["tag", &id, name]);
    }
    let bh = Buildah::new();
    for (layout, name) in [
        ("busybox", "localhost/busybox:latest"),
        ("layers", "localhost/layers:latest"),
    ] {
        bh.load(&format!("{}:latest", fixtures::oci(layout)), name);
    }
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let ctx = prepare(case, work.path());
        let tag = format!("localhost/corpus-{}", case.name);
        let mut argv: Vec<String> = vec!["build".into(), "-t".into(), tag.clone()];
        argv.extend(args(case));
        argv.push(ctx.display().to_string());
        let mut problems = Vec::new();
        if let Some(fail) = case.spec.get("fail").and_then(|v| v.as_table()) {
            let out = s
                .command()
                .args(&argv)
                .current_dir(&ctx)
                .output()
                .expect("run strata");
            assert!(
                !out.status.success(),
                "{}: the build should have failed",
                case.name
            );
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let line = fail["line"].as_integer().expect("fail.line");
            if !stderr.contains(&format!("Containerfile:{line}:")) {
                problems.push(format!(
                    "the error does not name Containerfile:{line}: {stderr}"
                ));
            }
            let msg = fail["message"].as_str().expect("fail.message");
            if !stderr.contains(msg) {
                problems.push(format!("the error does not say {msg:?}: {stderr}"));
            }
            if !s.list("containers").is_empty() {
                problems.push(format!(
                    "containers left behind: {:?}",
                    s.list("containers")
                ));
            }
            if !mounts_below(&s.runroot).is_empty() {
                problems.push(format!(
                    "mounts left behind: {:?}",
                    mounts_below(&s.runroot)
                ));
            }
        } else {
            let out = s
                .command()
                .args(&argv)
                .current_dir(&ctx)
                .output()
                .expect("run strata");
            if !out.status.success() {
                failures.push(format!(
                    "{}: strata build failed:\n{}",
                    case.name,
                    String::from_utf8_lossy(&out.stderr)
                ));
                continue;
            }
            let mounted = {
                let c = s.ok([
                    "storage",
                    "create",
                    &tag,
                    "--name",
                    &format!("check-{}", case.name),
                ]);
                let _ = c;
                s.mount(&format!("check-{}", case.name))
            };
            check_files(case, &mounted, &mut problems);
            let config = strata_config(&s, &tag);
            if let Some(want) = case.spec.get("config").and_then(|v| v.as_table()) {
                for (k, v) in want {
                    if config.get(k) != Some(&to_json(v)) {
                        problems.push(format!(
                            "config {k}: {:?}, expected {}",
                            config.get(k),
                            to_json(v)
                        ));
                    }
                }
            }
            if case.spec.get("compare").and_then(|v| v.as_bool()) == Some(true) {
                let out = bh.build(&ctx, &tag, &args(case));
                if !out.status.success() {
                    problems.push(format!(
                        "buildah failed to build it:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                } else {
                    let theirs = normalize(bh.config(&tag)["config"].clone());
                    let ours = normalize(config.clone());
                    if theirs != ours {
                        problems.push(format!(
                            "config differs:\n  buildah: {theirs}\n  strata:  {ours}"
                        ));
                    }
                    let reference = bh.mount(&tag);
                    let diffs = compare_with(
                        &reference,
                        &mounted,
                        // Files a RUN writes get different times in two builds, and buildah
                        // rounds a context file's sub-second mtime where Docker truncates.
                        &CompareOptions {
                            ignore: Vec::new(),
                            ignore_file_mtimes: true,
                        },
                    );
                    // A mounted buildah container's `/` is always 0555 whatever the image
                    // says; the root directory's own metadata is left out.
                    problems.extend(
                        diffs
                            .into_iter()
                            .filter(|d| {
                                !d.starts_with("/: ")
                                    && !d.starts_with(".: ")
                                    && !d.starts_with(": ")
                            })
                            .map(|d| format!("tree: {d}")),
                    );
                }
            }
            s.ok(["storage", "umount", &format!("check-{}", case.name)]);
            s.ok(["storage", "rm", &format!("check-{}", case.name)]);
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", case.name, problems.join("\n  ")));
        }
    }
    s.assert_clean();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
