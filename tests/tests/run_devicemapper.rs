//! The run front end on a devicemapper store, black-box: the real `strata` binary with
//! `--driver devicemapper` and its own thin pool on sparse loop files in the store, the busybox
//! fixture and both OCI runtimes. This kernel has no device-mapper, so `cargo xtask test` runs
//! it in its VM tier (Debian's stock kernel under qemu) and leaves it out of the host tier.
//!
//! What a user of a thin-pool host checks: a container's root is its own thin device, exit
//! codes and output pass through, detached containers exec and go away, a file written inside
//! shows in `diff` and survives `commit`, and removing containers gives their devices back.

use strata_tests::containers::wait_for;
use strata_tests::{fixtures, require_kernel, KernelFeature, Strata};

const RUNTIMES: &[&str] = &["crun", "runc"];

/// The tests count the machine's thin devices: one at a time.
static DEVICES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The store's thin devices, by name (`dmsetup ls`).
fn thin_devices() -> Vec<String> {
    let out = std::process::Command::new("dmsetup")
        .args(["ls", "--target", "thin"])
        .output()
        .expect("dmsetup ls");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| !l.contains("No devices found"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn privileged_devicemapper_runs_containers_on_thin_devices() {
    if !require_kernel(
        "run_devicemapper::privileged_devicemapper_runs_containers_on_thin_devices",
        KernelFeature::DeviceMapper,
        "a thin pool on loop devices and containers on it",
    ) {
        return;
    }
    let _one_at_a_time = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    let s = Strata::new("devicemapper");
    std::fs::write(
        &s.config,
        "storage_opts = [\"dm.loopdatasize=4G\", \"dm.loopmetadatasize=128M\", \"dm.basesize=1G\"]\n",
    )
    .expect("write the store's config");
    let id = s.load(&format!("{}:latest", fixtures::oci("busybox")), &[]);
    s.ok(["tag", &id, "busybox"]);
    let image_devices = thin_devices().len();
    for rt in RUNTIMES {
        // The root filesystem is the container's own thin device's ext4.
        let out = s.run([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "grep ' / ' /proc/self/mountinfo; echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(out.status.code(), Some(3), "{rt}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(" ext4 "),
            "{rt}: root is not the thin device's ext4: {stdout}"
        );
        assert!(stdout.ends_with("out\n"), "{rt}: {stdout}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n", "{rt}");

        let name = format!("dm-{rt}");
        s.ok([
            "run",
            "-d",
            "--runtime",
            rt,
            "--network",
            "none",
            "--name",
            &name,
            "busybox",
            "sleep",
            "300",
        ]);
        assert_eq!(
            thin_devices().len(),
            image_devices + 1,
            "{rt}: one device more"
        );
        s.ok([
            "exec",
            &name,
            "sh",
            "-c",
            "echo kept > /marker && rm /bin/dirname",
        ]);
        let diff = s.ok(["diff", &name]);
        assert!(diff.contains("A /marker"), "{rt}: {diff}");
        assert!(diff.contains("D /bin/dirname"), "{rt}: {diff}");
        let img = format!("localhost/dm-commit-{rt}");
        s.ok(["commit", &name, &img]);
        s.ok(["rm", "-f", &name]);
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            &img,
            "sh",
            "-c",
            "cat /marker; test -e /bin/dirname && echo present || echo gone",
        ]);
        assert_eq!(out, "kept\ngone\n", "{rt}: the committed image");
        s.ok(["rmi", &img]);
        wait_for("devices to go", std::time::Duration::from_secs(10), || {
            thin_devices().len() == image_devices
        });
    }
}

/// `strata bench run` on devicemapper (issue 16): the bench makes each store's thin pool on
/// loop files of its own, measures the storage workloads on thin devices, and gives every
/// device and loop back. The guest is emulated, so its numbers say that it works, not how fast.
#[test]
fn privileged_bench_measures_devicemapper_and_gives_the_devices_back() {
    if !require_kernel(
        "run_devicemapper::privileged_bench_measures_devicemapper_and_gives_the_devices_back",
        KernelFeature::DeviceMapper,
        "strata bench run on thin pools",
    ) {
        return;
    }
    let _one_at_a_time = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    let s = Strata::new("devicemapper");
    let scratch = s.scratch().join("bench-scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let out = s.scratch().join("out");
    let before = thin_devices();
    let o = s
        .bare_command()
        .args([
            "bench",
            "run",
            "--profile",
            "quick",
            "--drivers",
            "devicemapper",
        ])
        .args([
            "--workloads",
            "apply,create+mount,io,space,rmi",
            "--against",
            "none",
        ])
        .args(["--runs", "3", "--warmup", "0"])
        .arg("--scratch")
        .arg(&scratch)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run strata bench");
    assert!(
        o.status.success(),
        "strata bench run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let file = strata_plugin_benchkit::results::ResultFile::read(&out.join("results.json"))
        .expect("a valid result file");
    assert!(file.skipped.is_empty(), "{:?}", file.skipped);
    for w in [
        "apply",
        "create+mount",
        "io-seq-write",
        "io-small-files",
        "copy-up-large",
        "space-image",
        "space-container",
        "rmi",
    ] {
        let m = file
            .measurements
            .iter()
            .find(|m| m.workload == w && m.driver.as_deref() == Some("devicemapper"))
            .unwrap_or_else(|| panic!("no {w} on devicemapper"));
        assert!(m.summary.median > 0.0, "{w}: {:?}", m.summary);
    }
    assert_eq!(thin_devices(), before, "the run left thin devices");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .expect("scratch")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the run left {left:?}");
}
