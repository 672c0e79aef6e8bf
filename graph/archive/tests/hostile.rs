//! Hostile and broken layers: every case fails with an error naming the entry (or the place
//! in the stream), of the right kind, and nothing is created or changed outside the root.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use strata_graph_archive::{ApplyOptions, ArchiveError, Compression, WhiteoutFormat};
use strata_types::{Digest, ErrorKind, HasKind};

/// An area with a file outside the root that layers try to reach.
struct Target {
    area: Area,
}

impl Target {
    fn new() -> Self {
        let area = Area::new();
        Target { area }
    }

    fn secret(&self) -> PathBuf {
        self.area.sibling().join("../secret.txt")
    }

    fn with_secret(self) -> Self {
        std::fs::write(self.area.dir.path().join("secret.txt"), b"secret").unwrap();
        self
    }

    fn apply(&self, input: &[u8]) -> Result<strata_graph_archive::Applied, ArchiveError> {
        self.apply_opts(input, &ApplyOptions::new(WhiteoutFormat::Apply))
    }

    fn apply_opts(
        &self,
        input: &[u8],
        opts: &ApplyOptions,
    ) -> Result<strata_graph_archive::Applied, ArchiveError> {
        apply_with(input, &self.area.root(), opts).0
    }

    /// Applies `input`, expects an error of `kind` mentioning `needle`, and checks that
    /// nothing outside the root changed.
    fn refused(&self, input: &[u8], kind: ErrorKind, needle: &str) -> ArchiveError {
        let err = self.apply(input).expect_err("hostile layer was accepted");
        self.check(err, kind, needle)
    }

    fn check(&self, err: ArchiveError, kind: ErrorKind, needle: &str) -> ArchiveError {
        let msg = err.to_string();
        assert!(
            msg.contains(needle),
            "error {msg:?} does not mention {needle:?}"
        );
        assert_eq!(err.kind(), kind, "{msg}");
        self.untouched();
        err
    }

    fn untouched(&self) {
        let outer = self.area.dir.path();
        let mut names: Vec<_> = std::fs::read_dir(outer)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "secret.txt")
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["root", "sibling"],
            "something was created beside the root"
        );
        assert_eq!(
            std::fs::read_dir(self.area.sibling()).unwrap().count(),
            0,
            "sibling was written"
        );
        let secret = outer.join("secret.txt");
        if secret.exists() {
            assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
            assert_eq!(
                std::fs::metadata(&secret).unwrap().nlink(),
                1,
                "secret was hardlinked"
            );
        }
    }
}

fn tar(build: impl FnOnce(&mut TarBuilder)) -> Vec<u8> {
    let mut t = TarBuilder::new();
    build(&mut t);
    t.finish()
}

#[test]
fn names_climbing_out_of_the_root() {
    let t = Target::new();
    t.refused(
        &tar(|t| {
            t.raw(b"../x", b'0', b"", b"data");
        }),
        ErrorKind::InvalidArgument,
        "../x",
    );
    t.refused(
        &tar(|t| {
            t.raw(b"a/../../x", b'0', b"", b"data");
        }),
        ErrorKind::InvalidArgument,
        "a/../../x",
    );
    t.refused(
        &tar(|t| {
            t.raw(b"/../x", b'5', b"", b"");
        }),
        ErrorKind::InvalidArgument,
        "/../x",
    );
}

#[test]
fn hardlinks_out_of_the_root() {
    let t = Target::new().with_secret();
    let secret = t.secret().canonicalize().unwrap();
    let abs = tar(|b| {
        b.file("f", 0o644, b"x");
        b.raw(b"hl", b'1', secret.to_str().unwrap().as_bytes(), b"");
    });
    let err = t.refused(&abs, ErrorKind::InvalidArgument, "\"hl\"");
    assert!(err.to_string().contains("does not exist"), "{err}");
    t.refused(
        &tar(|b| {
            b.raw(b"hl", b'1', b"../../etc/passwd", b"");
        }),
        ErrorKind::InvalidArgument,
        "hl",
    );
    t.refused(
        &tar(|b| {
            b.raw(b"etc/hl", b'1', b"../../secret.txt", b"");
        }),
        ErrorKind::InvalidArgument,
        "etc/hl",
    );
    t.refused(
        &tar(|b| {
            b.dir("d/", 0o755);
            b.raw(b"hl", b'1', b"d", b"");
        }),
        ErrorKind::InvalidArgument,
        "hl",
    );
}

