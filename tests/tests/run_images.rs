//! The run front end's image and filesystem commands, black-box: `save`/`load` (also with a
//! real podman, both ways), `export`/`import`, `diff`, `commit`, `cp` (in and out, running
//! and stopped, and against hostile links), and `system df|info|prune`.
//!
//! What a podman user checks: archives keep the image ID and names and run wherever they are
//! loaded, an exported tree holds what the container wrote, a commit holds the change and the
//! container's settings, `cp` keeps modes and times and never touches the host through a
//! container's links, and `prune` removes exactly the stopped and the dangling.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use strata_tests::cli::mounts_below;
use strata_tests::containers::busybox_store;
use strata_tests::{fixtures, require_privileged, Strata};

fn image_id(s: &Strata, name: &str) -> String {
    let v = s.json(["inspect", "--type", "image", name]);
    v[0]["Id"].as_str().expect("image Id").to_owned()
}

fn image_names(s: &Strata, name: &str) -> Vec<String> {
    let v = s.json(["inspect", "--type", "image", name]);
    serde_json::from_value(v[0]["RepoTags"].clone()).expect("RepoTags")
}

fn container_id(s: &Strata, name: &str) -> String {
    let v = s.json(["inspect", "--type", "container", name]);
    v[0]["Id"].as_str().expect("container Id").to_owned()
}

/// A podman with its own store in a temporary directory (never the machine's), as root.
/// The directory is short: podman refuses a runroot longer than 50 characters.
struct Podman {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let tmp = tempfile::Builder::new()
            .prefix("pm")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let dir = tmp.path().to_owned();
        for d in ["root", "run", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).expect("podman dirs");
        }
        Podman { dir, _tmp: tmp }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ])
            .stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("podman is installed (apt-get install podman)");
        assert!(
            out.status.success(),
            "podman {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman run --rm` without a network. podman's default rlimits (RLIMIT_NOFILE and
    /// RLIMIT_NPROC at 1048576) are above this machine's hard limits, and raising them needs
    /// CAP_SYS_RESOURCE, which it lacks: the runtime's setrlimit fails with EPERM (even with
    /// `--ulimit host` in podman 4.3). Limits below the hard limit are always allowed.
    fn run(&self, image: &str, cmd: &[&str]) -> String {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            image,
        ];
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    fn image_id(&self, name: &str) -> String {
        self.ok(&["image", "inspect", "--format", "{{.Id}}", name])
            .trim()
            .to_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers ran with --rm; the store's files are removed with the test's directory.
        let _ = self.command().args(["rm", "-af"]).output();
        strata_tests::cli::unmount_below(&self.dir);
    }
}

#[test]
fn privileged_podman_archives_load_here_and_run() {
    if !require_privileged("run_images_from_podman", "runs podman and containers") {
        return;
    }
    let s = busybox_store();
    let id = image_id(&s, "busybox");
    let podman = Podman::new();
    // Into podman through an oci-archive of ours, out of podman as its default docker-archive.
    let oci = s.scratch().join("busybox-oci.tar");
    s.ok([
        "save",
        "-q",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().expect("utf-8"),
        "busybox",
    ]);
    let loaded = podman.ok(&["load", "-q", "-i", oci.to_str().expect("utf-8")]);
    assert!(loaded.contains("localhost/busybox:latest"), "{loaded}");
    assert_eq!(podman.image_id("localhost/busybox:latest"), id);
    let docker = s.scratch().join("from-podman.tar");
    podman.ok(&[
        "save",
        "-q",
        "-o",
        docker.to_str().expect("utf-8"),
        "localhost/busybox:latest",
    ]);

    let fresh = Strata::new("overlay");
    let out = fresh.ok(["load", "-q", "-i", docker.to_str().expect("utf-8")]);
    assert_eq!(out, "Loaded image: localhost/busybox:latest\n");
    assert_eq!(image_id(&fresh, "localhost/busybox"), id);
    assert_eq!(
        fresh.ok([
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/busybox",
            "echo",
            "hi"
        ]),
        "hi\n"
    );
}

