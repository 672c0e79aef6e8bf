//! The build front end, black-box: the cache (what hits, what misses, and that a hit runs
//! nothing), failures and interruptions that leave nothing behind, hostile contexts and
//! archives, and images that run with `strata run` and load and run in podman.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::cli::mounts_below;
use strata_tests::containers::wait_for;
use strata_tests::{fixtures, require_privileged, Strata};

fn store() -> Strata {
    let s = Strata::new("overlay");
    let id = s.load(&format!("{}:latest", fixtures::oci("busybox")), &[]);
    s.ok(["tag", &id, "localhost/busybox:latest"]);
    s
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().expect("a file in the context"))
        .expect("make the context directory");
    std::fs::write(p, text).expect("write the context file");
}

/// Builds and returns (image ID, stdout).
fn build(s: &Strata, ctx: &Path, extra: &[&str]) -> (String, String) {
    let mut a = vec!["build", "--network", "none"];
    a.extend_from_slice(extra);
    let ctx = ctx.display().to_string();
    a.push(&ctx);
    let out = s.ok(&a);
    let id = out
        .lines()
        .last()
        .expect("build prints the image ID")
        .to_owned();
    assert_eq!(id.len(), 64, "the last line is the image ID: {out}");
    (id, out)
}

/// Whether a RUN step printed this line (not the STEP line that shows the instruction).
fn ran(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

fn hits(out: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("--> Using cache"))
        .count()
}

fn built(out: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("--> ") && l.ends_with("s)") && !l.starts_with("--> Using cache"))
        .count()
}

fn assert_nothing_left(s: &Strata) {
    assert!(
        s.list("containers").is_empty(),
        "containers left: {:?}",
        s.list("containers")
    );
    assert!(
        mounts_below(&s.runroot).is_empty(),
        "mounts left: {:?}",
        mounts_below(&s.runroot)
    );
    s.assert_clean();
}

const CACHE_FILE: &str = "FROM localhost/busybox
ARG A
ARG B
COPY src.txt /src.txt
RUN echo ran-the-step; cat /proc/sys/kernel/random/uuid > /stamp
ARG LATE=x
RUN echo late-step $LATE; echo $LATE > /late
ENV DONE=1
";

