//! `strata-fuse-overlay` as a user meets it: mounted over real layer directories (privileged
//! tier: FUSE mounts, chown, mknod), checked with ordinary file operations.
//!
//! Overlay semantics the driver conformance suite does not reach: renames of merged
//! directories, copy-up keeping hardlinks together and inode numbers stable, whiteouts in the
//! `userxattr` form, hidden overlay xattrs, mmap, POSIX and BSD locks, fsync and statfs; and the
//! filesystem's own options: uid/gid mapping and squashing. A server that cannot start says why.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const WHAT: &str = "FUSE mounts of strata-fuse-overlay, chown and mknod in layers";

fn server() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata-fuse-overlay"))
}

/// Layers l1 (top) and l2, an upper and work dir, and a mount point; unmounted on drop.
struct Stack {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Stack {
    fn new() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("strata-fuse-fs-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        for d in ["l1", "l2", "up", "work", "mnt"] {
            fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        Stack {
            dir,
            mounted: false,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mnt(&self, rel: &str) -> PathBuf {
        self.p("mnt").join(rel)
    }

    fn mount(&mut self, extra: &str) {
        let mut opts = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            self.p("l1").display(),
            self.p("l2").display(),
            self.p("up").display(),
            self.p("work").display()
        );
        if !extra.is_empty() {
            opts.push(',');
            opts.push_str(extra);
        }
        let out = Command::new(server())
            .arg("-o")
            .arg(&opts)
            .arg(self.p("mnt"))
            .output()
            .expect("run strata-fuse-overlay");
        assert!(
            out.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mounted = true;
    }

    fn unmount(&mut self) {
        if self.mounted {
            let st = Command::new("umount")
                .arg(self.p("mnt"))
                .status()
                .expect("umount");
            assert!(st.success());
            self.mounted = false;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(self.p("mnt")).status();
        }
    }
}

fn write(p: &Path, s: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir -p");
    }
    fs::write(p, s).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", p.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("chown");
}

#[test]
fn renamed_merged_directories_keep_their_contents_and_hide_the_old_name() {
    if !strata_tests::require_privileged("fuse_fs::rename_dirs", WHAT) {
        return;
    }
    let mut s = Stack::new();
    write(&s.p("l2/d/a"), "a");
    write(&s.p("l2/d/sub/b"), "b");
    write(&s.p("l1/d/c"), "c");
    write(&s.p("l2/target/old"), "old");
    s.mount("");
    fs::write(s.mnt("d/new"), "n").expect("write in the merged dir");
    fs::rename(s.mnt("d"), s.mnt("e")).expect("rename a merged directory");
    assert!(!s.mnt("d").exists(), "the old name is gone");
    assert_eq!(names(&s.mnt("e")), ["a", "c", "new", "sub"]);
    assert_eq!(read(&s.mnt("e/sub/b")), "b");
    // Over an empty directory of a lower layer: the lower one's files do not show through.
    fs::remove_file(s.mnt("target/old")).expect("empty target");
    fs::rename(s.mnt("e"), s.mnt("target")).expect("rename over an empty dir");
    assert_eq!(names(&s.mnt("target")), ["a", "c", "new", "sub"]);
    // Files: plain rename, and RENAME_NOREPLACE semantics through `link`-free paths.
    fs::rename(s.mnt("target/a"), s.mnt("target/a2")).expect("rename a lower file");
    assert_eq!(read(&s.mnt("target/a2")), "a");
    s.unmount();
    // The upper directory alone says all of it (no redirects): a fresh mount agrees.
    s.mount("");
    assert_eq!(names(&s.mnt("")), ["target"]);
    assert_eq!(names(&s.mnt("target")), ["a2", "c", "new", "sub"]);
    // A non-empty directory cannot be replaced.
    fs::create_dir(s.mnt("x")).expect("mkdir");
    let e = fs::rename(s.mnt("x"), s.mnt("target")).expect_err("ENOTEMPTY");
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
}

#[test]
fn copy_up_keeps_hardlinks_together_and_inode_numbers_stable() {
    if !strata_tests::require_privileged("fuse_fs::hardlinks_inodes", WHAT) {
        return;
    }
    let mut s = Stack::new();
    write(&s.p("l2/h1"), "one");
    fs::create_dir(s.p("l2/dir")).expect("mkdir");
    fs::hard_link(s.p("l2/h1"), s.p("l2/dir/h2")).expect("link");
    write(&s.p("l2/f"), "f");
    s.mount("");
    let ino = fs::metadata(s.mnt("f")).expect("stat").ino();
    assert_eq!(fs::metadata(s.mnt("h1")).expect("stat").nlink(), 2);
    // Write through one name (never looked up the other): both show it.
    fs::OpenOptions::new()
        .append(true)
        .open(s.mnt("h1"))
        .and_then(|mut f| f.write_all(b"+"))
        .expect("append");
    assert_eq!(read(&s.mnt("dir/h2")), "one+");
    assert_eq!(
        fs::metadata(s.mnt("h1")).expect("stat").ino(),
        fs::metadata(s.mnt("dir/h2")).expect("stat").ino()
    );
    fs::set_permissions(s.mnt("f"), fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        fs::metadata(s.mnt("f")).expect("stat").ino(),
        ino,
        "st_ino survives copy-up"
    );
    s.unmount();
    assert_eq!(
        fs::metadata(s.p("up/h1")).expect("upper").nlink(),
        2,
        "linked in the upper"
    );
    assert_eq!(
        fs::metadata(s.p("up/h1")).expect("stat").ino(),
        fs::metadata(s.p("up/dir/h2")).expect("stat").ino()
    );
    assert_eq!(read(&s.p("l2/h1")), "one", "the layer is untouched");
}

#[test]
fn whiteouts_in_the_user_xattr_form_and_overlay_xattrs_stay_hidden() {
    if !strata_tests::require_privileged("fuse_fs::userxattr", WHAT) {
        return;
    }
    let mut s = Stack::new();
    write(&s.p("l2/gone"), "x");
    write(&s.p("l2/d/old"), "x");
    write(&s.p("l2/keep"), "k");
    // l1 hides `gone` with the file form of a whiteout and makes `d` opaque (user form).
    fs::File::create(s.p("l1/gone")).expect("whiteout file");
    xattr(&s.p("l1/gone"), "user.overlay.whiteout", b"y");
    fs::create_dir(s.p("l1/d")).expect("mkdir");
    xattr(&s.p("l1/d"), "user.overlay.opaque", b"y");
    write(&s.p("l1/d/new"), "n");
    xattr(&s.p("l2/keep"), "user.mine", b"1");
    s.mount("userxattr");
    assert_eq!(names(&s.mnt("")), ["d", "keep"]);
    assert_eq!(names(&s.mnt("d")), ["new"]);
    let listed = Command::new("getfattr")
        .args(["-d", "-m", "-"])
        .arg(s.mnt("d"))
        .output()
        .expect("getfattr");
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("overlay"),
        "overlay xattrs are not shown"
    );
    assert!(read_xattr(&s.mnt("keep"), "user.mine").is_some());
    fs::remove_file(s.mnt("keep")).expect("rm");
    fs::create_dir(s.mnt("keep")).expect("mkdir over a whiteout");
    s.unmount();
    // The whiteout the filesystem wrote and the new directory's opaque marker.
    let m = fs::symlink_metadata(s.p("up/keep")).expect("upper keep");
    assert!(m.is_dir());
    assert_eq!(
        read_xattr(&s.p("up/keep"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
}

fn xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

fn read_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn id_mapping_shows_shifted_owners_and_stores_image_owners() {
    if !strata_tests::require_privileged("fuse_fs::idmap", WHAT) {
        return;
    }
    let mut s = Stack::new();
    write(&s.p("l2/root-file"), "r");
    write(&s.p("l2/user-file"), "u");
    chown(&s.p("l2/user-file"), 1000, 1000);
    write(&s.p("l2/far"), "f");
    chown(&s.p("l2/far"), 200_000, 200_000);
    s.mount("uidmapping=0:100000:65536,gidmapping=0:100000:65536");
    let own = |p: &str| {
        let m = fs::symlink_metadata(s.mnt(p)).expect("stat");
        (m.uid(), m.gid())
    };
    assert_eq!(own("root-file"), (100_000, 100_000));
    assert_eq!(own("user-file"), (101_000, 101_000));
    assert_eq!(
        own("far"),
        (65534, 65534),
        "unmapped owners show as the overflow id"
    );
    // Host root is not in the map: it cannot create files here (as with idmapped mounts).
    let e = fs::write(s.mnt("by-root"), "r").expect_err("root is unmapped");
    assert_eq!(e.raw_os_error(), Some(libc::EOVERFLOW));
    // A file made by shown id 100000+42 is stored as 42.
    fs::set_permissions(s.mnt(""), fs::Permissions::from_mode(0o777)).expect("chmod the root");
    let out = Command::new("setpriv")
        .args([
            "--reuid=100042",
            "--regid=100043",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!("echo m > {}", s.mnt("made").display()))
        .output()
        .expect("setpriv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(own("made"), (100_042, 100_043));
    let e = std::os::unix::fs::lchown(s.mnt("made"), Some(5), None).expect_err("unmapped");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    s.unmount();
    let m = fs::metadata(s.p("up/made")).expect("upper");
    assert_eq!((m.uid(), m.gid()), (42, 43), "stored in image ids");
    let m = fs::metadata(s.p("l2/user-file")).expect("layer");
    assert_eq!((m.uid(), m.gid()), (1000, 1000), "the layer is not chowned");
}

#[test]
fn squashing_shows_one_owner_and_leaves_disk_owners_alone() {
    if !strata_tests::require_privileged("fuse_fs::squash", WHAT) {
        return;
    }
    let mut s = Stack::new();
    write(&s.p("l2/a"), "a");
    chown(&s.p("l2/a"), 1000, 1001);
    s.mount("squash_to_uid=7,squash_to_gid=8");
    let m = fs::metadata(s.mnt("a")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (7, 8));
    write(&s.mnt("b"), "b");
    let m = fs::metadata(s.mnt("b")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (7, 8));
    s.unmount();
    s.mount("squash_to_root");
    let m = fs::metadata(s.mnt("a")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (0, 0));
    s.unmount();
    let m = fs::metadata(s.p("l2/a")).expect("layer");
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
}

#[test]
fn mmap_locks_fsync_and_statfs_work() {
    if !strata_tests::require_privileged("fuse_fs::mmap_locks", WHAT) {
        return;
    }
    let mut s = Stack::new();
    write(&s.p("l2/data"), "0123456789");
    for opts in ["", "passthrough=off"] {
        s.mount(opts);
        // A shared writable mapping of a lower file copies it up and lands in the file.
        let py = format!(
            "import mmap,os\nf=open('{0}','r+b')\nm=mmap.mmap(f.fileno(),0)\nm[0:1]=b'X'\nm.flush()\nprint(m[:10].decode())",
            s.mnt("data").display()
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(&py)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            read(&s.mnt("data")).starts_with('X'),
            "{opts}: mmap write visible"
        );
        // POSIX and BSD locks: a second process is refused while the first holds them.
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(s.mnt("data"))
            .expect("open");
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        let other = Command::new("flock")
            .args(["-n", "-x"])
            .arg(s.mnt("data"))
            .arg("true")
            .status()
            .expect("flock(1)");
        assert!(!other.success(), "{opts}: flock is held");
        rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock).expect("unlock");
        f.seek(SeekFrom::End(0)).expect("seek");
        f.write_all(b"!").expect("append");
        f.sync_all().expect("fsync");
        let mut back = String::new();
        f.seek(SeekFrom::Start(0)).expect("seek");
        f.read_to_string(&mut back).expect("read back");
        assert!(back.ends_with('!'));
        let st = rustix::fs::statfs(s.mnt("")).expect("statfs");
        assert!(
            st.f_blocks > 0,
            "{opts}: statfs reports the upper filesystem"
        );
        drop(f);
        s.unmount();
        write(&s.p("l2/data"), "0123456789");
        fs::remove_file(s.p("up/data")).expect("reset");
    }
}

#[test]
fn a_server_that_cannot_serve_says_why() {
    if !strata_tests::require_privileged("fuse_fs::errors", WHAT) {
        return;
    }
    let s = Stack::new();
    let out = Command::new(server())
        .arg("-o")
        .arg(format!(
            "lowerdir={},upperdir={}",
            s.p("l1").display(),
            s.p("up").display()
        ))
        .arg(s.p("mnt"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upperdir= and workdir= go together"));
    let out = Command::new(server())
        .arg("-o")
        .arg(format!("lowerdir={}", s.p("missing").display()))
        .arg(s.p("mnt"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open layer") && err.contains("missing"),
        "{err}"
    );
    assert!(
        !fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains(&s.p("mnt").display().to_string()),
        "a failed start leaves nothing mounted"
    );
}

#[test]
fn metadata_changes_copy_no_data_until_the_file_is_written() {
    if !strata_tests::require_privileged("fuse_fs::metacopy", WHAT) {
        return;
    }
    let mut s = Stack::new();
    let big: String = "0123456789abcdef".repeat(1 << 16); // 1 MiB
    write(&s.p("l2/big"), &big);
    s.mount("");
    fs::set_permissions(s.mnt("big"), fs::Permissions::from_mode(0o600)).expect("chmod");
    chown(&s.mnt("big"), 12, 34);
    xattr(&s.mnt("big"), "user.note", b"kept");
    let m = fs::metadata(s.mnt("big")).expect("stat");
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.len()),
        (0o600, 12, 34, 1 << 20)
    );
    assert_eq!(read(&s.mnt("big")), big);
    s.unmount();
    let up = fs::metadata(s.p("up/big")).expect("upper");
    assert_eq!(up.len(), 0, "only the metadata was copied up");
    assert_eq!((up.mode() & 0o7777, up.uid(), up.gid()), (0o600, 12, 34));
    assert!(read_xattr(&s.p("up/big"), "trusted.strata.metacopy").is_some());
    // A new server finds it, shows the data, and completes the copy on the first write.
    s.mount("");
    assert_eq!(fs::metadata(s.mnt("big")).expect("stat").len(), 1 << 20);
    assert_eq!(
        read_xattr(&s.mnt("big"), "user.note").as_deref(),
        Some(&b"kept"[..])
    );
    assert!(
        read_xattr(&s.mnt("big"), "trusted.strata.metacopy").is_none(),
        "the mark is hidden"
    );
    fs::OpenOptions::new()
        .append(true)
        .open(s.mnt("big"))
        .and_then(|mut f| f.write_all(b"!"))
        .expect("append");
    assert_eq!(read(&s.mnt("big")).len(), (1 << 20) + 1);
    s.unmount();
    assert_eq!(
        fs::metadata(s.p("up/big")).expect("upper").len(),
        (1 << 20) + 1
    );
    assert!(read_xattr(&s.p("up/big"), "trusted.strata.metacopy").is_none());
    let m = fs::metadata(s.p("up/big")).expect("upper");
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid()),
        (0o600, 12, 34),
        "metadata survives"
    );
    assert_eq!(read(&s.p("l2/big")), big, "the layer is untouched");
}
