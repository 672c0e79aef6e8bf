//! COPY and ADD sources in the build context: patterns resolved (globs and `**`), the
//! ignore file applied, and the digest of what would be copied (paths, types, modes, link
//! targets and content; not times, not the context's owners, which COPY replaces).
//!
//! A rebuild of an unchanged context reads no file data: each file's content digest is
//! remembered by (device, inode, size, mtime, ctime), as git's index does, in a small file
//! per context under `<store root>/build/stat-cache/`. An entry whose times are within two
//! seconds of when it was saved is not trusted (a file changed twice within the
//! filesystem's timestamp granularity would look unchanged), so such files are hashed again.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, OFlags};
use serde::{Deserialize, Serialize};
use strata_types::Hasher;

use crate::ignore::{has_glob, Glob, Ignore};
use crate::tree::{self, Entry, Root};

/// One matched source: its path relative to the context root and what lies below it.
#[derive(Debug, Clone)]
pub struct Source {
    pub rel: String,
    pub entries: Vec<Entry>,
}

impl Source {
    pub fn is_dir(&self) -> bool {
        self.entries
            .first()
            .is_some_and(|e| FileType::from_raw_mode(e.stat.st_mode) == FileType::Directory)
    }
}

/// The build context (or a `--build-context NAME=DIR`).
#[derive(Debug)]
pub struct BuildContext {
    pub dir: PathBuf,
    pub root: Root,
    pub ignore: Ignore,
    stat_cache: StatCache,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StatCacheFile {
    saved: i64,
    /// rel path → [dev, ino, size, mtime s, mtime ns, ctime s, ctime ns], digest
    entries: HashMap<String, ([i64; 7], String)>,
}

#[derive(Debug, Default)]
struct StatCache {
    path: Option<PathBuf>,
    file: StatCacheFile,
    changed: bool,
    hashed_bytes: u64,
}

fn stat_key(st: &rustix::fs::Stat) -> [i64; 7] {
    [
        st.st_dev as i64,
        st.st_ino as i64,
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec as i64,
        st.st_ctime,
        st.st_ctime_nsec as i64,
    ]
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl BuildContext {
    /// Opens a context directory; `cache_dir` keeps its stat cache (none: no cache).
    pub fn open(dir: &Path, ignore: Ignore, cache_dir: Option<&Path>) -> Result<BuildContext> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("build context {}", dir.display()))?;
        if !dir.is_dir() {
            bail!("build context {} is not a directory", dir.display());
        }
        let root = Root::open(&dir)?;
        let mut stat_cache = StatCache::default();
        if let Some(cd) = cache_dir {
            let mut h = Hasher::new();
            h.update(dir.as_os_str().as_encoded_bytes());
            let path = cd.join(format!("{}.json", &h.finish().hex()[..32]));
            if let Ok(text) = std::fs::read(&path) {
                stat_cache.file = serde_json::from_slice(&text).unwrap_or_default();
            }
            stat_cache.path = Some(path);
        }
        Ok(BuildContext {
            dir,
            root,
            ignore,
            stat_cache,
        })
    }

    /// Bytes of file content read to hash sources (0 on a rebuild of an unchanged context).
    pub fn hashed_bytes(&self) -> u64 {
        self.stat_cache.hashed_bytes
    }