#[test]
fn privileged_cache_hits_and_misses_as_docker() {
    if !require_privileged(
        "privileged_cache_hits_and_misses_as_docker",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Containerfile", CACHE_FILE);
    write(ctx.path(), "src.txt", "one\n");
    let args = ["--build-arg", "A=1", "--build-arg", "B=2"];
    let (first, out) = build(&s, ctx.path(), &args);
    assert!(ran(&out, "ran-the-step"), "the first build runs RUN: {out}");
    assert_eq!(hits(&out), 0);

    // A rebuild is fully cached: same image, every step a hit, no RUN runs, nothing mounted.
    let (again, out) = build(&s, ctx.path(), &args);
    assert_eq!(again, first, "a rebuild gives the same image ID");
    assert!(
        !ran(&out, "ran-the-step"),
        "a cached build ran a RUN step: {out}"
    );
    assert_eq!((hits(&out), built(&out)), (4, 0), "{out}");

    // Build-arg order does not matter; touch keeps the hit.
    let (swapped, _) = build(
        &s,
        ctx.path(),
        &["--build-arg", "B=2", "--build-arg", "A=1"],
    );
    assert_eq!(swapped, first);
    let f = ctx.path().join("src.txt");
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (touched, out) = build(&s, ctx.path(), &args);
    assert_eq!(touched, first, "touch must keep the hit: {out}");

    // chmod: a miss from the COPY on (the COPY and everything after).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (chmodded, out) = build(&s, ctx.path(), &args);
    assert_ne!(chmodded, first);
    assert_eq!((hits(&out), built(&out)), (0, 4), "{out}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (back, _) = build(&s, ctx.path(), &args);
    assert_eq!(back, first, "the old entry is still there");

    // Content change: a miss from the COPY on.
    write(ctx.path(), "src.txt", "two\n");
    let (changed, out) = build(&s, ctx.path(), &args);
    assert_ne!(changed, first);
    assert!(ran(&out, "ran-the-step"), "{out}");
    write(ctx.path(), "src.txt", "one\n");

    // An ARG change misses from the first step that sees it (the RUN after `ARG LATE`).
    let mut late = args.to_vec();
    late.extend(["--build-arg", "LATE=y"]);
    let (late_id, out) = build(&s, ctx.path(), &late);
    assert_ne!(late_id, first);
    assert_eq!((hits(&out), built(&out)), (2, 2), "{out}");
    assert!(
        !ran(&out, "ran-the-step") && ran(&out, "late-step y"),
        "{out}"
    );

    // A changed value of an ARG declared before the COPY: the COPY itself is unchanged, the
    // first RUN sees it.
    let (a2, out) = build(
        &s,
        ctx.path(),
        &["--build-arg", "A=9", "--build-arg", "B=2"],
    );
    assert_ne!(a2, first, "{out}");
    assert_eq!((hits(&out), built(&out)), (1, 3), "{out}");

    // Another format: a miss; --no-cache: everything again, a new image.
    let (docker, out) = build(
        &s,
        ctx.path(),
        &[&args[..], &["--format", "docker"]].concat(),
    );
    assert_ne!(docker, first);
    assert_eq!(hits(&out), 0, "{out}");
    let (fresh, out) = build(&s, ctx.path(), &[&args[..], &["--no-cache"]].concat());
    assert_ne!(fresh, first);
    assert!(ran(&out, "ran-the-step"), "{out}");

    // Entries live and die with their images: removing an image removes its entries.
    let before = s.json(["inspect", "--type", "image", &first]);
    let parent_count = before[0]["RootFS"]["Layers"].as_array().unwrap().len();
    assert!(parent_count >= 3);
    s.ok(["rmi", "--force", &fresh]);
    s.ok(["rmi", "--force", &first]);
    let (rebuilt, out) = build(&s, ctx.path(), &args);
    assert_ne!(rebuilt, first, "the removed image's entry must be gone");
    assert_eq!(
        built(&out),
        1,
        "only the removed last step is rebuilt: {out}"
    );
    assert_nothing_left(&s);
}

#[test]
fn privileged_reproducible_with_timestamp() {
    if !require_privileged(
        "privileged_reproducible_with_timestamp",
        "builds run containers",
    ) {
        return;
    }
    let a = store();
    let b = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nCOPY f /f\nENV X=1\nCMD [\"cat\", \"/f\"]\n",
    );
    write(ctx.path(), "f", "same\n");
    let (ia, _) = build(&a, ctx.path(), &["--timestamp", "1700000000"]);
    std::thread::sleep(Duration::from_millis(1100));
    let (ib, _) = build(&b, ctx.path(), &["--timestamp", "1700000000"]);
    assert_eq!(
        ia, ib,
        "two stores, the same inputs and --timestamp: the same image"
    );
    let v = a.json(["inspect", "--type", "image", &ia]);
    assert_eq!(v[0]["Created"], "2023-11-14T22:13:20Z");
}

#[test]
fn privileged_failures_leave_nothing_behind() {
    if !require_privileged(
        "privileged_failures_leave_nothing_behind",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nCOPY f /f\nRUN echo some output; exit 3\n",
    );
    write(ctx.path(), "f", "x\n");
    let out = s.run([
        "build",
        "--network",
        "none",
        &ctx.path().display().to_string(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("Containerfile:3: RUN") && stderr.contains("exited with 3"),
        "{stderr}"
    );
    assert!(
        stdout.contains("some output"),
        "the step's output is shown: {stdout}"
    );
    assert_nothing_left(&s);

    // A syntax error names the file, the line and the instruction, and builds nothing.
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nRUN true\nFROBNICATE x\n",
    );
    let (code, stderr) = s.fail(["build", &ctx.path().display().to_string()]);
    assert_eq!(
        code, 5,
        "an invalid Containerfile is invalid argument: {stderr}"
    );
    assert!(
        stderr.contains("Containerfile:3") && stderr.contains("FROBNICATE"),
        "{stderr}"
    );
    assert_nothing_left(&s);
}

fn spawn_build(s: &Strata, ctx: &Path) -> std::process::Child {
    s.command()
        .args(["build", "--network", "none"])
        .arg(ctx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strata build")
}

fn wait_for_step(s: &Strata) {
    wait_for("the RUN step to start", Duration::from_secs(30), || {
        s.json(["ps", "-a", "--format", "json"])
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["State"] == "running"))
    });
}

#[test]
fn privileged_interrupted_and_killed_builds_leave_nothing() {
    if !require_privileged(
        "privileged_interrupted_and_killed_builds_leave_nothing",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nRUN sleep 60\n",
    );
    // Ctrl-C: the step is killed, the build ends at once and cleans up.
    let child = spawn_build(&s, ctx.path());
    wait_for_step(&s);
    let started = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "Ctrl-C took {:?}",
        started.elapsed()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_nothing_left(&s);

    // SIGKILL: nothing can clean up then; the next build removes what the dead one left.
    let mut child = spawn_build(&s, ctx.path());
    wait_for_step(&s);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !s.list("containers").is_empty(),
        "the killed build's container is there"
    );
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nRUN true\n",
    );
    build(&s, ctx.path(), &[]);
    assert_nothing_left(&s);
}

