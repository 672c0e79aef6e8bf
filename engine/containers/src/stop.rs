//! `stop`: the stop signal, then SIGKILL after the timeout; then cleanup.

use std::time::Duration;

use crate::container::{runtime_alive, Container};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::Status;

impl Container<'_> {
    /// Stops a running container (its stop signal, SIGKILL after `timeout`) and cleans up
    /// after it; a container that is not running is only cleaned up.
    pub fn stop(&self, timeout: Duration) -> Result<()> {
        let st = self.state()?;
        if st.status == Status::Running {
            let rt = self.runtime(&st)?;
            let sig = self.config.stop_signal.trim_start_matches("SIG").to_owned();
            let sig = if sig.is_empty() {
                "TERM".to_owned()
            } else {
                sig
            };
            if let Err(e) = rt.kill(self.id(), &sig, false) {
                tracing::debug!(error = %e, "stop signal not delivered");
            }
            if self.wait(Some(timeout))?.is_none() {
                tracing::info!(
                    container = self.short_id(),
                    "did not stop in time; sending SIGKILL"
                );
                rt.kill(self.id(), "KILL", true)
                    .or_else(|e| self.ignore_gone(&rt, e))?;
                self.wait(Some(Duration::from_secs(30)))?;
            }
        }
        self.cleanup()
    }

    /// A failed kill is fine when the runtime says the container is gone anyway.
    pub(crate) fn ignore_gone(&self, rt: &Runtime, e: Error) -> Result<()> {
        match runtime_alive(rt, self.id()) {
            Some(false) => Ok(()),
            _ => Err(e),
        }
    }
}
