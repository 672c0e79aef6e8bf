//! `strata bench run` end to end (issue 16): the one-minute profile measures every workload on
//! the drivers this host runs, beside skopeo, containers-storage, podman, buildah and
//! fuse-overlayfs, writes a valid result file and its report, says what it skipped and why,
//! and leaves nothing behind: no mounts, no loop devices, no directories, also when
//! interrupted with Ctrl-C.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use strata_plugin_benchkit::results::ResultFile;
use strata_tests::cli::mounts_below;
use strata_tests::{require_privileged, Strata};

/// Loop devices whose backing file is below `dir`.
fn loops_below(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let f = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            f.trim()
                .starts_with(&*dir.to_string_lossy())
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn assert_nothing_left(scratch: &Path) {
    let left: Vec<String> = std::fs::read_dir(scratch)
        .expect("read the scratch")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "the run left {left:?} in its scratch");
    assert!(
        mounts_below(scratch).is_empty(),
        "{:?}",
        mounts_below(scratch)
    );
    assert!(
        loops_below(scratch).is_empty(),
        "{:?}",
        loops_below(scratch)
    );
}

#[test]
fn the_quick_profile_measures_every_workload_beside_the_reference_tools() {
    if !require_privileged(
        "bench_run::the_quick_profile_measures_every_workload_beside_the_reference_tools",
        "overlay and btrfs loop mounts, podman and containers-storage as root",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let scratch = s.scratch().join("bench-scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let out = s.scratch().join("out");
    let t = Instant::now();
    let o = s
        .bare_command()
        .args(["bench", "run", "--profile", "quick"])
        .args(["--drivers", "overlay,fuse-overlay,vfs,btrfs,devicemapper"])
        // Every workload but build, which its own test runs on fewer drivers (CI's time).
        .args([
            "--workloads",
            "empty,pull,apply,create+mount,start,io,depth,concurrency,space,rmi,gc",
        ])
        .args([
            "--against",
            "skopeo,containers-storage,podman,buildah,fuse-overlayfs",
        ])
        .arg("--scratch")
        .arg(&scratch)
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run strata bench");
    // Its runroots (other tests' runs have theirs beside it).
    let runroots = Path::new("/run").join(format!("strata-bench-{}", o.id()));
    let o = o.wait_with_output().expect("wait for strata bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "strata bench run failed: {stderr}");
    eprintln!("quick profile: {:.0} s", t.elapsed().as_secs_f64());
    // Off a terminal, the whole run's progress is a line per workload.
    for (i, w) in [
        (1, "empty"),
        (2, "pull"),
        (3, "apply"),
        (6, "io"),
        (11, "gc"),
    ] {
        assert!(stderr.contains(&format!("[{i}/11] {w}\n")), "{stderr}");
    }
    assert_nothing_left(&scratch);
    assert!(
        !runroots.exists(),
        "the run left its runroots in {}",
        runroots.display()
    );

    let file = ResultFile::read(&out.join("results.json")).expect("a valid result file");
    assert_eq!(
        file.settings.get("profile").map(String::as_str),
        Some("quick")
    );
    let fs = file
        .machine
        .filesystem
        .as_ref()
        .expect("the scratch's filesystem");
    assert!(!fs.fstype.is_empty() && !fs.source.is_empty(), "{fs:?}");
    assert!(file.machine.cpus > 0 && file.machine.memory_bytes > 0);

    let has = |workload: &str, tool: &str, driver: Option<&str>| {
        file.measurements
            .iter()
            .any(|m| m.workload == workload && m.tool == tool && m.driver.as_deref() == driver)
    };
    // Strata on every driver this machine runs, every workload.
    for d in ["overlay", "fuse-overlay", "vfs", "btrfs"] {
        for w in [
            "pull",
            "apply",
            "apply-rate",
            "create+mount",
            "start",
            "io-seq-write",
            "io-seq-read",
            "io-seq-read-rate",
            "io-small-files",
            "io-find",
            "io-tar",
            "copy-up-large",
            "copy-up-small",
            "copy-up-meta",
            "depth",
            "concurrency",
            "space-image",
            "space-container",
            "rmi",
            "gc",
        ] {
            assert!(
                has(w, "strata", Some(d)),
                "no {w} of strata on {d}; skipped: {:?}",
                file.skipped
            );
        }
    }
    // The reference tools beside it.
    for (w, tool) in [
        ("pull", "skopeo"),
        ("pull", "podman"),
        ("apply", "skopeo"),
        ("create+mount", "containers-storage"),
        ("create+mount", "buildah"),
        ("start", "podman"),
        ("depth", "containers-storage"),
        ("space-image", "containers-storage"),
        ("rmi", "podman"),
    ] {
        for d in ["overlay", "vfs"] {
            assert!(
                has(w, tool, Some(d)),
                "no {w} of {tool} on {d}; skipped: {:?}",
                file.skipped
            );
        }
    }
    assert!(has("io-seq-read", "fuse-overlayfs", Some("fuse-overlay")));
    assert!(
        has("empty", "harness", None),
        "the harness's overhead is measured"
    );
    // Nothing of Strata or of a reference tool on a driver it supports failed.
    let failed: Vec<_> = file
        .skipped
        .iter()
        .filter(|s| !s.what.starts_with("driver ") && !s.what.starts_with("tool "))
        .collect();
    assert!(failed.is_empty(), "sides failed: {failed:?}");
    // What this machine cannot do is said, with why.
    let dm = file
        .skipped
        .iter()
        .find(|s| s.what == "driver devicemapper")
        .expect("devicemapper is skipped here (no device-mapper in this kernel)");
    assert!(dm.why.contains("device-mapper"), "{dm:?}");

    // Scaling points, statistics and sanity of the numbers.
    let depths: BTreeSet<String> = file
        .measurements
        .iter()
        .filter(|m| {
            m.workload == "depth" && m.tool == "strata" && m.driver.as_deref() == Some("overlay")
        })
        .filter_map(|m| m.params.get("depth").cloned())
        .collect();
    assert_eq!(depths, ["1", "2", "4", "8"].map(String::from).into());
    let ns: BTreeSet<String> = file
        .measurements
        .iter()
        .filter(|m| m.workload == "concurrency" && m.tool == "strata")
        .filter_map(|m| m.params.get("n").cloned())
        .collect();
    assert_eq!(ns, ["1", "2", "4"].map(String::from).into());
    for m in &file.measurements {
        assert!(
            m.summary.n >= 1 && m.samples.iter().all(|v| *v >= 0.0),
            "{}",
            m.key()
        );
        if m.unit == "s" && m.workload != "empty" {
            assert!(
                (3..=5).contains(&m.summary.n),
                "{}: {} samples, the quick profile takes 3 to 5",
                m.key(),
                m.summary.n
            );
        }
        let (lo, hi) = m.summary.median_ci;
        assert!(
            lo <= m.summary.median && m.summary.median <= hi,
            "{}",
            m.key()
        );
    }
    let image = file
        .measurements
        .iter()
        .find(|m| {
            m.workload == "space-image" && m.tool == "strata" && m.driver.as_deref() == Some("vfs")
        })
        .expect("space of the image on vfs");
    // The quick image holds 3 x 200 files of 1 to 16 KiB and an 8 MiB file.
    assert!(
        image.summary.median > 8.0 * 1024.0 * 1024.0,
        "{}",
        image.summary.median
    );

    // The report.
    for f in ["report.html", "summary.md"] {
        let p = out.join(f);
        assert!(p.is_file(), "{} is missing", p.display());
    }
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("<svg"), "the report has its plots inline");
    let plots = std::fs::read_dir(out.join("plots")).expect("plots").count();
    assert!(plots >= 5, "{plots} plots");
}

/// A bench run's directories in a fresh test store's scratch.
struct BenchDirs {
    s: Strata,
    scratch: PathBuf,
    out: PathBuf,
}

impl BenchDirs {
    fn new() -> BenchDirs {
        let s = Strata::new("overlay");
        let scratch = s.scratch().join("bench-scratch");
        std::fs::create_dir_all(&scratch).expect("scratch");
        let out = s.scratch().join("out");
        BenchDirs { s, scratch, out }
    }

    /// `strata bench run ARGS --scratch SCRATCH -o OUT`.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.s.bare_command();
        c.args(["bench", "run"])
            .args(args)
            .arg("--scratch")
            .arg(&self.scratch)
            .arg("-o")
            .arg(&self.out);
        c
    }

    /// The result file of a run that succeeded and left nothing in its scratch.
    fn results(&self, o: &std::process::Output) -> ResultFile {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "strata bench run failed: {stderr}");
        assert_nothing_left(&self.scratch);
        ResultFile::read(&self.out.join("results.json")).expect("a valid result file")
    }
}

