//! The run's surroundings: the scratch directory (and the loop-mounted filesystems in it),
//! which drivers and reference tools this host can run, the image every workload uses, the
//! commands that point each tool at a store of the scratch, and the cleanup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{ImageSource, Observer, Options, RunError, Workload, DRIVERS, TOOLS};
use crate::results::Skipped;
use crate::synth::{self, Extra, Spec};

/// A filesystem type the scratch can be made of (loop-mounted, root only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchFs {
    Ext4,
    Xfs,
    Btrfs,
}

impl ScratchFs {
    pub fn parse(s: &str) -> Result<ScratchFs, RunError> {
        match s {
            "ext4" => Ok(ScratchFs::Ext4),
            "xfs" => Ok(ScratchFs::Xfs),
            "btrfs" => Ok(ScratchFs::Btrfs),
            other => Err(RunError::Usage(format!(
                "unknown scratch filesystem {other:?} (ext4, xfs, btrfs)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ScratchFs::Ext4 => "ext4",
            ScratchFs::Xfs => "xfs",
            ScratchFs::Btrfs => "btrfs",
        }
    }

    fn mkfs(self, image: &Path) -> Command {
        let mut c = Command::new(format!("mkfs.{}", self.name()));
        match self {
            ScratchFs::Ext4 => c.args(["-q", "-F", "-E", "nodiscard"]),
            ScratchFs::Xfs => c.args(["-q", "-f", "-K"]),
            ScratchFs::Btrfs => c.args(["-q", "-f", "-K"]),
        };
        c.arg(image);
        c
    }
}

/// A sparse file formatted and loop-mounted; unmounted (everything below it first) and
/// removed on drop. `mount -o loop` sets the loop device to clear itself once unmounted.
#[derive(Debug)]
struct LoopFs {
    image: PathBuf,
    mount_point: PathBuf,
}

impl LoopFs {
    fn create(dir: &Path, fs: ScratchFs, bytes: u64) -> Result<LoopFs, RunError> {
        let image = dir.join(format!("{}.img", fs.name()));
        let mount_point = dir.join(fs.name());
        let f = std::fs::File::create(&image).map_err(RunError::io(image.display().to_string()))?;
        f.set_len(bytes)
            .map_err(RunError::io(image.display().to_string()))?;
        drop(f);
        output(&mut fs.mkfs(&image))?;
        std::fs::create_dir_all(&mount_point)
            .map_err(RunError::io(mount_point.display().to_string()))?;
        output(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount_point),
        )?;
        Ok(LoopFs { image, mount_point })
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        unmount_below(&self.mount_point);
        let _ = Command::new("umount")
            .arg(&self.mount_point)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.image);
    }
}

/// A `docker-registry` serving plain HTTP on a free port of 127.0.0.1, killed on drop.
#[derive(Debug)]
struct Registry {
    child: std::process::Child,
    address: String,
}

impl Registry {
    fn start(dir: &Path) -> Result<Registry, RunError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(RunError::io("pick a port for the registry"))?
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                dir.join("registry").display()
            ),
        )
        .map_err(RunError::io(config.display().to_string()))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(RunError::io("start docker-registry"))?;
        let r = Registry { child, address };
        let t = Instant::now();
        while std::net::TcpStream::connect(&r.address).is_err() {
            if t.elapsed().as_secs() > 20 {
                return Err(RunError::Command {
                    command: "docker-registry serve".into(),
                    why: format!("not listening on {} after 20 s", r.address),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(r)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image every workload uses, as an OCI layout.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// `oci:DIR:REF`.
    pub source: String,
    /// What it is, for the result file.
    pub describe: String,
    /// Whether containers of it can start (`/bin/true` is in it).
    pub runnable: bool,
    /// Uncompressed bytes of its layers.
    pub tar_bytes: u64,
    /// The spec, when synthetic (the depth workload makes deeper ones alike).
    pub spec: Option<Spec>,
}

/// Everything the workloads share.
#[derive(Debug)]
pub(crate) struct Env {
    /// The run's own directory in the scratch (`strata-bench-PID`; removed at the end).
    base: PathBuf,
    /// Where it works: `base/work`, or the loop-mounted scratch filesystem's.
    work: PathBuf,
    /// Where the stores' runroots go: a short path, because podman refuses a runroot longer
    /// than 50 bytes (conmon's socket paths must fit `sun_path`). `/run/strata-bench-PID`
    /// as root, `$XDG_RUNTIME_DIR/strata-bench-PID` or `/tmp/strata-bench-PID-run` otherwise.
    short: PathBuf,
    /// Where btrfs stores go (a btrfs of the scratch, or a loop btrfs of its own).
    btrfs_dir: Option<PathBuf>,
    // Dropped in reverse: the btrfs loop first, then the scratch loop.
    loops: Vec<LoopFs>,
    registry: Option<Registry>,
    /// `HOST:PORT` of the registry pulls come from.
    pub registry_address: Option<String>,
    pub strata: PathBuf,
    pub drivers: Vec<String>,
    tools: BTreeMap<String, PathBuf>,
    pub image: Image,
    pub profile: super::Profile,
    pub cold: bool,
    pub skipped: Vec<Skipped>,
    counter: std::cell::Cell<u32>,
}

/// Whether this process is really root: uid 0 in the initial user namespace. A rootless
/// `strata` runs its plugins as uid 0 of the user's namespace, where loop devices, dropping
/// caches and /run stay out of reach.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root() && !in_user_namespace()
}

/// Whether `/proc/self/uid_map` maps less than the whole id space onto itself.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        let f: Vec<&str> = m.split_whitespace().collect();
        f != ["0", "0", "4294967295"]
    })
}

