//! A private containerd (Debian's 1.6.20) with its CRI plugin, as the reference CRI runtime
//! that the CRI black-box tests also run against.
//!
//! Each [`Containerd`] has its own root, state, gRPC socket (which is also the CRI endpoint)
//! and `config.toml` under a temporary directory, so several can run side by side:
//! - runc (`io.containerd.runc.v2`, cgroupfs, runc state under our state dir) is the default
//!   runtime, on the overlayfs snapshotter;
//! - the sandbox image is [`PAUSE_IMAGE`], made locally from the host's `catatonit` and
//!   imported with `ctr` before `start` returns, so containerd never pulls it;
//! - CNI: the caller's configuration directory (`max_conf_num = 1`) and plugin directories;
//! - registries: `config_path` with one `hosts.toml` per host, for mirrors (which replace the
//!   upstream entirely: a test never reaches the internet) and insecure registries (TLS
//!   without verification, then plain HTTP);
//! - network namespaces live under the state dir (`netns_mounts_under_state_dir`), the
//!   streaming server on `127.0.0.1` with a kernel-chosen port, and `restrict_oom_score_adj`
//!   is on (a negative `oom_score_adj` cannot be set on the test machines).
//!
//! What containerd 1.6 puts outside that directory: shim sockets in `/run/containerd/s/`
//! (removed on drop when a killed shim leaves one behind), CNI result caches in
//! `/var/lib/cni/results/`, the bridge interface, IPAM leases and iptables rules of the CNI
//! plugins (torn down by the pod's StopPodSandbox, or on drop; the bridge itself stays, as
//! with any CNI runtime), and the pods' cgroups (`/k8s.io/<id>` unless a cgroup parent is
//! given; removed with the containers, while the empty `k8s.io` parent stays).
//!
//! On drop, containerd is killed (by PID), then whatever pods are still up are taken down
//! without it: their networks through the CNI plugins' DEL, their containers through runc,
//! their shims (found by the `-address <our socket>` on their command line) killed by PID,
//! and every mount below the temporary directory is unmounted before it is removed.
//!
//! ```text
//! /tmp/strata-ctrd-XXXXXX/
//!   config.toml  containerd.log  containerd.sock  containerd.sock.ttrpc
//!   root/   state/   tmp/         containerd's own
//!   state/io.containerd.grpc.v1.cri/netns/cni-UUID    the pods' network namespaces
//!   state/runc/k8s.io/ID                              runc's state
//!   certs.d/HOST/hosts.toml                           registry mirrors, insecure registries
//!   cni/net.d/  cni/bin/                              when the options leave them out / give several
//!   pause/  pause.tar                                 the sandbox image
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{mounts_below, unmount_below};
use crate::layout::sha256_digest;
use crate::{Compression, LayerSpec, Layout, LayoutBuilder, TarBuilder};

/// The daemon (Debian package `containerd`).
pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";
/// Its client, used to import images and to check readiness.
pub const CTR_BIN: &str = "/usr/bin/ctr";
/// The runc v2 shim that containerd starts per pod.
pub const SHIM_BIN: &str = "/usr/bin/containerd-shim-runc-v2";
/// The pause process of the sandbox image (Debian package `catatonit`).
pub const CATATONIT_BIN: &str = "/usr/bin/catatonit";
/// The sandbox image every instance is configured with and has imported.
pub const PAUSE_IMAGE: &str = "localhost/strata-test/pause:1";
/// The containerd namespace the CRI plugin works in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The CNI plugins of Debian's `containernetworking-plugins`.
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";

/// Where libcni (inside containerd) caches ADD results.
const CNI_CACHE_DIR: &str = "/var/lib/cni/results";
/// Where containerd 1.6 puts shim sockets, whatever its state dir.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
/// The interface the CRI plugin gives a pod.
const POD_IFNAME: &str = "eth0";

