//! The layers the FUSE benchmark mounts, made from the host's Debian files (no network): a
//! distro rootfs in three lower layers, topmost first,
//! - `l1-share`: documentation, manual pages, locales, time zones (many small files);
//! - `l2-bin`: programs and Perl modules;
//! - `l3-lib`: shared libraries, Python's standard library, Vim's runtime, and the big file
//!   `data/big.bin` (random bytes) for the sequential reads;
//!
//! so that `usr` and `usr/share` are merged from all three. `l1-share` also holds
//! [`MERGE_EDITS`] whiteouts of `l3-lib` files and as many replacements of `l2-bin` programs.
//! Files are picked per source directory in path order up to a file and byte budget, files
//! above [`MAX_FILE_BYTES`] left out (the big file is what measures large reads), and copied
//! with their metadata by GNU tar.
//!
//! What it deliberately does not do: opaque directories, xattrs or redirects (the three
//! filesystems spell those differently), or anything that needs the network.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::layer::sh;

/// Host files larger than this are left out of the rootfs.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// Whiteouts and replaced files in the top layer (each).
const MERGE_EDITS: usize = 20;
/// Where the big file is, relative to the mount point.
pub const BIG_FILE: &str = "data/big.bin";
/// The rootfs directory the tree walks and archives cover (not the big file).
pub const TREE: &str = "usr";

/// Take files from `dir` (relative to `/`), in path order, up to these budgets.
struct Pick {
    dir: &'static str,
    max_files: usize,
    max_bytes: u64,
}

const ALL: usize = usize::MAX;
const MB: u64 = 1 << 20;

const LAYERS: &[(&str, &[Pick])] = &[
    (
        "l1-share",
        &[
            Pick {
                dir: "usr/share/man",
                max_files: 12_000,
                max_bytes: 60 * MB,
            },
            Pick {
                dir: "usr/share/doc",
                max_files: 4_000,
                max_bytes: 60 * MB,
            },
            Pick {
                dir: "usr/share/locale",
                max_files: 2_000,
                max_bytes: 50 * MB,
            },
            Pick {
                dir: "usr/share/zoneinfo",
                max_files: ALL,
                max_bytes: u64::MAX,
            },
            Pick {
                dir: "usr/share/i18n",
                max_files: ALL,
                max_bytes: u64::MAX,
            },
        ],
    ),
    (
        "l2-bin",
        &[
            Pick {
                dir: "usr/bin",
                max_files: ALL,
                max_bytes: 100 * MB,
            },
            Pick {
                dir: "usr/sbin",
                max_files: ALL,
                max_bytes: u64::MAX,
            },
            Pick {
                dir: "usr/share/perl",
                max_files: ALL,
                max_bytes: u64::MAX,
            },
        ],
    ),
    (
        "l3-lib",
        &[
            Pick {
                dir: "usr/lib/x86_64-linux-gnu",
                max_files: ALL,
                max_bytes: 150 * MB,
            },
            Pick {
                dir: "usr/lib/python3.11",
                max_files: ALL,
                max_bytes: u64::MAX,
            },
            Pick {
                dir: "usr/share/vim",
                max_files: ALL,
                max_bytes: u64::MAX,
            },
        ],
    ),
];

/// One lower layer, as the report describes it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub name: String,
    /// `dir (N files)` per host directory taken.
    pub sources: Vec<String>,
    pub files: u64,
    pub symlinks: u64,
    pub dirs: u64,
    /// Bytes of regular files (the big file included).
    pub bytes: u64,
    /// What else is in it (whiteouts, replacements, the big file).
    pub extras: Vec<String>,
}

/// The built layers.
#[derive(Debug)]
pub struct Layers {
    /// Lower directories, topmost first.
    pub lowers: Vec<PathBuf>,
    pub info: Vec<LayerInfo>,
}

/// Builds the layers below `dir`, with a big file of `big_bytes` in the bottom one.
pub fn build(dir: &Path, big_bytes: u64) -> Result<Layers> {
    let mut lowers = Vec::new();
    let mut info = Vec::new();
    let mut picked_per_layer = Vec::new();
    for (name, picks) in LAYERS {
        let path = dir.join(name);
        std::fs::create_dir_all(&path)?;
        let mut layer = LayerInfo {
            name: (*name).to_owned(),
            sources: Vec::new(),
            files: 0,
            symlinks: 0,
            dirs: 0,
            bytes: 0,
            extras: Vec::new(),
        };
        let mut entries = Vec::new();
        for p in *picks {
            let taken = pick(p, &mut layer)?;
            layer
                .sources
                .push(format!("/{} ({} entries)", p.dir, taken.len()));
            entries.extend(taken);
        }
        let dirs = ancestors(&entries);
        layer.dirs = dirs.len() as u64;
        let mut list: Vec<&str> = dirs.iter().map(String::as_str).collect();
        list.extend(entries.iter().map(|e| e.path.as_str()));
        copy_from_host(&list, &path).with_context(|| format!("copy the host files of {name}"))?;
        picked_per_layer.push(entries);
        lowers.push(path);
        info.push(layer);
    }
    merge_edits(&lowers, &picked_per_layer, &mut info[0])?;
    let big = lowers[lowers.len() - 1].join(BIG_FILE);
    write_big(&big, big_bytes).with_context(|| format!("write {}", big.display()))?;
    let bottom = info.len() - 1;
    info[bottom].files += 1;
    info[bottom].dirs += 1;
    info[bottom].bytes += big_bytes;
    info[bottom].extras.push(format!(
        "/{BIG_FILE}: {:.0} MiB of random bytes",
        big_bytes as f64 / MB as f64
    ));
    sh(&mut Command::new("sync"))?;
    Ok(Layers { lowers, info })
}

