//! Loading hand-made hostile or broken OCI layouts: path escapes (`..`, hardlinks and symlinks
//! pointing out of the layer), malformed tar and compression streams, digest mismatches at
//! every level, and garbage. Each load must fail with one error line naming the entry or the
//! digest at fault, leave the store exactly as it was (same images and layers, fsck consistent
//! with no garbage, no new files anywhere under the test directory) and create nothing on the
//! host. Symlink tricks may instead be accepted if what they write stays inside the layer.
//!
//! The decompression-bomb guard (`--max-layer-size`, default 256 GiB) is tested through the CLI
//! with a valid image whose 1 GiB layer compresses to about a megabyte, and at the library
//! level (`strata_graph_archive::apply`) for how little it writes before stopping.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_tests::layout::{sample_image, sha256_digest};
use strata_tests::tarball::gzip_bomb;
use strata_tests::{
    require_privileged, Compression, LayerSpec, Layout, LayoutBuilder, Strata, TarBuilder,
};

const DRIVERS: [&str; 2] = ["overlay", "vfs"];

/// A name unique to this test run, for files that must never appear on the host.
fn marker(case: &str) -> String {
    format!("strata-hostile-{case}-{}", std::process::id())
}

/// `../` repeated often enough to climb from any store directory to `/`.
fn climb() -> String {
    "../".repeat(40)
}

/// Every path under `dir`, except layer lock files and the metastore's journal files, which a
/// failed operation may legitimately leave or touch, and staging lock files, which
/// [`failed_load_leaves_no_staging_debris`] checks on its own (so that one leak fails one test).
fn paths_under(dir: &Path) -> BTreeSet<PathBuf> {
    paths_under_filtered(dir, true)
}

fn paths_under_filtered(dir: &Path, skip_staging_locks: bool) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, d: &Path, skip: bool, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).expect("below base").to_path_buf();
            let name = rel.to_string_lossy();
            let staging_lock = name.contains("/staging/") && name.ends_with(".lock");
            if name.starts_with("root/locks/")
                || name.starts_with("root/strata.db")
                || (skip && staging_lock)
            {
                continue;
            }
            out.insert(rel);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, skip, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, skip_staging_locks, &mut out);
    out
}

/// What a store holds, as the listings show it.
fn state(s: &Strata) -> (Vec<Value>, Vec<Value>) {
    (s.list("images"), s.list("layers"))
}

/// Asserts `stderr` is one `strata: error:` line naming one of `names` and, if `words` is not
/// empty, describing the problem with one of `words` (case-insensitive).
fn assert_error(stderr: &str, names: &[&str], words: &[&str]) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("strata: error: "),
        "not an error line: {line}"
    );
    assert!(
        names.iter().any(|n| line.contains(n)),
        "error names none of {names:?}: {line}"
    );
    let lower = line.to_lowercase();
    assert!(
        words.is_empty() || words.iter().any(|w| lower.contains(w)),
        "error says none of {words:?}: {line}"
    );
}

/// A store on `driver` holding the sample image, ready for a hostile load.
fn store(driver: &str) -> Strata {
    let s = Strata::new(driver);
    let l = sample_image(&s.scratch().join("sample")).expect("write sample layout");
    s.load(&l.oci_ref(), &["--name", "sample"]);
    s
}

/// Loads the layout `build` writes; the load must fail as [`assert_error`] says and change
/// nothing. Runs on every driver.
fn refused(
    build: impl Fn(&Path) -> Layout,
    names: impl Fn(&Layout) -> Vec<String>,
    words: &[&str],
) {
    refused_with(&[], build, names, words);
}

/// [`refused`], with extra global options given to the failing `storage load`.
fn refused_with(
    options: &[&str],
    build: impl Fn(&Path) -> Layout,
    names: impl Fn(&Layout) -> Vec<String>,
    words: &[&str],
) {
    for driver in DRIVERS {
        let s = store(driver);
        let layout = build(&s.scratch().join("hostile"));
        let before = state(&s);
        let files_before = paths_under(s.base());
        let oci_ref = layout.oci_ref();
        let args: Vec<&str> = options
            .iter()
            .copied()
            .chain(["storage", "load", oci_ref.as_str()])
            .collect();
        let (code, err) = s.fail(args);
        let names = names(&layout);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        eprintln!("[{driver}] exit {code}: {}", err.trim());
        assert_error(&err, &names, words);
        assert!([3, 5, 10].contains(&code), "[{driver}] hostile input must exit 3, 5 or 10 (not found, invalid, corrupt), not {code}");
        assert_eq!(
            state(&s),
            before,
            "[{driver}] a failed load changed the store"
        );
        s.assert_clean();
        let files_after = paths_under(s.base());
        let added: Vec<_> = files_after.difference(&files_before).collect();
        let removed: Vec<_> = files_before.difference(&files_after).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "[{driver}] files changed: added {added:?}, removed {removed:?}"
        );
    }
}