/// How to configure the instance.
#[derive(Debug, Clone, Default)]
pub struct ContainerdOptions {
    /// CNI configuration directory (the first file in it is used). Empty: an empty directory
    /// of the instance's own (the CRI plugin then reports NetworkReady false).
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories, searched in order. Empty: [`DEFAULT_CNI_BIN_DIR`]. containerd
    /// 1.6 takes one directory: several are merged into one of symlinks (first wins).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// `(registry host, mirror URL)`, e.g. `("docker.io", "http://127.0.0.1:41234")`. A host's
    /// mirrors are tried in the order given and replace its upstream (no fallback to it).
    /// A URL without a scheme gets `http://`.
    pub registry_mirrors: Vec<(String, String)>,
    /// Registry hosts (`HOST[:PORT]`) reached over HTTPS without verification, then over
    /// plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Where the instance's directory is made (default `/tmp`; the benchmarks put it on
    /// their scratch filesystem, beside Strata's store).
    pub parent_dir: Option<PathBuf>,
}

impl ContainerdOptions {
    /// Options with this CNI configuration directory and the default plugin directory.
    pub fn with_cni(conf_dir: impl Into<PathBuf>) -> ContainerdOptions {
        ContainerdOptions {
            cni_conf_dir: conf_dir.into(),
            ..ContainerdOptions::default()
        }
    }
}

/// A running containerd; stopped and cleaned up on drop.
#[derive(Debug)]
pub struct Containerd {
    /// `None` once dropped, or kept on purpose when something could not be unmounted.
    dir: Option<tempfile::TempDir>,
    base: PathBuf,
    child: Child,
    socket: PathBuf,
    cni_conf_dir: PathBuf,
    cni_bin_dirs: Vec<PathBuf>,
    seq: AtomicU32,
}

