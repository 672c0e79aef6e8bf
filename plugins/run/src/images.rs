//! Images for the run front end: name resolution and pulls are the transfer crate's
//! (`strata_plugin_transfer::images`, shared with `build`); this maps its errors to ours and
//! reads the image defaults `run` uses.

use anyhow::Result;
use strata_plugin_api::store::ImageInfo;

use strata_engine_containers::ImageDefaults;
pub use strata_plugin_transfer::images::{local_candidates, PullPolicy, RegistryArgs};

use crate::context::Ctx;
use crate::errors::call;

/// The image in the store a user-typed name refers to, if any.
pub fn find_local(ctx: &Ctx<'_>, name: &str) -> Result<Option<ImageInfo>> {
    strata_plugin_transfer::images::find_local(ctx.host, name).map_err(call)
}

/// Copies `source` to `destination` (transport names) with the copy engine, as `strata copy`
/// does; `reg` applies to whichever end is a registry.
pub fn copy(
    ctx: &Ctx<'_>,
    source: &str,
    destination: &str,
    reg: &RegistryArgs,
    quiet: bool,
    flavor: Option<strata_graph_image::Flavor>,
    compression: Option<strata_graph_image::Compression>,
) -> Result<strata_graph_image::CopyReport> {
    strata_plugin_transfer::images::copy(
        ctx.host,
        source,
        destination,
        reg,
        quiet,
        flavor,
        compression,
    )
    .map_err(call)
}

/// Pulls `name` into the store, trying each candidate registry in order; returns the image.
pub fn pull(ctx: &Ctx<'_>, name: &str, reg: &RegistryArgs, quiet: bool) -> Result<ImageInfo> {
    strata_plugin_transfer::images::pull(ctx.host, name, reg, quiet).map_err(call)
}

/// The image for `run`/`create`: local, or pulled per the policy.
pub fn for_run(
    ctx: &Ctx<'_>,
    name: &str,
    policy: PullPolicy,
    reg: &RegistryArgs,
    quiet: bool,
) -> Result<ImageInfo> {
    strata_plugin_transfer::images::resolve(ctx.host, name, policy, reg, quiet).map_err(call)
}

/// The parts of an image config that `run` uses.
pub fn defaults(info: &ImageInfo) -> Result<ImageDefaults> {
    Ok(ImageDefaults::from_config(&info.config)?)
}
