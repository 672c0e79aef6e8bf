//! The FUSE benchmark's workloads: what each one does to a mounted view and how its mounts are
//! made ([`Setup`]); `measure` runs them. Data is read and written in process in 1 MiB blocks;
//! `find` and `tar` run as processes whose output this process reads and counts (so nothing
//! special-cases `/dev/null`).
//!
//! What it deliberately does not do: check file contents (only the amounts moved, which
//! `measure` compares across filesystems and runs).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::rootfs::{Layers, BIG_FILE, TREE};

const BLOCK: usize = 1 << 20;

/// What every workload needs to know.
#[derive(Debug)]
pub struct Ctx {
    big_bytes: u64,
    files: usize,
    /// One block of the written file.
    block: Vec<u8>,
    /// Where `find` and `tar` write their errors.
    errors: PathBuf,
}

impl Ctx {
    pub fn new(layers: &Layers, big_bytes: u64, files: usize) -> Ctx {
        let errors = layers.lowers[0]
            .parent()
            .map_or_else(|| PathBuf::from("/tmp"), Path::to_path_buf)
            .join("command-errors.txt");
        Ctx {
            big_bytes,
            files,
            block: (0..BLOCK).map(|i| (i * 7 + i / 4096) as u8).collect(),
            errors,
        }
    }
}

/// How a workload's mounts are made.
#[derive(Debug, Clone, Copy)]
pub(super) enum Setup {
    /// One mount per filesystem for every run, after an untimed run on it.
    Warm,
    /// A fresh mount per run; with `drop_caches`, page cache, dentries and inodes dropped
    /// after mounting.
    Fresh { drop_caches: bool },
}

/// What a rate counts, per second.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Unit {
    #[serde(rename = "MB/s")]
    Megabytes,
    #[serde(rename = "ops/s")]
    Ops,
    #[serde(rename = "entries/s")]
    Entries,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Megabytes => "MB/s",
            Unit::Ops => "ops/s",
            Unit::Entries => "entries/s",
        }
    }
}

/// One timing of one run, with what it moved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Phase {
    pub(super) time: Duration,
    pub(super) bytes: Option<u64>,
    pub(super) items: Option<u64>,
}

type RunFn = fn(&Ctx, &Path) -> Result<Vec<Phase>>;

pub(super) struct Workload {
    pub(super) number: u8,
    pub(super) setup: Setup,
    /// The row of each timing a run returns: group name and rate unit.
    pub(super) phases: &'static [(&'static str, Unit)],
    pub(super) run: RunFn,
}

pub(super) const WORKLOADS: &[Workload] = &[
    Workload {
        number: 1,
        setup: Setup::Warm,
        phases: &[("fuse 1: read big lower file, warm", Unit::Megabytes)],
        run: read_big,
    },
    Workload {
        number: 1,
        setup: Setup::Fresh { drop_caches: true },
        phases: &[(
            "fuse 1: read big lower file, cold (fresh mount, caches dropped)",
            Unit::Megabytes,
        )],
        run: read_big,
    },
    Workload {
        number: 2,
        setup: Setup::Fresh { drop_caches: false },
        phases: &[("fuse 2: write new file + fsync", Unit::Megabytes)],
        run: write_new,
    },
    Workload {
        number: 3,
        setup: Setup::Fresh { drop_caches: false },
        phases: &[
            ("fuse 3: create empty files", Unit::Ops),
            ("fuse 3: stat them", Unit::Ops),
            ("fuse 3: unlink them", Unit::Ops),
        ],
        run: metadata,
    },
    Workload {
        number: 4,
        setup: Setup::Fresh { drop_caches: false },
        phases: &[("fuse 4: find with stat, fresh mount", Unit::Entries)],
        run: find,
    },
    Workload {
        number: 4,
        setup: Setup::Fresh { drop_caches: true },
        phases: &[(
            "fuse 4: find with stat, fresh mount, caches dropped",
            Unit::Entries,
        )],
        run: find,
    },
    Workload {
        number: 4,
        setup: Setup::Warm,
        phases: &[("fuse 4: find with stat, warm", Unit::Entries)],
        run: find,
    },
    Workload {
        number: 5,
        setup: Setup::Fresh { drop_caches: false },
        phases: &[("fuse 5: tar c to a pipe, fresh mount", Unit::Megabytes)],
        run: tar,
    },
];

