//! `kill`: a signal to the container's init.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::state::Status;

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
}
