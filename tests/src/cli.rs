//! A black-box harness for the real `strata` binary over a throwaway store.
//!
//! [`Strata`] owns a temporary directory on `/tmp` holding the store root, the runroot, an
//! empty config file (so the machine's `/etc/strata/strata.toml` never leaks in) and scratch
//! space. Every command it runs gets `--root`, `--runroot` and `--driver` and a scrubbed
//! environment (no inherited `STRATA_*`). Dropping it removes the containers, lazily unmounts
//! anything still mounted below the temporary directory, and deletes it.
//!
//! The binary is `$STRATA_BIN` if set; otherwise `cargo build -p strata-tools` (and the
//! workspace's plugins) runs once per test process (a no-op when up to date, so a stale binary
//! is never tested), the plugins are installed next to it (`<target>/debug/lib/strata/plugins`,
//! where the host looks) and `<target>/debug/strata` is used.
//!
//! It does not interpret outputs beyond JSON parsing: assertions belong to the tests.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `strata` binary under test, built on first use (see the module docs).
pub fn strata_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("STRATA_BIN").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "STRATA_BIN={} does not exist", p.display());
            return p;
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_dir().join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "-p", "strata-tools", "--bin", "strata"])
            .args([
                "-p",
                "strata-tools-monitor",
                "--bin",
                "strata-monitor",
                "--lib",
            ])
            .args(PLUGINS.iter().flat_map(|p| ["-p", p]))
            .current_dir(workspace_dir())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run cargo to build the strata binary");
        assert!(
            out.status.success(),
            "`cargo build -p strata-tools` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = target.join("debug").join("strata");
        assert!(
            bin.is_file(),
            "cargo built strata-tools but {} is missing",
            bin.display()
        );
        install_plugins(&target.join("debug"));
        bin
    })
}

/// The workspace's plugin packages, built with the binary.
const PLUGINS: &[&str] = &[
    "strata-plugin-copy",
    "strata-plugin-run",
    "strata-plugin-build",
    "strata-plugin-cri",
    "strata-plugin-bench",
];

/// Copies the built plugins into `<profile dir>/lib/strata/plugins`, the directory next to
/// the binary that the host searches, as an installation would (atomically: copy to a
/// temporary name, then rename, so concurrent test processes never see half a file).
fn install_plugins(profile_dir: &Path) {
    let dest = profile_dir.join("lib/strata/plugins");
    std::fs::create_dir_all(&dest).expect("create the plugin directory");
    for p in PLUGINS {
        let file = format!("lib{}.so", p.replace('-', "_"));
        let src = profile_dir.join(&file);
        let tmp = dest.join(format!(".{file}.{}", std::process::id()));
        std::fs::copy(&src, &tmp)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", src.display(), tmp.display()));
        std::fs::rename(&tmp, dest.join(&file)).expect("install the plugin");
    }
}

/// Environment variables the binary reads; scrubbed from every command the harness runs.
const STRATA_ENV: &[&str] = &[
    "STRATA_ROOT",
    "STRATA_RUNROOT",
    "STRATA_DRIVER",
    "STRATA_CONFIG",
    "STRATA_LOG",
    "STRATA_MAX_LAYER_SIZE",
    "STRATA_PLUGIN_PATH",
];

/// A temporary store and the means to run `strata` against it.
#[derive(Debug)]
pub struct Strata {
    dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub driver: String,
    /// An empty config file, passed as `STRATA_CONFIG`.
    pub config: PathBuf,
}

impl Strata {
    /// A new, empty store using `driver` (`overlay` or `vfs`).
    pub fn new(driver: &str) -> Strata {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir_in("/tmp")
            .expect("cannot create a temp dir in /tmp");
        let root = dir.path().join("root");
        let runroot = dir.path().join("run");
        let config = dir.path().join("strata.toml");
        std::fs::write(&config, "").expect("write empty config");
        std::fs::create_dir(dir.path().join("scratch")).expect("create scratch dir");
        Strata {
            root,
            runroot,
            driver: driver.to_owned(),
            config,
            dir: Some(dir),
        }
    }

    /// The same store (root, runroot, config) opened with another driver; it does not own
    /// the temporary directory (`base` is not available on it).
    pub fn with_driver(&self, driver: &str) -> Strata {
        Strata {
            dir: None,
            root: self.root.clone(),
            runroot: self.runroot.clone(),
            driver: driver.to_owned(),
            config: self.config.clone(),
        }
    }

    /// The temporary directory holding everything.
    pub fn base(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// A scratch directory for the test's own files (layouts, tars, outputs).
    pub fn scratch(&self) -> PathBuf {
        self.base().join("scratch")
    }

    /// The binary with a scrubbed environment (empty config) but no global flags.
    pub fn bare_command(&self) -> Command {
        let mut c = Command::new(strata_bin());
        for v in STRATA_ENV {
            c.env_remove(v);
        }
        c.env("STRATA_CONFIG", &self.config).stdin(Stdio::null());
        c
    }

    /// The binary with `--root`, `--runroot` and `--driver` for this store.
    pub fn command(&self) -> Command {
        let mut c = self.bare_command();
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--driver")
            .arg(&self.driver);
        c
    }

    /// Runs `strata <global flags> args...` and returns its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command()
            .args(args)
            .output()
            .expect("cannot run the strata binary")
    }