#[test]
fn privileged_hostile_contexts_and_archives_stay_inside() {
    if !require_privileged(
        "privileged_hostile_contexts_and_archives_stay_inside",
        "builds mount overlays",
    ) {
        return;
    }
    let s = store();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("host-secret");
    std::fs::write(&secret, "host only\n").unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    // Links that point out of the context, absolutely and by climbing.
    std::os::unix::fs::symlink(&secret, c.join("abs-link")).unwrap();
    write(c, "sub/inner.txt", "context's own\n");
    std::os::unix::fs::symlink("../../../../../../../../sub", c.join("up-link")).unwrap();
    // A tar whose entries climb out and go through a link out of the root.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    t.append_link(&mut h, "escape", outside.path()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    t.append_data(&mut h, "escape/pwned", &b"bad\n"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.as_old_mut().name[..15].copy_from_slice(b"../../../pwned2");
    h.set_cksum();
    t.append(&h, &b"bad\n"[..]).unwrap();
    std::fs::write(c.join("evil.tar"), t.into_inner().unwrap()).unwrap();
    write(
        c,
        "Containerfile",
        "FROM localhost/busybox\nCOPY abs-link /copied-abs\nCOPY up-link /copied-up\nADD evil.tar /x/\n",
    );
    // The absolute link resolves inside the context, where nothing is: a clear error.
    let (_, stderr) = s.fail(["build", &c.display().to_string()]);
    assert!(
        stderr.contains("Containerfile:2") && stderr.contains("abs-link"),
        "{stderr}"
    );
    write(
        c,
        "Containerfile",
        "FROM localhost/busybox\nCOPY up-link /copied-up\nADD evil.tar /x/\n",
    );
    let (id, _) = build(&s, c, &[]);
    s.ok(["storage", "create", &id, "--name", "look"]);
    let root = s.mount("look");
    assert!(
        !outside.path().join("pwned").exists(),
        "ADD wrote through a link out of the root"
    );
    assert!(
        !Path::new("/pwned2").exists() && !c.join("pwned2").exists(),
        "ADD climbed out"
    );
    // A link climbing out of the context resolves inside it, as in the container.
    assert_eq!(
        std::fs::read_to_string(root.join("copied-up/inner.txt")).unwrap(),
        "context's own\n"
    );
    // The archive's entries landed inside the image: through the link, resolved in the
    // image's root; the climbing name clamped at the image's root.
    let inside: PathBuf = root
        .join(outside.path().strip_prefix("/").unwrap())
        .join("pwned");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "bad\n");
    assert_eq!(
        std::fs::read_to_string(root.join("pwned2")).unwrap(),
        "bad\n"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host only\n");
    s.ok(["storage", "umount", "look"]);
    s.ok(["storage", "rm", "look"]);
    assert_nothing_left(&s);
}

