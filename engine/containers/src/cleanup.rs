//! Cleanup after an exit: the runtime's record, the network, the mount; and, for `--rm`
//! containers, the container itself. Idempotent and serialised by the container's lock: it
//! runs from the attached CLI, from the monitor's exit command (`strata container cleanup`),
//! or from the next `start`, whichever comes first.

use strata_types::ErrorKind;

use crate::container::{runtime_alive, Container};
use crate::error::Result;
use crate::runtime::Runtime;
use crate::state::{self, State, Status};

impl Container<'_> {
    /// Cleans up after an exit; removes the container if it was made with `--rm`. Safe to
    /// run twice and from two processes at once.
    pub fn cleanup(&self) -> Result<()> {
        // Whoever came first (usually the stop that made the container exit) cleaned up
        // already: then the monitor's exit command ends here, without taking the lock a
        // remove may be waiting for. A state file is replaced whole, so reading it unlocked
        // is safe; `cleaned` is set only after the exit and cleared only by a new start.
        let done = |st: &State| st.cleaned && st.status != Status::Running;
        if !self.config.remove && self.saved_state().is_ok_and(|st| done(&st)) {
            return Ok(());
        }
        {
            let _lock = state::lock(&self.paths)?;
            let mut st = self.saved_state()?;
            if done(&st) && !self.config.remove {
                return Ok(());
            }
            let rt = self.runtime(&st)?;
            st.refresh(&self.paths, || runtime_alive(&rt, self.id()));
            if st.status == Status::Running {
                return Ok(()); // restarted meanwhile: nothing to clean
            }
            let saved = if !st.cleaned {
                self.cleanup_locked(&mut st, &rt)
            } else {
                st.save(&self.paths)
            };
            match saved {
                // A `--rm` container's state goes with it: on a full disk (often what the
                // container itself did) the last save fails, and removing it frees the space.
                Err(e) if e.is_disk_full() && self.config.remove => {
                    tracing::warn!("{}: cannot save its state ({e}); removing it", self.name())
                }
                other => other?,
            }
        }
        if self.config.remove {
            match self.engine.store().remove_container(self.id()) {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The cleanup itself; the caller holds the lock.
    pub(crate) fn cleanup_locked(&self, st: &mut State, rt: &Runtime) -> Result<()> {
        rt.delete(self.id())?;
        crate::netns::teardown(self, st)?;
        if crate::userns_root::needed(self.engine.rootless(), self.id_map()) {
            crate::userns_root::hide(self.id())?;
        }
        self.engine.store().unmount(self.id())?;
        st.cleaned = true;
        st.save(&self.paths)?;
        Ok(())
    }
}
