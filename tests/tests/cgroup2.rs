//! The run front end on a pure cgroup v2 host, as root, on crun and runc. This machine is
//! hybrid (v1), so `cargo xtask test` runs these in its VM tier (Debian's stock kernel under
//! qemu, cgroup2 mounted at /sys/fs/cgroup) and leaves them out of the host tier
//! (`STRATA_LEAVE_OUT=cgroup2`). Rootless limits on a delegated v2 subtree are in rootless.rs.

use std::path::Path;

use strata_tests::containers::busybox_store;
use strata_tests::{require_kernel, KernelFeature};

const RUNTIMES: &[&str] = &["crun", "runc"];

#[test]
fn privileged_cgroup2_limits_land_in_a_private_cgroup_namespace() {
    if !require_kernel(
        "cgroup2::privileged_cgroup2_limits_land_in_a_private_cgroup_namespace",
        KernelFeature::Cgroup2,
        "containers with resource limits on cgroup v2",
    ) {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
        // Inside: its own cgroup namespace (it sees itself at the root) with the limits.
        let out = s.ok([
            "run",
            "--rm",
            "--runtime",
            rt,
            "--network",
            "none",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max \
             /sys/fs/cgroup/cpu.max",
        ]);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["0::/", "67108864", "50", "50000 100000"],
            "{rt}: cgroup and limits inside"
        );
        let name = format!("lim-{rt}");
        let id = s
            .ok([
                "run",
                "-d",
                "--runtime",
                rt,
                "--network",
                "none",
                "--name",
                &name,
                "--memory",
                "64m",
                "--pids-limit",
                "50",
                "busybox",
                "sleep",
                "300",
            ])
            .trim()
            .to_owned();
        // On the host: the cgroupfs path strata asked for, with the container's processes.
        let cg = Path::new("/sys/fs/cgroup/strata").join(&id);
        let procs = std::fs::read_to_string(cg.join("cgroup.procs"))
            .unwrap_or_else(|e| panic!("{rt}: {}: {e}", cg.display()));
        assert!(
            !procs.trim().is_empty(),
            "{rt}: no process in {}",
            cg.display()
        );
        // A fork bomb stops at the pids limit instead of taking the host down.
        s.run([
            "exec",
            &name,
            "sh",
            "-c",
            "for i in $(seq 1 80); do sleep 60 & done 2>/dev/null; true",
        ]);
        let current: u32 = std::fs::read_to_string(cg.join("pids.current"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            (30..=50).contains(&current),
            "{rt}: {current} processes under a pids limit of 50 (80 were asked for)"
        );
        s.ok(["rm", "-f", &name]);
        assert!(!cg.exists(), "{rt}: cgroup left: {}", cg.display());
    }
}

#[test]
fn privileged_cgroup2_run_rm_exit_codes_and_stop_work() {
    if !require_kernel(
        "cgroup2::privileged_cgroup2_run_rm_exit_codes_and_stop_work",
        KernelFeature::Cgroup2,
        "containers on cgroup v2",
    ) {
        return;
    }
    let s = busybox_store();
    for rt in RUNTIMES {
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
            "echo hi; exit 3",
        ]);
        assert_eq!(out.status.code(), Some(3), "{rt}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{rt}");
        let name = format!("stop-{rt}");
        let id = s.ok([
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
        let cg = Path::new("/sys/fs/cgroup/strata").join(id.trim());
        assert!(cg.is_dir(), "{rt}: {} while it runs", cg.display());
        s.ok(["stop", "-t", "1", &name]);
        let st = s.json(["inspect", "--type", "container", &name]);
        assert_eq!(st[0]["State"]["ExitCode"], 137, "{rt}");
        s.ok(["rm", &name]);
        // Other tests run containers at the same time: only this one's cgroup is checked.
        assert!(!cg.exists(), "{rt}: cgroup left: {}", cg.display());
    }
}
