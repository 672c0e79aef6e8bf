//! Fault injection for the crash tests: with `STRATA_DM_FAULT_ABORT_AT=<point>` in the
//! environment, the process aborts (as if killed) when it reaches that point, right after the
//! state change the point names was persisted. The crash tests run an operation in a child
//! process once per point, then reopen the driver and check that nothing leaked.
//!
//! Every point the driver passes is listed in [`POINTS`]; a point not listed there is a bug
//! (checked in debug builds). Without the variable this costs one cached lookup per point.
//!
//! What it does not do: simulate partial writes (records are written atomically) or kernel
//! crashes (the kernel keeps its devices; a reboot is what `recover` also handles).

use std::sync::OnceLock;

/// The environment variable naming the point to abort at.
pub const ENV: &str = "STRATA_DM_FAULT_ABORT_AT";

/// Every fault point, in the order an operation passes them.
pub const POINTS: &[&str] = &[
    // stage()
    "stage:creating",
    "snapshot:suspended",
    "stage:created",
    "stage:activating",
    "stage:device",
    "stage:active",
    // commit()
    "commit:deactivating",
    "commit:unmounted",
    "commit:created",
    "commit:renamed",
    "commit:activating",
    "commit:device",
    "commit:active",
    // create_writable()
    "writable:creating",
    "writable:created",
    "writable:activating",
    "writable:device",
    "writable:active",
    // remove()
    "remove:renamed",
    "remove:removing",
    "remove:unmounted",
    "remove:device-removed",
    "remove:thin-deleted",
];

fn armed() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var(ENV).ok()).as_deref()
}

/// Aborts the process if `name` is the armed point.
pub fn point(name: &'static str) {
    debug_assert!(
        POINTS.contains(&name),
        "fault point {name} is not in POINTS"
    );
    if armed() == Some(name) {
        eprintln!("strata-driver-devicemapper: {ENV}={name}: aborting here");
        std::process::abort();
    }
}
