//! Recovery decisions: given a record's role and persisted state, and what the kernel shows
//! (does the device exist, is it suspended, is its filesystem mounted), the steps that bring
//! it back to a state at rest. Pure, so every decision is unit-tested; `recover` carries the
//! steps out.
//!
//! The rules:
//! - Whatever was never handed out is rolled back: a device still `creating`, a staging area
//!   whose process died (any state), a base device whose filesystem was never finished.
//! - A committed layer or container is rolled *forward* to `active` (mounted): its payload is
//!   complete once its record reached `created` in `devices/`. An existing device is reused
//!   rather than removed (a view may hold it open), unless it has no table loaded.
//! - Records in `removing/` are not planned: every removal step is idempotent, so `remove`
//!   simply runs the removal again (deferring to the kernel where a device is busy).
//! - A suspended device is always resumed first (a process died between the suspend and the
//!   resume around `create_snap`), or every reader of its filesystem would hang.
//!
//! What it does not do: touch anything.

use crate::record::State;

/// Where a record lives, which decides what "at rest" means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `base.json`: at rest when `created` (inactive) and formatted.
    Base { formatted: bool },
    /// `devices/<key>.json`: at rest when `active`.
    Key,
    /// `staging/<name>.json` whose lock is free: its process died.
    DeadStaging,
}

/// What the kernel shows for the record's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    pub device: bool,
    /// The device has a table loaded (a crash between creating a device and loading its
    /// table leaves one without).
    pub live: bool,
    pub suspended: bool,
    pub mounted: bool,
}

/// One recovery step, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Resume,
    Unmount,
    RemoveDevice,
    /// Delete the thin id from the pool (absent is fine).
    DeleteThin,
    /// Delete the record.
    Forget,
    /// Persist `created` (the device is down).
    MarkCreated,
    /// Persist `active` (device and mount are up).
    MarkActive,
    /// Mount the existing device and persist `active`.
    Mount,
    /// created → activating → active, as a normal activation.
    Activate,
}

/// The steps that bring a record to rest (empty: it already is).
pub fn plan(role: Role, state: State, seen: Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    if seen.device && seen.suspended {
        steps.push(Step::Resume);
    }
    let teardown = |steps: &mut Vec<Step>| {
        if seen.mounted {
            steps.push(Step::Unmount);
        }
        if seen.device {
            steps.push(Step::RemoveDevice);
        }
    };
    let rollback = |steps: &mut Vec<Step>| {
        teardown(steps);
        steps.push(Step::DeleteThin);
        steps.push(Step::Forget);
    };
    match (role, state) {
        (Role::DeadStaging, _)
        | (_, State::Creating | State::Removing)
        | (Role::Base { formatted: false }, _) => rollback(&mut steps),
        (Role::Base { formatted: true }, State::Created) if !seen.device && !seen.mounted => {}
        (Role::Base { formatted: true }, _) => {
            teardown(&mut steps);
            steps.push(Step::MarkCreated);
        }
        (Role::Key, _) => match (seen.device && seen.live, seen.mounted) {
            (true, true) if state == State::Active => {}
            (true, true) => steps.push(Step::MarkActive),
            (true, false) => steps.push(Step::Mount),
            (false, mounted) => {
                if mounted {
                    steps.push(Step::Unmount);
                }
                if seen.device {
                    steps.push(Step::RemoveDevice);
                }
                if state != State::Created {
                    steps.push(Step::MarkCreated);
                }
                steps.push(Step::Activate);
            }
        },
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;
    use Step::*;

    const NOTHING: Observed = Observed {
        device: false,
        live: false,
        suspended: false,
        mounted: false,
    };
    const UP: Observed = Observed {
        device: true,
        live: true,
        suspended: false,
        mounted: true,
    };
    const DEVICE_ONLY: Observed = Observed {
        device: true,
        live: true,
        suspended: false,
        mounted: false,
    };
    const NO_TABLE: Observed = Observed {
        device: true,
        live: false,
        suspended: false,
        mounted: false,
    };
    const SUSPENDED: Observed = Observed {
        device: true,
        live: true,
        suspended: true,
        mounted: true,
    };

    #[test]
    fn committed_keys_at_rest_are_left_alone() {
        assert_eq!(plan(Role::Key, Active, UP), []);
        assert_eq!(plan(Role::Base { formatted: true }, Created, NOTHING), []);
    }

    #[test]
    fn committed_keys_are_rolled_forward_to_active() {
        // After a reboot: the record says active, the kernel has nothing.
        assert_eq!(plan(Role::Key, Active, NOTHING), [MarkCreated, Activate]);
        assert_eq!(plan(Role::Key, Created, NOTHING), [Activate]);
        // Died while activating, after the device was made but before the mount: the device
        // is reused, not removed (removing could fail if something opened it meanwhile).
        assert_eq!(plan(Role::Key, Activating, DEVICE_ONLY), [Mount]);
        assert_eq!(plan(Role::Key, Active, DEVICE_ONLY), [Mount]);
        // Died after the mount but before persisting active, or while deactivating before
        // anything was undone.
        assert_eq!(plan(Role::Key, Activating, UP), [MarkActive]);
        assert_eq!(plan(Role::Key, Deactivating, UP), [MarkActive]);
        // Died between creating the device and loading its table.
        assert_eq!(
            plan(Role::Key, Activating, NO_TABLE),
            [RemoveDevice, MarkCreated, Activate]
        );
    }

    #[test]
    fn a_suspended_origin_is_resumed_first() {
        assert_eq!(plan(Role::Key, Active, SUSPENDED), [Resume]);
        assert_eq!(
            plan(Role::DeadStaging, Active, SUSPENDED),
            [Resume, Unmount, RemoveDevice, DeleteThin, Forget]
        );
    }

    #[test]
    fn what_was_never_handed_out_is_rolled_back() {
        for s in [Creating, Created, Activating, Active, Deactivating] {
            assert_eq!(
                plan(Role::DeadStaging, s, NOTHING),
                [DeleteThin, Forget],
                "{s:?}"
            );
            assert_eq!(
                plan(Role::DeadStaging, s, UP),
                [Unmount, RemoveDevice, DeleteThin, Forget],
                "{s:?}"
            );
            assert_eq!(
                plan(Role::Base { formatted: false }, s, DEVICE_ONLY),
                [RemoveDevice, DeleteThin, Forget],
                "{s:?}"
            );
        }
        // A container whose create_writable died before the snapshot was recorded.
        assert_eq!(plan(Role::Key, Creating, NOTHING), [DeleteThin, Forget]);
    }

    #[test]
    fn a_removing_record_in_devices_is_rolled_back() {
        assert_eq!(
            plan(Role::Key, Removing, UP),
            [Unmount, RemoveDevice, DeleteThin, Forget]
        );
        assert_eq!(plan(Role::Key, Removing, NOTHING), [DeleteThin, Forget]);
    }

    #[test]
    fn the_base_is_left_inactive() {
        assert_eq!(
            plan(Role::Base { formatted: true }, Active, UP),
            [Unmount, RemoveDevice, MarkCreated]
        );
        assert_eq!(
            plan(Role::Base { formatted: true }, Deactivating, NOTHING),
            [MarkCreated]
        );
    }
}