#[test]
fn symlinked_parents_stay_in_the_root() {
    let t = Target::new().with_secret();
    // A symlink to / or far up resolves to the root itself.
    let layer = tar(|b| {
        b.symlink("evil", "/").file("evil/pwned", 0o644, b"1");
        b.symlink("evil2", "../../../..")
            .file("evil2/pwned2", 0o644, b"2");
    });
    t.apply(&layer).unwrap();
    assert_eq!(std::fs::read(t.area.root().join("pwned")).unwrap(), b"1");
    assert_eq!(std::fs::read(t.area.root().join("pwned2")).unwrap(), b"2");
    t.untouched();

    // A symlink to the sibling by absolute path points into the root, where nothing exists.
    let sibling = t.area.sibling().canonicalize().unwrap();
    let layer = tar(|b| {
        b.symlink("out", sibling.to_str().unwrap())
            .file("out/pwned", 0o644, b"x");
    });
    t.refused(&layer, ErrorKind::InvalidArgument, "out/pwned");
}

#[test]
fn symlink_then_write_through() {
    let t = Target::new().with_secret();
    let secret = t.secret().canonicalize().unwrap();
    let layer = tar(|b| {
        b.symlink("f", secret.to_str().unwrap())
            .file("f", 0o644, b"overwritten?");
        b.symlink("g", "../secret.txt").hardlink("h", "g");
    });
    t.apply(&layer).unwrap();
    let f = t.area.root().join("f");
    assert!(std::fs::symlink_metadata(&f).unwrap().is_file());
    assert_eq!(std::fs::read(&f).unwrap(), b"overwritten?");
    assert!(
        std::fs::symlink_metadata(t.area.root().join("h"))
            .unwrap()
            .is_symlink(),
        "hardlink to the symlink itself"
    );
    t.untouched();
}

#[test]
fn symlink_replacing_a_directory_mid_archive() {
    let t = Target::new();
    let sibling = t.area.sibling().canonicalize().unwrap();
    let layer = tar(|b| {
        b.dir("d/", 0o755)
            .file("d/a", 0o644, b"a")
            .symlink("d", sibling.to_str().unwrap())
            .file("d/f", 0o644, b"f");
    });
    t.refused(&layer, ErrorKind::InvalidArgument, "d/f");
    let layer = tar(|b| {
        b.dir("e/", 0o755)
            .symlink("e", "../sibling")
            .file("e/f", 0o644, b"f");
    });
    t.refused(&layer, ErrorKind::InvalidArgument, "e/f");
    let layer = tar(|b| {
        b.symlink("l1", "l2")
            .symlink("l2", "l1")
            .file("l1/f", 0o644, b"f");
    });
    t.refused(&layer, ErrorKind::InvalidArgument, "l1/f");
}

#[test]
fn bad_names_and_types() {
    let t = Target::new();
    t.refused(
        &tar(|b| {
            b.raw(b"", b'0', b"", b"x");
        }),
        ErrorKind::InvalidArgument,
        "empty name",
    );
    let nul = tar(|b| {
        b.pax(&[("path", b"a\0b")]).file("a", 0o644, b"x");
    });
    t.refused(&nul, ErrorKind::InvalidArgument, "NUL");
    t.refused(
        &tar(|b| {
            b.raw(b"vol", b'V', b"", b"");
        }),
        ErrorKind::Unsupported,
        "vol",
    );
    t.refused(
        &tar(|b| {
            b.raw(b"sym", b'2', b"", b"");
        }),
        ErrorKind::InvalidArgument,
        "sym",
    );
    t.refused(
        &tar(|b| {
            b.raw(b"./", b'0', b"", b"x");
        }),
        ErrorKind::InvalidArgument,
        "./",
    );
    // Whiteouts of "." and "..": nothing may be removed.
    std::fs::write(t.area.root().join("keep"), b"k").unwrap();
    t.refused(
        &tar(|b| {
            b.raw(b".wh...", b'0', b"", b"");
        }),
        ErrorKind::InvalidArgument,
        ".wh...",
    );
    t.refused(
        &tar(|b| {
            b.raw(b"a/.wh..", b'0', b"", b"");
        }),
        ErrorKind::InvalidArgument,
        "a/.wh..",
    );
    assert!(t.area.root().join("keep").exists());
}

fn two_entries() -> (Vec<u8>, usize) {
    let mut t = TarBuilder::new();
    t.file("first", 0o644, &vec![b'1'; 1000]);
    let second_at = t.b.get_ref().len();
    t.file("second", 0o644, &vec![b'2'; 100_000])
        .file("third", 0o644, b"3");
    (t.finish(), second_at)
}

