//! What `strata bench` is made of below its front end (issue 16): the workloads and the run
//! that measures them side by side with the reference tools (`run`), the statistics every
//! result is reported with (`stats`), the versioned result file and the comparison of two
//! (`results`), the report (`report`: self-contained HTML, Markdown and SVG plots), and the
//! deterministic synthetic image generator (`synth`, with its random numbers in `rng`). The
//! plugin (`plugins/bench`) is a thin layer over these.

pub mod report;
pub mod results;
pub mod rng;
pub mod run;
pub mod stats;
pub mod synth;