#[test]
fn privileged_our_archives_load_in_podman_and_run() {
    if !require_privileged("run_images_to_podman", "runs podman and containers") {
        return;
    }
    let s = busybox_store();
    let id = image_id(&s, "busybox");
    for format in ["docker-archive", "oci-archive"] {
        let file = s.scratch().join(format!("{format}.tar"));
        s.ok([
            "save",
            "-q",
            "--format",
            format,
            "-o",
            file.to_str().expect("utf-8"),
            "busybox",
        ]);
        let podman = Podman::new();
        let loaded = podman.ok(&["load", "-q", "-i", file.to_str().expect("utf-8")]);
        assert!(
            loaded.contains("localhost/busybox:latest"),
            "{format}: {loaded}"
        );
        assert_eq!(
            podman.image_id("localhost/busybox:latest"),
            id,
            "{format}: the image ID survives"
        );
        assert_eq!(
            podman.run("localhost/busybox:latest", &["echo", "hi"]),
            "hi\n",
            "{format}"
        );
    }
}

#[test]
fn privileged_save_and_load_keep_the_image_id_and_names() {
    if !require_privileged("run_images_save_load", "loads images into an overlay store") {
        return;
    }
    let s = busybox_store();
    let id = image_id(&s, "busybox");
    s.ok(["tag", "busybox", "quay.io/example/box:1.0"]);
    for (format, name) in [
        ("docker-archive", "localhost/busybox:latest"),
        ("oci-archive", "quay.io/example/box:1.0"),
    ] {
        let file = s.scratch().join(format!("{format}.tar"));
        s.ok([
            "save",
            "-q",
            "--format",
            format,
            "-o",
            file.to_str().expect("utf-8"),
            name,
        ]);
        let other = Strata::new("overlay");
        let out = other.ok(["load", "-q", "-i", file.to_str().expect("utf-8")]);
        assert_eq!(out, format!("Loaded image: {name}\n"), "{format}");
        assert_eq!(image_id(&other, name), id, "{format}");
        assert_eq!(image_names(&other, name), [name], "{format}");
    }
    // Loading what is already there only adds the name back.
    let file = s.scratch().join("docker-archive.tar");
    s.ok(["rmi", "localhost/busybox"]);
    assert_eq!(image_names(&s, &id), ["quay.io/example/box:1.0"]);
    s.ok(["load", "-q", "-i", file.to_str().expect("utf-8")]);
    let mut names = image_names(&s, &id);
    names.sort();
    assert_eq!(
        names,
        ["localhost/busybox:latest", "quay.io/example/box:1.0"]
    );
    // Not an archive at all.
    let junk = s.scratch().join("junk.tar");
    std::fs::write(&junk, b"not a tar").expect("write");
    s.fail(["load", "-i", junk.to_str().expect("utf-8")]);
}

/// The names of a tar's entries, without a trailing `/`, with their contents for files.
fn tar_entries(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(data);
    let mut out = Vec::new();
    for e in a.entries().expect("a tar") {
        let mut e = e.expect("a tar entry");
        let name = e
            .path()
            .expect("path")
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).expect("read entry");
        out.push((name, body));
    }
    out
}