/// The median of the measurement of `workload` by `tool` on `driver` with `param`.
fn median(file: &ResultFile, workload: &str, tool: &str, driver: &str, param: (&str, &str)) -> f64 {
    file.measurements
        .iter()
        .find(|m| {
            m.workload == workload
                && m.tool == tool
                && m.driver.as_deref() == Some(driver)
                && m.params.get(param.0).map(String::as_str) == Some(param.1)
        })
        .unwrap_or_else(|| panic!("no {workload} {param:?} of {tool} on {driver}"))
        .summary
        .median
}

/// The build workload: strata build beside buildah bud and podman build, cold, cached (5
/// and the profile's many steps) and a big context, on the kernel overlay and on vfs (where
/// every step image is a whole copy, so a cold sample must remove what it made).
#[test]
fn builds_are_measured_beside_buildah_and_podman() {
    if !require_privileged(
        "bench_run::builds_are_measured_beside_buildah_and_podman",
        "overlay, buildah and podman builds as root",
    ) {
        return;
    }
    let dirs = BenchDirs::new();
    let o = dirs
        .command(&["--profile", "quick", "--workloads", "build"])
        .args(["--drivers", "overlay,vfs", "--against", "buildah,podman"])
        // No warm-up: the cached sides must still build their cache before the first sample.
        .args(["--runs", "3", "--warmup", "0"])
        .output()
        .expect("run strata bench");
    let file = dirs.results(&o);
    assert!(file.skipped.is_empty(), "{:?}", file.skipped);
    let find = |workload: &str, tool: &str, driver: &str, param: (&str, &str)| {
        median(&file, workload, tool, driver, param)
    };
    for d in ["overlay", "vfs"] {
        for t in ["strata", "buildah", "podman"] {
            let cold = find("build-cold", t, d, ("steps", "5"));
            let cached = find("build-cached", t, d, ("steps", "5"));
            let many = find("build-cached", t, d, ("steps", "10"));
            let context = find("build-context", t, d, ("cache", "cold"));
            let context_cached = find("build-context", t, d, ("cache", "cached"));
            find("build-context-rate", t, d, ("cache", "cold"));
            // A cold build runs its RUN step in a container; a cached one does not.
            assert!(
                cold > cached,
                "{t} on {d}: cold {cold} s, cached {cached} s"
            );
            // Copying 8 MiB of context into a layer is work on every side; finding that
            // nothing changed is less (the cached case has its cache).
            assert!(context > 0.005, "{t} on {d}: {context} s");
            assert!(
                context_cached < context,
                "{t} on {d}: cached {context_cached} s, cold {context} s"
            );
            assert!(many > 0.0);
        }
    }
}

