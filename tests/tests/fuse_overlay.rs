//! The fuse-overlay driver, black-box as root: the real `strata` binary with `--driver
//! fuse-overlay`, its FUSE server (`strata-fuse-overlay`), the busybox fixture and both OCI
//! runtimes (privileged tier).
//!
//! What a user checks: a container's root really is the FUSE overlay, served by a process the
//! store records; files written inside show in `diff` and in the image `commit` makes; a killed
//! server is noticed and the mount comes back with the container's files; `rm` leaves no mount
//! and no server; a store made with `overlay` opens with `fuse-overlay` and back (one layout);
//! containers run, exit codes pass through, and `--userns auto` works with the id map applied
//! by the filesystem (no idmapped mounts, image ids in the committed image).

use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_tests::containers::wait_for;
use strata_tests::{fixtures, require_privileged, Strata};

const WHAT: &str = "FUSE mounts (strata-fuse-overlay) and containers run by crun and runc";
const RUNTIMES: [&str; 2] = ["crun", "runc"];

fn store(driver: &str) -> Strata {
    let s = Strata::new(driver);
    s.load(
        &format!("{}:latest", fixtures::oci("busybox")),
        &["--name", "busybox"],
    );
    s
}

/// The file system type mounted at `target` (from this process's mount table).
fn fs_type(target: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let target = target.to_string_lossy().into_owned();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        (f.get(4) == Some(&target.as_str())).then(|| f[sep + 1].to_owned())
    })
}

fn server_of(s: &Strata, id: &str) -> u32 {
    let record = s.runroot.join(format!("mounts/{id}.server"));
    std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("{}: {e}", record.display()))
        .trim()
        .parse()
        .expect("a pid")
}