/// A host entry taken into a layer.
struct Entry {
    path: String,
    regular: bool,
}

/// The regular files and symlinks of `p.dir` within its budgets; counts them into `layer`.
fn pick(p: &Pick, layer: &mut LayerInfo) -> Result<Vec<Entry>> {
    if !Path::new("/").join(p.dir).is_dir() {
        return Ok(Vec::new());
    }
    let out = sh(Command::new("find")
        .args([p.dir, "-xdev", "-printf", "%y %s %p\\n"])
        .current_dir("/"))?;
    let mut lines: Vec<(char, u64, &str)> = out
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let kind = it.next()?.chars().next()?;
            let size = it.next()?.parse().ok()?;
            Some((kind, size, it.next()?))
        })
        .collect();
    lines.sort_unstable_by_key(|l| l.2);
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut taken = Vec::new();
    for (kind, size, path) in lines {
        let regular = match kind {
            'f' if size <= MAX_FILE_BYTES => true,
            'l' => false,
            _ => continue,
        };
        let size = if regular { size } else { 0 };
        if files >= p.max_files || bytes.saturating_add(size) > p.max_bytes {
            break;
        }
        files += 1;
        bytes += size;
        if regular {
            layer.files += 1;
            layer.bytes += size;
        } else {
            layer.symlinks += 1;
        }
        taken.push(Entry {
            path: path.to_owned(),
            regular,
        });
    }
    Ok(taken)
}

/// Every directory above the entries, parents first.
fn ancestors(entries: &[Entry]) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for e in entries {
        let mut p = Path::new(&e.path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if !dirs.insert(d.to_string_lossy().into_owned()) {
                break;
            }
            p = d.parent();
        }
    }
    dirs
}

/// `tar -c --no-recursion -T list | tar -x`: the listed host paths (relative to `/`) with
/// their owners, modes, times and symlinks.
fn copy_from_host(list: &[&str], dest: &Path) -> Result<()> {
    let mut names = list.join("\n");
    names.push('\n');
    let mut create = Command::new("tar")
        .args(["-C", "/", "--no-recursion", "--verbatim-files-from"])
        .args(["-c", "-f", "-", "-T", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run tar -c")?;
    let archive = create.stdout.take().context("tar -c has no stdout")?;
    let mut stdin = create.stdin.take().context("tar -c has no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(names.as_bytes()));
    let extract = Command::new("tar")
        .arg("-C")
        .arg(dest)
        .args(["-x", "-f", "-"])
        .stdin(archive)
        .output()
        .context("cannot run tar -x")?;
    let created = create.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the file list writer panicked"))??;
    if !created.status.success() || !extract.status.success() {
        bail!(
            "tar -c | tar -x into {} failed: {} {}",
            dest.display(),
            String::from_utf8_lossy(&created.stderr).trim(),
            String::from_utf8_lossy(&extract.stderr).trim()
        );
    }
    Ok(())
}

/// Whiteouts in the top layer of the first bottom-layer files, and new contents in the top
/// layer for the first middle-layer files.
fn merge_edits(lowers: &[PathBuf], picked: &[Vec<Entry>], top: &mut LayerInfo) -> Result<()> {
    let firsts = |layer: &[Entry], prefix: &str| -> Vec<String> {
        layer
            .iter()
            .filter(|e| e.regular && e.path.starts_with(prefix))
            .take(MERGE_EDITS)
            .map(|e| e.path.clone())
            .collect()
    };
    let whiteouts = firsts(&picked[2], "usr/lib/python3.11/");
    for p in &whiteouts {
        let at = with_parents(&lowers[0], p, &mut top.dirs)?;
        sh(Command::new("mknod").arg(&at).args(["c", "0", "0"]))?;
    }
    let replaced = firsts(&picked[1], "usr/bin/");
    for p in &replaced {
        let at = with_parents(&lowers[0], p, &mut top.dirs)?;
        std::fs::write(&at, format!("#!/bin/sh\n# replaces /{p} of l2-bin\n"))?;
        top.files += 1;
    }
    top.extras.push(format!(
        "{} whiteouts of l3-lib files (/usr/lib/python3.11), {} replaced l2-bin programs",
        whiteouts.len(),
        replaced.len()
    ));
    Ok(())
}

/// `layer/rel`, its missing parent directories created (and counted into `dirs`).
fn with_parents(layer: &Path, rel: &str, dirs: &mut u64) -> Result<PathBuf> {
    let at = layer.join(rel);
    let mut p = at.parent();
    while let Some(d) = p.filter(|d| *d != layer && !d.exists()) {
        *dirs += 1;
        p = d.parent();
    }
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(at)
}

/// `bytes` (a multiple of 1 MiB, rounded down) of xorshift output, fsynced.
fn write_big(path: &Path, bytes: u64) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::File::create(path)?;
    let mut block = vec![0u8; MB as usize];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..bytes / MB {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.sync_all()?;
    Ok(())
}
