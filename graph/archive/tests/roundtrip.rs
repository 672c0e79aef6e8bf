//! Apply real-world tars (built with the tar crate and with GNU tar in its gnu and pax
//! formats, plain/gzip/zstd), check the extracted tree, and check that the tar-split record
//! reproduces the original uncompressed tar byte for byte.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::*;
use strata_graph_archive::{Compression, WhiteoutFormat};
use strata_types::Digest;

/// security.capability v2 with CAP_DAC_OVERRIDE|CAP_FOWNER: the permitted mask is 0x0a, a
/// newline byte, which the tar crate's own PAX parser would lose.
const CAP: &[u8] =
    b"\x01\x00\x00\x02\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn long_name_255() -> String {
    format!("{}/{}/{}", "p".repeat(100), "q".repeat(100), "r".repeat(80))
}

fn crate_tar() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("etc/", 0o755)
        .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .hardlink("etc/hosts-hl", "etc/hosts")
        .pax(&[
            ("SCHILY.xattr.security.capability", CAP),
            ("SCHILY.xattr.user.note", b"hello\nworld"),
            ("mtime", b"1600000000.123456789"),
            ("uid", b"1000"),
            ("gid", b"1001"),
        ]);
    let mut h = TarBuilder::header(tar::EntryType::Regular, 0o4755, 4);
    h.set_uid(1000);
    h.set_gid(1001);
    t.b.append_data(&mut h, "bin/tool", &b"\x7fELF"[..])
        .unwrap();
    t.file("big.bin", 0o600, &pseudo_random(3 << 20))
        .file("empty", 0o640, b"")
        .symlink("link-to-hosts", "etc/hosts")
        .symlink("long-link", &"a/".repeat(70))
        .file(
            &format!("deep/{}/file", "x".repeat(120)),
            0o644,
            b"gnu long name",
        )
        .pax(&[("path", long_name_255().as_bytes())])
        .file("placeholder", 0o644, b"pax long name");
    let mut fifo = TarBuilder::header(tar::EntryType::Fifo, 0o600, 0);
    t.b.append_data(&mut fifo, "run/fifo", &[][..]).unwrap();
    t.finish()
}

fn check_crate_tree(root: &Path) {
    let hosts = root.join("etc/hosts");
    assert_eq!(std::fs::read(&hosts).unwrap(), b"127.0.0.1 localhost\n");
    let hl = std::fs::metadata(root.join("etc/hosts-hl")).unwrap();
    assert_eq!(
        hl.ino(),
        std::fs::metadata(&hosts).unwrap().ino(),
        "hardlink shares the inode"
    );

    let tool = root.join("bin/tool");
    let md = std::fs::symlink_metadata(&tool).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_000, 123_456_789));
    let xs = xattrs(&tool);
    assert!(
        xs.contains(&("security.capability".into(), CAP.to_vec())),
        "{xs:?}"
    );
    assert!(
        xs.contains(&("user.note".into(), b"hello\nworld".to_vec())),
        "{xs:?}"
    );

    assert_eq!(
        std::fs::read(root.join("big.bin")).unwrap(),
        pseudo_random(3 << 20)
    );
    assert_eq!(
        std::fs::symlink_metadata(root.join("big.bin"))
            .unwrap()
            .mode()
            & 0o7777,
        0o600
    );
    assert_eq!(std::fs::read(root.join("empty")).unwrap(), b"");
    assert_eq!(
        std::fs::read_link(root.join("link-to-hosts")).unwrap(),
        Path::new("etc/hosts")
    );
    assert_eq!(
        std::fs::read_link(root.join("long-link")).unwrap(),
        Path::new(&"a/".repeat(70))
    );
    let deep = root.join(format!("deep/{}/file", "x".repeat(120)));
    assert_eq!(std::fs::read(deep).unwrap(), b"gnu long name");
    assert_eq!(
        std::fs::read(root.join(long_name_255())).unwrap(),
        b"pax long name"
    );
    assert!(!root.join("placeholder").exists());
    let fifo = std::fs::symlink_metadata(root.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o600);

    let etc = std::fs::metadata(root.join("etc")).unwrap();
    assert_eq!(
        etc.mtime(),
        1_600_000_000,
        "directory times are set after their children"
    );
    assert_eq!(etc.mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::metadata(root.join("bin")).unwrap().mode() & 0o7777,
        0o755,
        "implicit parent"
    );
}

