//! Helpers of the run front end's black-box tests: a store with the busybox fixture, and
//! waiting for something a container does.

use std::time::{Duration, Instant};

use crate::{fixtures, Strata};

/// A store (overlay) with the busybox fixture loaded as `localhost/busybox:latest`, so
/// `busybox` resolves as a short name.
pub fn busybox_store() -> Strata {
    let s = Strata::new("overlay");
    let id = s.load(&format!("{}:latest", fixtures::oci("busybox")), &[]);
    s.ok(["tag", &id, "busybox"]);
    s
}

/// Polls `f` every 50 ms until it is true; fails the test naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
