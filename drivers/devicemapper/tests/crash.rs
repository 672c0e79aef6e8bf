//! Crash tests: a process is killed between each pair of persisted state transitions (at
//! every fault point of `FAULT_POINTS`), then the driver is reopened and garbage-collected
//! (`cleanup_staging`), and must show no leaked thin ids, no stray or half-active devices, a
//! resumed origin, consistent keys, and, once the keys the killed process made are removed,
//! exactly the pool usage it started with.
//!
//! The killed process is this test binary run again on one test, `crash_child`, with the home
//! and the fault point in its environment (`STRATA_DM_FAULT_ABORT_AT` makes the driver abort
//! there). Run without them, `crash_child` runs the same operations to completion on its own
//! home and checks the result, so it is a real test either way.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_driver_api::{Driver, Key};
use strata_driver_devicemapper::{DmDriver, FAULT_ENV, FAULT_POINTS};

use common::{key, open, require_dm, small_pool};

/// The home the child works in.
const HOME_ENV: &str = "STRATA_DM_CRASH_HOME";

/// What the killed process does, starting from a home holding layer `l1`: stage a child of
/// it (a snapshot of an active origin), commit it as `l2`, create container `c` on it, write
/// there, remove `c`, remove `l2`. This passes every fault point.
fn scenario(d: &DmDriver) {
    let (l1, l2, c) = (key("l1"), key("l2"), key("c"));
    let s = d.stage(std::slice::from_ref(&l1)).expect("stage");
    std::fs::write(s.root.join("f2"), "two").expect("write into staging");
    d.commit(s, &l2).expect("commit");
    d.create_writable(&c, &[l2.clone(), l1.clone()])
        .expect("create_writable");
    std::fs::write(d.diff_dir(&c).join("w"), "w").expect("write in the container");
    d.remove(&c).expect("remove c");
    d.remove(&l2).expect("remove l2");
}

fn base_layer(d: &DmDriver) -> Key {
    let s = d.stage(&[]).expect("stage l1");
    std::fs::write(s.root.join("f1"), "one").expect("write");
    let l1 = key("l1");
    d.commit(s, &l1).expect("commit l1");
    l1
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn crash_child() {
    if let Some(home) = std::env::var_os(HOME_ENV) {
        // The child of `every_crash_point_is_recovered`: dies at the armed fault point.
        let d = open(Path::new(&home), small_pool());
        scenario(&d);
        return;
    }
    if !require_dm("devicemapper::crash_child") {
        return;
    }
    let (_t, home) = common::home();
    let d = open(&home, small_pool()).release_on_drop();
    let l1 = base_layer(&d);
    let before = d.check().expect("audit");
    scenario(&d);
    assert_eq!(d.list().expect("list"), std::slice::from_ref(&l1));
    let after = d.check().expect("audit");
    assert!(
        after.unsettled.is_empty()
            && after.leaked_thin_ids.is_empty()
            && after.stray_devices.is_empty(),
        "{after:?}"
    );
    assert_eq!(
        after.usage, before.usage,
        "the scenario gives back what it took"
    );
    assert_eq!(read(&d.diff_dir(&l1).join("f1")), "one");
}

/// Releases the home's devices if the test fails half-way, so that a failure leaves no
/// devices behind in the guest.
struct ReleaseOnFailure<'a>(&'a Path);

impl Drop for ReleaseOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(d) = DmDriver::open(&common::config(self.0, small_pool())) {
                let _ = d.release();
            }
        }
    }
}

fn run_child(home: &Path, point: &str) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().expect("this test binary");
    let out = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(HOME_ENV, home)
        .env(FAULT_ENV, point)
        .output()
        .expect("run the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn every_crash_point_is_recovered() {
    if !require_dm("devicemapper::every_crash_point_is_recovered") {
        return;
    }
    let (_t, home) = common::home();
    let _guard = ReleaseOnFailure(&home);
    let d = open(&home, small_pool());
    let l1 = base_layer(&d);
    let baseline = d.check().expect("audit");
    drop(d);

    for point in FAULT_POINTS {
        let started = std::time::Instant::now();
        let (status, output) = run_child(&home, point);
        assert_eq!(
            status.signal(),
            Some(rustix::process::Signal::ABORT.as_raw()),
            "{point}: the child must die there, but it ended with {status}:\n{output}"
        );
        assert!(
            output.contains(&format!("{FAULT_ENV}={point}: aborting here")),
            "{point}:\n{output}"
        );

        // Reopen (recovery) and collect garbage, as `storage gc` does.
        let d = open(&home, small_pool());
        d.cleanup_staging()
            .unwrap_or_else(|e| panic!("{point}: cleanup_staging: {e}"));
        let a = d.check().unwrap_or_else(|e| panic!("{point}: audit: {e}"));
        assert!(
            a.stray_devices.is_empty(),
            "{point}: stray devices {:?}",
            a.stray_devices
        );
        assert!(
            a.unsettled.is_empty(),
            "{point}: half-done records {:?}",
            a.unsettled
        );
        assert!(
            a.leaked_thin_ids.is_empty(),
            "{point}: leaked thin ids {:?}",
            a.leaked_thin_ids
        );
        assert_eq!(
            read(&d.diff_dir(&l1).join("f1")),
            "one",
            "{point}: l1 readable (not left suspended)"
        );

        // Whatever the child made is either absent or whole; remove it as the store's GC would.
        let keys = d.list().expect("list");
        for k in &keys {
            match k.as_str() {
                "l1" => {}
                "l2" => assert_eq!(
                    read(&d.diff_dir(k).join("f2")),
                    "two",
                    "{point}: l2 is whole"
                ),
                "c" => assert_eq!(read(&d.diff_dir(k).join("f2")), "two", "{point}: c sees l2"),
                other => panic!("{point}: unexpected key {other}"),
            }
        }
        for k in keys.iter().filter(|k| k.as_str() != "l1") {
            d.remove(k)
                .unwrap_or_else(|e| panic!("{point}: remove {k}: {e}"));
        }
        let end = d.check().expect("audit");
        assert_eq!(
            end.usage, baseline.usage,
            "{point}: pool usage back where it was"
        );
        assert_eq!(end.active_keys, 1);
        eprintln!(
            "{point}: recovered ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    }
    open(&home, small_pool()).release().expect("release");
    let left: Vec<PathBuf> = std::fs::read_dir(home.join("staging"))
        .expect("read staging")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "staging debris {left:?}");
}