    /// Runs a command that must succeed; returns its stdout. Panics with stderr otherwise.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "strata {} failed ({}):\n{}",
            show_args(&args),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// Runs a command that must fail; returns (exit code, stderr). Panics if it succeeds or
    /// dies from a signal.
    pub fn fail<I, S>(&self, args: I) -> (i32, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or_else(|| {
            panic!(
                "strata {} was killed: {}\n{stderr}",
                show_args(&args),
                out.status
            )
        });
        assert_ne!(
            code,
            0,
            "strata {} succeeded but should have failed; stdout:\n{}",
            show_args(&args),
            String::from_utf8_lossy(&out.stdout)
        );
        (code, stderr)
    }

    /// Runs a command that must succeed and parses its stdout as JSON.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}"))
    }

    /// Starts a command in the background, stdout and stderr piped.
    pub fn spawn<I, S>(&self, args: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start strata")
    }

    /// `storage load SRC [--name NAME]`; returns the image ID.
    pub fn load(&self, src: &str, extra: &[&str]) -> String {
        let mut args = vec!["storage", "load", src];
        args.extend_from_slice(extra);
        self.ok(args).trim().to_owned()
    }

    /// `storage create IMAGE --name NAME`; returns the container ID.
    pub fn create(&self, image: &str, name: &str) -> String {
        self.ok(["storage", "create", image, "--name", name])
            .trim()
            .to_owned()
    }

    /// `storage mount NAME`; returns the mount point.
    pub fn mount(&self, container: &str) -> PathBuf {
        PathBuf::from(self.ok(["storage", "mount", container]).trim())
    }

    /// Creates container `ctr` of `image`, mounts it, asserts the tree is exactly umoci's
    /// unpacked fixture `reference`, and unmounts it.
    pub fn assert_mounts_as(&self, image: &str, reference: &str, ctr: &str) {
        self.create(image, ctr);
        let mp = self.mount(ctr);
        let diffs = crate::tree::compare(&crate::fixtures::reference_rootfs(reference), &mp);
        assert!(
            diffs.is_empty(),
            "{image}: the mounted container differs from umoci's {reference} tree:\n{}",
            diffs.join("\n")
        );
        self.ok(["storage", "umount", ctr]);
    }

    /// `storage <what> --format json` for a listing (`images`, `layers`, `containers`).
    pub fn list(&self, what: &str) -> Vec<Value> {
        match self.json(["storage", what, "--format", "json"]) {
            Value::Array(a) => a,
            other => panic!("storage {what} --format json is not an array: {other}"),
        }
    }

    /// `storage fsck --format json`, which must exit 0; returns the report.
    pub fn fsck(&self) -> Value {
        self.json(["storage", "fsck", "--format", "json"])
    }

    /// Asserts `fsck` finds no problems and no garbage.
    pub fn assert_clean(&self) {
        let r = self.fsck();
        assert_eq!(r["problems"], serde_json::json!([]), "fsck problems: {r:#}");
        assert_eq!(r["garbage"], serde_json::json!([]), "fsck garbage: {r:#}");
    }

    /// The driver's home (`<root>/<driver>`).
    pub fn driver_home(&self) -> PathBuf {
        self.root.join(&self.driver)
    }

    /// The payload keys present in the driver's home (overlay: `layers/<key>`, vfs:
    /// `dir/<key>`), per the on-disk format in the CLI contract.
    pub fn driver_keys(&self) -> std::collections::BTreeSet<String> {
        let sub = if self.driver == "overlay" {
            "layers"
        } else {
            "dir"
        };
        let dir = self.driver_home().join(sub);
        match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| {
                    e.expect("read driver dir")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => panic!("cannot list {}: {e}", dir.display()),
        }
    }

    /// The keys the metadata knows: every layer's chain hex and `c-<id>` for containers.
    pub fn known_keys(&self) -> std::collections::BTreeSet<String> {
        let mut keys = std::collections::BTreeSet::new();
        for l in self.list("layers") {
            let id = l["id"].as_str().expect("layer id is a string");
            keys.insert(id.strip_prefix("sha256:").unwrap_or(id).to_owned());
        }
        for c in self.list("containers") {
            keys.insert(format!(
                "c-{}",
                c["id"].as_str().expect("container id is a string")
            ));
        }
        keys
    }

    fn cleanup(&mut self) {
        if self.root.join("strata.db").exists() {
            // Containers of the run front end: kill them and release their networks,
            // runtime records and monitors (a no-op without the run plugin).
            let _ = self.command().args(["rm", "-f", "--all"]).output();
            let out = self
                .command()
                .args(["storage", "containers", "--format", "json"])
                .output();
            let ids: Vec<String> = out
                .ok()
                .and_then(|o| serde_json::from_slice::<Vec<Value>>(&o.stdout).ok())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect();
            if !ids.is_empty() {
                let _ = self.command().args(["storage", "rm"]).args(&ids).output();
            }
        }
        unmount_below(self.base());
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        if self.dir.is_none() {
            return; // a view of another store (`with_driver`): that one cleans up
        }
        self.cleanup();
        if let Some(d) = self.dir.take() {
            let path = d.path().to_path_buf();
            if let Err(e) = d.close() {
                eprintln!(
                    "warning: could not remove test store {}: {e}",
                    path.display()
                );
            }
        }
    }
}

fn show_args(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Mount points at or below `dir`, deepest first, from `/proc/self/mountinfo`.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Lazily unmounts everything mounted at or below `dir`.
pub fn unmount_below(dir: &Path) {
    for p in mounts_below(dir) {
        if let Err(e) = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH) {
            eprintln!("warning: could not unmount {}: {e}", p.display());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
