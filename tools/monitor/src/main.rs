//! `strata-monitor`: the per-container monitor (conmon's job).
//!
//! Started by a front end through `strata_engine_monitor::launch`, it creates the container
//! with the OCI runtime, reports the container's pid on its sync fd, then outlives the front
//! end: it holds the container's stdio pipes or terminal, writes the CRI log, serves attach
//! clients, records the exit status and runs the exit (cleanup) command. The command line is
//! documented in `strata_engine_monitor::args`, the state directory in that crate's docs, the
//! server in `strata_engine_monitor::server`. This binary is only its entry point.

use std::process::ExitCode;

use strata_engine_monitor::{server, MonitorArgs};

fn main() -> ExitCode {
    match MonitorArgs::parse(std::env::args_os().skip(1)) {
        Ok((args, sync_fd)) => server::run(args, sync_fd),
        Err(e) => {
            eprintln!("strata-monitor: {e}");
            ExitCode::from(2)
        }
    }
}
