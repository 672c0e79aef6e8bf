//! The build's progress display, podman build's: `STEP n/N: INSTRUCTION`, then `--> Using
//! cache ID` or `--> ID` with the step's time. `-q` prints nothing but the final ID.

use std::io::Write;
use std::time::Instant;

#[derive(Debug)]
pub struct Progress {
    pub quiet: bool,
    pub total: usize,
    n: usize,
    pub hits: usize,
    pub misses: usize,
}

impl Progress {
    pub fn new(quiet: bool, total: usize) -> Progress {
        Progress {
            quiet,
            total,
            n: 0,
            hits: 0,
            misses: 0,
        }
    }

    pub fn step(&mut self, text: &str) {
        self.n += 1;
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "STEP {}/{}: {text}", self.n, self.total);
            let _ = out.flush();
        }
    }

    /// A step's result: `cached` is Some(true) for a hit, Some(false) for a miss that was
    /// built, None for a step that is not cached (FROM).
    pub fn done(&mut self, id: &str, cached: Option<bool>, started: Instant) {
        let short = id.strip_prefix("sha256:").unwrap_or(id);
        let short = &short[..short.len().min(12)];
        match cached {
            Some(true) => self.hits += 1,
            Some(false) => self.misses += 1,
            None => {}
        }
        if self.quiet || cached.is_none() {
            return;
        }
        let secs = started.elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        if cached == Some(true) {
            let _ = writeln!(out, "--> Using cache {short} ({secs:.3}s)");
        } else {
            let _ = writeln!(out, "--> {short} ({secs:.3}s)");
        }
        let _ = out.flush();
    }
}