impl Containerd {
    /// Writes the configuration, starts containerd, waits until it answers, and imports the
    /// sandbox image. Fails the test (with containerd's log) when any of it does not work.
    pub fn start(opts: ContainerdOptions) -> Containerd {
        for (bin, package) in [
            (CONTAINERD_BIN, "containerd"),
            (CTR_BIN, "containerd"),
            (SHIM_BIN, "containerd"),
            (CATATONIT_BIN, "catatonit"),
        ] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install the Debian package `{package}`"
            );
        }
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("runc is missing: install the Debian package `runc`"));

        let dir = tempfile::Builder::new()
            .prefix("strata-ctrd-")
            .tempdir_in(opts.parent_dir.as_deref().unwrap_or(Path::new("/tmp")))
            .expect("cannot create containerd's temp dir");
        let base = dir.path().to_path_buf();
        let socket = base.join("containerd.sock");
        for d in ["root", "state", "tmp", "certs.d"] {
            std::fs::create_dir_all(base.join(d)).expect("create containerd's directories");
        }

        let cni_conf_dir = if opts.cni_conf_dir.as_os_str().is_empty() {
            let d = base.join("cni/net.d");
            std::fs::create_dir_all(&d).expect("create the CNI configuration directory");
            d
        } else {
            opts.cni_conf_dir.clone()
        };
        let cni_bin_dirs = if opts.cni_bin_dirs.is_empty() {
            vec![PathBuf::from(DEFAULT_CNI_BIN_DIR)]
        } else {
            opts.cni_bin_dirs.clone()
        };
        let cni_bin_dir = if cni_bin_dirs.len() == 1 {
            cni_bin_dirs[0].clone()
        } else {
            merge_bin_dirs(&cni_bin_dirs, &base.join("cni/bin"))
        };

        write_registry_hosts(
            &base.join("certs.d"),
            &opts.registry_mirrors,
            &opts.insecure_registries,
        );
        let config = config_toml(&ConfigPaths {
            base: &base,
            socket: &socket,
            runc: Path::new(runc),
            cni_conf_dir: &cni_conf_dir,
            cni_bin_dir: &cni_bin_dir,
        });
        let config_path = base.join("config.toml");
        std::fs::write(&config_path, config).expect("write containerd's config.toml");

        let log = std::fs::File::create(base.join("containerd.log")).expect("containerd log");
        let child = Command::new(CONTAINERD_BIN)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CONTAINERD_BIN}: {e}"));
        // From here on a panic drops `c`, which kills containerd and cleans up.
        let mut c = Containerd {
            dir: Some(dir),
            base,
            child,
            socket,
            cni_conf_dir,
            cni_bin_dirs,
            seq: AtomicU32::new(0),
        };
        c.wait_ready();
        c.import_pause_image();
        c
    }

    /// The gRPC socket: containerd's API and the CRI endpoint.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:///...` of [`Containerd::socket`].
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The sandbox image it was configured with (present, never pulled).
    pub fn pause_image(&self) -> &str {
        PAUSE_IMAGE
    }

    /// containerd's log so far (logfmt lines: `time=... level=info msg="..."`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default()
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding everything of this instance.
    pub fn dir(&self) -> &Path {
        &self.base
    }

    pub fn root_dir(&self) -> PathBuf {
        self.base.join("root")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.base.join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.base.join("config.toml")
    }

    /// Where the CRI plugin bind-mounts the pods' network namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.state_dir().join("io.containerd.grpc.v1.cri/netns")
    }

    /// runc's state root for the CRI namespace (`runc --root THIS list`).
    pub fn runc_root(&self) -> PathBuf {
        self.state_dir().join("runc").join(CRI_NAMESPACE)
    }

    /// `ctr` talking to this instance, in the CRI namespace.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new(CTR_BIN);
        c.arg("--address").arg(&self.socket).args([
            "--connect-timeout",
            "5s",
            "--namespace",
            CRI_NAMESPACE,
        ]);
        c
    }

    /// Runs `ctr ARGS`; fails the test with its output and containerd's log unless it
    /// succeeds. Returns its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self
            .ctr()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {CTR_BIN}: {e}"));
        assert!(
            out.status.success(),
            "ctr {args:?} failed:\n{}{}\ncontainerd log (end):\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(60)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports an OCI layout directory (one image in `index.json`) as `name` (normalized as
    /// the CRI plugin does: `busybox` is `docker.io/library/busybox:latest`), unpacked for
    /// overlayfs, and waits until the CRI plugin knows it.
    pub fn import_layout(&self, layout_dir: &Path, name: &str) -> String {
        let name = normalize_image_name(name);
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let archive = self.base.join(format!("import-{n}.tar"));
        pack_oci_archive(layout_dir, &archive, Some(&name));
        self.ctr_ok(&[
            "images",
            "import",
            "--snapshotter",
            "overlayfs",
            &archive.to_string_lossy(),
        ]);
        let _ = std::fs::remove_file(&archive);
        self.sync_cri_images(&name);
        name
    }

    /// Imports an OCI archive whose `index.json` names its images with full references, and
    /// waits until the CRI plugin has seen them.
    pub fn import_archive(&self, archive: &Path) {
        self.ctr_ok(&[
            "images",
            "import",
            "--snapshotter",
            "overlayfs",
            &archive.to_string_lossy(),
        ]);
        self.sync_cri_images(PAUSE_IMAGE);
    }

    /// The shims serving this instance (by the `-address SOCKET` on their command line).
    pub fn shim_pids(&self) -> Vec<i32> {
        let sock = self.socket.to_string_lossy().into_owned();
        let shim_name = Path::new(SHIM_BIN).file_name();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids = Vec::new();
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&raw);
            let args: Vec<&str> = cmdline.split('\0').collect();
            let is_shim = args
                .first()
                .is_some_and(|a| Path::new(a).file_name() == shim_name);
            if is_shim && args.windows(2).any(|w| w[0] == "-address" && w[1] == sock) {
                pids.push(pid);
            }
        }
        pids
    }

    /// The last `n` lines of the log.
    fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Until the socket exists and `ctr version` answers (bounded).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "containerd exited during startup ({status}):\n{}",
                    self.log()
                );
            }
            if self.socket.exists() {
                let ok = self
                    .ctr()
                    .args(["--timeout", "5s", "version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within 30s:\n{}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn import_pause_image(&self) {
        let layout = pause_layout(&self.base.join("pause"), PAUSE_IMAGE);
        let archive = self.base.join("pause.tar");
        pack_oci_archive(&layout.dir, &archive, None);
        self.import_archive(&archive);
    }

    /// The CRI plugin learns about images from containerd's events, which it handles one at
    /// a time, in order, logging `ImageCreate event &ImageCreate{Name:NAME,...` as it starts
    /// on each. An image imported with `ctr` is therefore known to it once a tag made
    /// afterwards shows up in that log.
    fn sync_cri_images(&self, existing: &str) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let marker = format!("localhost/strata-test/sync:{n}");
        self.ctr_ok(&["images", "tag", "--force", existing, &marker]);
        let needle = format!("ImageCreate event &ImageCreate{{Name:{marker},");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(&needle) {
            assert!(
                Instant::now() < deadline,
                "the CRI plugin did not see image {marker} within 30s:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ctr_ok(&["images", "rm", &marker]);
    }

    /// The runtime bundles (`state/io.containerd.runtime.v2.task/NS/ID`) left.
    fn bundles(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        let tasks = self.state_dir().join("io.containerd.runtime.v2.task");
        for ns in read_dir_paths(&tasks) {
            for b in read_dir_paths(&ns) {
                if let Some(id) = b.file_name().and_then(|n| n.to_str()) {
                    out.push((id.to_owned(), b.clone()));
                }
            }
        }
        out
    }

    /// CNI DEL, as libcni would do it, for every pod sandbox whose network namespace is
    /// still there (StopPodSandbox removes it, so a pod stopped through CRI is skipped).
    fn teardown_pod_networks(&self) {
        let Some(net) = CniNetwork::load(&self.cni_conf_dir) else {
            return;
        };
        for (id, bundle) in self.bundles() {
            let Some(spec) = read_json(&bundle.join("config.json")) else {
                continue;
            };
            if spec["annotations"]["io.kubernetes.cri.container-type"] != "sandbox" {
                continue;
            }
            let netns = spec["linux"]["namespaces"]
                .as_array()
                .and_then(|a| a.iter().find(|n| n["type"] == "network"))
                .and_then(|n| n["path"].as_str())
                .map(PathBuf::from);
            if let Some(netns) = netns.filter(|p| p.exists()) {
                net.del(&self.cni_bin_dirs, &id, &netns);
            }
            let _ = std::fs::remove_file(
                Path::new(CNI_CACHE_DIR).join(format!("cni-loopback-{id}-lo")),
            );
        }
    }

    /// Kills and deletes every container runc still has under our state dir, then removes
    /// their cgroups should runc have left them.
    fn remove_containers(&self) {
        let mut cgroups = Vec::new();
        for (_, bundle) in self.bundles() {
            if let Some(p) = read_json(&bundle.join("config.json"))
                .and_then(|s| s["linux"]["cgroupsPath"].as_str().map(str::to_owned))
            {
                cgroups.push(p);
            }
        }
        let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            return;
        };
        for root in read_dir_paths(&self.state_dir().join("runc")) {
            for c in read_dir_paths(&root) {
                let Some(id) = c.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let runc_cmd = |args: &[&str]| {
                    let _ = Command::new(runc)
                        .arg("--root")
                        .arg(&root)
                        .args(args)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                };
                runc_cmd(&["kill", "--all", id, "KILL"]);
                runc_cmd(&["delete", "--force", id]);
            }
        }
        for path in cgroups.iter().filter(|p| p.starts_with('/')) {
            let rel = path.trim_start_matches('/');
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(rel));
            for controller in read_dir_paths(Path::new("/sys/fs/cgroup")) {
                let _ = std::fs::remove_dir(controller.join(rel));
            }
        }
    }

    /// The shim sockets (`/run/containerd/s/HASH`) our shims listen on.
    fn shim_sockets(&self) -> Vec<PathBuf> {
        self.bundles()
            .iter()
            .filter_map(|(_, b)| std::fs::read_to_string(b.join("address")).ok())
            .filter_map(|a| a.trim().strip_prefix("unix://").map(PathBuf::from))
            .filter(|p| p.starts_with(SHIM_SOCKET_DIR))
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let shims = self.shim_pids();
        let sockets = self.shim_sockets();
        self.teardown_pod_networks();
        self.remove_containers();
        // Whatever the shims still have as children (a container runc could not kill), then
        // the shims themselves.
        for &shim in &shims {
            for child in children_of(shim) {
                kill(child);
            }
            kill(shim);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while shims.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for s in sockets {
            let _ = std::fs::remove_file(s);
        }
        unmount_below(&self.base);
        let left = mounts_below(&self.base);
        if let Some(dir) = self.dir.take() {
            if left.is_empty() {
                if let Err(e) = dir.close() {
                    eprintln!(
                        "warning: could not remove containerd's directory {}: {e}",
                        self.base.display()
                    );
                }
            } else {
                let kept = dir.keep();
                eprintln!(
                    "warning: {} is kept: still mounted below it: {left:?}",
                    kept.display()
                );
            }
        }
    }
}

/// A one-layer OCI layout at `dir` holding `/catatonit` (the host's, static) with entrypoint
/// `["/catatonit", "-P"]`, its `index.json` naming it `reference`: a pause image made
/// without a network.
pub fn pause_layout(dir: &Path, reference: &str) -> Layout {
    let exe = std::fs::read(CATATONIT_BIN).unwrap_or_else(|e| {
        panic!("cannot read {CATATONIT_BIN} (install the Debian package `catatonit`): {e}")
    });
    let mut tar = TarBuilder::new();
    tar.file_mode("catatonit", &exe, 0o755);
    let layout = LayoutBuilder::new()
        .layer(LayerSpec::tar(tar.finish()).compressed(Compression::Gzip))
        .reference(Some(reference))
        .write(dir)
        .expect("write the pause image layout");
    set_entrypoint(layout, &["/catatonit", "-P"])
}

/// Rewrites a written layout's config with this entrypoint (new config and manifest blobs,
/// `index.json` pointing at the new manifest; the old blobs are removed).
fn set_entrypoint(mut layout: Layout, entrypoint: &[&str]) -> Layout {
    let blob_json = |layout: &Layout, digest: &str| -> Value {
        let p = layout.blob_path(digest);
        serde_json::from_slice(&std::fs::read(&p).expect("read a layout blob"))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
    };
    let mut config = blob_json(&layout, &layout.config);
    config["config"]["Entrypoint"] = json!(entrypoint);
    let config_bytes = serde_json::to_vec(&config).expect("serialize the image config");
    let config_digest = sha256_digest(&config_bytes);
    let mut manifest = blob_json(&layout, &layout.manifest);
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).expect("serialize the manifest");
    let manifest_digest = sha256_digest(&manifest_bytes);
    std::fs::write(layout.blob_path(&config_digest), &config_bytes).expect("write config");
    std::fs::write(layout.blob_path(&manifest_digest), &manifest_bytes).expect("write manifest");
    let _ = std::fs::remove_file(layout.blob_path(&layout.config));
    let _ = std::fs::remove_file(layout.blob_path(&layout.manifest));
    let index_path = layout.dir.join("index.json");
    let mut index = read_json(&index_path).expect("the layout's index.json");
    index["manifests"][0]["digest"] = json!(manifest_digest);
    index["manifests"][0]["size"] = json!(manifest_bytes.len());
    std::fs::write(
        &index_path,
        serde_json::to_vec_pretty(&index).expect("serialize index.json"),
    )
    .expect("write index.json");
    layout.config = config_digest;
    layout.manifest = manifest_digest;
    layout
}