#[test]
fn privileged_export_and_import_round_trip() {
    if !require_privileged("run_images_export_import", "runs containers") {
        return;
    }
    let s = busybox_store();
    s.ok([
        "run",
        "--name",
        "writer",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo data > /hello && mkdir -p /srv/deep && ln -s /hello /srv/deep/link",
    ]);
    let exported = s.scratch().join("rootfs.tar");
    s.ok(["export", "-o", exported.to_str().expect("utf-8"), "writer"]);
    let bytes = std::fs::read(&exported).expect("read export");
    let entries = tar_entries(&bytes);
    let find = |n: &str| entries.iter().find(|(name, _)| name == n);
    assert_eq!(find("hello").map(|e| e.1.as_slice()), Some(&b"data\n"[..]));
    for expected in ["bin/busybox", "etc/passwd", "srv/deep/link", "tmp"] {
        assert!(find(expected).is_some(), "{expected} is not in the export");
    }
    let passwd = std::fs::read(fixtures::reference_rootfs("busybox").join("etc/passwd"))
        .expect("fixture passwd");
    assert_eq!(find("etc/passwd").map(|e| &e.1), Some(&passwd));
    assert!(
        mounts_below(&s.runroot).is_empty(),
        "export unmounts the stopped container it mounted"
    );

    // Plain and gzip'd, with --change; the image runs and holds the file.
    let gz = s.scratch().join("rootfs.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &bytes).expect("gzip");
    std::fs::write(&gz, enc.finish().expect("gzip")).expect("write gz");
    for (file, name) in [(&exported, "imported"), (&gz, "imported-gz")] {
        let id = s
            .ok([
                "import",
                "--change",
                r#"CMD ["cat", "/hello"]"#,
                "--change",
                "ENV=GREETING=\"hi there\"",
                file.to_str().expect("utf-8"),
                name,
            ])
            .trim()
            .to_owned();
        assert_eq!(id.len(), 64, "import prints the image ID: {id}");
        assert_eq!(image_id(&s, name), id);
        assert_eq!(image_names(&s, name), [format!("localhost/{name}:latest")]);
        assert_eq!(
            s.ok(["run", "--rm", "--network", "none", name]),
            "data\n",
            "{name}"
        );
        assert_eq!(
            s.ok([
                "run",
                "--rm",
                "--network",
                "none",
                name,
                "sh",
                "-c",
                "echo $GREETING; readlink /srv/deep/link"
            ]),
            "hi there\n/hello\n",
            "{name}"
        );
    }
    let (code, err) = s.fail(["import", "/nonexistent.tar", "x"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn privileged_diff_lists_added_changed_and_deleted_paths() {
    if !require_privileged("run_images_diff", "runs containers") {
        return;
    }
    let s = busybox_store();
    s.ok([
        "run",
        "--name",
        "changer",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo new > /added && echo extra >> /etc/group && rm /bin/dirname",
    ]);
    let lines: Vec<String> = s
        .ok(["diff", "changer"])
        .lines()
        .map(str::to_owned)
        .collect();
    for expected in [
        "A /added",
        "C /etc/group",
        "D /bin/dirname",
        "C /etc",
        "C /bin",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} missing from diff: {lines:?}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.ends_with("/etc/hostname") || l == "A /proc"),
        "runtime mount points are not changes: {lines:?}"
    );
    let j = s.json(["diff", "--format", "json", "changer"]);
    let has = |k: &str, p: &str| {
        j[k].as_array()
            .expect("array")
            .iter()
            .any(|v| v.as_str() == Some(p))
    };
    assert!(has("added", "/added"), "{j}");
    assert!(has("changed", "/etc/group"), "{j}");
    assert!(has("deleted", "/bin/dirname"), "{j}");
    // A fresh container has no changes.
    s.ok(["create", "--name", "fresh", "busybox", "true"]);
    assert_eq!(s.ok(["diff", "fresh"]), "");
}

#[test]
fn privileged_commit_makes_a_runnable_image_with_the_change_and_settings() {
    if !require_privileged("run_images_commit", "runs containers") {
        return;
    }
    let s = busybox_store();
    s.ok([
        "run",
        "--name",
        "src",
        "--network",
        "none",
        "-e",
        "GREETING=hello",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "echo committed > /marker",
    ]);
    let id = s.ok(["commit", "-q", "src", "committed"]).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(image_id(&s, "committed"), id);
    assert_eq!(image_names(&s, "committed"), ["localhost/committed:latest"]);
    let cfg = &s.json(["inspect", "--type", "image", "committed"])[0]["Config"];
    assert_eq!(
        cfg["Cmd"],
        serde_json::json!(["sh", "-c", "echo committed > /marker"])
    );
    assert_eq!(cfg["WorkingDir"], "/tmp");
    assert!(
        cfg["Env"]
            .as_array()
            .expect("Env")
            .iter()
            .any(|e| e == "GREETING=hello"),
        "{cfg}"
    );
    assert_eq!(
        s.ok([
            "run",
            "--rm",
            "--network",
            "none",
            "committed",
            "sh",
            "-c",
            "cat /marker; echo $GREETING; pwd"
        ]),
        "committed\nhello\n/tmp\n"
    );
    // --change wins over the container's settings; no name makes an unnamed image, and the
    // intermediate image is gone (only busybox, committed and the new one).
    let unnamed = s
        .ok(["commit", "--change", "CMD cat /marker", "src"])
        .trim()
        .to_owned();
    assert_eq!(
        s.ok(["run", "--rm", "--network", "none", &unnamed]),
        "committed\n"
    );
    let all = s.json(["images", "--format", "json"]);
    assert_eq!(all.as_array().expect("list").len(), 3, "{all}");
    let me = all
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["Id"] == unnamed.as_str())
        .expect("listed");
    assert_eq!(me["Names"], serde_json::json!([]));
}

/// Writes the host tree `cp` is tested with; returns it.
fn host_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("a.txt"), "alpha").expect("write");
    std::fs::write(src.join("sub/b.sh"), "#!/bin/sh\n").expect("write");
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
    std::fs::set_permissions(src.join("a.txt"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    std::fs::set_permissions(
        src.join("sub/b.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(src.join("a.txt"))
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
    src
}

/// Asserts `dir` is a copy of [`host_tree`]'s tree.
fn assert_tree_copied(dir: &Path) {
    assert_eq!(
        std::fs::read_to_string(dir.join("a.txt")).expect("a.txt"),
        "alpha"
    );
    let m = std::fs::metadata(dir.join("a.txt")).expect("stat");
    assert_eq!(m.mode() & 0o7777, 0o640, "mode kept");
    assert_eq!(m.mtime(), 1_000_000_000, "mtime kept");
    let b = std::fs::metadata(dir.join("sub/b.sh")).expect("stat");
    assert_eq!(b.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        std::fs::read_link(dir.join("link")).expect("a link stays a link"),
        Path::new("a.txt")
    );
}

#[test]
fn privileged_cp_copies_in_and_out_of_running_and_stopped_containers() {
    if !require_privileged("run_images_cp", "runs containers") {
        return;
    }
    let s = busybox_store();
    let src = host_tree(&s.scratch());
    let src_arg = src.to_str().expect("utf-8");
    s.ok([
        "run",
        "-d",
        "--name",
        "live",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    s.ok([
        "run",
        "--name",
        "done",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo stopped > /inside",
    ]);
    let done_mount = s.runroot.join("mounts").join(container_id(&s, "done"));
    for ctr in ["live", "done"] {
        // A directory into an existing directory lands under its name.
        s.ok(["cp", src_arg, &format!("{ctr}:/tmp")]);
        // A directory to a new name becomes it; SRC/. copies the contents.
        s.ok(["cp", src_arg, &format!("{ctr}:/copy")]);
        s.ok(["cp", &format!("{src_arg}/."), &format!("{ctr}:/root")]);
        let out = s.scratch().join(format!("out-{ctr}"));
        std::fs::create_dir(&out).expect("mkdir");
        for (inside, name) in [("/tmp/src", "tmp"), ("/copy", "copy"), ("/root", "root")] {
            let dest = out.join(name);
            s.ok([
                "cp",
                &format!("{ctr}:{inside}"),
                dest.to_str().expect("utf-8"),
            ]);
            assert_tree_copied(&dest);
        }
        // A single file, to a file name and into a directory.
        s.ok([
            "cp",
            &format!("{src_arg}/a.txt"),
            &format!("{ctr}:/etc/renamed"),
        ]);
        s.ok([
            "cp",
            &format!("{ctr}:/etc/renamed"),
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(
            std::fs::read_to_string(out.join("renamed")).expect("read"),
            "alpha"
        );
        let (code, err) = s.fail([
            "cp",
            &format!("{ctr}:/no/such"),
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(code, 3, "{err}");
    }
    // Inside, files belong to the container's user (root) and are visible to the process.
    assert_eq!(
        s.ok([
            "exec",
            "live",
            "sh",
            "-c",
            "cat /copy/a.txt; stat -c '%u:%g %a' /copy/a.txt"
        ]),
        "alpha0:0 640\n"
    );
    let inside = s.scratch().join("inside");
    s.ok(["cp", "done:/inside", inside.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read_to_string(&inside).expect("read"), "stopped\n");
    assert!(
        !mounts_below(&s.runroot).contains(&done_mount),
        "cp unmounts the stopped container it mounted"
    );
    // The stopped container starts with what was copied in.
    s.ok(["start", "done"]);
    s.ok(["wait", "done"]);
    assert_eq!(
        s.ok(["diff", "done"])
            .lines()
            .filter(|l| *l == "A /copy")
            .count(),
        1
    );
}

#[test]
fn privileged_cp_never_follows_container_links_to_the_host() {
    if !require_privileged("run_images_cp_hostile", "runs containers") {
        return;
    }
    let s = busybox_store();
    let scratch = s.scratch();
    let secret = scratch.join("secret");
    std::fs::write(&secret, "HOST-SECRET").expect("write");
    let payload = scratch.join("payload");
    std::fs::write(&payload, "payload").expect("write");
    let unique = format!(
        "strata-cp-pwned-{}",
        scratch.file_name().expect("name").to_string_lossy()
    );
    s.ok([
        "run",
        "--name",
        "hostile",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ln -s / /escape && ln -s {} /hostdir && ln -s {} /secretlink",
            scratch.display(),
            secret.display()
        ),
    ]);
    s.ok([
        "run",
        "-d",
        "--name",
        "live",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ln -s / /escape && ln -s {} /hostdir && exec sleep 1000",
            scratch.display()
        ),
    ]);
    // run -d returns before the command made its links.
    s.ok([
        "exec",
        "live",
        "sh",
        "-c",
        "until [ -L /hostdir ]; do sleep 0.05; done",
    ]);
    let out = scratch.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let host_passwd = std::fs::read("/etc/passwd").expect("host passwd");
    let ctr_passwd = std::fs::read(fixtures::reference_rootfs("busybox").join("etc/passwd"))
        .expect("fixture passwd");
    assert_ne!(
        host_passwd, ctr_passwd,
        "the host's passwd must differ for this test"
    );
    for ctr in ["hostile", "live"] {
        // Reads through links resolve inside the container.
        let escapes = [
            format!("/escape{}", secret.display()),
            "/hostdir/secret".to_owned(),
            format!("/../../../..{}", secret.display()),
        ];
        for (i, path) in escapes.iter().enumerate() {
            let dest = out.join(format!("{ctr}-{i}"));
            let r = s.run([
                "cp",
                &format!("{ctr}:{path}"),
                dest.to_str().expect("utf-8"),
            ]);
            assert!(!r.status.success(), "{ctr}:{path} was copied");
            assert!(!dest.exists(), "{ctr}:{path} left {}", dest.display());
        }
        let dest = out.join(format!("{ctr}-passwd"));
        s.ok([
            "cp",
            &format!("{ctr}:/escape/etc/passwd"),
            dest.to_str().expect("utf-8"),
        ]);
        assert_eq!(
            std::fs::read(&dest).expect("read"),
            ctr_passwd,
            "{ctr}: the container's passwd"
        );
        // Writes through links land inside the container, or fail.
        s.ok([
            "cp",
            payload.to_str().expect("utf-8"),
            &format!("{ctr}:/escape/tmp/{unique}"),
        ]);
        assert!(
            !Path::new("/tmp").join(&unique).exists(),
            "{ctr}: wrote to the host's /tmp"
        );
        let back = out.join(format!("{ctr}-back"));
        s.ok([
            "cp",
            &format!("{ctr}:/tmp/{unique}"),
            back.to_str().expect("utf-8"),
        ]);
        assert_eq!(std::fs::read_to_string(&back).expect("read"), "payload");
        let r = s.run([
            "cp",
            payload.to_str().expect("utf-8"),
            &format!("{ctr}:/hostdir/pwned"),
        ]);
        assert!(!r.status.success(), "{ctr}: /hostdir does not exist inside");
        assert!(
            !scratch.join("pwned").exists(),
            "{ctr}: wrote into the host's directory"
        );
    }
    // A link as the last component is copied as a link, not followed.
    let link = out.join("secretlink");
    s.ok(["cp", "hostile:/secretlink", link.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read_link(&link).expect("a link"), secret);
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        "HOST-SECRET"
    );
}

fn df_row<'a>(df: &'a Value, kind: &str) -> &'a Value {
    df.as_array()
        .expect("df is a list")
        .iter()
        .find(|r| r["Type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} row in {df}"))
}

/// A one-file root filesystem tarball.
fn tiny_tar(path: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "file", &b"abc"[..]).expect("tar");
    std::fs::write(path, b.into_inner().expect("tar")).expect("write tar");
}

#[test]
fn privileged_system_df_info_and_prune() {
    if !require_privileged("run_images_system", "runs containers") {
        return;
    }
    let s = busybox_store();
    let busybox = image_id(&s, "busybox");
    let tar = s.scratch().join("tiny.tar");
    tiny_tar(&tar);
    let tar = tar.to_str().expect("utf-8");
    let dangling = s.ok(["import", tar]).trim().to_owned();
    s.ok(["import", "--change", "LABEL keep=1", tar, "keep"]);
    s.ok([
        "run",
        "--name",
        "done",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ]);
    s.ok([
        "run",
        "-d",
        "--name",
        "live",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let done = container_id(&s, "done");

    let df = s.json(["system", "df", "--format", "json"]);
    let images = df_row(&df, "Images");
    assert_eq!(images["Total"], 3, "{df}");
    assert_eq!(images["Active"], 1, "{df}");
    assert!(
        images["RawSize"].as_u64().expect("size") > 1_000_000,
        "{df}"
    );
    let ctrs = df_row(&df, "Containers");
    assert_eq!(ctrs["Total"], 2, "{df}");
    assert_eq!(ctrs["Active"], 1, "{df}");
    assert!(
        ctrs["RawReclaimable"].as_u64().expect("size") >= 2,
        "done's /x: {df}"
    );
    assert!(s.ok(["system", "df"]).starts_with("TYPE"));

    let info = s.json(["system", "info", "--format", "json"]);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(info["host"]["kernel"], kernel.trim());
    assert!(
        ["v1", "v2", "hybrid"].contains(&info["host"]["cgroupVersion"].as_str().expect("cgroup")),
        "{info}"
    );
    let runtimes = info["host"]["ociRuntimes"].as_array().expect("runtimes");
    for rt in ["crun", "runc"] {
        let r = runtimes
            .iter()
            .find(|r| r["name"] == rt)
            .unwrap_or_else(|| panic!("{rt} not listed: {info}"));
        assert!(
            r["version"]
                .as_str()
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())),
            "{r}"
        );
    }
    assert_eq!(info["host"]["networkBackend"], "cni");
    assert_eq!(info["host"]["rootless"], false);
    assert_eq!(info["store"]["graphDriverName"], "overlay");
    assert_eq!(info["store"]["graphRoot"], s.root.to_str().expect("utf-8"));
    assert_eq!(info["store"]["imageStore"]["number"], 3);
    assert_eq!(info["store"]["containerStore"]["number"], 2);
    assert_eq!(info["store"]["containerStore"]["running"], 1);
    assert!(s
        .ok(["system", "info"])
        .contains("graphDriverName: overlay"));

    // Without a terminal to ask on, -f is required.
    let (code, err) = s.fail(["system", "prune"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("-f"), "{err}");
    assert_eq!(
        s.json(["ps", "-a", "--format", "json"])
            .as_array()
            .expect("ps")
            .len(),
        2
    );

    let out = s.ok(["system", "prune", "-f"]);
    assert!(out.contains("Deleted Containers"), "{out}");
    assert!(out.contains(&done), "{out}");
    assert!(out.contains(&dangling), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let ps = s.json(["ps", "-a", "--format", "json"]);
    let names: Vec<&str> = ps
        .as_array()
        .expect("ps")
        .iter()
        .map(|c| c["Names"][0].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["live"]);
    assert_eq!(s.ok(["exec", "live", "echo", "alive"]), "alive\n");
    let left: Vec<String> = s
        .json(["images", "--format", "json"])
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["Id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&busybox));
    assert!(!left.contains(&dangling));
    assert_eq!(image_names(&s, "keep"), ["localhost/keep:latest"]);
    s.assert_clean();
}