#[test]
fn privileged_built_images_run_here_and_in_podman() {
    if !require_privileged(
        "privileged_built_images_run_here_and_in_podman",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox AS build\nRUN echo built-in-stage > /out\nFROM localhost/busybox\nCOPY --from=build /out /out\nCMD [\"cat\", \"/out\"]\n",
    );
    let iid = ctx.path().join("iid");
    let (id, out) = build(
        &s,
        ctx.path(),
        &["-t", "made", "--iidfile", &iid.display().to_string()],
    );
    assert!(
        out.contains("Successfully tagged localhost/made:latest"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        format!("sha256:{id}")
    );
    assert_eq!(
        s.ok(["run", "--rm", "--network", "none", "made"]),
        "built-in-stage\n"
    );
    // -q prints only the ID.
    let q = s.ok([
        "build",
        "-q",
        "--network",
        "none",
        &ctx.path().display().to_string(),
    ]);
    assert_eq!(q.trim(), id);
    // podman loads what strata saves and runs it.
    let archive = ctx.path().join("made.tar");
    s.ok([
        "save",
        "-o",
        &archive.display().to_string(),
        "localhost/made:latest",
    ]);
    let pod = tempfile::tempdir_in("/var/tmp").unwrap();
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(pod.path().join("root"))
            .arg("--runroot")
            .arg(pod.path().join("run"))
            .args(["--storage-driver", "overlay"])
            .args(args)
            .output()
            .unwrap()
    };
    let load = podman(&["load", "-i", &archive.display().to_string()]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    // podman 4.3's default rlimits are above this machine's hard limits (run_images.rs).
    let run = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/made:latest",
    ]);
    let _ = podman(&["rmi", "--all", "--force"]);
    strata_tests::cli::unmount_below(pod.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "built-in-stage\n");
}

/// A one-file HTTP server on 127.0.0.1 that counts its requests.
fn serve(body: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, count)
}

#[test]
fn privileged_add_downloads_urls_and_checks_checksums() {
    if !require_privileged(
        "privileged_add_downloads_urls_and_checks_checksums",
        "builds mount overlays",
    ) {
        return;
    }
    use std::sync::atomic::Ordering;
    let s = store();
    let (port, requests) = serve("from the web\n");
    let sum = "sha256:a0c0e1dc3a0a2a1e3e1b7e49f7cb1d2e5c1d3b4d7b0d6c9a0f1b6f4a0c0e1dc3";
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        &format!("FROM localhost/busybox\nADD http://127.0.0.1:{port}/dir/file.txt /dl/\n"),
    );
    let (id, _) = build(&s, ctx.path(), &[]);
    s.ok(["storage", "create", &id, "--name", "look"]);
    let root = s.mount("look");
    let f = root.join("dl/file.txt");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "from the web\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    s.ok(["storage", "umount", "look"]);
    s.ok(["storage", "rm", "look"]);
    // Without --checksum every build downloads (and hits when the content is the same).
    let before = requests.load(Ordering::SeqCst);
    let (again, out) = build(&s, ctx.path(), &[]);
    assert_eq!(again, id, "{out}");
    assert_eq!(requests.load(Ordering::SeqCst), before + 1);
    // A wrong --checksum fails naming both digests; the right one hits without downloading.
    write(
        ctx.path(),
        "Containerfile",
        &format!("FROM localhost/busybox\nADD --checksum={sum} http://127.0.0.1:{port}/dir/file.txt /dl/\n"),
    );
    let (_, stderr) = s.fail(["build", &ctx.path().display().to_string()]);
    assert!(
        stderr.contains("Containerfile:2") && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
    let real = {
        use sha2::Digest as _;
        format!("sha256:{:x}", sha2::Sha256::digest(b"from the web\n"))
    };
    write(
        ctx.path(),
        "Containerfile",
        &format!("FROM localhost/busybox\nADD --checksum={real} http://127.0.0.1:{port}/dir/file.txt /dl/\n"),
    );
    build(&s, ctx.path(), &[]);
    let before = requests.load(Ordering::SeqCst);
    let (_, out) = build(&s, ctx.path(), &[]);
    assert_eq!(hits(&out), 1, "{out}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "a checksum hit downloaded the file"
    );
    assert_nothing_left(&s);
}