/// Packs an OCI layout directory into an OCI archive (`oci-layout`, `index.json`,
/// `blobs/sha256/*`) as `ctr images import` takes it. With `name`, the single image of
/// `index.json` is annotated with that reference (containerd names imported images by it).
pub fn pack_oci_archive(layout_dir: &Path, out: &Path, name: Option<&str>) {
    let index_path = layout_dir.join("index.json");
    let mut index = read_json(&index_path)
        .unwrap_or_else(|| panic!("{} is missing or not JSON", index_path.display()));
    if let Some(name) = name {
        let manifests = index["manifests"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("{} lists no manifests", index_path.display()));
        assert_eq!(
            manifests.len(),
            1,
            "{} must hold exactly one image to be imported under a name",
            index_path.display()
        );
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"] = json!(name);
    }
    let file = std::fs::File::create(out)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    let mut archive = tar::Builder::new(file);
    let oci_layout = std::fs::read(layout_dir.join("oci-layout"))
        .unwrap_or_else(|_| br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
    append_file(&mut archive, "oci-layout", &oci_layout);
    let index_bytes = serde_json::to_vec(&index).expect("serialize index.json");
    append_file(&mut archive, "index.json", &index_bytes);
    let mut blobs = read_dir_paths(&layout_dir.join("blobs/sha256"));
    blobs.sort();
    for blob in blobs {
        let Some(hex) = blob.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let bytes =
            std::fs::read(&blob).unwrap_or_else(|e| panic!("cannot read {}: {e}", blob.display()));
        append_file(&mut archive, &format!("blobs/sha256/{hex}"), &bytes);
    }
    archive
        .into_inner()
        .unwrap_or_else(|e| panic!("cannot finish {}: {e}", out.display()));
}

fn append_file(archive: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    archive
        .append_data(&mut header, name, data)
        .unwrap_or_else(|e| panic!("cannot write {name} into the archive: {e}"));
}

/// `busybox` -> `docker.io/library/busybox:latest`, `localhost/x` -> `localhost/x:latest`,
/// as the CRI plugin normalizes the names it is asked for.
pub fn normalize_image_name(name: &str) -> String {
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let has_domain =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_owned()
    } else if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else {
        format!("docker.io/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    full
}

/// A cniVersion 1.0.0 conflist: `bridge` (gateway, IP masquerade, hairpin) with
/// `host-local` IPAM on `subnet` keeping its leases in `ipam_data_dir`, then `portmap` with
/// the `portMappings` capability. `bridge` names the host interface (at most 15 bytes).
pub fn bridge_conflist(network: &str, bridge: &str, subnet: &str, ipam_data_dir: &Path) -> String {
    assert!(
        bridge.len() <= 15,
        "bridge interface name {bridge:?} is longer than 15 bytes"
    );
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_data_dir.to_string_lossy(),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    serde_json::to_string_pretty(&conf).expect("serialize the conflist")
}

/// Writes [`bridge_conflist`] as `dir/10-NETWORK.conflist` (creating `dir`) and returns its
/// path.
pub fn write_bridge_conflist(
    dir: &Path,
    network: &str,
    bridge: &str,
    subnet: &str,
    ipam_data_dir: &Path,
) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the CNI configuration directory");
    let path = dir.join(format!("10-{network}.conflist"));
    std::fs::write(
        &path,
        bridge_conflist(network, bridge, subnet, ipam_data_dir),
    )
    .expect("write the conflist");
    path
}

struct ConfigPaths<'a> {
    base: &'a Path,
    socket: &'a Path,
    runc: &'a Path,
    cni_conf_dir: &'a Path,
    cni_bin_dir: &'a Path,
}