/// The cri workload: `strata cri serve` beside containerd's CRI plugin, call by call through
/// the pod lifecycle and the list calls, and nothing left after: no pods, servers, shims,
/// bridges or mounts.
#[test]
fn the_cri_is_measured_beside_containerd() {
    if !require_privileged(
        "bench_run::the_cri_is_measured_beside_containerd",
        "CRI servers run pods as root",
    ) {
        return;
    }
    let dirs = BenchDirs::new();
    let o = dirs
        .command(&["--profile", "quick", "--workloads", "cri"])
        .args(["--drivers", "overlay,vfs", "--against", "containerd"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run strata bench");
    // The run names its bridges after its process (the plugin runs in it).
    let bridges: Vec<String> = (0..3)
        .map(|i| format!("sb{}-{i}", o.id() % 10_000_000))
        .collect();
    let runroots = format!("/strata-bench-{}/", o.id());
    let o = o.wait_with_output().expect("wait for strata bench");
    let file = dirs.results(&o);
    assert!(file.skipped.is_empty(), "{:?}", file.skipped);
    let of =
        |tool: &str, driver: &str, call: &str| median(&file, "cri", tool, driver, ("call", call));
    for (tool, driver) in [
        ("strata", "overlay"),
        ("strata", "vfs"),
        ("containerd", "overlay"),
    ] {
        for call in [
            "RunPodSandbox",
            "CreateContainer",
            "StartContainer",
            "StopContainer",
            "RemoveContainer",
            "StopPodSandbox",
            "RemovePodSandbox",
            "ListImages",
            "ImageStatus",
            "ListContainers",
        ] {
            assert!(of(tool, driver, call) > 0.0, "{call} of {tool}");
        }
        // Starting a pod's infra container and network costs more than reading a list.
        assert!(of(tool, driver, "RunPodSandbox") > of(tool, driver, "ImageStatus"));
    }
    let images = file
        .measurements
        .iter()
        .find(|m| m.params.get("call").map(String::as_str) == Some("ListImages"))
        .and_then(|m| m.params.get("images").cloned());
    assert_eq!(
        images.as_deref(),
        Some("20"),
        "the quick profile's image count"
    );
    // The servers, their shims, pods and bridges are gone.
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&*dirs.scratch.to_string_lossy()) || c.contains(&runroots))
        .collect();
    assert!(procs.is_empty(), "left running: {procs:?}");
    for b in bridges {
        assert!(
            !Path::new("/sys/class/net").join(&b).exists(),
            "the bridge {b} is left"
        );
    }
}

