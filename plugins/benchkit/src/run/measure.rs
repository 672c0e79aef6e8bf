//! The measuring loop: warm-ups, then rounds of one sample per side until every side's
//! policy is satisfied (interleaved, so drift hits all sides alike). A side that fails is
//! dropped and recorded as skipped; the others go on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Observer, Outcome, RunError};
use crate::results::Measurement;
use crate::stats::RunPolicy;

/// What every workload measures with.
pub(crate) struct Ctx<'a> {
    pub policy: RunPolicy,
    pub warmup: usize,
    pub cold: bool,
    pub obs: &'a dyn Observer,
    pub stop: &'a AtomicBool,
}

type Sampler<'a> = Box<dyn FnMut() -> Result<f64, RunError> + 'a>;

/// One tool on one driver, with parameters: what one measurement of a workload comes from.
pub(crate) struct Side<'a> {
    workload: String,
    tool: String,
    driver: Option<String>,
    params: BTreeMap<String, String>,
    unit: &'static str,
    sample: Sampler<'a>,
    /// Also report `bytes / sample` as throughput, as this workload.
    rate: Option<(String, u64)>,
    /// A fixed number of samples (for quantities that do not vary, like space), no warm-up.
    fixed: Option<usize>,
    /// Whether `--cold` drops the caches before its samples.
    cold: bool,
}