#[test]
fn crate_built_tar_round_trips_in_every_compression() {
    let tar = crate_tar();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let input = compress(&tar, c);
        let dir = tempfile::tempdir().unwrap();
        let (applied, split) = apply_ok(&input, dir.path(), WhiteoutFormat::Apply);
        assert_eq!(applied.compression, c);
        assert_eq!(applied.diff_id, Digest::of(&tar), "{c}");
        assert_eq!(applied.blob_digest, Digest::of(&input), "{c}");
        assert_eq!(applied.uncompressed_size, tar.len() as u64);
        assert_eq!(applied.blob_size, input.len() as u64);
        assert_eq!(applied.entries, 11);
        check_crate_tree(dir.path());
        assert!(
            split.len() < 16 << 10,
            "tar-split record holds no file data: {} bytes",
            split.len()
        );

        let (digest, size, out) = export(&split, dir.path());
        assert_eq!((digest, size), (applied.diff_id.clone(), tar.len() as u64));
        assert!(out == tar, "exported tar differs from the original ({c})");
    }
}

#[test]
fn export_refuses_a_changed_tree() {
    let tar = crate_tar();
    let dir = tempfile::tempdir().unwrap();
    let (_, split) = apply_ok(&tar, dir.path(), WhiteoutFormat::Apply);
    std::fs::write(dir.path().join("etc/hosts"), b"changed").unwrap();
    let err =
        strata_graph_archive::export_tarsplit(&split[..], dir.path(), std::io::sink()).unwrap_err();
    assert!(err.to_string().contains("etc/hosts"), "{err}");
    assert_eq!(
        strata_types::HasKind::kind(&err),
        strata_types::ErrorKind::Corrupt
    );

    std::fs::write(dir.path().join("etc/hosts"), b"127.0.0.1 localhosT\n").unwrap();
    let err =
        strata_graph_archive::export_tarsplit(&split[..], dir.path(), std::io::sink()).unwrap_err();
    assert!(
        err.to_string().contains("mismatch"),
        "same size, different bytes: {err}"
    );

    std::fs::remove_file(dir.path().join("big.bin")).unwrap();
    let err =
        strata_graph_archive::export_tarsplit(&split[..], dir.path(), std::io::sink()).unwrap_err();
    assert!(err.to_string().contains("big.bin"), "{err}");
}

/// A source tree exercising what GNU tar can store.
fn gnu_source(src: &Path) {
    let s = src.display();
    sh(&format!(
        r#"
        cd {s}
        mkdir -p dir/setgid-dir sticky
        chmod 2775 dir/setgid-dir; chmod 1777 sticky
        printf hello > dir/file
        printf '#!/bin/sh\n' > dir/setuid; chmod 4755 dir/setuid
        ln -s dir/file link; ln -s /nonexistent/target dangling
        printf shared > hard1; ln hard1 hard2
        mkfifo fifo
        printf owned > owned; chown 1234:5678 owned
        truncate -s 20M sparse
        dd if=/dev/urandom of=sparse bs=4k count=2 seek=1280 conv=notrunc status=none
        dd if=/dev/urandom of=sparse bs=4k count=1 seek=5119 conv=notrunc status=none
        L=$(printf 'l%.0s' $(seq 100))/$(printf 'm%.0s' $(seq 120))
        mkdir -p $L; printf deep > $L/$(printf 'n%.0s' $(seq 60))
        setfattr -n user.comment -v "hi there" dir/file
        setfattr -n security.capability -v 0x010000020a000000000000000000000000000000 dir/setuid
        touch -d '2021-03-04 05:06:07.891' dir/file
        touch -h -d '2020-01-01 00:00:00' link
        find . -exec touch -h -d '2022-02-02 02:02:02' {{}} + 
        touch -d '2021-03-04 05:06:07.891' dir/file
        "#
    ));
}

fn gnu_tar_round_trip(format: &str, extra: &str, compress_cmd: Option<(&str, Compression)>) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    gnu_source(&src);
    let tar_path = work.path().join("layer.tar");
    sh(&format!(
        "tar --format={format} {extra} --xattrs --xattrs-include='*' --numeric-owner -S -C {} -cf {} .",
        src.display(),
        tar_path.display()
    ));
    let tar = std::fs::read(&tar_path).unwrap();
    let input = match compress_cmd {
        Some((cmd, _)) => {
            sh(&format!("{cmd} {}", tar_path.display()));
            let ext = if cmd.starts_with("gzip") { "gz" } else { "zst" };
            std::fs::read(work.path().join(format!("layer.tar.{ext}"))).unwrap()
        }
        None => tar.clone(),
    };
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let (applied, split) = apply_ok(&input, &root, WhiteoutFormat::Apply);
    assert_eq!(
        applied.compression,
        compress_cmd.map_or(Compression::None, |c| c.1)
    );
    assert_eq!(applied.diff_id, Digest::of(&tar));
    assert_eq!(applied.blob_digest, Digest::of(&input));

    // (GNU tar stores xattrs as PAX records even in its gnu format.)
    assert_same_tree(&snapshot(&src), &snapshot(&root));
    let sparse = std::fs::metadata(root.join("sparse")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "sparse file keeps its holes ({} blocks)",
        sparse.blocks()
    );
    if format != "gnu" {
        let file = std::fs::metadata(root.join("dir/file")).unwrap();
        assert_eq!(file.mtime_nsec(), 891_000_000, "PAX keeps sub-second times");
    }

    let (digest, size, out) = export(&split, &root);
    assert_eq!(digest, applied.diff_id);
    assert_eq!(size, tar.len() as u64);
    assert!(out == tar, "exported tar differs from GNU tar's");
}

