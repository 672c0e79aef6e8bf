//! The tree copy preserves everything a user can observe (checked with the shared tree
//! comparison, which looks at types, modes, owners, xattrs, contents, link targets, device
//! numbers, mtimes and hardlink groups).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::XattrFlags;
use strata_driver_vfs::copy::copy_tree;
use strata_tests::tree;

fn build_plain(root: &Path) {
    fs::create_dir_all(root.join("d/e")).unwrap();
    fs::write(root.join("d/f"), b"hello").unwrap();
    fs::write(root.join("d/e/g"), vec![1u8; 300_000]).unwrap();
    fs::hard_link(root.join("d/f"), root.join("hard")).unwrap();
    std::os::unix::fs::symlink("d/f", root.join("sym")).unwrap();
    fs::set_permissions(root.join("d/e"), fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(root.join("d/e/g"), fs::Permissions::from_mode(0o640)).unwrap();
    rustix::fs::lsetxattr(root.join("d/f"), "user.note", b"kept", XattrFlags::empty()).unwrap();
    rustix::fs::lsetxattr(root.join("d"), "user.dir", b"x", XattrFlags::empty()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    // A sparse file: 64 MiB with one written block in the middle.
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    rustix::io::pwrite(&f, b"data", 32 << 20).unwrap();
    // Nanosecond mtime.
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 123,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_600_000_001,
            tv_nsec: 456_789,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        root.join("d/f"),
        &t,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
}

fn copy(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    copy_tree(src, dst.path(), rustix::process::geteuid().is_root()).unwrap();
    dst
}

#[test]
fn copies_are_indistinguishable_from_the_source() {
    let src = tempfile::tempdir().unwrap();
    build_plain(src.path());
    let dst = copy(src.path());
    assert_eq!(tree::compare(src.path(), dst.path()), Vec::<String>::new());

    let (a, b) = (
        fs::metadata(src.path().join("d/f")).unwrap(),
        fs::metadata(dst.path().join("d/f")).unwrap(),
    );
    assert_eq!(
        (a.mtime(), a.mtime_nsec()),
        (b.mtime(), b.mtime_nsec()),
        "nanoseconds are kept"
    );
    let sparse = fs::metadata(dst.path().join("sparse")).unwrap();
    assert_eq!(sparse.len(), 64 << 20);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "sparse files stay sparse ({} blocks)",
        sparse.blocks()
    );
    assert_eq!(
        &fs::read(dst.path().join("sparse")).unwrap()[32 << 20..(32 << 20) + 4],
        b"data"
    );
    assert_eq!(
        fs::metadata(dst.path()).unwrap().permissions().mode() & 0o7777,
        fs::metadata(src.path()).unwrap().permissions().mode() & 0o7777,
        "the root directory gets the source root's mode"
    );
}

#[test]
fn privileged_metadata_is_copied_as_root() {
    if !strata_tests::require_privileged(
        "vfs::copy::privileged_metadata",
        "chown, mknod, security xattrs",
    ) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    build_plain(src.path());
    let r = src.path();
    fs::write(r.join("suid"), b"x").unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        r.join("suid"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(2000)),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    fs::set_permissions(r.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    // VFS_CAP_REVISION_2 | effective, CAP_NET_BIND_SERVICE permitted.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rustix::fs::lsetxattr(
        r.join("suid"),
        "security.capability",
        &cap,
        XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(r.join("d"), "trusted.t", b"1", XattrFlags::empty()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        r.join("sym"),
        Some(rustix::fs::Uid::from_raw(7)),
        Some(rustix::fs::Gid::from_raw(8)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    fs::set_permissions(r.join("d"), fs::Permissions::from_mode(0o1777)).unwrap();
    let dst = copy(r);
    assert_eq!(tree::compare(r, dst.path()), Vec::<String>::new());
    let m = fs::metadata(dst.path().join("suid")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (1000, 2000, 0o4755),
        "chown did not eat setuid"
    );
    assert_eq!(
        tree::read_xattrs(&dst.path().join("suid")).unwrap()["security.capability"],
        cap
    );
}
