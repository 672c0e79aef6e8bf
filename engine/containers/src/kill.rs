//! `kill`: a signal to the container's init; and [`Signaller`], which an attached front end
//! hands to its signal-forwarding thread.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::Status;

/// Sends signals to one container's init from anywhere (it owns what it needs and borrows
/// nothing): podman's `--sig-proxy`.
#[derive(Debug, Clone)]
pub struct Signaller {
    runtime: Runtime,
    id: String,
}

impl Signaller {
    /// Sends `signal` (`TERM`, `SIGTERM` or a number); the caller decides what a failure
    /// means (a container that just ended refuses it).
    pub fn send(&self, signal: &str) -> Result<()> {
        self.runtime
            .kill(&self.id, signal.trim_start_matches("SIG"), false)
    }
}

impl Container<'_> {
    /// Sends `signal` (a name such as `TERM`, `SIGTERM`, or a number) to the container's
    /// init; refused unless the container is running.
    pub fn kill(&self, signal: &str) -> Result<()> {
        let st = self.state()?;
        if st.status != Status::Running {
            return Err(Error::precondition(format!(
                "container {} is not running (it is {})",
                self.name(),
                st.status.as_str()
            )));
        }
        let rt = self.runtime(&st)?;
        rt.kill(self.id(), signal.trim_start_matches("SIG"), false)
    }

    /// A [`Signaller`] for this container as it was last started.
    pub fn signaller(&self) -> Result<Signaller> {
        let st = self.saved_state()?;
        Ok(Signaller {
            runtime: self.runtime(&st)?,
            id: self.id().to_owned(),
        })
    }
}