#[test]
fn gnu_tar_gnu_format_round_trips() {
    gnu_tar_round_trip("gnu", "", None);
}

#[test]
fn gnu_tar_pax_format_round_trips() {
    gnu_tar_round_trip("pax", "", None);
}

#[test]
fn gnu_tar_pax_sparse_0_1_round_trips() {
    gnu_tar_round_trip("pax", "--sparse-version=0.1", None);
}

#[test]
fn gnu_tar_pax_sparse_0_0_round_trips() {
    gnu_tar_round_trip("pax", "--sparse-version=0.0", None);
}

#[test]
fn externally_gzipped_gnu_tar_round_trips() {
    gnu_tar_round_trip("gnu", "", Some(("gzip -9", Compression::Gzip)));
}

#[test]
fn externally_zstd_compressed_pax_tar_round_trips() {
    gnu_tar_round_trip("pax", "", Some(("zstd -q --rm -19", Compression::Zstd)));
}

#[test]
fn device_nodes_are_created() {
    if !strata_tests::require_privileged("archive_device_nodes_are_created", "mknod of devices") {
        return;
    }
    let mut t = TarBuilder::new();
    let mut h = TarBuilder::header(tar::EntryType::Char, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    t.b.append_data(&mut h, "dev/null", &[][..]).unwrap();
    let mut h = TarBuilder::header(tar::EntryType::Block, 0o660, 0);
    h.set_device_major(7).unwrap();
    h.set_device_minor(42).unwrap();
    t.b.append_data(&mut h, "dev/loop42", &[][..]).unwrap();
    let tar = t.finish();
    let dir = tempfile::tempdir().unwrap();
    let (_, split) = apply_ok(&tar, dir.path(), WhiteoutFormat::Apply);
    let null = std::fs::symlink_metadata(dir.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = std::fs::symlink_metadata(dir.path().join("dev/loop42")).unwrap();
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), rustix::fs::makedev(7, 42));
    assert!(export(&split, dir.path()).2 == tar);
}

#[test]
fn replacing_entries_of_other_types() {
    // Later entries replace earlier ones of another type; a directory over a directory merges.
    let mut t = TarBuilder::new();
    t.dir("a/", 0o755)
        .file("a/keep", 0o644, b"k")
        .dir("a/", 0o700)
        .file("b", 0o644, b"file")
        .dir("b/", 0o755)
        .file("b/inner", 0o644, b"i")
        .dir("c/", 0o755)
        .file("c/x", 0o644, b"x")
        .symlink("c", "a")
        .file("s", 0o644, b"1")
        .symlink("s", "/etc/passwd")
        .file("s", 0o644, b"2");
    let tar = t.finish();
    let dir = tempfile::tempdir().unwrap();
    apply_ok(&tar, dir.path(), WhiteoutFormat::OverlayUser);
    let r = dir.path();
    assert_eq!(std::fs::read(r.join("a/keep")).unwrap(), b"k");
    assert_eq!(
        std::fs::metadata(r.join("a")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(std::fs::read(r.join("b/inner")).unwrap(), b"i");
    assert_eq!(std::fs::read_link(r.join("c")).unwrap(), Path::new("a"));
    let s = std::fs::symlink_metadata(r.join("s")).unwrap();
    assert!(s.is_file(), "the symlink was replaced, not written through");
    assert_eq!(std::fs::read(r.join("s")).unwrap(), b"2");
}

#[test]
fn ownership_ignore_keeps_the_extracting_user() {
    let tar = crate_tar();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = strata_graph_archive::ApplyOptions::new(WhiteoutFormat::Apply);
    opts.ownership = strata_graph_archive::Ownership::Ignore;
    let (res, _) = apply_with(&tar, dir.path(), &opts);
    res.unwrap();
    let md = std::fs::symlink_metadata(dir.path().join("bin/tool")).unwrap();
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(md.uid(), me, "not chowned to the tar's 1000");
    assert_eq!(md.mode() & 0o777, 0o755);
}