impl<'a> Side<'a> {
    /// A side sampling seconds.
    pub fn new(
        workload: &str,
        tool: &str,
        driver: Option<&str>,
        sample: impl FnMut() -> Result<f64, RunError> + 'a,
    ) -> Side<'a> {
        Side {
            workload: workload.to_owned(),
            tool: tool.to_owned(),
            driver: driver.map(str::to_owned),
            params: BTreeMap::new(),
            unit: "s",
            sample: Box::new(sample),
            rate: None,
            fixed: None,
            cold: true,
        }
    }

    pub fn param(mut self, key: &str, value: impl ToString) -> Side<'a> {
        self.params.insert(key.to_owned(), value.to_string());
        self
    }

    /// Reports `bytes` per sampled second as `workload` (unit bytes/s) too.
    pub fn rate(mut self, workload: &str, bytes: u64) -> Side<'a> {
        if bytes > 0 {
            self.rate = Some((workload.to_owned(), bytes));
        }
        self
    }

    /// Samples a quantity in bytes, `n` times, no warm-up, caches as they are.
    pub fn bytes(mut self, n: usize) -> Side<'a> {
        self.unit = "bytes";
        self.fixed = Some(n);
        self.cold = false;
        self
    }

    /// Never with cold caches (the harness's own overhead).
    pub fn warm(mut self) -> Side<'a> {
        self.cold = false;
        self
    }

    pub fn label(&self) -> String {
        let mut s = format!("{} [{}", self.workload, self.tool);
        if let Some(d) = &self.driver {
            s.push_str(" on ");
            s.push_str(d);
        }
        s.push(']');
        for (k, v) in &self.params {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    fn done(&self, policy: &RunPolicy, samples: &[f64]) -> bool {
        match self.fixed {
            Some(n) => samples.len() >= n,
            None => policy.satisfied(samples),
        }
    }
}

/// Measures `sides` (of one workload or one step of it) into `out`.
pub(crate) fn measure(
    ctx: &Ctx<'_>,
    env_cold: &dyn Fn() -> Result<(), RunError>,
    title: &str,
    sides: Vec<Side<'_>>,
    out: &mut Outcome,
) -> Result<(), RunError> {
    let most: usize = sides
        .iter()
        .map(|s| s.fixed.unwrap_or(ctx.policy.max_runs + ctx.warmup))
        .sum();
    ctx.obs.begin(title, most);
    let mut live: Vec<(Side<'_>, Vec<f64>)> = sides.into_iter().map(|s| (s, Vec::new())).collect();
    let take = |side: &mut Side<'_>| -> Result<f64, RunError> {
        if ctx.stop.load(Ordering::SeqCst) {
            return Err(RunError::Interrupted);
        }
        if ctx.cold && side.cold {
            env_cold()?;
        }
        let v = (side.sample)();
        ctx.obs.sample(&side.label());
        v
    };
    let failed = |side: &Side<'_>, e: RunError, out: &mut Outcome| -> Result<(), RunError> {
        if ctx.stop.load(Ordering::SeqCst) || matches!(e, RunError::Interrupted) {
            return Err(RunError::Interrupted);
        }
        ctx.obs.note(&format!("skipped {}: {e}", side.label()));
        out.skip(side.label(), e.to_string());
        Ok(())
    };
    // Warm-ups, side by side.
    for _ in 0..ctx.warmup {
        let mut i = 0;
        while i < live.len() {
            if live[i].0.fixed.is_some() {
                i += 1;
                continue;
            }
            match take(&mut live[i].0) {
                Ok(_) => i += 1,
                Err(e) => {
                    let (side, _) = live.remove(i);
                    failed(&side, e, out)?;
                }
            }
        }
    }
    // Rounds: one sample of every side not done yet.
    loop {
        let mut any = false;
        let mut i = 0;
        while i < live.len() {
            if live[i].0.done(&ctx.policy, &live[i].1) {
                i += 1;
                continue;
            }
            any = true;
            match take(&mut live[i].0) {
                Ok(v) => {
                    live[i].1.push(v);
                    i += 1;
                }
                Err(e) => {
                    let (side, _) = live.remove(i);
                    failed(&side, e, out)?;
                }
            }
        }
        if !any {
            break;
        }
    }
    for (side, samples) in live {
        let rates: Option<(String, Vec<f64>)> = side.rate.as_ref().map(|(w, bytes)| {
            (
                w.clone(),
                samples
                    .iter()
                    .map(|s| *bytes as f64 / s.max(1e-9))
                    .collect(),
            )
        });
        let mut push = |workload: &str, unit: &str, samples: Vec<f64>| {
            if let Some(mut m) = Measurement::new(workload, &side.tool, unit, samples) {
                m.driver = side.driver.clone();
                m.params = side.params.clone();
                ctx.obs.measured(&m);
                out.measurements.push(m);
            }
        };
        push(&side.workload, side.unit, samples);
        if let Some((w, r)) = rates {
            push(&w, "bytes/s", r);
        }
    }
    ctx.obs.end();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Observer for Log {
        fn begin(&self, _: &str, _: usize) {}
        fn sample(&self, side: &str) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(side.to_owned());
        }
        fn measured(&self, _: &Measurement) {}
        fn note(&self, _: &str) {}
        fn end(&self) {}
    }

    #[test]
    fn sides_are_interleaved_failures_skipped_and_rates_derived() {
        let log = Log::default();
        let stop = AtomicBool::new(false);
        let ctx = Ctx {
            policy: RunPolicy {
                min_runs: 3,
                max_runs: 3,
                target: 0.0,
            },
            warmup: 1,
            cold: false,
            obs: &log,
            stop: &stop,
        };
        let calls = RefCell::new(0);
        let sides = vec![
            Side::new("w", "a", Some("overlay"), || Ok(2.0)).rate("w-rate", 10),
            Side::new("w", "b", Some("overlay"), || {
                *calls.borrow_mut() += 1;
                if *calls.borrow() == 3 {
                    Err(RunError::Usage("boom".into()))
                } else {
                    Ok(1.0)
                }
            }),
            Side::new("space", "a", None, || Ok(4096.0)).bytes(2),
        ];
        let mut out = Outcome::default();
        measure(&ctx, &|| Ok(()), "w", sides, &mut out).unwrap_or_else(|e| panic!("{e}"));
        let order = log.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Warm-up a, b; then rounds a, b, space (b fails in the second round).
        assert_eq!(
            order[..5],
            [
                "w [a on overlay]",
                "w [b on overlay]",
                "w [a on overlay]",
                "w [b on overlay]",
                "space [a]"
            ]
        );
        let keys: Vec<String> = out.measurements.iter().map(Measurement::key).collect();
        assert_eq!(
            keys,
            ["w [a on overlay]", "w-rate [a on overlay]", "space [a]"]
        );
        assert_eq!(out.measurements[1].samples, [5.0, 5.0, 5.0]);
        assert_eq!(out.measurements[1].unit, "bytes/s");
        assert_eq!(out.measurements[2].samples.len(), 2);
        assert_eq!(out.skipped.len(), 1);
        assert!(out.skipped[0].why.contains("boom"), "{:?}", out.skipped);

        stop.store(true, Ordering::SeqCst);
        let sides = vec![Side::new("w", "a", None, || Ok(1.0))];
        let e = measure(&ctx, &|| Ok(()), "w", sides, &mut Outcome::default());
        assert!(matches!(e, Err(RunError::Interrupted)));
    }
}