fn one_layer(dir: &Path, tar: Vec<u8>) -> Layout {
    LayoutBuilder::new()
        .layer(LayerSpec::tar(tar).compressed(Compression::Gzip))
        .write(dir)
        .expect("write layout")
}

/// The digests a stream-level error may name for a one-layer image.
fn layer_digests(l: &Layout) -> Vec<String> {
    vec![l.diff_ids[0].clone(), l.layers[0].clone()]
}

/// A failed load must not leave its staging area, nor the staging area's lock file, behind:
/// fsck does not report them, so only a later gc would clean them up.
#[test]
fn failed_load_leaves_no_staging_debris() {
    if !require_privileged(
        "hostile::failed_load_leaves_no_staging_debris",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    for driver in DRIVERS {
        let s = store(driver);
        let layout = one_layer(
            &s.scratch().join("hostile"),
            TarBuilder::new()
                .file("ok", b"x")
                .file("../escape", b"x")
                .finish(),
        );
        let before = paths_under_filtered(s.base(), false);
        s.fail(["storage", "load", &layout.oci_ref()]);
        let after = paths_under_filtered(s.base(), false);
        let added: Vec<_> = after.difference(&before).collect();
        assert!(added.is_empty(), "[{driver}] a failed load left {added:?}");
    }
}

#[test]
fn dotdot_entry_is_refused() {
    if !require_privileged(
        "hostile::dotdot_entry_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    refused(
        |d| {
            one_layer(
                d,
                TarBuilder::new()
                    .file("ok", b"x")
                    .file("../escape", b"x")
                    .finish(),
            )
        },
        |_| vec!["../escape".into()],
        &[],
    );
    let m = marker("dotdot");
    let name = format!("{}{m}", climb());
    refused(
        |d| one_layer(d, TarBuilder::new().file(&name, b"x").finish()),
        |_| vec![m.clone()],
        &[],
    );
    assert!(
        !Path::new("/").join(&m).exists(),
        "/{m} was created on the host"
    );
}

#[test]
fn dotdot_inside_a_path_is_refused() {
    if !require_privileged(
        "hostile::dotdot_inside_a_path_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    refused(
        |d| {
            one_layer(
                d,
                TarBuilder::new().dir("a").file("a/../../x", b"x").finish(),
            )
        },
        |_| vec!["a/../../x".into(), "../x".into()],
        &[],
    );
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    if !require_privileged(
        "hostile::hardlinks_out_of_the_layer_are_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let passwd = std::fs::symlink_metadata("/etc/passwd").expect("stat /etc/passwd");
    let links_before = std::os::unix::fs::MetadataExt::nlink(&passwd);
    refused(
        |d| {
            one_layer(
                d,
                TarBuilder::new()
                    .file("inside", b"x")
                    .hardlink("hostile-abs-link", "/etc/passwd")
                    .finish(),
            )
        },
        |_| vec!["hostile-abs-link".into(), "/etc/passwd".into()],
        &[],
    );
    refused(
        |d| {
            one_layer(
                d,
                TarBuilder::new()
                    .dir("a")
                    .hardlink("a/hostile-rel-link", "../../etc/passwd")
                    .finish(),
            )
        },
        |_| vec!["hostile-rel-link".into(), "../../etc/passwd".into()],
        &[],
    );
    let passwd = std::fs::symlink_metadata("/etc/passwd").expect("stat /etc/passwd");
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&passwd),
        links_before,
        "something hardlinked the host's /etc/passwd"
    );
}

/// Symlink tricks: either refused like the others, or accepted with what they write kept
/// inside the layer. Either way the host is untouched and the store consistent.
fn symlink_trick(case: &str, layers: impl Fn(&str) -> Vec<Vec<u8>>) {
    let m = marker(case);
    for driver in DRIVERS {
        let s = store(driver);
        let mut b = LayoutBuilder::new();
        for t in layers(&m) {
            b = b.layer(LayerSpec::tar(t).compressed(Compression::Gzip));
        }
        let layout = b.write(&s.scratch().join("hostile")).expect("write layout");
        let out = s.run(["storage", "load", &layout.oci_ref(), "--name", "trick"]);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            eprintln!("[{driver}] {case}: accepted; checking confinement");
            s.create("trick", "c");
            let mp = s.mount("c");
            let inside: Vec<_> = [mp.join(&m), mp.join("evil").join(&m)]
                .into_iter()
                .filter(|p| p.exists())
                .collect();
            eprintln!("[{driver}] {case}: marker inside the container at {inside:?}");
            s.ok(["storage", "rm", "c"]);
        } else {
            eprintln!("[{driver}] {case}: refused: {}", err.trim());
            assert_error(&err, &["evil", &m], &[]);
        }
        s.assert_clean();
        for host in [
            Path::new("/").join(&m),
            Path::new("/tmp").join(&m),
            s.base().join(&m),
            s.root.join(&m),
        ] {
            assert!(
                !host.exists(),
                "[{driver}] {case}: {} was created outside the layer",
                host.display()
            );
        }
    }
}

