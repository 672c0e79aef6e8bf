//! The per-container monitor (conmon's job): the server the `strata-monitor` binary
//! (`tools/monitor`) runs, and the client half front ends use.
//!
//! One monitor runs per container. It is started by the container engine (for every front
//! end) through [`launch::launch`], outlives the process that started it, holds the container's stdio
//! pipes or terminal, writes the container log in the Kubernetes CRI format, records the exit
//! status, serves attach clients over a unix socket and runs a cleanup command once the
//! container has exited.
//!
//! This crate gives the front ends everything they need to talk to a monitor: the attach
//! [`protocol`] and its [`attach`] client, the [`exitfile`] and [`logfile`] readers, the
//! [`timestamp`] format both use, and the [`launch()`] call with its [`args::MonitorArgs`].
//! It deliberately does not start or stop containers (`runtime start`, `kill`, `delete` are the
//! engine's job) and does no terminal handling on the client side (raw mode, signal
//! forwarding: the front ends do that).
//!
//! # The state directory (format version [`statedir::FORMAT_VERSION`] = 1)
//!
//! The front end creates one volatile directory per container and passes it as `--state-dir`;
//! the monitor fills it:
//!
//! ```text
//! <state-dir>/
//! ├── monitor.pid    the monitor's pid, decimal and "\n"; written at startup, left behind at exit
//! ├── monitor.log    the monitor's debug trail, one line per event (startup, exit, errors)
//! ├── attach         unix socket (mode 0600) serving attach clients; removed when the monitor
//! │                  stops serving (after the exit frame, before the exit command runs)
//! ├── console.sock   (--terminal only) unix socket the runtime sends the pty master on;
//! │                  removed as soon as the pty has arrived
//! ├── pid            the container's init pid, written by the runtime (`--pid-file`)
//! ├── runtime.log    the runtime's own log (JSON lines); its errors explain a failed `create`
//! └── exit           the ExitStatus as JSON, written atomically (exit.tmp + rename) once the
//!                    container has exited; absent while it runs
//! ```
//!
//! The container log lives wherever `--log-path` says (with its rotated predecessor at
//! `<log-path>.1`), usually outside the state directory so that it survives a reboot.

pub mod args;
pub mod attach;
pub mod exitfile;
pub mod launch;
pub mod logfile;
pub mod protocol;
pub mod server;
pub mod statedir;
pub mod timestamp;

pub use args::MonitorArgs;
pub use attach::{AttachClient, ServerMessage};
pub use launch::{launch, LaunchError, Launched};
pub use logfile::{LogRecord, LogWriter, Stream};
pub use protocol::{ExitStatus, FrameType};