impl Env {
    pub fn prepare(opts: &Options, obs: &dyn Observer) -> Result<Env, RunError> {
        if let Some(d) = opts.drivers.iter().find(|d| !DRIVERS.contains(&d.as_str())) {
            return Err(RunError::Usage(format!(
                "unknown driver {d:?} (the drivers: {})",
                DRIVERS.join(", ")
            )));
        }
        if let Some(t) = opts.against.iter().find(|t| !TOOLS.contains(&t.as_str())) {
            return Err(RunError::Usage(format!(
                "unknown reference tool {t:?} (the tools: {})",
                TOOLS.join(", ")
            )));
        }
        let root = is_root();
        let mut skipped = Vec::new();
        let mut skip = |what: String, why: String| {
            obs.note(&format!("skipped {what}: {why}"));
            skipped.push(Skipped { what, why });
        };
        std::fs::create_dir_all(&opts.scratch)
            .map_err(RunError::io(format!("create {}", opts.scratch.display())))?;
        let scratch = std::fs::canonicalize(&opts.scratch)
            .map_err(RunError::io(opts.scratch.display().to_string()))?;
        let mut loops = Vec::new();
        let base = scratch.join(format!("strata-bench-{}", std::process::id()));
        std::fs::create_dir_all(&base).map_err(RunError::io(base.display().to_string()))?;
        let mut cleanup = Cleanup(Some(base.clone()));
        let work = match opts.scratch_fs {
            Some(fs) => {
                if !root {
                    return Err(RunError::Usage(
                        "--scratch-fs needs root (it loop-mounts a filesystem image)".into(),
                    ));
                }
                obs.note(&format!("making a loop-mounted {} scratch", fs.name()));
                let l = LoopFs::create(&base, fs, 64 << 30)?;
                let w = l.mount_point.join("work");
                loops.push(l);
                w
            }
            None => base.join("work"),
        };
        std::fs::create_dir_all(&work).map_err(RunError::io(work.display().to_string()))?;

        // Drivers.
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        let kernel_has = |fs: &str| {
            filesystems
                .lines()
                .any(|l| l.split_whitespace().last() == Some(fs))
        };
        let mut drivers = Vec::new();
        let mut btrfs_dir = None;
        for d in &opts.drivers {
            let why = match d.as_str() {
                "overlay" if !kernel_has("overlay") => Some("this kernel has no overlayfs".into()),
                "fuse-overlay" if !Path::new("/dev/fuse").exists() => {
                    Some("there is no /dev/fuse".into())
                }
                "btrfs" => {
                    let on_btrfs =
                        crate::results::Filesystem::of(&work).is_some_and(|f| f.fstype == "btrfs");
                    if on_btrfs {
                        btrfs_dir = Some(work.join("btrfs"));
                        None
                    } else if !kernel_has("btrfs") {
                        Some("this kernel has no btrfs".into())
                    } else if !root {
                        Some("the scratch is not on btrfs, and making a loop-mounted btrfs needs root".into())
                    } else if which("mkfs.btrfs").is_none() {
                        Some("mkfs.btrfs is not installed (btrfs-progs)".into())
                    } else {
                        obs.note("making a loop-mounted btrfs for the btrfs driver");
                        let l = LoopFs::create(&base, ScratchFs::Btrfs, 64 << 30)?;
                        btrfs_dir = Some(l.mount_point.join("work"));
                        loops.push(l);
                        None
                    }
                }
                "devicemapper" => {
                    let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
                    if !misc.contains("device-mapper") {
                        Some("this kernel has no device-mapper (run it in the VM tier or on a host with dm-thin-pool)".into())
                    } else if !root {
                        Some("device-mapper needs root".into())
                    } else {
                        None
                    }
                }
                _ => None,
            };
            match why {
                Some(why) => skip(format!("driver {d}"), why),
                None => drivers.push(d.clone()),
            }
        }
        if let Some(b) = &btrfs_dir {
            std::fs::create_dir_all(b).map_err(RunError::io(b.display().to_string()))?;
        }

        // Reference tools.
        let mut tools = BTreeMap::new();
        for t in &opts.against {
            if in_user_namespace() {
                skip(
                    format!("tool {t}"),
                    "rootless: this run is inside Strata's user namespace, where a reference tool would not run as its users run it rootless".into(),
                );
                continue;
            }
            match which(t) {
                Some(p) => {
                    tools.insert(t.clone(), p);
                }
                None => skip(format!("tool {t}"), format!("{t} is not installed")),
            }
        }

        // The image.
        let images = work.join("images");
        let needs_run = opts.workloads.iter().any(|w| {
            matches!(
                w,
                Workload::Start | Workload::Concurrency | Workload::Build | Workload::Cri
            )
        });
        let image = match &opts.image {
            Some(ImageSource::Layout { dir, reference }) => {
                // Its uncompressed size is not known without decompressing every layer
                // (gzip, zstd or none): throughput is reported for synthetic images only.
                let tar_bytes = 0;
                Image {
                    source: format!("oci:{}:{reference}", dir.display()),
                    describe: format!("oci:{}:{reference}", dir.display()),
                    runnable: true,
                    tar_bytes,
                    spec: None,
                }
            }
            synthetic => {
                let spec = match synthetic {
                    Some(ImageSource::Synthetic(s)) => s.clone(),
                    _ => opts
                        .profile
                        .image
                        .parse()
                        .map_err(|e: synth::SynthError| RunError::Usage(e.to_string()))?,
                };
                let busybox = static_busybox();
                if busybox.is_none() && needs_run {
                    skip(
                        "runnable image".into(),
                        "no static busybox on this host (install busybox-static, or give --image oci:DIR:REF of an image with /bin/sh and /bin/true): start, concurrent starts, build and cri are skipped".into(),
                    );
                }
                let extra = Extra {
                    large_file: opts.profile.large_file,
                    busybox: busybox.clone(),
                };
                let layout = images.join("bench");
                obs.note(&format!("generating the synthetic image {spec}"));
                let img =
                    synth::generate_with(&spec, Some(&extra), &layout, "latest").map_err(|e| {
                        RunError::Command {
                            command: "generate the synthetic image".into(),
                            why: e.to_string(),
                        }
                    })?;
                Image {
                    source: format!("oci:{}:latest", layout.display()),
                    describe: format!("synthetic {spec} + bench layer"),
                    runnable: busybox.is_some(),
                    tar_bytes: img.layers.iter().map(|l| l.tar_size).sum(),
                    spec: Some(spec),
                }
            }
        };

        // Caches.
        let cold = opts.cold && {
            let ok = std::fs::OpenOptions::new()
                .write(true)
                .open("/proc/sys/vm/drop_caches")
                .is_ok();
            if !ok {
                skip(
                    "cold caches".into(),
                    "cannot write /proc/sys/vm/drop_caches (needs root): samples run warm".into(),
                );
            }
            ok
        };

        // The registry.
        let wants_pull = opts.workloads.contains(&Workload::Pull);
        let mut registry = None;
        let mut registry_address = opts.registry.clone();
        if wants_pull && registry_address.is_none() {
            if which("docker-registry").is_some() {
                let r = Registry::start(&work)?;
                registry_address = Some(r.address.clone());
                registry = Some(r);
            } else {
                skip(
                    "workload pull".into(),
                    "no registry: docker-registry is not installed and --registry was not given"
                        .into(),
                );
            }
        }
        let short = short_dir(root);
        std::fs::create_dir_all(&short).map_err(RunError::io(short.display().to_string()))?;
        cleanup.0 = None;
        let env = Env {
            base,
            work,
            short,
            btrfs_dir,
            loops,
            registry,
            registry_address,
            strata: opts.strata.clone(),
            drivers,
            tools,
            image,
            profile: opts.profile.clone(),
            cold,
            skipped,
            counter: std::cell::Cell::new(0),
        };
        std::fs::write(env.work.join("containers.conf"), CONTAINERS_CONF)
            .map_err(RunError::io("write containers.conf"))?;
        let storage_conf = format!(
            "{STORAGE_CONF}graphroot = \"{}\"\nrunroot = \"{}\"\n",
            env.work.join("cs-default/root").display(),
            env.work.join("cs-default/run").display()
        );
        std::fs::write(env.work.join("storage.conf"), storage_conf)
            .map_err(RunError::io("write storage.conf"))?;
        std::fs::write(env.work.join("strata.toml"), "")
            .map_err(RunError::io("write strata.toml"))?;
        if env.registry_address.is_some() {
            obs.note("pushing the image to the registry");
            output(env.strata_global().args([
                "copy",
                "--dest-tls-verify=false",
                &env.image.source,
                &format!("docker://{}", env.pull_reference()),
            ]))?;
        }
        Ok(env)
    }

