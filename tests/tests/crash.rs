//! Crash safety: `kill -9` of the real binary at many points of `storage load`, `storage
//! commit` and `storage rm`. The kill times spread evenly over a measured unkilled run
//! (`i * T / KILLS`). After every kill the store must be consistent (`fsck` exits 0 with no
//! problems), `gc` must leave no garbage, the driver must hold exactly the payload keys the
//! metadata knows, and re-running the interrupted command must succeed.
//!
//! It does not simulate power loss (no fsync testing): a killed process's writes all reach the
//! page cache.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use strata_tests::{fixtures, require_privileged, Strata};

const KILLS: u32 = 15;

/// Runs `args` to completion and returns how long it took.
fn timed(s: &Strata, args: &[&str]) -> Duration {
    let t = Instant::now();
    s.ok(args);
    t.elapsed()
}

/// Starts `args`, SIGKILLs it after `after`; returns whether it died of the kill (rather than
/// finishing first). Timings vary with the machine's load, so the tests only require a third
/// of the kills to land mid-run.
fn kill_after(s: &Strata, args: &[&str], after: Duration) -> bool {
    let mut child = s.spawn(args);
    std::thread::sleep(after);
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait for strata");
    if out.status.signal().is_none() && !out.status.success() {
        panic!(
            "strata {args:?} failed on its own before the kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.signal() == Some(9)
}

/// The checks after every kill (see the module docs).
fn assert_recovers(s: &Strata, what: &str) {
    let report = s.fsck();
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "{what}: fsck after the kill: {report:#}"
    );
    s.ok(["storage", "gc"]);
    let report = s.fsck();
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "{what}: fsck after gc: {report:#}"
    );
    assert_eq!(
        report["garbage"],
        serde_json::json!([]),
        "{what}: garbage left after gc: {report:#}"
    );
    assert_eq!(
        s.driver_keys(),
        s.known_keys(),
        "{what}: driver payload differs from the metadata"
    );
    for dir in [s.root.join("tmp"), s.driver_home().join("staging")] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "{what}: debris left in {} after gc: {left:?}",
            dir.display()
        );
    }
    let ids: Vec<String> = s
        .list("containers")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let stale: Vec<_> = std::fs::read_dir(s.runroot.join("mounts"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| !ids.contains(&e.file_name().to_string_lossy().into_owned()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        stale.is_empty(),
        "{what}: mount points of removed containers left after gc: {stale:?}"
    );
}

/// Kills `storage load` of fixture `image` at `kills` points; after each, checks recovery and
/// re-runs the load to completion, then removes the image again. The unkilled duration is the
/// faster of two runs (the first one may pay for cold caches).
fn crash_during_load(test: &str, driver: &str, image: &str, kills: u32) {
    if !require_privileged(test, "overlay mounts and root-owned extraction") {
        return;
    }
    let s = Strata::new(driver);
    let src = fixtures::oci(image);
    let want = fixtures::config_digest(image, None);
    let load = ["storage", "load", src.as_str(), "--name", image];
    let mut full = Duration::MAX;
    for _ in 0..2 {
        full = full.min(timed(&s, &load));
        s.ok(["storage", "rmi", image]);
    }
    assert_recovers(&s, "after the unkilled runs");
    let layers = fixtures::manifest(image, None)["layers"]
        .as_array()
        .expect("layers")
        .len();
    let mut killed = 0;
    for i in 0..kills {
        let at = full * i / kills;
        if kill_after(&s, &load, at) {
            killed += 1;
        }
        let what = format!("{driver} load {image} killed at {at:?} of {full:?}");
        assert_recovers(&s, &what);
        assert_eq!(s.load(&src, &["--name", image]), want, "{what}: re-run");
        assert_eq!(
            s.list("layers").len(),
            layers,
            "{what}: re-run has all layers"
        );
        s.assert_clean();
        s.ok(["storage", "rmi", image]);
        s.ok(["storage", "gc"]);
    }
    eprintln!(
        "{driver} load {image}: {killed} of {kills} kills landed mid-run (full run {full:?})"
    );
    assert!(killed >= kills / 3, "only {killed} of {kills} kills landed while the load ran ({full:?}): the test is not testing");
}

#[test]
fn kill_during_load_overlay() {
    crash_during_load(
        "crash::kill_during_load_overlay",
        "overlay",
        "layers",
        KILLS,
    );
}

/// Fewer kills: every vfs layer is a full copy of its parent (the `layers` fixture has a
/// 100 MiB file), so each re-run is slow.
#[test]
fn kill_during_load_vfs() {
    crash_during_load("crash::kill_during_load_vfs", "vfs", "layers", 8);
}

#[test]
fn kill_during_load_of_200_layers() {
    crash_during_load(
        "crash::kill_during_load_of_200_layers",
        "overlay",
        "deep",
        KILLS,
    );
}

/// Puts enough changes in a mounted container (a `big_mib` MiB file and `files` small ones in
/// `many/`) that committing or removing it takes measurable time.
fn make_changes(s: &Strata, container: &str, big_mib: u32, files: usize) {
    let mp = s.mount(container);
    let big: Vec<u8> = (0..big_mib << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(mp.join("big.bin"), &big).expect("write big file");
    std::fs::create_dir(mp.join("many")).expect("mkdir");
    for i in 0..files {
        std::fs::write(mp.join(format!("many/f{i}")), format!("file {i}\n"))
            .expect("write small file");
    }
}

#[test]
fn kill_during_commit() {
    if !require_privileged("crash::kill_during_commit", "overlay mounts") {
        return;
    }
    let s = Strata::new("overlay");
    s.load(&fixtures::oci("layers"), &["--name", "layers"]);
    s.create("layers", "c");
    make_changes(&s, "c", 32, 500);
    // The first commit runs cold (page cache, other tests starting): the faster of two is
    // what the killed runs will take, so the kills spread over all of it.
    let mut full = Duration::MAX;
    for _ in 0..2 {
        full = full.min(timed(&s, &["storage", "commit", "c", "probe"]));
        s.ok(["storage", "rmi", "probe"]);
    }
    assert_recovers(&s, "after the unkilled commit");
    let mut killed = 0;
    for i in 0..KILLS {
        let at = full * i / KILLS;
        let name = format!("img{i}");
        if kill_after(&s, &["storage", "commit", "c", &name], at) {
            killed += 1;
        }
        let what = format!("commit killed at {at:?} of {full:?}");
        assert_recovers(&s, &what);
        s.ok(["storage", "commit", "c", &name]);
        s.create(&name, "check");
        let mp = s.mount("check");
        assert_eq!(
            std::fs::metadata(mp.join("big.bin"))
                .expect("committed big file")
                .len(),
            32 << 20,
            "{what}"
        );
        assert!(
            mp.join("many/f499").is_file(),
            "{what}: committed small files"
        );
        s.ok(["storage", "rm", "check"]);
        s.ok(["storage", "rmi", &name]);
        s.assert_clean();
    }
    eprintln!("commit: {killed} of {KILLS} kills landed mid-run (full run {full:?})");
    assert!(
        killed >= KILLS / 3,
        "only {killed} of {KILLS} kills landed while commit ran ({full:?})"
    );
}

#[test]
fn kill_during_rm() {
    if !require_privileged("crash::kill_during_rm", "overlay mounts") {
        return;
    }
    let s = Strata::new("overlay");
    s.load(&fixtures::oci("layers"), &["--name", "layers"]);
    s.create("layers", "probe");
    make_changes(&s, "probe", 1, 2000);
    let full = timed(&s, &["storage", "rm", "probe"]);
    assert_recovers(&s, "after the unkilled rm");
    let mut killed = 0;
    for i in 0..KILLS {
        let name = format!("c{i}");
        s.create("layers", &name);
        make_changes(&s, &name, 1, 2000);
        let at = full * i / KILLS;
        if kill_after(&s, &["storage", "rm", &name], at) {
            killed += 1;
        }
        let what = format!("rm killed at {at:?} of {full:?}");
        assert_recovers(&s, &what);
        // Re-run: removes the container, or finds it already gone (exit 3, and it is not listed).
        let out = s.run(["storage", "rm", &name]);
        match out.status.code() {
            Some(0) => {}
            Some(3) => assert!(
                s.list("containers")
                    .iter()
                    .all(|c| c["name"] != name.as_str()),
                "{what}"
            ),
            other => panic!(
                "{what}: re-run of rm exited {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        assert!(s.list("containers").is_empty(), "{what}");
        let left = strata_tests::cli::mounts_below(&s.runroot);
        assert!(left.is_empty(), "{what}: still mounted: {left:?}");
        s.assert_clean();
        assert_eq!(s.driver_keys(), s.known_keys(), "{what}");
    }
    eprintln!("rm: {killed} of {KILLS} kills landed mid-run (full run {full:?})");
    assert!(
        killed >= KILLS / 3,
        "only {killed} of {KILLS} kills landed while rm ran ({full:?})"
    );
}

/// The entries of `dir` (none when it does not exist).
fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The front ends' `rm` defers deletion: the row goes with an unsynced commit and a note is
/// left; the collector makes the deletion durable, then moves the payload into the trash and
/// deletes it, all before the command ends. A kill at any point of that leaves either the
/// container (whole: it starts) or trash that nothing counts as live, and the next front-end
/// command, whatever it is, deletes that trash (no gc needed). The one exception is a kill in
/// the microseconds between the row's deletion and the note: payload without a row, which
/// fsck reports as garbage and gc removes, as after a kill during a create.
#[test]
fn kill_during_deferred_rm() {
    if !require_privileged("crash::kill_during_deferred_rm", "overlay mounts, crun") {
        return;
    }
    let s = strata_tests::containers::busybox_store();
    let create = |name: &str| -> String {
        let id = s.ok([
            "create",
            "--name",
            name,
            "--network",
            "none",
            "busybox",
            "true",
        ]);
        make_changes(&s, name, 1, 2000);
        s.ok(["storage", "umount", name]);
        id.trim().to_owned()
    };
    create("probe");
    let full = timed(&s, &["rm", "probe"]);
    let trash = [
        s.root.join("trash"),
        s.runroot.join("trash"),
        s.driver_home().join("staging"),
    ];
    let assert_empty = |what: &str| {
        for dir in &trash {
            assert!(
                entries(dir).is_empty(),
                "{what}: {:?} left in {}",
                entries(dir),
                dir.display()
            );
        }
    };
    assert_empty("the unkilled rm");
    // Garbage allowed after a kill: only the killed container's payload, and only from the
    // kill between its row and its note.
    let garbage_of = |id: &str, report: &serde_json::Value| -> bool {
        match report["garbage"].as_array().map(Vec::as_slice) {
            Some([]) | None => false,
            Some([one]) if one.as_str().is_some_and(|g| g.contains(&format!("c-{id}"))) => true,
            _ => panic!("garbage other than the killed container's payload: {report:#}"),
        }
    };
    let mut killed = 0;
    let mut left_trash = 0;
    let mut between = 0;
    for i in 0..KILLS {
        let name = format!("c{i}");
        let id = create(&name);
        let at = full * i / KILLS;
        if kill_after(&s, &["rm", &name], at) {
            killed += 1;
        }
        let what = format!("rm killed at {at:?} of {full:?}");
        // Before anything collects: consistent, and whatever the trash holds is not live.
        let report = s.fsck();
        assert_eq!(
            report["problems"],
            serde_json::json!([]),
            "{what}: {report:#}"
        );
        let orphan = garbage_of(&id, &report);
        let listed = s
            .list("containers")
            .iter()
            .any(|c| c["name"] == name.as_str());
        assert!(
            !(orphan && listed),
            "{what}: listed and garbage at once: {report:#}"
        );
        if trash.iter().any(|d| !entries(d).is_empty()) {
            left_trash += 1;
        }
        // Any front-end command empties the trash of a killed process.
        s.ok(["ps", "-a"]);
        assert_empty(&format!("{what}, after the next command"));
        if orphan {
            between += 1;
            assert!(garbage_of(&id, &s.fsck()), "{what}");
        } else {
            assert_eq!(s.fsck()["garbage"], serde_json::json!([]), "{what}");
        }
        if listed {
            // Not removed: still whole.
            s.ok(["start", &name]);
            s.ok(["wait", &name]);
            s.ok(["rm", &name]);
        }
        assert!(s.list("containers").is_empty(), "{what}");
        assert_recovers(&s, &what);
    }
    eprintln!(
        "deferred rm: {killed} of {KILLS} kills landed mid-run, {left_trash} left trash, \
         {between} between row and note (full run {full:?})"
    );
    assert!(
        killed >= KILLS / 3,
        "only {killed} of {KILLS} kills landed while rm ran ({full:?})"
    );
    assert!(
        left_trash >= 3,
        "only {left_trash} of {KILLS} kills left trash to collect ({full:?}): the deletion after the row went unkilled"
    );
}
