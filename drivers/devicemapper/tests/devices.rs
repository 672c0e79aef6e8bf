//! The devicemapper driver's own behaviour, beyond the shared suite: layers are thin devices
//! mounted under the home and survive a release (as after a reboot); a full pool refuses new
//! devices with a clear error; a busy device's removal is deferred to the kernel and finished
//! later; an existing pool is used and left in place; xfs works as the base filesystem.
//! Options and rootless stores are refused before the kernel is touched (unprivileged).

mod common;

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use strata_driver_api::{Driver, DriverConfig, Key};
use strata_driver_devicemapper::{Audit, DmDriver};
use strata_types::ChangeKind;
use strata_types::{ErrorKind, HasKind};

use common::{key, open, require_dm, small_pool};

fn layer(d: &DmDriver, name: &str, parents: &[Key], files: &[(&str, &str)]) -> Key {
    let s = d
        .stage(parents)
        .unwrap_or_else(|e| panic!("stage {name}: {e}"));
    for (p, data) in files {
        std::fs::write(s.root.join(p), data).unwrap_or_else(|e| panic!("write {p}: {e}"));
    }
    let k = key(name);
    d.commit(s, &k)
        .unwrap_or_else(|e| panic!("commit {name}: {e}"));
    k
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn assert_clean(a: &Audit, when: &str) {
    assert!(
        a.stray_devices.is_empty(),
        "{when}: stray devices {:?}",
        a.stray_devices
    );
    assert!(
        a.unsettled.is_empty(),
        "{when}: unsettled records {:?}",
        a.unsettled
    );
    assert!(
        a.leaked_thin_ids.is_empty(),
        "{when}: leaked thin ids {:?}",
        a.leaked_thin_ids
    );
}

fn mounts_under(home: &Path) -> Vec<String> {
    let home = home.to_string_lossy().into_owned();
    read(Path::new("/proc/self/mountinfo"))
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&home))
        .map(str::to_owned)
        .collect()
}

fn read_only(p: &Path) -> bool {
    rustix::fs::statvfs(p)
        .unwrap_or_else(|e| panic!("statvfs {}: {e}", p.display()))
        .f_flag
        .contains(rustix::fs::StatVfsMountFlags::RDONLY)
}

#[test]
fn layers_are_thin_snapshots_kept_mounted_and_restored_after_release() {
    if !require_dm(
        "devicemapper::layers_are_thin_snapshots_kept_mounted_and_restored_after_release",
    ) {
        return;
    }
    let (_t, home) = common::home();
    let d = open(&home, small_pool());
    let empty = d.check().expect("audit");
    assert_clean(&empty, "fresh");
    let l1 = layer(&d, "l1", &[], &[("a", "from l1")]);
    let l2 = layer(&d, "l2", std::slice::from_ref(&l1), &[("b", "from l2")]);
    let c = key("c");
    d.create_writable(&c, &[l2.clone(), l1.clone()])
        .expect("create_writable");

    assert_eq!(d.diff_dir(&l2), home.join("mnt/l2/rootfs"));
    assert_eq!(
        read(&d.diff_dir(&l2).join("a")),
        "from l1",
        "a snapshot holds its parent's tree"
    );
    assert!(read_only(&d.diff_dir(&l2)) && !read_only(&d.diff_dir(&c)));
    let changes: Vec<(String, ChangeKind)> = d
        .changes(&l2, std::slice::from_ref(&l1))
        .expect("changes")
        .into_iter()
        .map(|c| (c.path.display().to_string(), c.kind))
        .collect();
    assert_eq!(changes, [("b".to_owned(), ChangeKind::Modified)]);
    std::fs::write(d.diff_dir(&c).join("w"), "container write").expect("write in the container");
    assert!(!d.diff_dir(&l2).join("w").exists());
    assert!(d.size(&l2).expect("size") > 0);
    let a = d.check().expect("audit");
    assert_clean(&a, "three keys");
    assert_eq!(a.active_keys, 3);
    assert!(
        a.usage.used_data > empty.usage.used_data,
        "writes use pool blocks"
    );
    let pool = d.pool_name().to_owned();

    // Released (as by a reboot): nothing mounted, no device, no loop device; the next open
    // brings every key back.
    d.release().expect("release");
    assert_eq!(mounts_under(&home), Vec::<String>::new());
    let out = Command::new("dmsetup")
        .arg("ls")
        .output()
        .expect("dmsetup ls");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&pool),
        "the pool device is gone"
    );
    let out = Command::new("losetup")
        .args(["-j"])
        .arg(home.join("pool/data"))
        .output()
        .expect("losetup");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "loop device detached"
    );

    let d = open(&home, small_pool());
    assert_eq!(d.list().expect("list"), [c.clone(), l1.clone(), l2.clone()]);
    assert_eq!(read(&d.diff_dir(&c).join("w")), "container write");
    assert_eq!(read(&d.diff_dir(&l2).join("b")), "from l2");
    assert_clean(&d.check().expect("audit"), "reopened");
    for k in [&c, &l2, &l1] {
        d.remove(k).unwrap_or_else(|e| panic!("remove {k}: {e}"));
    }
    assert!(d.list().expect("list").is_empty());
    let end = d.check().expect("audit");
    assert_clean(&end, "all removed");
    assert_eq!(
        end.usage.used_data, empty.usage.used_data,
        "removal gives the blocks back"
    );
    assert_eq!(mounts_under(&home), Vec::<String>::new());
    d.release().expect("release");
}