    /// The run's working directory.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// The reference tool's binary, when installed and asked for.
    pub fn tool(&self, name: &str) -> Option<&Path> {
        self.tools.get(name).map(PathBuf::as_path)
    }

    /// The image reference pulls use (`HOST:PORT/strata-bench:latest`).
    pub fn pull_reference(&self) -> String {
        format!(
            "{}/strata-bench:latest",
            self.registry_address.as_deref().unwrap_or("")
        )
    }

    /// A new, empty store directory for `tool` on `driver` (on the btrfs for btrfs).
    pub fn store(&self, tool: &str, driver: &str) -> Result<Store, RunError> {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let base = match driver {
            "btrfs" => self.btrfs_dir.as_deref().unwrap_or(&self.work),
            _ => &self.work,
        };
        let dir = base.join("stores").join(format!("{tool}-{driver}-{n}"));
        let run = self.short.join(n.to_string());
        for d in [dir.join("root"), dir.join("tmp"), run.clone()] {
            std::fs::create_dir_all(&d).map_err(RunError::io(format!("create {}", d.display())))?;
        }
        Ok(Store {
            dir,
            run,
            driver: driver.to_owned(),
            work: self.work.clone(),
            strata: self.strata.clone(),
        })
    }

    /// `strata` for what needs no store (`copy` between a layout and a registry), pointed at
    /// the run's directories all the same, so that the user's store is never opened.
    fn strata_global(&self) -> Command {
        let mut c = Command::new(&self.strata);
        c.arg("--root")
            .arg(self.work.join("client"))
            .arg("--runroot")
            .arg(self.short.join("client"))
            .env("STRATA_CONFIG", self.work.join("strata.toml"));
        c
    }