/// containerd's `config.toml` (version 2).
fn config_toml(p: &ConfigPaths<'_>) -> String {
    let q = |path: &Path| toml_str(&path.to_string_lossy());
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"version = 2
root = {root}
state = {state}
temp = {temp}
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = {socket}

[debug]
  level = "info"

[plugins]
  [{cri}]
    sandbox_image = {pause}
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_tls_streaming = false
    disable_tcp_service = true
    restrict_oom_score_adj = true
    enable_unprivileged_ports = false
    enable_unprivileged_icmp = false
    netns_mounts_under_state_dir = true
    systemd_cgroup = false
    [{cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [{cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [{cri}.containerd.runtimes.runc.options]
          BinaryName = {runc}
          Root = {runc_root}
          SystemdCgroup = false
    [{cri}.cni]
      bin_dir = {cni_bin}
      conf_dir = {cni_conf}
      max_conf_num = 1
    [{cri}.registry]
      config_path = {certs}
"#,
        root = q(&p.base.join("root")),
        state = q(&p.base.join("state")),
        temp = q(&p.base.join("tmp")),
        socket = q(p.socket),
        pause = toml_str(PAUSE_IMAGE),
        runc = q(p.runc),
        runc_root = q(&p.base.join("state/runc")),
        cni_bin = q(p.cni_bin_dir),
        cni_conf = q(p.cni_conf_dir),
        certs = q(&p.base.join("certs.d")),
    )
}

/// A TOML basic string (JSON's string escapes are valid TOML).
fn toml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// `certs.d/HOST/hosts.toml` for every mirrored or insecure registry host.
fn write_registry_hosts(certs: &Path, mirrors: &[(String, String)], insecure: &[String]) {
    let mut hosts: Vec<&str> = Vec::new();
    for h in mirrors
        .iter()
        .map(|(h, _)| h.as_str())
        .chain(insecure.iter().map(String::as_str))
    {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    for host in hosts {
        let urls: Vec<String> = mirrors
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, u)| {
                if u.contains("://") {
                    u.trim_end_matches('/').to_owned()
                } else {
                    format!("http://{}", u.trim_end_matches('/'))
                }
            })
            .collect();
        // containerd tries the `[host."URL"]` tables in order, then `server`. 1.6 ignores a
        // hosts.toml without any `[host]` table (and falls back to the upstream), so there is
        // always one.
        let text = if let Some(last) = urls.last() {
            // The mirrors and nothing else: `server` repeats the last mirror (so a missing
            // image ends as "not found" there, rather than with the upstream's error).
            let mut t = format!(
                "server = {}\ncapabilities = [\"pull\", \"resolve\"]\nskip_verify = true\n",
                toml_str(last)
            );
            for u in &urls {
                let _ = write!(
                    t,
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
                    toml_str(u)
                );
            }
            t
        } else {
            // HTTPS without verification first, then plain HTTP.
            format!(
                "server = {}\ncapabilities = [\"pull\", \"resolve\", \"push\"]\n\n\
                 [host.{}]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  skip_verify = true\n",
                toml_str(&format!("http://{host}")),
                toml_str(&format!("https://{host}"))
            )
        };
        let d = certs.join(host);
        std::fs::create_dir_all(&d).expect("create a certs.d host directory");
        std::fs::write(d.join("hosts.toml"), text).expect("write hosts.toml");
    }
}

/// One directory of symlinks to the plugins of `dirs` (the first of a name wins).
fn merge_bin_dirs(dirs: &[PathBuf], merged: &Path) -> PathBuf {
    std::fs::create_dir_all(merged).expect("create the merged CNI plugin directory");
    for d in dirs {
        for plugin in read_dir_paths(d) {
            if let Some(name) = plugin.file_name() {
                let link = merged.join(name);
                if std::fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(&plugin, &link)
                        .expect("link a CNI plugin into the merged directory");
                }
            }
        }
    }
    merged.to_path_buf()
}

/// The network the CRI plugin uses: the first configuration file of the directory, in
/// libcni's order (`.conf`, `.conflist`, `.json`, sorted by name), as a plugin list.
#[derive(Debug)]
struct CniNetwork {
    name: String,
    version: String,
    plugins: Vec<Value>,
}

impl CniNetwork {
    fn load(conf_dir: &Path) -> Option<CniNetwork> {
        let mut files: Vec<PathBuf> = read_dir_paths(conf_dir)
            .into_iter()
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "conf" | "conflist" | "json"))
            })
            .collect();
        files.sort();
        let conf = read_json(files.first()?)?;
        let name = conf["name"].as_str()?.to_owned();
        let version = conf["cniVersion"].as_str().unwrap_or("0.4.0").to_owned();
        let plugins = match conf["plugins"].as_array() {
            Some(list) => list.clone(),
            None => vec![conf.clone()],
        };
        Some(CniNetwork {
            name,
            version,
            plugins,
        })
    }

    /// DEL through every plugin in reverse order, with the cached ADD result as
    /// `prevResult` and the cached capability arguments as `runtimeConfig`; then drops the
    /// cache entry.
    fn del(&self, bin_dirs: &[PathBuf], id: &str, netns: &Path) {
        let cache_path = Path::new(CNI_CACHE_DIR).join(format!("{}-{id}-{POD_IFNAME}", self.name));
        let cache = read_json(&cache_path);
        let prev_result = cache
            .as_ref()
            .map(|c| c["result"].clone())
            .filter(|r| !r.is_null());
        let cni_args = cache
            .as_ref()
            .and_then(|c| c["cniArgs"].as_array().cloned())
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|kv| Some(format!("{}={}", kv[0].as_str()?, kv[1].as_str()?)))
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .unwrap_or_else(|| "IgnoreUnknown=1".to_owned());
        let cni_path = bin_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        for plugin in self.plugins.iter().rev() {
            let Some(kind) = plugin["type"].as_str() else {
                continue;
            };
            let Some(bin) = bin_dirs.iter().map(|d| d.join(kind)).find(|p| p.exists()) else {
                eprintln!("warning: CNI plugin {kind} not found for the DEL of pod {id}");
                continue;
            };
            let mut conf = plugin.clone();
            let Some(obj) = conf.as_object_mut() else {
                continue;
            };
            obj.insert("name".into(), json!(self.name));
            obj.insert("cniVersion".into(), json!(self.version));
            if let Some(prev) = &prev_result {
                obj.insert("prevResult".into(), prev.clone());
            }
            if let (Some(caps), Some(cached)) = (
                plugin["capabilities"].as_object(),
                cache.as_ref().and_then(|c| c["capabilityArgs"].as_object()),
            ) {
                let runtime: serde_json::Map<String, Value> = caps
                    .iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .filter_map(|(k, _)| cached.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                if !runtime.is_empty() {
                    obj.insert("runtimeConfig".into(), Value::Object(runtime));
                }
            }
            let stdin = serde_json::to_vec(&conf).unwrap_or_default();
            let child = Command::new(&bin)
                .env("CNI_COMMAND", "DEL")
                .env("CNI_CONTAINERID", id)
                .env("CNI_NETNS", netns)
                .env("CNI_IFNAME", POD_IFNAME)
                .env("CNI_PATH", &cni_path)
                .env("CNI_ARGS", &cni_args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            let Ok(mut child) = child else {
                continue;
            };
            if let Some(mut input) = child.stdin.take() {
                let _ = input.write_all(&stdin);
            }
            match child.wait_with_output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "warning: CNI DEL of pod {id} through {kind} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("warning: CNI DEL of pod {id} through {kind}: {e}"),
            }
        }
        let _ = std::fs::remove_file(cache_path);
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The entries of a directory (none if it cannot be read).
fn read_dir_paths(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// `(state, ppid)` from `/proc/PID/stat`.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn children_of(parent: i32) -> Vec<i32> {
    read_dir_paths(Path::new("/proc"))
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.parse::<i32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

fn kill(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_normalized_like_the_cri_plugin() {
        assert_eq!(
            normalize_image_name("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_image_name("library/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            normalize_image_name("localhost/strata-test/pause:1"),
            "localhost/strata-test/pause:1"
        );
        assert_eq!(
            normalize_image_name("127.0.0.1:5000/a/b"),
            "127.0.0.1:5000/a/b:latest"
        );
        assert_eq!(
            normalize_image_name("quay.io/x/y@sha256:00"),
            "quay.io/x/y@sha256:00"
        );
    }

    #[test]
    fn config_quotes_paths() {
        let base = Path::new("/tmp/strata-ctrd-x");
        let text = config_toml(&ConfigPaths {
            base,
            socket: &base.join("containerd.sock"),
            runc: Path::new("/usr/sbin/runc"),
            cni_conf_dir: Path::new("/tmp/cni \"conf\""),
            cni_bin_dir: Path::new("/usr/lib/cni"),
        });
        let v: toml::Value = toml::from_str(&text).unwrap();
        let cri = &v["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(cri["cni"]["conf_dir"].as_str(), Some("/tmp/cni \"conf\""));
        assert_eq!(cri["sandbox_image"].as_str(), Some(PAUSE_IMAGE));
        assert_eq!(
            cri["containerd"]["runtimes"]["runc"]["options"]["Root"].as_str(),
            Some("/tmp/strata-ctrd-x/state/runc")
        );
        assert_eq!(
            v["grpc"]["address"].as_str(),
            Some("/tmp/strata-ctrd-x/containerd.sock")
        );
    }

    #[test]
    fn hosts_files_for_mirrors_and_insecure_registries() {
        let d = tempfile::tempdir().unwrap();
        write_registry_hosts(
            d.path(),
            &[
                ("docker.io".into(), "http://127.0.0.1:1".into()),
                ("docker.io".into(), "127.0.0.1:2".into()),
            ],
            &["localhost:5000".into()],
        );
        let docker: toml::Value = toml::from_str(
            &std::fs::read_to_string(d.path().join("docker.io/hosts.toml")).unwrap(),
        )
        .unwrap();
        assert_eq!(docker["server"].as_str(), Some("http://127.0.0.1:2"));
        assert!(docker["host"].get("http://127.0.0.1:1").is_some());
        assert!(docker["host"].get("http://127.0.0.1:2").is_some());
        let local: toml::Value = toml::from_str(
            &std::fs::read_to_string(d.path().join("localhost:5000/hosts.toml")).unwrap(),
        )
        .unwrap();
        assert_eq!(local["server"].as_str(), Some("http://localhost:5000"));
        assert_eq!(
            local["host"]["https://localhost:5000"]["skip_verify"].as_bool(),
            Some(true)
        );
    }
}
