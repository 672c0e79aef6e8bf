//! Staging areas: where a new layer's payload is built before it is committed.

use std::fs::File;
use std::path::PathBuf;

use strata_types::WhiteoutFormat;

/// A staging area handed out by [`crate::Driver::stage`]. It holds an exclusive `flock` on a
/// lock file for as long as it lives, so that cleanup never removes a staging area that a live
/// process is filling. Dropping it without committing leaves debris that
/// [`crate::Driver::cleanup_staging`] removes.
#[derive(Debug)]
pub struct Staging {
    /// The whole staging area (renamed into place on commit).
    pub area: PathBuf,
    /// The directory to extract the layer tree into (inside `area`).
    pub root: PathBuf,
    /// The whiteout format the pipeline must write.
    pub whiteouts: WhiteoutFormat,
    /// The held lock; released when dropped or on process death.
    pub lock: File,
}
