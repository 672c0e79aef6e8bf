//! One guest run's private directory, `<cache>/runs/<pid>-<nonce>/`: the sparse scratch disk
//! (ext4, made here on the host) and the files init reads. Dropping the [`RunDir`] removes it.
//!
//! A run killed before it could clean up (Ctrl-C reaches xtask and qemu alike, and xtask
//! installs no signal handler) leaves its directory behind; the next run removes every
//! directory whose process is gone. It does not limit how much the guest writes to the disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::process;

/// A run directory, removed on drop.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `<cache>/runs/<pid>-<nonce>` after removing the leftovers of dead runs.
    pub fn create(cache: &Path, nonce: &str) -> Result<RunDir> {
        let runs = cache.join("runs");
        sweep(&runs);
        let path = runs.join(format!("{}-{nonce}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        // Canonical: init resolves it below the guest's /lower, where a symlink on the way
        // would point into the initramfs instead of the host root.
        let path = fs::canonicalize(&path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        Ok(RunDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the sparse scratch disk `disk.img` of `size_bytes` with an empty ext4 on it
    /// (no journal: the guest is thrown away; lazy inode tables: nothing is written up front).
    pub fn scratch_disk(&self, size_bytes: u64) -> Result<PathBuf> {
        let disk = self.path.join("disk.img");
        let file =
            fs::File::create(&disk).with_context(|| format!("cannot create {}", disk.display()))?;
        file.set_len(size_bytes)
            .with_context(|| format!("cannot size {}", disk.display()))?;
        drop(file);
        process::output(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-O", "^has_journal"])
                .args(["-E", "lazy_itable_init=1,nodiscard"])
                .arg(&disk),
        )
        .with_context(|| format!("cannot make the scratch filesystem on {}", disk.display()))?;
        Ok(disk)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!(
                "xtask: warning: cannot remove the run directory {}: {e}",
                self.path.display()
            );
        }
    }
}

/// Removes run directories whose process no longer exists.
fn sweep(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_string_lossy().split('-').next().map(str::to_owned);
        let alive = pid.is_some_and(|p| Path::new("/proc").join(p).exists());
        if !alive {
            eprintln!(
                "xtask: removing the leftover run directory {}",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_runs_are_swept_and_own_directory_goes_on_drop() {
        let cache = std::env::temp_dir().join(format!("strata-rundir-test-{}", std::process::id()));
        // pid 0 never names a running process in /proc.
        let stale = cache.join("runs/0-stale");
        fs::create_dir_all(&stale).expect("create stale dir");
        let run = RunDir::create(&cache, "abc").expect("create run dir");
        assert!(!stale.exists(), "the dead run's directory is gone");
        let path = run.path().to_path_buf();
        assert!(path.ends_with(format!("{}-abc", std::process::id())));
        drop(run);
        assert!(!path.exists(), "removed on drop");
        fs::remove_dir_all(&cache).expect("clean up");
    }
}