/// `--cold` as root: the page cache is dropped before every sample, so reading the image's
/// large file from a loop-mounted ext4 (its backing file's pages dropped too) is slower than
/// the same read warm, and the result file says the caches were cold.
#[test]
fn cold_caches_make_reads_come_from_the_disk() {
    if !require_privileged(
        "bench_run::cold_caches_make_reads_come_from_the_disk",
        "dropping the page cache and a loop-mounted ext4",
    ) {
        return;
    }
    let read = |cold: bool| {
        let dirs = BenchDirs::new();
        let mut c = dirs.command(&["--profile", "quick", "--workloads", "io"]);
        c.args([
            "--drivers",
            "overlay",
            "--against",
            "none",
            "--scratch-fs",
            "ext4",
        ])
        .args(["--runs", "5", "--warmup", "1"]);
        if cold {
            c.arg("--cold");
        }
        let file = dirs.results(&c.output().expect("run strata bench"));
        assert_eq!(
            file.settings.get("cold caches").map(String::as_str),
            Some(if cold { "true" } else { "false" })
        );
        assert_eq!(
            file.machine.filesystem.as_ref().map(|f| f.fstype.as_str()),
            Some("ext4")
        );
        file.measurements
            .iter()
            .find(|m| m.workload == "io-seq-read" && m.tool == "strata")
            .expect("io-seq-read")
            .summary
            .median
    };
    let warm = read(false);
    let cold = read(true);
    assert!(
        cold > 1.5 * warm,
        "reading 8 MiB cold took {cold} s, warm {warm} s"
    );
}

#[test]
fn ctrl_c_stops_the_run_and_cleans_up() {
    if !require_privileged(
        "bench_run::ctrl_c_stops_the_run_and_cleans_up",
        "a loop-mounted scratch filesystem",
    ) {
        return;
    }
    let s = Strata::new("overlay");
    let scratch = s.scratch().join("bench-scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut child = s
        .bare_command()
        .args([
            "bench",
            "run",
            "--profile",
            "standard",
            "--scratch-fs",
            "ext4",
        ])
        .args(["--drivers", "overlay,vfs", "--against", "none"])
        .args(["--workloads", "create+mount,depth,concurrency"])
        .arg("--scratch")
        .arg(&scratch)
        .arg("-o")
        .arg(s.scratch().join("out"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start strata bench");
    // Interrupt once the loop-mounted scratch holds the run's first stores (each sample
    // removes the container it made, so mounts come and go). Runroots are in
    // /run/strata-bench-PID: podman needs short runroot paths.
    let runroots = Path::new("/run").join(format!("strata-bench-{}", child.id()));
    let stores = scratch.join(format!("strata-bench-{}/ext4/work/stores", child.id()));
    let t = Instant::now();
    while mounts_below(&scratch).is_empty()
        || std::fs::read_dir(&stores).map_or(0, |d| d.count()) < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "the run made no store in three minutes"
        );
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the run ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Into the measuring.
    std::thread::sleep(Duration::from_millis(500));
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("send SIGINT");
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run did not stop within a minute of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_nothing_left(&scratch);
    assert!(
        mounts_below(&runroots).is_empty(),
        "{:?}",
        mounts_below(&runroots)
    );
    assert!(!runroots.exists(), "{} is left", runroots.display());
    assert!(
        !s.scratch().join("out").join("results.json").exists(),
        "an interrupted run writes no results"
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let s = Strata::new("vfs");
    let out = s.scratch().join("out");
    for (args, want) in [
        (vec!["--drivers", "zfs"], "unknown driver"),
        (vec!["--workloads", "nope"], "unknown workload"),
        (vec!["--against", "docker"], "unknown reference tool"),
        (
            vec!["--profile", "huge"],
            "possible values: quick, standard, full",
        ),
        (vec!["--synthetic", "layers=0"], "layers"),
        (vec!["--image", "docker://busybox"], "OCI layout"),
        (vec!["--image", "oci:/nonexistent"], "not an OCI layout"),
    ] {
        let o = s
            .bare_command()
            .args(["bench", "run", "--scratch"])
            .arg(s.scratch())
            .arg("-o")
            .arg(&out)
            .args(&args)
            .output()
            .expect("run strata bench");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // An occupied output directory is refused before anything runs.
    std::fs::create_dir_all(&out).expect("out");
    std::fs::write(out.join("results.json"), "{}").expect("write");
    let o = s
        .bare_command()
        .args([
            "bench",
            "run",
            "--profile",
            "quick",
            "--workloads",
            "empty",
            "-o",
        ])
        .arg(&out)
        .output()
        .expect("run strata bench");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
}
