//! What `strata bench` is made of below its front end (issue 16, in progress): the
//! statistics every result is reported with (`stats`), the versioned result file and the
//! comparison of two (`results`), and the deterministic synthetic image generator (`synth`,
//! with its random numbers in `rng`). The plugin (`plugins/bench`) is a thin layer over these.

pub mod results;
pub mod rng;
pub mod stats;
pub mod synth;