    /// Drops the page cache (after writing dirty pages).
    pub fn drop_caches(&self) -> Result<(), RunError> {
        rustix::fs::sync();
        std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(RunError::io("drop caches"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.registry.take();
        unmount_below(&self.work);
        if let Some(b) = &self.btrfs_dir {
            unmount_below(b);
        }
        let _ = std::fs::remove_dir_all(&self.work);
        if let Some(b) = &self.btrfs_dir {
            let _ = std::fs::remove_dir_all(b);
        }
        while let Some(l) = self.loops.pop() {
            drop(l);
        }
        unmount_below(&self.base);
        let _ = std::fs::remove_dir_all(&self.base);
        unmount_below(&self.short);
        let _ = std::fs::remove_dir_all(&self.short);
    }
}

/// The directory for runroots (see [`Env::short`]).
fn short_dir(root: bool) -> PathBuf {
    let name = format!("strata-bench-{}", std::process::id());
    if root {
        return Path::new("/run").join(name);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join(name),
        None => std::env::temp_dir().join(format!("{name}-run")),
    }
}

/// Removes the run's directory if `prepare` fails half-way.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            unmount_below(&d);
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}

/// One tool's store on one driver, and the commands that use it.
#[derive(Debug)]
pub(crate) struct Store {
    pub dir: PathBuf,
    /// The runroot, in the run's short directory.
    run: PathBuf,
    pub driver: String,
    work: PathBuf,
    strata: PathBuf,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes the device-mapper devices of a strata store below `dir` on devicemapper (its
/// thin devices, then its pool) and detaches the loop devices of the pool's files. A real
/// store keeps its devices active between processes; the bench's stores are thrown away.
/// The names are the driver's (`drivers/devicemapper/src/layout.rs`):
/// `strata-MAJOR:MINOR-INODE-{ID,pool}` of the driver's home, `ROOT/devicemapper`.
fn release_thin_pool(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let home = dir.join("root").join("devicemapper");
    if let Ok(m) = std::fs::metadata(&home) {
        let prefix = format!(
            "strata-{}:{}-{}-",
            rustix::fs::major(m.dev()),
            rustix::fs::minor(m.dev()),
            m.ino()
        );
        let listed = Command::new("dmsetup")
            .arg("ls")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut names: Vec<&str> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        // The pool goes last: its thin devices hold it.
        names.sort_by_key(|n| n.ends_with("-pool"));
        for n in names {
            let _ = Command::new("dmsetup")
                .args(["remove", "--retry", n])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let backing =
            std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        if Path::new(backing.trim()).starts_with(dir) {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(Path::new("/dev").join(e.file_name()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Where Debian puts fuse-overlayfs.
const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";

impl Store {
    /// The store's runroot (short: socket paths below it fit `sun_path`).
    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    /// `strata` on this store.
    pub fn strata(&self) -> Command {
        let mut c = Command::new(&self.strata);
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(&self.run)
            .arg("--driver")
            .arg(&self.driver)
            // crun is the run plugin's default; named so that a run.toml or an exported
            // STRATA_RUNTIME cannot swap the runtime under the comparison.
            .env("STRATA_RUNTIME", "crun")
            // An empty configuration: the machine's strata.toml cannot change what is measured.
            .env("STRATA_CONFIG", self.work.join("strata.toml"));
        c
    }

    /// The containers/storage driver and options for this store's driver: fuse-overlay is
    /// containers/storage's overlay with fuse-overlayfs as its mount program.
    fn cs_driver(&self) -> (&str, Option<String>) {
        match self.driver.as_str() {
            "fuse-overlay" => (
                "overlay",
                Some(format!("overlay.mount_program={FUSE_OVERLAYFS}")),
            ),
            d => (d, None),
        }
    }

    fn containers_env(&self, c: &mut Command) {
        c.env("CONTAINERS_CONF", self.work.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.work.join("storage.conf"))
            .env("TMPDIR", self.dir.join("tmp"));
    }

    /// `containers-storage` on this store.
    pub fn cs(&self) -> Command {
        let (driver, opt) = self.cs_driver();
        let mut c = Command::new("containers-storage");
        c.arg("--graph")
            .arg(self.dir.join("root"))
            .arg("--run")
            .arg(&self.run)
            .args(["--storage-driver", driver]);
        if let Some(o) = opt {
            c.args(["--storage-opt", &o]);
        }
        self.containers_env(&mut c);
        c
    }

    /// `podman` on this store (crun, cgroupfs, no events, no network config of the host).
    pub fn podman(&self) -> Command {
        let (driver, opt) = self.cs_driver();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(&self.run)
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", driver]);
        if let Some(o) = opt {
            c.args(["--storage-opt", &o]);
        }
        c.args([
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
            "--runtime",
            "crun",
        ]);
        self.containers_env(&mut c);
        c
    }

    /// `buildah` on this store.
    pub fn buildah(&self) -> Command {
        let (driver, opt) = self.cs_driver();
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(&self.run)
            .args(["--storage-driver", driver]);
        if let Some(o) = opt {
            c.args(["--storage-opt", &o]);
        }
        self.containers_env(&mut c);
        c
    }

    /// `skopeo` with the environment of this store's tools.
    pub fn skopeo(&self) -> Command {
        let mut c = Command::new("skopeo");
        self.containers_env(&mut c);
        c
    }

    /// This store as a skopeo `containers-storage:` reference of `name`.
    pub fn cs_reference(&self, name: &str) -> String {
        let (driver, opt) = self.cs_driver();
        let opts = opt.map(|o| format!(":{o}")).unwrap_or_default();
        format!(
            "containers-storage:[{driver}@{}+{}{opts}]{name}",
            self.dir.join("root").display(),
            self.run.display()
        )
    }

    /// Unmounts what the store's tools left mounted and removes it (once; dropping the
    /// store does it too, so a store whose setup failed half-way goes as well).
    pub fn remove(&self) {
        if !self.dir.exists() && !self.run.exists() {
            return;
        }
        unmount_below(&self.run);
        unmount_below(&self.dir);
        if self.driver == "devicemapper" {
            release_thin_pool(&self.dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.run);
    }
}

/// podman's settings for the run, read instead of the machine's files (`CONTAINERS_CONF`
/// replaces them; podman's built-in defaults fill the rest).
const CONTAINERS_CONF: &str = r#"[containers]
# Hosts without CAP_SYS_RESOURCE cannot raise RLIMIT_NOFILE to podman's default 1048576;
# containers keep the limits they inherit, as Strata's do.
default_ulimits = []

[engine]
# No journald needed; Strata writes no events either.
events_logger = "none"
cgroup_manager = "cgroupfs"
runtime = "crun"
"#;

/// containers/storage's settings: none of the host's (its storage.conf could name a mount
/// program or options that change what is measured); the command lines say the rest. podman
/// insists on a graphroot and a runroot in the file even when its flags name them.
const STORAGE_CONF: &str = "[storage]\ndriver = \"overlay\"\n";

/// The program `name` on `PATH`.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A statically linked busybox of the host (Debian's busybox-static), which makes the
/// synthetic image runnable.
fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            p.is_file()
                && Command::new("ldd").arg(p).output().is_ok_and(|o| {
                    !o.status.success() || o.stdout.is_empty() || {
                        let s = String::from_utf8_lossy(&o.stdout);
                        s.contains("not a dynamic") || s.contains("statically linked")
                    }
                })
        })
}

/// Runs `cmd`; its trimmed standard output, or why it failed.
pub(crate) fn output(cmd: &mut Command) -> Result<String, RunError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(RunError::io(format!("run {}", describe(cmd))))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(RunError::Command {
            command: describe(cmd),
            why: format!(
                "{}: {}",
                out.status,
                last.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `cmd` and returns the seconds it took.
pub(crate) fn timed(cmd: &mut Command) -> Result<f64, RunError> {
    let t = Instant::now();
    output(cmd)?;
    Ok(t.elapsed().as_secs_f64())
}

/// The last line of a command's output (the ID tools print after progress lines).
pub(crate) fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_owned()
}

/// The command as a short line: paths of the run's directories shortened to their last part.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        match a.strip_prefix('/').and_then(|_| a.rsplit_once('/')) {
            Some((_, last)) => {
                s.push_str(".../");
                s.push_str(last);
            }
            None => s.push_str(&a),
        }
    }
    s
}

/// Unmounts everything mounted at or below `dir`, deepest first (containers/storage leaves its
/// overlay home and container mounts; FUSE servers exit when unmounted).
pub(crate) fn unmount_below(dir: &Path) {
    let mut points: Vec<PathBuf> = crate::results::mountinfo()
        .into_iter()
        .map(|m| PathBuf::from(m.point))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for p in points {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Now, as RFC 3339 in UTC.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    strata_types::time::rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], "T");
    }

    #[test]
    fn failing_commands_say_why() {
        let e = output(Command::new("sh").args(["-c", "echo boom >&2; exit 3"]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("boom") && e.contains("exit status: 3"), "{e}");
        assert_eq!(
            output(Command::new("sh").args(["-c", "echo a; echo b"])).ok(),
            Some("a\nb".into())
        );
    }
}
