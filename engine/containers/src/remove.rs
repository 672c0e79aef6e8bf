//! `remove`: a container and everything it holds; running ones only with `force` (killed
//! first).

use std::time::Duration;

use strata_types::ErrorKind;

use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::state::{self, Status};

impl Container<'_> {
    /// Removes the container; refuses a running one unless `force`.
    pub fn remove(&self, force: bool) -> Result<()> {
        let st = self.state()?;
        if st.status == Status::Running {
            if !force {
                return Err(Error::precondition(format!(
                    "container {} is running: stop it first or use rm -f",
                    self.name()
                )));
            }
            let rt = self.runtime(&st)?;
            rt.kill(self.id(), "KILL", true)
                .or_else(|e| self.ignore_gone(&rt, e))?;
            match self.wait(Some(Duration::from_secs(30)))? {
                Some(s) if s.status == Status::Running => {
                    // The monitor is gone: nobody will write an exit file.
                    let mut st = self.saved_state()?;
                    st.status = Status::Exited;
                    st.save(&self.paths)?;
                }
                None => {
                    // Not ended within the wait: end the monitor too (ours, by pid and start
                    // time), or it would go on writing into the directories being removed.
                    let st = self.saved_state()?;
                    if st.monitor_alive() {
                        if let Some(pid) = st.monitor_pid.and_then(rustix::process::Pid::from_raw) {
                            let _ =
                                rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        }
                    }
                }
                Some(_) => {}
            }
        }
        {
            let _lock = state::lock(&self.paths)?;
            let mut st = self.saved_state()?;
            if st.status == Status::Running {
                // Killed but the monitor is gone: nobody else will record the end.
                st.status = Status::Exited;
            }
            let rt = self.runtime(&st)?;
            if !st.cleaned || st.status == Status::Created {
                match self.cleanup_locked(&mut st, &rt) {
                    // The state file goes with the container: on a full disk its last save
                    // fails after the cleanup itself is done, and removing the container is
                    // what frees the space.
                    Err(e) if e.is_disk_full() => {
                        tracing::warn!("{}: cannot save its state ({e}); removing it", self.name())
                    }
                    other => other?,
                }
            }
        }
        match self.engine.store().remove_container(self.id()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove container {}", self.name())),
        }
    }
}