#[test]
fn damaged_streams() {
    let t = Target::new();
    let (good, second) = two_entries();

    let mut bad = good.clone();
    bad[second + 100] ^= 0x01; // the mode field of "second": checksum no longer matches
    let err = t.refused(&bad, ErrorKind::Corrupt, "second");
    assert!(err.to_string().contains("checksum"), "{err}");

    t.refused(&good[..second + 512 + 50_000], ErrorKind::Corrupt, "second");
    t.refused(&good[..second + 200], ErrorKind::Corrupt, "second");
    let err = t.refused(&good[..good.len() - 1024], ErrorKind::Corrupt, "third");
    assert!(err.to_string().contains("end-of-archive"), "{err}");
    let err = t.refused(&[], ErrorKind::Corrupt, "end-of-archive");
    assert!(err.to_string().contains("start of the stream"), "{err}");

    let mut zeros_then_data = good[..good.len() - 1024].to_vec();
    zeros_then_data.extend_from_slice(&[0u8; 512]);
    zeros_then_data.extend_from_slice(&[1u8; 512]);
    t.refused(&zeros_then_data, ErrorKind::Corrupt, "zero block");

    let gz = compress(&good, Compression::Gzip);
    let err = t.refused(&gz[..gz.len() / 2], ErrorKind::Corrupt, "gzip");
    assert!(err.to_string().contains("entry"), "{err}");
    let zst = compress(&good, Compression::Zstd);
    t.refused(&zst[..zst.len() - 10], ErrorKind::Corrupt, "zstd");

    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    t.refused(&garbage, ErrorKind::Corrupt, "start of the stream");
    let mut gz_garbage = vec![0x1f, 0x8b];
    gz_garbage.extend_from_slice(&garbage);
    t.refused(&gz_garbage, ErrorKind::Corrupt, "gzip");
}

#[test]
fn digest_expectations() {
    let t = Target::new();
    let (good, _) = two_entries();
    let gz = compress(&good, Compression::Gzip);
    let mut opts = ApplyOptions::new(WhiteoutFormat::Apply);
    opts.expected_diff_id = Some(Digest::of(b"something else"));
    let err = t.apply_opts(&gz, &opts).unwrap_err();
    t.check(err, ErrorKind::Corrupt, "diff ID mismatch");

    opts.expected_diff_id = Some(Digest::of(&good));
    opts.expected_blob_digest = Some(Digest::of(&good)); // the uncompressed digest: wrong
    let err = t.apply_opts(&gz, &opts).unwrap_err();
    t.check(err, ErrorKind::Corrupt, "blob digest mismatch");

    opts.expected_blob_digest = Some(Digest::of(&gz));
    t.apply_opts(&gz, &opts).unwrap();
}

#[test]
fn zip_bombs() {
    let t = Target::new();
    let bomb = compress(
        &tar(|b| {
            b.file("zeros", 0o644, &vec![0u8; 8 << 20]);
        }),
        Compression::Gzip,
    );
    assert!(bomb.len() < 64 << 10);
    let mut opts = ApplyOptions::new(WhiteoutFormat::Apply);
    opts.max_uncompressed = 1 << 20;
    let err = t.apply_opts(&bomb, &opts).unwrap_err();
    t.check(err, ErrorKind::InvalidArgument, "zeros");

    // Extension headers are held in memory by the parser: they are bounded too.
    let huge = vec![b'a'; 20 << 20];
    let pax_bomb = compress(
        &tar(|b| {
            b.pax(&[("comment", &huge)]).file("after", 0o644, b"x");
        }),
        Compression::Zstd,
    );
    let err = t.apply(&pax_bomb).unwrap_err();
    t.check(err, ErrorKind::Corrupt, "extension headers");

    // A sparse file claiming more logical bytes than the limit.
    let mut opts = ApplyOptions::new(WhiteoutFormat::Apply);
    opts.max_uncompressed = 1 << 20;
    let sparse = tar(|b| {
        b.pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"huge"),
            ("GNU.sparse.realsize", b"1099511627776"),
        ]);
        let mut map = b"1\n0\n0\n".to_vec();
        map.resize(512, 0);
        b.file("GNUSparseFile.0/huge", 0o644, &map);
    });
    let err = t.apply_opts(&sparse, &opts).unwrap_err();
    t.check(err, ErrorKind::InvalidArgument, "huge");
}

#[test]
fn pax_size_the_tar_parser_could_not_read() {
    // The tar crate stops reading PAX records at one whose value holds a newline, and would
    // then trust the header's size (0) over the PAX size (5): refuse instead of misparsing.
    let t = Target::new();
    let mut b = TarBuilder::new();
    b.pax(&[("SCHILY.xattr.user.a", b"x\ny"), ("size", b"5")]);
    let mut h = TarBuilder::header(tar::EntryType::Regular, 0o644, 0);
    h.set_path("f").unwrap();
    h.set_cksum();
    b.b.append(&h, &b"hello"[..]).unwrap();
    let err = t.refused(&b.finish(), ErrorKind::Corrupt, "\"f\"");
    assert!(err.to_string().contains("PAX size"), "{err}");
}