#[test]
fn symlink_to_root_then_write_through_it_stays_inside() {
    if !require_privileged(
        "hostile::symlink_to_root_then_write_through_it_stays_inside",
        "overlay mounts",
    ) {
        return;
    }
    symlink_trick("symabs", |m| {
        vec![TarBuilder::new()
            .symlink("evil", "/")
            .file(format!("evil/{m}"), b"pwned")
            .finish()]
    });
    symlink_trick("symrel", |m| {
        vec![TarBuilder::new()
            .symlink("evil", climb())
            .file(format!("evil/{m}"), b"pwned")
            .finish()]
    });
}

#[test]
fn symlink_in_one_layer_write_through_it_in_the_next_stays_inside() {
    if !require_privileged(
        "hostile::symlink_in_one_layer_write_through_it_in_the_next_stays_inside",
        "overlay mounts",
    ) {
        return;
    }
    symlink_trick("symcross", |m| {
        vec![
            TarBuilder::new().symlink("evil", "/").finish(),
            TarBuilder::new()
                .file(format!("evil/{m}"), b"pwned")
                .finish(),
        ]
    });
    symlink_trick("symcrossdir", |m| {
        vec![
            TarBuilder::new().symlink("evil", "/tmp").finish(),
            TarBuilder::new()
                .dir("evil")
                .file(format!("evil/{m}"), b"pwned")
                .finish(),
        ]
    });
}

#[test]
fn bad_header_checksum_is_refused() {
    if !require_privileged(
        "hostile::bad_header_checksum_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let tar = {
        let mut t = TarBuilder::new();
        t.file("good", b"fine")
            .file("bad-checksum", b"data")
            .mangle_last_header(|h| h[148..154].copy_from_slice(b"000001"));
        t.finish()
    };
    refused(|d| one_layer(d, tar.clone()), layer_digests, &["checksum"]);
}