#[test]
fn a_full_pool_refuses_new_devices_with_a_clear_error() {
    if !require_dm("devicemapper::a_full_pool_refuses_new_devices_with_a_clear_error") {
        return;
    }
    let (_t, home) = common::home();
    let mut opts = small_pool();
    opts.retain(|(k, _)| k != "dm.loopdatasize");
    opts.push(("dm.loopdatasize".into(), "64M".into()));
    let d = open(&home, opts).release_on_drop();
    let c = key("filler");
    d.create_writable(&c, &[]).expect("create_writable");
    let mut f = std::fs::File::create(d.diff_dir(&c).join("fill")).expect("create");
    let chunk = vec![0x5a_u8; 1 << 20];
    loop {
        let u = d.pool_usage().expect("usage");
        if u.used_data * 100 >= u.total_data * 92 {
            break;
        }
        f.write_all(&chunk).expect("write 1 MiB");
        f.sync_all().expect("fsync");
    }
    drop(f);
    let e = d.stage(&[]).expect_err("staging in a pool over 90% full");
    let msg = e.to_string();
    assert!(
        msg.contains("is too full") && msg.contains("dm.min_free_space=10%"),
        "{msg}"
    );
    assert!(msg.contains("data") && msg.contains("free"), "{msg}");
    let e = d
        .create_writable(&key("c2"), &[])
        .expect_err("a container too");
    assert!(e.to_string().contains("is too full"), "{e}");
    assert!(!d.exists(&key("c2")));

    d.remove(&c).expect("remove the filler");
    let s = d.stage(&[]).expect("space is back once the filler is gone");
    drop(s);
    assert_eq!(d.cleanup_staging().expect("cleanup"), 1);
    assert_clean(&d.check().expect("audit"), "after the refusal");
}

#[test]
fn busy_devices_are_removed_later_by_the_kernel() {
    if !require_dm("devicemapper::busy_devices_are_removed_later_by_the_kernel") {
        return;
    }
    let (_t, home) = common::home();
    let d = open(&home, small_pool()).release_on_drop();
    let before = d.check().expect("audit").usage;
    let l1 = layer(&d, "l1", &[], &[("held", "open while removed")]);
    let held = std::fs::File::open(d.diff_dir(&l1).join("held")).expect("open a file of the layer");

    d.remove(&l1)
        .expect("removing a busy (not mounted elsewhere) layer is deferred, not refused");
    assert!(!d.exists(&l1) && d.list().expect("list").is_empty());
    let a = d.check().expect("audit");
    assert_eq!(a.unsettled.len(), 1, "{:?}", a.unsettled);
    assert!(a.unsettled[0].contains("removing"), "{:?}", a.unsettled);
    assert!(
        a.stray_devices.is_empty() && a.leaked_thin_ids.is_empty(),
        "{a:?}"
    );

    drop(held);
    // The kernel removes the device once its last user is gone; the next pass deletes the
    // thin id.
    let mut a = d.check().expect("audit");
    for _ in 0..50 {
        d.cleanup_staging().expect("cleanup");
        a = d.check().expect("audit");
        if a.unsettled.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_clean(&a, "after the deferred removal");
    assert_eq!(
        a.usage.used_data, before.used_data,
        "the layer's blocks are back"
    );
}

/// A pool made outside the driver, torn down on drop.
struct OutsidePool {
    name: String,
    loops: Vec<String>,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl OutsidePool {
    fn new(dir: &Path) -> OutsidePool {
        let mut loops = Vec::new();
        for (f, size) in [("meta", 64u64 << 20), ("data", 1 << 30)] {
            let p = dir.join(f);
            std::fs::File::create(&p)
                .and_then(|f| f.set_len(size))
                .expect("sparse file");
            loops.push(run(Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&p)));
        }
        let devno = |node: &str| {
            let m = std::fs::metadata(node).expect("stat loop");
            assert!(m.file_type().is_block_device());
            let rdev = std::os::unix::fs::MetadataExt::rdev(&m);
            format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev))
        };
        let name = format!("strata-test-{}-pool", std::process::id());
        let table = format!(
            "0 {} thin-pool {} {} 128 0",
            (1u64 << 30) / 512,
            devno(&loops[0]),
            devno(&loops[1])
        );
        run(Command::new("dmsetup").args(["create", &name, "--table", &table]));
        OutsidePool { name, loops }
    }
}