fn alive(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[test]
fn privileged_fuse_overlay_mounts_diffs_commits_and_survives_a_killed_server() {
    if !require_privileged("fuse_overlay_store", WHAT) {
        return;
    }
    let s = store("fuse-overlay");
    let id = s.create("busybox", "c1");
    let mnt = s.mount("c1");
    assert_eq!(fs_type(&mnt).as_deref(), Some("fuse.strata-overlay"));
    let pid = server_of(&s, &id);
    assert!(alive(pid), "the recorded server runs");
    std::fs::write(mnt.join("added"), "new").expect("write in the container");
    std::fs::remove_file(mnt.join("bin/true")).expect("delete an image file");
    // A change of metadata only (copied up without data until written).
    let passwd = std::fs::read_to_string(mnt.join("etc/passwd")).expect("read passwd");
    std::fs::set_permissions(
        mnt.join("etc/passwd"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let diff = s.ok(["diff", "c1"]);
    assert!(
        diff.contains("A /added") && diff.contains("D /bin/true"),
        "{diff}"
    );

    // A killed server: the mount answers ENOTCONN; the next mount notices and mounts again.
    let p = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(p, rustix::process::Signal::KILL).expect("kill the server");
    wait_for("the server to die", Duration::from_secs(5), || !alive(pid));
    assert!(
        std::fs::metadata(mnt.join("added")).is_err(),
        "a dead server serves nothing"
    );
    let again = s.mount("c1");
    assert_eq!(again, mnt);
    assert_eq!(
        std::fs::read_to_string(again.join("added")).expect("read"),
        "new"
    );
    assert!(
        !again.join("bin/true").exists(),
        "the whiteout is still there"
    );
    let pid2 = server_of(&s, &id);
    assert_ne!(pid2, pid);

    let img = s
        .ok(["storage", "commit", "c1", "changed"])
        .trim()
        .to_owned();
    assert!(!img.is_empty());
    s.ok(["storage", "umount", "c1"]);
    wait_for(
        "the server to end after unmount",
        Duration::from_secs(5),
        || !alive(pid2),
    );
    assert!(fs_type(&mnt).is_none(), "unmounted");
    let c2 = s.create("changed", "c2");
    let m2 = s.mount("c2");
    assert_eq!(
        std::fs::read_to_string(m2.join("added")).expect("read"),
        "new"
    );
    assert!(!m2.join("bin/true").exists());
    let m = std::fs::metadata(m2.join("etc/passwd")).expect("stat");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        0o600,
        "the committed mode"
    );
    assert_eq!(
        std::fs::read_to_string(m2.join("etc/passwd")).expect("read"),
        passwd,
        "the committed file has its data"
    );
    let pid3 = server_of(&s, &c2);
    s.ok(["storage", "rm", "c2"]);
    s.ok(["storage", "rm", "c1"]);
    wait_for("rm to end the server", Duration::from_secs(5), || {
        !alive(pid3)
    });
    assert!(fs_type(&m2).is_none(), "rm unmounts");
    assert!(
        !s.runroot.join(format!("mounts/{c2}.server")).exists(),
        "the record goes"
    );
    s.assert_clean();
}

#[test]
fn privileged_overlay_and_fuse_overlay_share_one_store() {
    if !require_privileged("fuse_overlay_shared_layout", WHAT) {
        return;
    }
    let s = store("overlay");
    s.create("busybox", "k");
    std::fs::write(s.mount("k").join("from-kernel"), "k").expect("write");
    s.ok(["storage", "umount", "k"]);
    // The same store through the FUSE overlay: no second pull, the same container.
    let f = s.with_driver("fuse-overlay");
    let layers = f.list("layers").len();
    assert_eq!(layers, s.list("layers").len());
    let m = f.mount("k");
    assert_eq!(fs_type(&m).as_deref(), Some("fuse.strata-overlay"));
    assert_eq!(
        std::fs::read_to_string(m.join("from-kernel")).expect("read"),
        "k"
    );
    std::fs::write(m.join("from-fuse"), "f").expect("write");
    f.ok(["storage", "umount", "k"]);
    let m = s.mount("k");
    assert_eq!(fs_type(&m).as_deref(), Some("overlay"));
    assert_eq!(
        std::fs::read_to_string(m.join("from-fuse")).expect("read"),
        "f"
    );
    s.ok(["storage", "rm", "k"]);
    // Another payload format is still refused.
    let v = s.with_driver("vfs");
    let (_, err) = v.fail(["storage", "info"]);
    assert!(err.contains("created with the overlay driver"), "{err}");
}

#[test]
fn privileged_fuse_overlay_runs_containers_with_and_without_user_namespaces() {
    if !require_privileged("fuse_overlay_run", WHAT) {
        return;
    }
    let s = store("fuse-overlay");
    for rt in RUNTIMES {
        let out = s.run([
            "run",
            "--rm",
            "--runtime",
            rt,
            "busybox",
            "sh",
            "-c",
            "echo hi > /f && cat /f && exit 3",
        ]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{rt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{rt}");
        // auto: the filesystem shows the image's files to the container's root through the map.
        let name = format!("auto-{rt}");
        s.ok([
            "run",
            "-d",
            "--runtime",
            rt,
            "--userns",
            "auto:size=5000",
            // runc cannot exec into a user namespace whose network namespace the host's
            // namespace owns (a bridge's), as the root --userns tests note.
            "--network",
            "none",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "touch /by-root && exec sleep 1000",
        ]);
        let started = std::time::Instant::now();
        while !s
            .run(["exec", &name, "test", "-e", "/by-root"])
            .status
            .success()
        {
            if started.elapsed() > Duration::from_secs(20) {
                let out = s.run(["exec", &name, "test", "-e", "/by-root"]);
                panic!(
                    "{rt}: the container's first command did not run: {}\nps: {}\nlogs: {}",
                    String::from_utf8_lossy(&out.stderr),
                    s.ok(["ps", "-a"]),
                    String::from_utf8_lossy(&s.run(["logs", &name]).stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        s.ok(["exec", "-u", "1000:1000", &name, "touch", "/tmp/by-1000"]);
        let inside = s.ok([
            "exec",
            &name,
            "stat",
            "-c",
            "%u:%g",
            "/by-root",
            "/tmp/by-1000",
            "/bin/sh",
        ]);
        assert_eq!(inside, "0:0\n1000:1000\n0:0\n", "{rt}: owners inside");
        let map = s.ok(["exec", &name, "cat", "/proc/self/uid_map"]);
        let outside: u32 = map
            .split_whitespace()
            .nth(1)
            .expect("uid_map")
            .parse()
            .expect("id");
        assert!(outside >= 65536, "{rt}: a block of its own: {map}");
        s.ok(["commit", &name, &format!("img-{rt}")]);
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            &format!("img-{rt}"),
            "stat",
            "-c",
            "%u:%g",
            "/by-root",
            "/tmp/by-1000",
        ]);
        assert_eq!(
            out, "0:0\n1000:1000\n",
            "{rt}: image ids in the committed image"
        );
        s.ok(["rm", "-f", &name]);
        s.ok(["rmi", &format!("img-{rt}")]);
    }
    assert_eq!(s.ok(["ps", "-aq"]), "");
    assert!(
        strata_tests::cli::mounts_below(s.base()).is_empty(),
        "nothing left mounted"
    );
}