#[test]
fn truncated_gzip_stream_is_refused() {
    if !require_privileged(
        "hostile::truncated_gzip_stream_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    // Incompressible content, so that half the stream really is half the data.
    let noise: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let tar = TarBuilder::new()
        .file("big", &noise)
        .file("after", b"x")
        .finish();
    let gz = Compression::Gzip.compress(&tar);
    let half = gz[..gz.len() / 2].to_vec();
    refused(
        |d| {
            LayoutBuilder::new()
                .layer(
                    LayerSpec::tar(tar.clone())
                        .compressed(Compression::Gzip)
                        .blob(half.clone()),
                )
                .write(d)
                .expect("write")
        },
        layer_digests,
        &[
            "unexpected end",
            "truncated",
            "eof",
            "incomplete",
            "short",
            "corrupt",
        ],
    );
}

#[test]
fn layer_blob_digest_mismatch_is_refused() {
    if !require_privileged(
        "hostile::layer_blob_digest_mismatch_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    refused(
        |d| {
            let noise: Vec<u8> = (0..64u32 << 10)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                .collect();
            let l = one_layer(d, TarBuilder::new().file("f", &noise).finish());
            // Still a valid gzip stream, with different content: flip a byte of stored data.
            let mut tar = TarBuilder::new().file("f", &noise).finish();
            tar[600] ^= 1;
            std::fs::write(l.blob_path(&l.layers[0]), Compression::Gzip.compress(&tar))
                .expect("rewrite blob");
            l
        },
        layer_digests,
        &[
            "mismatch",
            "does not match",
            "hashes to",
            "expected",
            "digest",
        ],
    );
    // A damaged (no longer decompressible) blob names its digest too.
    refused(
        |d| {
            let l = one_layer(d, TarBuilder::new().file("f", b"content").finish());
            l.corrupt_blob(&l.layers[0]).expect("corrupt");
            l
        },
        layer_digests,
        &[],
    );
}

#[test]
fn diff_id_mismatch_is_refused() {
    if !require_privileged(
        "hostile::diff_id_mismatch_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let fake = format!("sha256:{}", "ab".repeat(32));
    refused(
        |d| {
            let tar = TarBuilder::new().file("f", b"content").finish();
            LayoutBuilder::new()
                .layer(
                    LayerSpec::tar(tar)
                        .compressed(Compression::Gzip)
                        .diff_id(fake.clone()),
                )
                .write(d)
                .expect("write")
        },
        |l| {
            vec![
                fake.clone(),
                sha256_digest(&TarBuilder::new().file("f", b"content").finish()),
                l.layers[0].clone(),
            ]
        },
        &[
            "mismatch",
            "does not match",
            "hashes to",
            "expected",
            "diff id",
        ],
    );
}

#[test]
fn manifest_digest_mismatch_is_refused() {
    if !require_privileged(
        "hostile::manifest_digest_mismatch_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let fake = format!("sha256:{}", "cd".repeat(32));
    refused(
        |d| {
            let tar = TarBuilder::new().file("f", b"content").finish();
            LayoutBuilder::new()
                .layer(LayerSpec::tar(tar))
                .manifest_digest(fake.clone())
                .write(d)
                .expect("write")
        },
        |_| vec![fake.clone()],
        &["corrupt", "mismatch", "hashes to", "does not match"],
    );
}

#[test]
fn garbage_layer_is_refused() {
    if !require_privileged(
        "hostile::garbage_layer_is_refused",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    let garbage: Vec<u8> = (0..64u32 << 10)
        .map(|i| (i.wrapping_mul(2_246_822_519).rotate_left(7) >> 3) as u8)
        .collect();
    refused(
        |d| {
            LayoutBuilder::new()
                .layer(LayerSpec::tar(garbage.clone()))
                .write(d)
                .expect("write")
        },
        layer_digests,
        &[],
    );
    // Garbage after a gzip header.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&garbage);
    refused(
        |d| {
            LayoutBuilder::new()
                .layer(
                    LayerSpec::tar(garbage.clone())
                        .compressed(Compression::Gzip)
                        .blob(gz.clone()),
                )
                .write(d)
                .expect("write")
        },
        layer_digests,
        &[],
    );
}

/// A valid image (every digest right) whose gzip layer of about a megabyte expands to 1 GiB:
/// loading it with `--max-layer-size 64M` fails naming the layer and the limit, and leaves
/// the store and the disk as they were.
#[test]
fn decompression_bomb_is_refused_by_max_layer_size() {
    if !require_privileged(
        "hostile::decompression_bomb_is_refused_by_max_layer_size",
        "overlay mounts and root-owned extraction",
    ) {
        return;
    }
    use std::io::Read as _;
    use strata_tests::tarball::zeros_tar;
    const SIZE: u64 = 1 << 30;
    let mut gz = Vec::new();
    gzip_bomb(SIZE).read_to_end(&mut gz).expect("compress");
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    std::io::copy(&mut zeros_tar(SIZE), &mut hasher).expect("hash");
    let diff_id = format!("sha256:{:x}", sha2::Digest::finalize(hasher));
    eprintln!("bomb: {} bytes of gzip expand to {SIZE} bytes", gz.len());
    assert!(gz.len() < 4 << 20, "the bomb is not a bomb");
    refused_with(
        &["--max-layer-size", "64M"],
        |d| {
            LayoutBuilder::new()
                .layer(
                    LayerSpec::tar(Vec::new())
                        .compressed(Compression::Gzip)
                        .blob(gz.clone())
                        .diff_id(diff_id.clone()),
                )
                .write(d)
                .expect("write")
        },
        layer_digests,
        &["limit"],
    );
}

/// The bomb guard on the archive library: a lazily generated gzip stream of a 2 GiB file of zeros
/// against a 64 MiB limit must stop early with an error saying so.
#[test]
fn gzip_bomb_is_stopped_by_the_size_limit() {
    use strata_graph_archive::{apply, ApplyOptions, WhiteoutFormat};
    use strata_types::{ErrorKind, HasKind};

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let defaults = ApplyOptions::new(WhiteoutFormat::Apply);
    assert_eq!(
        defaults.max_uncompressed,
        256 << 30,
        "the documented default limit is 256 GiB"
    );
    let mut opts = defaults;
    opts.max_uncompressed = 64 << 20;
    let started = std::time::Instant::now();
    let err = apply(gzip_bomb(2 << 30), &root, std::io::sink(), &opts)
        .expect_err("a 2 GiB stream must exceed a 64 MiB limit");
    let msg = err.to_string();
    eprintln!(
        "bomb refused after {:?}: {msg} ({:?})",
        started.elapsed(),
        err.kind()
    );
    assert!(
        ["limit", "too large", "exceeds", "bomb", "max"]
            .iter()
            .any(|w| msg.to_lowercase().contains(w)),
        "the error does not say the size limit was hit: {msg}"
    );
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidArgument | ErrorKind::Corrupt | ErrorKind::FailedPrecondition
        ),
        "{:?}",
        err.kind()
    );
    let written = std::fs::metadata(root.join("zeros"))
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap_or(0);
    assert!(
        written <= 80 << 20,
        "extraction wrote {written} bytes past a 64 MiB limit"
    );
}
