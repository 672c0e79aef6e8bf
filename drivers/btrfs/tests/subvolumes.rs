//! What is particular to btrfs, checked on loop-mounted filesystems (privileged tier): layers
//! are read-only subvolumes and containers writable snapshots, a snapshot shares its parent's
//! data instead of copying it, `size=` caps what a container may write, read-only layers (and
//! containers holding subvolumes) are removed, and a non-root user can do all of it, with and
//! without `user_subvol_rm_allowed`.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_driver_api::{Driver, DriverConfig, Key};
use strata_driver_btrfs::{subvol, BtrfsDriver};

use common::LoopBtrfs;

const WHAT: &str = "a loop-mounted btrfs filesystem (run as root)";

fn k(s: &str) -> Key {
    Key::new(s).expect("valid key")
}

/// A fresh btrfs mounted in a temporary directory, and a driver whose home is `<mnt>/store`.
struct Setup {
    driver: BtrfsDriver,
    fs: LoopBtrfs,
    _dir: tempfile::TempDir,
}

fn setup(options: &[(&str, &str)]) -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("strata-btrfs-test-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let fs = LoopBtrfs::mount_at(&mnt, "");
    let driver = BtrfsDriver::open(&DriverConfig {
        home: mnt.join("store"),
        rootless: false,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
    .expect("open the driver");
    Setup {
        driver,
        fs,
        _dir: dir,
    }
}

fn write_file(path: &Path, bytes: usize) {
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut f = std::fs::File::create(path).expect("create");
    for _ in 0..bytes >> 20 {
        f.write_all(&chunk).expect("write");
    }
}

/// Makes layer `name` on `parents` with `files` (name, MiB) written into its staging area.
fn layer(d: &BtrfsDriver, name: &str, parents: &[Key], files: &[(&str, usize)]) -> Key {
    let s = d.stage(parents).expect("stage");
    for (f, mib) in files {
        write_file(&s.root.join(f), mib << 20);
    }
    d.commit(s, &k(name)).expect("commit");
    k(name)
}

fn is_erofs<T>(r: std::io::Result<T>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()))
}

#[test]
fn layers_are_read_only_subvolumes_and_containers_writable_snapshots() {
    if !strata_tests::require_privileged(
        "btrfs::layers_are_read_only_subvolumes_and_containers_writable_snapshots",
        WHAT,
    ) {
        return;
    }
    let s = setup(&[]);
    let d = &s.driver;
    let base = layer(d, "base", &[], &[("f", 1)]);
    let dir = d.diff_dir(&base);
    let meta = std::fs::metadata(&dir).expect("stat the layer");
    assert!(subvol::is_subvolume_root(&meta), "inode {}", meta.ino());
    assert!(subvol::is_read_only(&dir).expect("flags"));
    assert!(
        is_erofs(std::fs::write(dir.join("new"), "x")),
        "root cannot write into a committed layer"
    );
    assert!(is_erofs(std::fs::remove_file(dir.join("f"))));

    let c = k("c-1");
    d.create_writable(&c, std::slice::from_ref(&base))
        .expect("create_writable");
    let cdir = d.diff_dir(&c);
    assert!(subvol::is_subvolume_root(
        &std::fs::metadata(&cdir).expect("stat")
    ));
    assert!(!subvol::is_read_only(&cdir).expect("flags"));
    std::fs::write(cdir.join("f"), "changed").expect("a container is writable");
    assert_eq!(
        std::fs::metadata(dir.join("f")).expect("stat").len(),
        1 << 20
    );

    let staged = d.stage(std::slice::from_ref(&base)).expect("stage a child");
    assert!(
        !subvol::is_read_only(&staged.root).expect("flags"),
        "a layer is writable while staged"
    );
    assert!(staged.root.join("f").exists(), "it starts as its parent");
}

#[test]
fn snapshots_share_the_parent_data_instead_of_copying_it() {
    if !strata_tests::require_privileged(
        "btrfs::snapshots_share_the_parent_data_instead_of_copying_it",
        WHAT,
    ) {
        return;
    }
    let s = setup(&[]);
    let d = &s.driver;
    let big = layer(d, "big", &[], &[("data", 256)]);
    let before = s.fs.used_bytes();
    let child = layer(d, "child", std::slice::from_ref(&big), &[]);
    d.create_writable(&k("c"), &[child.clone(), big.clone()])
        .expect("create_writable");
    let grown = s.fs.used_bytes().saturating_sub(before);
    assert!(
        grown < 4 << 20,
        "a child layer and a container of a 256 MiB parent used {grown} more bytes"
    );
    let data = d.diff_dir(&k("c")).join("data");
    assert_eq!(std::fs::metadata(&data).expect("stat").len(), 256 << 20);
}

#[test]
fn size_option_caps_what_a_container_can_write() {
    if !strata_tests::require_privileged("btrfs::size_option_caps_what_a_container_can_write", WHAT)
    {
        return;
    }
    let s = setup(&[("size", "64M")]);
    let d = &s.driver;
    let status = d.status();
    assert!(
        status
            .details
            .iter()
            .any(|(k, v)| k == "container size limit" && v.starts_with("67108864 bytes")),
        "{status:?}"
    );
    // Committed layers are not limited: this one alone is over the limit.
    let big = layer(d, "big", &[], &[("image-data", 96)]);
    assert!(d.size(&big).expect("size") >= 96 << 20);
    let base = layer(d, "base", &[], &[("image-data", 16)]);
    d.create_writable(&k("c"), std::slice::from_ref(&base))
        .expect("create_writable");
    let path = d.diff_dir(&k("c")).join("written");
    let chunk = vec![7u8; 1 << 20];
    let mut f = std::fs::File::create(&path).expect("create");
    let mut written = 0usize;
    let err = loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_data()) {
            break e;
        }
        written += chunk.len();
        assert!(written <= 256 << 20, "no limit hit after 256 MiB");
    };
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::DQUOT.raw_os_error()),
        "{err}"
    );
    // The limit counts the 16 MiB the container shares with its image.
    assert!(
        ((32 << 20)..=(48 << 20)).contains(&written),
        "wrote {written} bytes into a container of a 16 MiB image, limit 64 MiB"
    );
}