    /// The sources a COPY/ADD argument names: one, or every match of a glob (sorted). An
    /// explicitly named source that is missing or ignored is an error saying which.
    pub fn resolve(&self, pattern: &str) -> Result<Vec<Source>> {
        let clean = tree::components(pattern).join("/");
        let ignore = &self.ignore;
        let skip = |p: &str, _dir: bool| ignore.is_excluded(p);
        if !has_glob(&clean) {
            // An ignored source is an error, unless it is a directory an exception brings
            // some files of back.
            if !clean.is_empty()
                && self.ignore.is_excluded(&clean)
                && !self.ignore.must_descend(&clean)
            {
                bail!(
                    "source {pattern:?} is excluded by the ignore file \
                     (.containerignore/.dockerignore)"
                );
            }
            if self.root.stat(&clean)?.is_none() {
                bail!("source {pattern:?}: no such file or directory in the build context");
            }
            let mut entries = Vec::new();
            tree::walk(&self.root, &clean, &skip, &mut entries)?;
            return Ok(vec![Source {
                rel: clean,
                entries,
            }]);
        }
        // COPY's globs are Go's filepath.Match per path element, as Docker's: `**` is `*`.
        let glob =
            Glob::new(&clean.replace("**", "*")).map_err(|e| anyhow::anyhow!("source {e}"))?;
        let mut all = Vec::new();
        tree::walk(
            &self.root,
            "",
            &|p: &str, dir: bool| {
                ignore.is_excluded(p) || (dir && !glob.matches(p) && !glob.could_match_below(p))
            },
            &mut all,
        )?;
        let mut out: Vec<Source> = Vec::new();
        let mut taken: Vec<String> = Vec::new();
        for e in all.iter().skip(1) {
            if taken
                .iter()
                .any(|t| e.rel.starts_with(t.as_str()) && e.rel[t.len()..].starts_with('/'))
            {
                continue;
            }
            if glob.matches(&e.rel) {
                let mut entries = Vec::new();
                tree::walk(&self.root, &e.rel, &skip, &mut entries)?;
                taken.push(e.rel.clone());
                out.push(Source {
                    rel: e.rel.clone(),
                    entries,
                });
            }
        }
        if out.is_empty() {
            bail!("source {pattern:?}: no files in the build context match");
        }
        Ok(out)
    }

    /// Adds a digest of what `src` would copy to `h`: each entry's path, type, mode, link
    /// target and content digest.
    pub fn digest_into(&mut self, src: &Source, h: &mut Hasher) -> Result<()> {
        for e in &src.entries {
            let ft = FileType::from_raw_mode(e.stat.st_mode);
            h.update(e.rel.as_bytes());
            h.update(&[0]);
            h.update(format!("{:o}", e.stat.st_mode).as_bytes());
            h.update(&[0]);
            if let Some(l) = &e.link {
                h.update(l.as_bytes());
            }
            h.update(&[0]);
            if ft == FileType::RegularFile {
                // The top itself may be reached through links (followed inside the root).
                let d =
                    self.file_digest(&tree::join(&src.rel, &e.rel), &e.stat, e.rel.is_empty())?;
                h.update(d.as_bytes());
            }
            h.update(&[0xff]);
        }
        Ok(())
    }

    fn file_digest(&mut self, rel: &str, st: &rustix::fs::Stat, follow: bool) -> Result<String> {
        let key = stat_key(st);
        let c = &mut self.stat_cache;
        if let Some((k, d)) = c.file.entries.get(rel) {
            // Racily clean entries (times close to when the cache was saved) are re-hashed.
            let racy = st.st_mtime >= c.file.saved - 2 || st.st_ctime >= c.file.saved - 2;
            if *k == key && !racy {
                return Ok(d.clone());
            }
        }
        let fd = self
            .root
            .open_in(
                rel,
                if follow {
                    OFlags::RDONLY
                } else {
                    OFlags::RDONLY | OFlags::NOFOLLOW
                },
            )
            .with_context(|| format!("open {rel} in the build context"))?;
        let mut f = std::fs::File::from(fd);
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("read {rel} in the build context"))?;
            if n == 0 {
                break;
            }
            c.hashed_bytes += n as u64;
            h.update(&buf[..n]);
        }
        let d = h.finish().as_str().to_owned();
        c.file.entries.insert(rel.to_owned(), (key, d.clone()));
        c.changed = true;
        Ok(d)
    }

    /// Writes the stat cache back (atomically) if it learned something.
    pub fn save(&mut self) {
        let c = &mut self.stat_cache;
        let Some(path) = &c.path else { return };
        if !c.changed {
            return;
        }
        c.file.saved = now();
        let write = || -> Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(&c.file)?)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::debug!("cannot save the build context's stat cache: {e:#}");
        }
    }
}
