//! buildah (Debian's 1.28) as the reference builder, in a store of its own under a temporary
//! directory: base images copied in offline with skopeo, `bud --layers`, the image config, and
//! the image's root filesystem mounted for comparison.
//!
//! It never touches the machine's default containers storage. What it does not do: pull (the
//! tests run offline) or anything rootless.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A buildah store under a temporary directory; every mount and container is removed on drop.
#[derive(Debug)]
pub struct Buildah {
    dir: tempfile::TempDir,
    containers: std::cell::RefCell<Vec<String>>,
}

impl Default for Buildah {
    fn default() -> Self {
        Buildah::new()
    }
}

impl Buildah {
    pub fn new() -> Buildah {
        let dir = tempfile::Builder::new()
            .prefix("strata-buildah-")
            .tempdir_in("/var/tmp")
            .expect("make buildah's temporary store");
        Buildah {
            dir,
            containers: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `buildah` with this store's flags.
    pub fn command(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .arg("--storage-driver")
            .arg("overlay")
            .env("BUILDAH_ISOLATION", "oci")
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("cannot run buildah: install it (cargo xtask setup)")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "buildah {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies an image (`oci:DIR:REF`) into the store under `name` (offline, with skopeo).
    pub fn load(&self, layout: &str, name: &str) {
        let dest = format!(
            "containers-storage:[overlay@{}+{}]{name}",
            self.root().display(),
            self.runroot().display()
        );
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", layout, &dest])
            .output()
            .expect("cannot run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {layout} {dest} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `buildah bud --layers` of `context` with `extra` flags, run in the context directory.
    pub fn build(&self, context: &Path, tag: &str, extra: &[String]) -> Output {
        let mut c = self.command();
        // Relative paths in `extra` (a secret's file) are relative to the context.
        c.args(["bud", "--layers", "--pull-never", "-t", tag])
            .args(extra)
            .arg(context)
            .current_dir(context);
        c.output().expect("cannot run buildah")
    }

    /// The image's OCI config.
    pub fn config(&self, image: &str) -> Value {
        let out = self.ok(&["inspect", "--type", "image", image]);
        let v: Value = serde_json::from_str(&out).expect("buildah inspect prints JSON");
        v["OCIv1"].clone()
    }

    /// The image's root filesystem, mounted (unmounted and removed on drop).
    pub fn mount(&self, image: &str) -> PathBuf {
        let name = self.ok(&["from", "--pull-never", image]).trim().to_owned();
        self.containers.borrow_mut().push(name.clone());
        PathBuf::from(self.ok(&["mount", &name]).trim())
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        for c in self.containers.borrow().iter() {
            let _ = self.run(&["umount", c]);
            let _ = self.run(&["rm", c]);
        }
        let _ = self.run(&["rm", "--all"]);
        crate::cli::unmount_below(self.dir.path());
    }
}