#[test]
fn privileged_squash_keeps_the_files_and_drops_the_layers() {
    if !require_privileged(
        "privileged_squash_keeps_the_files_and_drops_the_layers",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nCOPY a /data/a\nRUN rm /bin/true && echo b > /data/b && mkdir -p /gone && touch /gone/x\nRUN rm -r /gone /data/a\nENV S=1\n",
    );
    write(ctx.path(), "a", "a\n");
    let layers = |id: &str| {
        s.json(["inspect", "--type", "image", id])[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    let base_layers = layers("localhost/busybox");
    let (plain, _) = build(&s, ctx.path(), &[]);
    let (squashed, _) = build(&s, ctx.path(), &["--squash"]);
    let (all, _) = build(&s, ctx.path(), &["--squash-all"]);
    assert_eq!(layers(&plain), base_layers + 3);
    assert_eq!(
        layers(&squashed),
        base_layers + 1,
        "--squash: the new layers in one"
    );
    assert_eq!(layers(&all), 1, "--squash-all: one layer");
    let trees: Vec<PathBuf> = [&plain, &squashed, &all]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let name = format!("look{i}");
            s.ok(["storage", "create", id, "--name", &name]);
            s.mount(&name)
        })
        .collect();
    for t in &trees[1..] {
        let diffs = strata_tests::tree::compare(&trees[0], t);
        assert!(diffs.is_empty(), "squashed tree differs: {diffs:?}");
    }
    assert!(!trees[1].join("bin/true").exists() && !trees[1].join("gone").exists());
    assert_eq!(
        std::fs::read_to_string(trees[2].join("data/b")).unwrap(),
        "b\n"
    );
    let env = s.json(["inspect", "--type", "image", &squashed])[0]["Config"]["Env"].clone();
    assert!(env.to_string().contains("S=1"), "the config is kept: {env}");
    // A cached rebuild gives the same squashed image.
    let (again, _) = build(&s, ctx.path(), &["--squash"]);
    assert_eq!(again, squashed);
    for i in 0..3 {
        s.ok(["storage", "umount", &format!("look{i}")]);
        s.ok(["storage", "rm", &format!("look{i}")]);
    }
    assert_nothing_left(&s);
}

/// A small ext4 filesystem on a loop device, unmounted on drop.
struct SmallDisk {
    mnt: PathBuf,
}

impl SmallDisk {
    fn new(dir: &Path, mib: u64) -> SmallDisk {
        let img = dir.join("disk.img");
        let mnt = dir.join("disk");
        std::fs::create_dir_all(&mnt).expect("mkdir");
        let f = std::fs::File::create(&img).expect("create the image");
        f.set_len(mib << 20).expect("size the image");
        let ok = |c: &mut Command| assert!(c.status().expect("run").success(), "{c:?}");
        ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        SmallDisk { mnt }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        strata_tests::cli::unmount_below(&self.mnt);
    }
}