#[test]
fn read_only_layers_are_removed_without_touching_their_children() {
    if !strata_tests::require_privileged(
        "btrfs::read_only_layers_are_removed_without_touching_their_children",
        WHAT,
    ) {
        return;
    }
    let s = setup(&[]);
    let d = &s.driver;
    let l1 = layer(d, "l1", &[], &[("one", 1)]);
    let l2 = layer(d, "l2", std::slice::from_ref(&l1), &[("two", 1)]);
    assert_eq!(
        s.fs.subvolumes(),
        ["store/subvolumes/l1", "store/subvolumes/l2"]
    );
    // A container that made a subvolume of its own (btrfs tools inside a container do).
    let c = k("c");
    d.create_writable(&c, std::slice::from_ref(&l2))
        .expect("create_writable");
    subvol::create(&d.diff_dir(&c).join("nested")).expect("nested subvolume");
    std::fs::write(d.diff_dir(&c).join("nested/f"), "n").expect("write");
    d.remove(&c)
        .expect("remove a container holding a subvolume");
    assert!(!d.exists(&c));

    d.remove(&l1)
        .expect("remove a read-only layer with a child");
    assert!(!d.exists(&l1));
    assert!(
        d.diff_dir(&l2).join("one").exists(),
        "the child snapshot keeps its data"
    );
    d.remove(&l2).expect("remove");

    // A process that died between making its area read-only and renaming it (commit's two
    // steps) leaves a read-only staging subvolume: cleanup deletes it.
    let dead = d.stage(&[]).expect("stage");
    subvol::set_read_only(&dead.root, true).expect("make read-only");
    let area = dead.area.clone();
    drop(dead);
    assert_eq!(d.cleanup_staging().expect("cleanup"), 1);
    assert!(!area.exists());
    assert!(s.fs.subvolumes().is_empty(), "no subvolume is left");
    assert_eq!(d.cleanup_staging().expect("cleanup"), 0, "no debris");
    d.remove(&l2).expect("removing a missing key is fine");
}

/// Set in the environment of the copy of this test that runs as a non-root user.
const CHILD_HOME: &str = "STRATA_BTRFS_TEST_NON_ROOT_HOME";
const USER: &str = "strata-rootless";

/// What the non-root user does (in a child process): stage, commit, snapshot, write, remove.
fn as_non_root(home: &Path) {
    assert!(!rustix::process::geteuid().is_root(), "runs as {USER}");
    let d = BtrfsDriver::open(&DriverConfig {
        home: home.to_path_buf(),
        rootless: true,
        options: vec![],
    })
    .expect("open as non-root");
    let s = d.stage(&[]).expect("stage");
    std::fs::create_dir(s.root.join("ro")).expect("mkdir");
    std::fs::write(s.root.join("ro/f"), "x").expect("write");
    std::fs::set_permissions(s.root.join("ro"), std::fs::Permissions::from_mode(0o555))
        .expect("chmod");
    d.commit(s, &k("l1")).expect("commit");
    assert!(subvol::is_read_only(&d.diff_dir(&k("l1"))).expect("flags"));
    let l2 = layer(&d, "l2", &[k("l1")], &[("two", 1)]);
    d.create_writable(&k("c"), &[l2.clone(), k("l1")])
        .expect("create_writable");
    std::fs::write(d.diff_dir(&k("c")).join("mine"), "m").expect("write in the container");
    for key in [k("c"), l2, k("l1")] {
        d.remove(&key)
            .unwrap_or_else(|e| panic!("remove {key} as non-root: {e}"));
        assert!(!d.exists(&key));
    }
    assert!(d.list().expect("list").is_empty());
    assert_eq!(
        std::fs::read_dir(home.join("subvolumes"))
            .expect("read")
            .count(),
        0,
        "no staging area, lock or deleted key is left"
    );
}

#[test]
fn non_root_users_stage_commit_and_remove() {
    if let Some(home) = std::env::var_os(CHILD_HOME) {
        return as_non_root(Path::new(&home));
    }
    if !strata_tests::require_privileged("btrfs::non_root_users_stage_commit_and_remove", WHAT) {
        return;
    }
    let uid = strata_tests::users::ensure_user(USER, true).uid;
    let dir = tempfile::Builder::new()
        .prefix("strata-btrfs-user-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The user may not be able to reach the build directory: run a copy of this binary.
    let exe: PathBuf = dir.path().join("test-binary");
    std::fs::copy(std::env::current_exe().expect("current exe"), &exe).expect("copy self");
    for options in ["user_subvol_rm_allowed", ""] {
        let mnt = dir.path().join(format!("mnt-{}", options.len()));
        std::fs::create_dir(&mnt).expect("mount point");
        let fs = LoopBtrfs::mount_at(&mnt, options);
        rustix::fs::chown(
            &mnt,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(uid)),
        )
        .expect("chown the filesystem root");
        let out = Command::new("runuser")
            .args(["-u", USER, "--"])
            .arg(&exe)
            .args([
                "--exact",
                "non_root_users_stage_commit_and_remove",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_HOME, mnt.join("store"))
            .output()
            .expect("run runuser");
        assert!(
            out.status.success(),
            "as {USER} on btrfs mounted with {options:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran the test"
        );
        assert!(
            fs.subvolumes().is_empty(),
            "no subvolume left ({options:?})"
        );
    }
}
