//! A driver over a throwaway home, with helpers to make layers through the real pipeline and to
//! mount views that are unmounted on drop (even when a check fails).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use strata_driver_api::{Driver, Key};
use strata_graph_archive::{apply, Applied, ApplyOptions};
use strata_mount::MountGuard;

/// How the suite makes a driver: given a fresh, empty home directory.
pub type MakeDriver<'a> = &'a dyn Fn(&Path) -> Box<dyn Driver>;

/// A layer as the fixture made it: its tar, tar-split record and what `apply` reported.
#[derive(Debug, Clone)]
pub struct MadeLayer {
    pub tar: Vec<u8>,
    pub tarsplit: Vec<u8>,
    pub applied: Applied,
}

/// A driver in a temporary directory (`/tmp`, a real filesystem with xattrs), plus the parent
/// chains of the keys made through it.
#[derive(Debug)]
pub struct Fixture {
    pub driver: Box<dyn Driver>,
    dir: tempfile::TempDir,
    chains: RefCell<HashMap<Key, Vec<Key>>>,
    layers: RefCell<HashMap<Key, MadeLayer>>,
    mounts: Cell<usize>,
}

pub fn key(s: &str) -> Key {
    Key::new(s).expect("a valid key")
}

impl Fixture {
    pub fn new(make: MakeDriver<'_>) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("strata-conformance-")
            .tempdir_in("/tmp")
            .expect("temp dir in /tmp");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("create home");
        Fixture {
            driver: make(&home),
            dir,
            chains: RefCell::default(),
            layers: RefCell::default(),
            mounts: Cell::new(0),
        }
    }

    /// A scratch path inside the fixture's temporary directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The parents of `k`, nearest first.
    pub fn parents(&self, k: &Key) -> Vec<Key> {
        self.chains.borrow().get(k).cloned().unwrap_or_default()
    }

    fn chain_on(&self, parent: Option<&Key>) -> Vec<Key> {
        match parent {
            Some(p) => std::iter::once(p.clone()).chain(self.parents(p)).collect(),
            None => Vec::new(),
        }
    }

    /// Makes layer `name` on `parent` from `tar`: stage, apply (with the staging area's
    /// whiteout format), commit.
    pub fn layer(&self, name: &str, parent: Option<&Key>, tar: Vec<u8>) -> Key {
        let k = key(name);
        let parents = self.chain_on(parent);
        let staging = self
            .driver
            .stage(&parents)
            .unwrap_or_else(|e| panic!("stage {name}: {e}"));
        let mut tarsplit = Vec::new();
        let applied = apply(
            &tar[..],
            &staging.root,
            &mut tarsplit,
            &ApplyOptions::new(staging.whiteouts),
        )
        .unwrap_or_else(|e| panic!("apply the tar of {name}: {e}"));
        self.driver
            .commit(staging, &k)
            .unwrap_or_else(|e| panic!("commit {name}: {e}"));
        self.chains.borrow_mut().insert(k.clone(), parents);
        self.layers.borrow_mut().insert(
            k.clone(),
            MadeLayer {
                tar,
                tarsplit,
                applied,
            },
        );
        k
    }

    /// What [`Fixture::layer`] recorded for `k`.
    pub fn made(&self, k: &Key) -> MadeLayer {
        self.layers
            .borrow()
            .get(k)
            .cloned()
            .expect("a layer made by this fixture")
    }

    /// Creates writable key `name` on `parent`.
    pub fn container(&self, name: &str, parent: Option<&Key>) -> Key {
        let k = key(name);
        let parents = self.chain_on(parent);
        self.driver
            .create_writable(&k, &parents)
            .unwrap_or_else(|e| panic!("create_writable {name}: {e}"));
        self.chains.borrow_mut().insert(k.clone(), parents);
        k
    }

    /// Mounts `k` (read-write if `writable`) at a fresh directory.
    pub fn view(&self, k: &Key, writable: bool) -> View {
        self.try_view(k, writable)
            .unwrap_or_else(|e| panic!("mount {k}: {e}"))
    }

    pub fn try_view(&self, k: &Key, writable: bool) -> Result<View, strata_mount::MountError> {
        let n = self.mounts.get();
        self.mounts.set(n + 1);
        let target = self.dir.path().join(format!("mnt-{n}"));
        std::fs::create_dir(&target).expect("create mount point");
        let specs = self.driver.mounts(k, &self.parents(k), writable);
        let guard = MountGuard::mount(&specs, &target)?;
        Ok(View {
            guard: Some(guard),
            path: target,
        })
    }
}

/// A mounted view; unmounted on drop.
#[derive(Debug)]
pub struct View {
    guard: Option<MountGuard>,
    pub path: PathBuf,
}

impl View {
    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// Unmounts now, failing the check if that fails.
    pub fn unmount(mut self) {
        if let Some(g) = self.guard.take() {
            g.unmount()
                .unwrap_or_else(|e| panic!("unmount {}: {e}", self.path.display()));
        }
    }
}

/// Sorted names in a directory of a view.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

pub fn write(p: &Path, data: &str) {
    std::fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()))
}

pub fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The privileged-tier gate, named after the driver and the check.
pub fn gate(driver: &dyn Driver, check: &str, what: &str) -> bool {
    strata_tests::require_privileged(&format!("conformance::{}::{check}", driver.name()), what)
}