#[test]
fn privileged_a_full_disk_fails_cleanly_and_removal_frees_it() {
    if !require_privileged(
        "privileged_a_full_disk_fails_cleanly_and_removal_frees_it",
        "mounts a loop filesystem",
    ) {
        return;
    }
    let base = Strata::new("overlay");
    let disk = SmallDisk::new(&base.scratch(), 64);
    let mut s = base.with_driver("overlay");
    s.root = disk.mnt.join("root");
    let id = s.load(&format!("{}:latest", fixtures::oci("busybox")), &[]);
    s.ok(["tag", &id, "localhost/busybox:latest"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nRUN head -c 100000000 /dev/zero > /fill\n",
    );
    let (_, stderr) = s.fail([
        "build",
        "--network",
        "none",
        &ctx.path().display().to_string(),
    ]);
    assert!(
        stderr.contains("Containerfile:2: RUN") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert_nothing_left(&s);
    // A container that fills the disk can be removed (the store keeps a reserve for that).
    let fill = [
        "run",
        "--network",
        "none",
        "--name",
        "filler",
        "localhost/busybox",
        "sh",
        "-c",
        "head -c 100000000 /dev/zero > /fill",
    ];
    let filled = s.run(fill);
    let free = |p: &Path| {
        rustix::fs::statvfs(p)
            .map(|v| v.f_bavail * v.f_frsize)
            .unwrap()
    };
    assert!(
        free(&disk.mnt) < 1 << 20,
        "the container filled the disk ({} bytes free; the container: {:?}, {})",
        free(&disk.mnt),
        filled.status,
        String::from_utf8_lossy(&filled.stderr)
    );
    s.ok(["rm", "-f", "filler"]);
    assert!(free(&disk.mnt) > 40 << 20, "removing it freed the space");
    // --rm on a full disk removes the container too.
    let mut rm_fill = fill.to_vec();
    rm_fill.insert(1, "--rm");
    rm_fill.retain(|a| *a != "--name" && *a != "filler");
    let _ = s.run(&rm_fill);
    assert_nothing_left(&s);
    s.ok(["storage", "gc"]);
    assert!(
        s.root.join("reserve").is_file(),
        "gc makes the reserve again"
    );
}

#[test]
fn privileged_manifest_lists_assemble_and_push_for_skopeo() {
    if !require_privileged(
        "privileged_manifest_lists_assemble_and_push_for_skopeo",
        "builds run containers",
    ) {
        return;
    }
    use strata_tests::registry::{Registry, RegistryOptions};
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox\nCOPY f /f\n",
    );
    write(ctx.path(), "f", "built\n");
    build(&s, ctx.path(), &["-t", "app"]);
    s.ok(["manifest", "create", "app-list", "app"]);
    // Every image of the multi-arch fixture's index, with their platforms.
    let multi = format!("{}:latest", fixtures::oci("multiarch"));
    s.ok(["manifest", "add", "--all", "app-list", &multi]);
    s.ok([
        "manifest",
        "annotate",
        "app-list",
        "app",
        "--annotation",
        "org.example=yes",
        "--variant",
        "v2",
    ]);
    let index = s.json(["manifest", "inspect", "app-list"]);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{index:#}");
    assert_eq!(entries[0]["annotations"]["org.example"], "yes");
    assert_eq!(entries[0]["platform"]["variant"], "v2");
    assert!(entries
        .iter()
        .any(|e| e["platform"]["architecture"] == "arm64"));
    // A second create of the same name is refused; --amend adds to it.
    let (code, _) = s.fail(["manifest", "create", "app-list"]);
    assert_eq!(code, 4, "already exists");

    let reg = Registry::start(RegistryOptions::default());
    let dest = format!("{}/lists/app:1", reg.host());
    let digest_file = ctx.path().join("digest");
    s.ok([
        "manifest",
        "push",
        "--tls-verify=false",
        "--digestfile",
        &digest_file.display().to_string(),
        "app-list",
        &dest,
    ]);
    let pushed = std::fs::read_to_string(&digest_file).unwrap();
    // skopeo reads the list back: three platforms, and the image of ours runs where it points.
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(got["manifests"].as_array().unwrap().len(), 3, "{got:#}");
    use sha2::Digest as _;
    assert_eq!(
        pushed,
        format!("sha256:{:x}", sha2::Sha256::digest(&raw.stdout))
    );
    let copied = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
        ])
        .arg(format!("oci:{}:x", ctx.path().join("back").display()))
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    s.ok(["manifest", "rm", "app-list"]);
    let (code, _) = s.fail(["manifest", "inspect", "app-list"]);
    assert_eq!(code, 3, "not found after rm");
}

