//! The shared driver conformance suite, run against fuse-overlay as root, and the whole suite
//! again as a non-root user: this binary re-runs itself as `strata-rootless` inside that
//! user's own user namespace (`strata unshare`, the rootless store's namespace, with the
//! user's subordinate ids), where the driver works rootless (`user.overlay.*` xattrs, a FUSE
//! mount owned by the user's namespace, no real root anywhere).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_driver_api::{Driver, DriverConfig};
use strata_driver_fuse_overlay::FuseOverlayDriver;

fn make(home: &Path) -> Box<dyn Driver> {
    let config = DriverConfig {
        home: home.to_path_buf(),
        rootless: strata_mount::in_user_namespace(),
        options: vec![],
    };
    Box::new(FuseOverlayDriver::open(&config).expect("open the fuse-overlay driver"))
}

strata_driver_conformance::conformance_tests!(make);

/// Set in the environment of the copy of this binary that runs as the non-root user.
const CHILD: &str = "STRATA_FUSE_CONFORMANCE_NON_ROOT";
const USER: &str = "strata-rootless";

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The user's uid, creating the user (with subordinate ids) when missing.
fn user_uid() -> u32 {
    strata_tests::users::ensure_user(USER, true).uid
}

fn copy_exe(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn the_suite_passes_as_a_non_root_user() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if !strata_tests::require_privileged(
        "fuse_overlay::conformance_as_non_root",
        "runs the conformance suite as a non-root user in its user namespace (runuser, newuidmap, /dev/fuse)",
    ) {
        return;
    }
    let uid = user_uid();
    let fuse_mode = std::fs::metadata("/dev/fuse")
        .expect("/dev/fuse")
        .permissions()
        .mode();
    assert_eq!(
        fuse_mode & 0o006,
        0o006,
        "/dev/fuse must be open to users (mode 0666, Debian's default; `cargo xtask setup` sets it)"
    );
    let dir = tempfile::Builder::new()
        .prefix("strata-fuse-user-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for sub in ["run", "home", "markers"] {
        let p = dir.path().join(sub);
        std::fs::create_dir(&p).expect("mkdir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        rustix::fs::chown(&p, Some(rustix::fs::Uid::from_raw(uid)), None).expect("chown");
    }
    // The user may not reach the build directory: copies of this binary, strata and the
    // filesystem server.
    let me = std::env::current_exe().expect("current exe");
    let test_bin = dir.path().join("conformance");
    copy_exe(&me, &test_bin);
    let strata = dir.path().join("strata");
    copy_exe(strata_tests::cli::strata_bin(), &strata);
    let server: PathBuf = dir.path().join("strata-fuse-overlay");
    copy_exe(
        &strata_mount::fuse_server_binary()
            .expect("strata-fuse-overlay is built (cargo build -p strata-tools-fuse-overlay)"),
        &server,
    );
    let out = run(Command::new("runuser")
        .args(["-u", USER, "--", "env", "-i"])
        .arg(format!("HOME={}", dir.path().join("home").display()))
        .arg(format!(
            "XDG_RUNTIME_DIR={}",
            dir.path().join("run").display()
        ))
        .arg(format!("STRATA_FUSE_OVERLAY={}", server.display()))
        .arg(format!(
            "STRATA_PRIVILEGED_MARKERS={}",
            dir.path().join("markers").display()
        ))
        .arg(format!("{CHILD}=1"))
        .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(&strata)
        .arg("unshare")
        .arg(&test_bin)
        .args([
            "--test-threads=2",
            "--skip",
            "the_suite_passes_as_a_non_root_user",
        ]));
    // The user's pause process holds its namespaces: end it (by its recorded pid).
    let pidfile = dir.path().join("run/strata/pause.pid");
    if let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the suite as {USER} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok. 13 passed"),
        "all 13 checks ran as {USER}:\n{stdout}"
    );
}
