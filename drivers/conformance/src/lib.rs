//! The behaviour suite every storage driver runs.
//!
//! Each check makes layers the way the store does (an in-memory tar, [`Driver::stage`], the
//! real layer pipeline `strata_graph_archive::apply` with the staging area's whiteout format,
//! [`Driver::commit`]), mounts views with `strata-mount` and inspects them as a user would:
//! whiteouts, opaque directories, hardlinks, xattrs, owners and modes, a 130-layer chain,
//! read-only views, isolation of writable layers, `changes` + `write_changes` round trips,
//! removal while mounted, bit-exact tar-split export, staging cleanup and key bookkeeping.
//!
//! A driver crate runs them all, one `#[test]` per check, with
//!
//! ```text
//! strata_driver_conformance::conformance_tests!(|home: &std::path::Path| -> Box<dyn strata_driver_api::Driver> {
//!     Box::new(MyDriver::open(home).unwrap())
//! });
//! ```
//!
//! Checks that mount, chown or mknod are in the privileged tier (`strata_tests::require_privileged`).
//! Every mount is owned by a guard, so a failing check leaves nothing mounted.
//!
//! What it deliberately does not do: test driver-specific layouts or options (each driver's
//! own tests do), or measure performance (benches do).

pub mod checks;
pub mod fixture;
pub mod layer_tar;

#[cfg(doc)]
use strata_driver_api::Driver;

/// Expands into one `#[test]` per conformance check for the driver made by `$make`, an
/// expression of a type implementing `Fn(&Path) -> Box<dyn Driver>` (given a fresh, empty
/// home directory).
///
/// `conformance_tests!(make, gate = g)` first calls `g(check_name)` (`Fn(&str) -> bool`) in
/// every test and returns early when it says `false`: for drivers whose `make` itself needs a
/// privileged setup (a loop-mounted filesystem, a thin pool), so the gate
/// (`strata_tests::require_privileged`, `require_kernel`) runs before anything is made.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, gate = |_: &str| true);
    };
    ($make:expr, gate = $gate:expr) => {
        $crate::conformance_tests!(@each $make; $gate;
            whiteouts_hide_lower_files,
            opaque_dirs_hide_lower_contents,
            hardlinks_stay_linked,
            xattrs_are_visible,
            ownership_and_modes_are_preserved,
            deep_chains_mount_the_union,
            read_only_views_refuse_writes,
            writable_layers_keep_writes_to_themselves,
            removal_while_mounted_is_refused,
            changes_reproduce_the_container,
            tarsplit_export_reproduces_the_tar,
            cleanup_staging_removes_only_dead_areas,
            keys_are_created_listed_replaced_and_removed,
        );
    };
    (@each $make:expr; $gate:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let gate = $gate;
                if !gate(stringify!($check)) {
                    return;
                }
                let make = $make;
                $crate::checks::$check(&make);
            }
        )*
    };
}