#[test]
fn privileged_builder_verbs_make_an_image_as_buildah_does() {
    if !require_privileged(
        "privileged_builder_verbs_make_an_image_as_buildah_does",
        "runs containers",
    ) {
        return;
    }
    let s = store();
    let c = s
        .ok(["builder", "from", "localhost/busybox"])
        .trim()
        .to_owned();
    assert_eq!(c, "busybox-working-container");
    let second = s
        .ok(["builder", "from", "localhost/busybox"])
        .trim()
        .to_owned();
    assert_eq!(second, "busybox-working-container-1", "names stay unique");
    // Files persist from one run to the next; exit codes pass through.
    s.ok(["builder", "run", &c, "--", "sh", "-c", "echo made > /made"]);
    assert_eq!(s.ok(["builder", "run", &c, "--", "cat", "/made"]), "made\n");
    let out = s.run(["builder", "run", &c, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data/x.txt", "x\n");
    s.ok([
        "builder",
        "copy",
        "--chown",
        "5:6",
        &c,
        &dir.path().join("data").display().to_string(),
        "/data",
    ]);
    s.ok([
        "builder",
        "config",
        &c,
        "--env",
        "MODE=prod",
        "--workingdir",
        "/data",
        "--cmd",
        "[\"cat\", \"x.txt\"]",
        "--label",
        "made.by=builder",
    ]);
    assert_eq!(
        s.ok(["builder", "run", &c, "--", "sh", "-c", "echo $MODE; pwd"]),
        "prod\n/data\n"
    );
    let listed = s.json(["builder", "ls", "--format", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let id = s
        .ok(["builder", "commit", "--rm", &c, "from-builder"])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(
        s.ok(["run", "--rm", "--network", "none", "from-builder"]),
        "x\n"
    );
    let cfg = s.json(["inspect", "--type", "image", "from-builder"]);
    assert_eq!(cfg[0]["Config"]["Labels"]["made.by"], "builder");
    s.ok([
        "storage",
        "create",
        "localhost/from-builder",
        "--name",
        "look",
    ]);
    let root = s.mount("look");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(root.join("data/x.txt")).unwrap();
    assert_eq!((md.uid(), md.gid()), (5, 6));
    assert_eq!(
        std::fs::read_to_string(root.join("made")).unwrap(),
        "made\n"
    );
    s.ok(["storage", "umount", "look"]);
    s.ok(["storage", "rm", "look"]);
    s.ok(["builder", "rm", "--all"]);
    assert_nothing_left(&s);
}

#[test]
fn privileged_jobs_build_independent_stages_ahead() {
    if !require_privileged(
        "privileged_jobs_build_independent_stages_ahead",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM localhost/busybox AS a\nRUN echo a > /a\n\
         FROM localhost/busybox AS b\nRUN echo b > /b\n\
         FROM localhost/busybox\nRUN echo c > /c\n\
         FROM localhost/busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=2 /c /c\n",
    );
    let (id, out) = build(&s, ctx.path(), &["--jobs", "3", "-t", "joined"]);
    // The three independent stages were built by the parallel builds: here they are hits.
    assert_eq!(hits(&out), 3, "{out}");
    assert_eq!(
        built(&out),
        3,
        "only the final stage's steps are built here: {out}"
    );
    s.ok(["storage", "create", &id, "--name", "look"]);
    let root = s.mount("look");
    for (f, want) in [("a", "a\n"), ("b", "b\n"), ("c", "c\n")] {
        assert_eq!(std::fs::read_to_string(root.join(f)).unwrap(), want);
    }
    s.ok(["storage", "umount", "look"]);
    s.ok(["storage", "rm", "look"]);
    // Only the final image is named; the stage builds added no names.
    let names: Vec<String> = s
        .json(["images", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["Names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.contains("joined")).count(),
        1,
        "{names:?}"
    );
    assert_nothing_left(&s);
}

#[test]
fn privileged_layers_false_and_image_contexts() {
    if !require_privileged(
        "privileged_layers_false_and_image_contexts",
        "builds run containers",
    ) {
        return;
    }
    let s = store();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM base-image\nCOPY f /f\nRUN echo r > /r\nCOPY --from=base-image /bin/busybox /copied\n",
    );
    write(ctx.path(), "f", "f\n");
    let image_ctx = [
        "--build-context",
        "base-image=container-image://localhost/busybox",
    ];
    let (layered, out) = build(&s, ctx.path(), &image_ctx);
    assert_eq!(built(&out), 3, "{out}");
    let layers = |id: &str| {
        s.json(["inspect", "--type", "image", id])[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    let base = layers("localhost/busybox");
    assert_eq!(layers(&layered), base + 3);
    // --layers=false: no cache used, one new layer (podman's), the same files.
    let (flat, out) = build(
        &s,
        ctx.path(),
        &[&image_ctx[..], &["--layers=false"]].concat(),
    );
    assert_eq!(hits(&out), 0, "{out}");
    assert_eq!(layers(&flat), base + 1);
    let trees: Vec<PathBuf> = [&layered, &flat]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let n = format!("t{i}");
            s.ok(["storage", "create", id, "--name", &n]);
            s.mount(&n)
        })
        .collect();
    // The RUN ran again: its file has another time.
    let diffs = strata_tests::tree::compare_with(
        &trees[0],
        &trees[1],
        &strata_tests::tree::CompareOptions {
            ignore: Vec::new(),
            ignore_file_mtimes: true,
        },
    );
    assert!(diffs.is_empty(), "{diffs:?}");
    assert!(
        trees[1].join("copied").is_file(),
        "COPY --from the image context"
    );
    for i in 0..2 {
        s.ok(["storage", "umount", &format!("t{i}")]);
        s.ok(["storage", "rm", &format!("t{i}")]);
    }
    // A FROM of an unknown name without the context fails clearly.
    let (_, stderr) = s.fail([
        "build",
        "--pull",
        "never",
        &ctx.path().display().to_string(),
    ]);
    assert!(stderr.contains("Containerfile:1: FROM"), "{stderr}");
    assert_nothing_left(&s);
}
