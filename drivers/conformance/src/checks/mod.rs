//! The checks, one public function each, all with the same signature so that
//! [`conformance_tests!`](crate::conformance_tests) can expand them into tests.

mod chain;
mod changes;
mod payload;
mod tree;
mod views;

pub use chain::{deep_chains_mount_the_union, DEPTH};
pub use changes::changes_reproduce_the_container;
pub use payload::{
    cleanup_staging_removes_only_dead_areas, keys_are_created_listed_replaced_and_removed,
    tarsplit_export_reproduces_the_tar,
};
pub use tree::{
    hardlinks_stay_linked, opaque_dirs_hide_lower_contents, ownership_and_modes_are_preserved,
    whiteouts_hide_lower_files, xattrs_are_visible,
};
pub use views::{
    read_only_views_refuse_writes, removal_while_mounted_is_refused,
    writable_layers_keep_writes_to_themselves,
};