/// Workload 1: the big lower file, read in 1 MiB blocks.
fn read_big(ctx: &Ctx, mnt: &Path) -> Result<Vec<Phase>> {
    let mut buf = vec![0u8; BLOCK];
    let path = mnt.join(BIG_FILE);
    let t = Instant::now();
    let mut f = File::open(&path).with_context(|| format!("open {}", path.display()))?;
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf)?;
        if r == 0 {
            break;
        }
        n += r as u64;
    }
    let time = t.elapsed();
    if n != ctx.big_bytes {
        bail!(
            "read {n} bytes of {}, expected {}",
            path.display(),
            ctx.big_bytes
        );
    }
    Ok(vec![Phase {
        time,
        bytes: Some(n),
        items: None,
    }])
}

/// Workload 2: a new file of the big file's size, 1 MiB writes, fsync.
fn write_new(ctx: &Ctx, mnt: &Path) -> Result<Vec<Phase>> {
    let path = mnt.join("written.bin");
    let blocks = ctx.big_bytes / BLOCK as u64;
    let t = Instant::now();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    for _ in 0..blocks {
        f.write_all(&ctx.block)?;
    }
    f.sync_all()?;
    drop(f);
    let time = t.elapsed();
    Ok(vec![Phase {
        time,
        bytes: Some(blocks * BLOCK as u64),
        items: None,
    }])
}

/// Workload 3: `files` empty files created, stat'ed and unlinked in a new directory (made,
/// untimed, below the lower layers' `usr/share`).
fn metadata(ctx: &Ctx, mnt: &Path) -> Result<Vec<Phase>> {
    let dir = mnt.join("usr/share/strata-bench-meta");
    std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let names: Vec<PathBuf> = (0..ctx.files)
        .map(|i| dir.join(format!("f{i:06}")))
        .collect();
    let timed = |op: &dyn Fn(&Path) -> Result<()>| -> Result<Phase> {
        let t = Instant::now();
        for p in &names {
            op(p).with_context(|| p.display().to_string())?;
        }
        Ok(Phase {
            time: t.elapsed(),
            bytes: None,
            items: Some(names.len() as u64),
        })
    };
    let create = timed(&|p| {
        OpenOptions::new().write(true).create_new(true).open(p)?;
        Ok(())
    })?;
    let stat = timed(&|p| {
        let m = std::fs::symlink_metadata(p)?;
        if !m.is_file() || m.len() != 0 {
            bail!("not an empty file: {m:?}");
        }
        Ok(())
    })?;
    let unlink = timed(&|p| Ok(std::fs::remove_file(p)?))?;
    if std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty after unlinking every file", dir.display());
    }
    Ok(vec![create, stat, unlink])
}

/// Workload 4: `find TREE -printf '%s\n'` (a stat of every entry), its lines counted.
fn find(ctx: &Ctx, mnt: &Path) -> Result<Vec<Phase>> {
    let mut cmd = Command::new("find");
    cmd.arg(mnt.join(TREE)).args(["-printf", "%s\\n"]);
    let (time, _, lines) = drain(&mut cmd, &ctx.errors)?;
    Ok(vec![Phase {
        time,
        bytes: None,
        items: Some(lines),
    }])
}

/// Workload 5: `tar c TREE` to a pipe, its bytes counted.
fn tar(ctx: &Ctx, mnt: &Path) -> Result<Vec<Phase>> {
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(mnt).args(["-c", "-f", "-", TREE]);
    let (time, bytes, _) = drain(&mut cmd, &ctx.errors)?;
    Ok(vec![Phase {
        time,
        bytes: Some(bytes),
        items: None,
    }])
}

/// Runs `cmd`, reading its output to the end; returns the time from start to exit, the bytes
/// and the lines it wrote.
fn drain(cmd: &mut Command, errors: &Path) -> Result<(Duration, u64, u64)> {
    let mut buf = vec![0u8; 256 << 10];
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(File::create(errors)?)
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut out = child.stdout.take().context("no stdout")?;
    let (mut bytes, mut lines) = (0u64, 0u64);
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let status = child.wait()?;
    let time = t.elapsed();
    if !status.success() {
        let said = std::fs::read_to_string(errors).unwrap_or_default();
        bail!("{cmd:?} failed ({status}): {}", said.trim());
    }
    Ok((time, bytes, lines))
}