impl Drop for OutsidePool {
    fn drop(&mut self) {
        let _ = Command::new("dmsetup")
            .args(["remove", &self.name])
            .status();
        for l in &self.loops {
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
    }
}

#[test]
fn an_existing_pool_is_used_and_left_in_place() {
    if !require_dm("devicemapper::an_existing_pool_is_used_and_left_in_place") {
        return;
    }
    let (t, home) = common::home();
    let pool = OutsidePool::new(t.path());
    let opts = vec![
        (
            "dm.thinpooldev".to_owned(),
            format!("/dev/mapper/{}", pool.name),
        ),
        ("dm.basesize".to_owned(), "256M".to_owned()),
    ];
    let d = open(&home, opts.clone());
    assert_eq!(d.pool_name(), pool.name);
    assert!(!home.join("pool").exists(), "no pool files of its own");
    let l1 = layer(&d, "l1", &[], &[("f", "on an existing pool")]);
    d.release().expect("release");
    let out =
        run(Command::new("dmsetup").args(["info", "-c", "--noheadings", "-o", "name", &pool.name]));
    assert_eq!(out, pool.name, "the pool is left in place");

    let d = open(&home, opts);
    assert_eq!(read(&d.diff_dir(&l1).join("f")), "on an existing pool");
    d.remove(&l1).expect("remove");
    assert_clean(&d.check().expect("audit"), "existing pool");
    d.release().expect("release");

    let e = DmDriver::open(&common::config(
        &home,
        vec![("dm.thinpooldev".into(), "strata-no-such-pool".into())],
    ))
    .expect_err("a missing pool");
    assert!(
        e.to_string().contains("strata-no-such-pool") && e.to_string().contains("dmsetup ls"),
        "{e}"
    );
}

#[test]
fn xfs_layers_and_containers_mount_side_by_side() {
    if !require_dm("devicemapper::xfs_layers_and_containers_mount_side_by_side") {
        return;
    }
    let (_t, home) = common::home();
    let mut opts = small_pool();
    opts.retain(|(k, _)| k != "dm.basesize");
    opts.extend([
        ("dm.fs".into(), "xfs".into()),
        ("dm.basesize".into(), "512M".into()),
    ]);
    let d = open(&home, opts).release_on_drop();
    let l1 = layer(&d, "l1", &[], &[("a", "xfs one")]);
    let l2 = layer(&d, "l2", std::slice::from_ref(&l1), &[("b", "xfs two")]);
    let c = key("c");
    d.create_writable(&c, &[l2.clone(), l1.clone()])
        .expect("create_writable");
    std::fs::write(d.diff_dir(&c).join("w"), "w").expect("write");
    // Three snapshots of one xfs filesystem (same UUID) mounted at once.
    assert_eq!(read(&d.diff_dir(&l1).join("a")), "xfs one");
    assert_eq!(read(&d.diff_dir(&l2).join("b")), "xfs two");
    assert_eq!(read(&d.diff_dir(&c).join("a")), "xfs one");
    assert!(!d.diff_dir(&l2).join("w").exists());
    let status = d.status();
    assert!(
        status
            .details
            .contains(&("filesystem".into(), "xfs".into())),
        "{:?}",
        status.details
    );
}

/// Unprivileged: refused before device-mapper is touched.
#[test]
fn open_refuses_bad_options_and_rootless_stores_first() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = |rootless, options: Vec<(String, String)>| DriverConfig {
        home: t.path().to_path_buf(),
        rootless,
        options,
    };
    let e = DmDriver::open(&cfg(false, vec![("dm.fs".into(), "btrfs".into())]))
        .expect_err("bad option");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("dm.fs=btrfs"), "{e}");
    let e = DmDriver::open(&cfg(true, vec![])).expect_err("rootless");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("real root"), "{e}");
    assert_eq!(
        std::fs::read_dir(t.path()).expect("read").count(),
        0,
        "nothing was created"
    );
    if !Path::new("/dev/mapper/control").exists() {
        let e = DmDriver::open(&cfg(false, vec![])).expect_err("no device-mapper here");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(
            e.to_string().contains("/dev/mapper/control does not exist"),
            "{e}"
        );
    }
}
