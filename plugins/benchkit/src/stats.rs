//! Statistics for benchmark samples, done properly: medians and p95 (not means), a
//! distribution-free confidence interval of the median, outliers flagged by their distance
//! from the median in robust spreads, a stopping rule for adaptive run counts, and the
//! Mann-Whitney U test for "is B really slower than A".
//!
//! Timings are skewed and have outliers (a page-cache miss, a scheduler hiccup), so nothing
//! here assumes a normal distribution of the samples themselves. The normal distribution
//! appears only as the large-sample approximation of rank statistics, where it is exact
//! enough from about 10 samples on.
//!
//! Written here rather than taken from a statistics crate: what is needed is a few dozen
//! lines of textbook formulas, and the crates that have them (statrs and friends) bring a
//! linear-algebra stack this workspace does not otherwise build.

use serde::{Deserialize, Serialize};

/// How far from the median (in scaled median absolute deviations) a sample counts as an
/// outlier. 3.5 is the common choice (Iglewicz and Hoaglin).
pub const OUTLIER_MADS: f64 = 3.5;

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// What a set of samples says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1).
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    /// Median absolute deviation, scaled by 1.4826 (a standard deviation for normal data).
    pub mad: f64,
    /// A 95% confidence interval of the median, from order statistics (no assumption about
    /// the distribution); `[min, max]` below 6 samples, where no narrower one exists.
    pub median_ci: (f64, f64),
    /// Samples farther than [`OUTLIER_MADS`] robust spreads from the median.
    pub outliers: usize,
}

impl Summary {
    /// The summary of `samples` (any order); `None` when there are none or one is not finite.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = quantile_sorted(&s, 0.5);
        let mean = s.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let mut dev: Vec<f64> = s.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = 1.4826 * quantile_sorted(&dev, 0.5);
        let outliers = if mad > 0.0 {
            s.iter()
                .filter(|x| (*x - median).abs() > OUTLIER_MADS * mad)
                .count()
        } else {
            0
        };
        let (lo, hi) = median_ci_ranks(n);
        Some(Summary {
            n,
            median,
            p95: quantile_sorted(&s, 0.95),
            mean,
            stddev,
            min: s[0],
            max: s[n - 1],
            mad,
            median_ci: (s[lo], s[hi]),
            outliers,
        })
    }

    /// Half the width of the median's interval relative to the median: the precision reached.
    pub fn relative_ci(&self) -> f64 {
        if self.median == 0.0 {
            return if self.median_ci.0 == self.median_ci.1 {
                0.0
            } else {
                f64::INFINITY
            };
        }
        (self.median_ci.1 - self.median_ci.0) / 2.0 / self.median.abs()
    }
}

/// The `q` quantile of sorted samples, interpolating linearly between order statistics
/// (Hyndman and Fan's type 7, what R and numpy use by default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Zero-based ranks bounding a 95% interval of the median of `n` samples: the number of
/// samples below the median is Binomial(n, 1/2), approximated by the normal distribution.
fn median_ci_ranks(n: usize) -> (usize, usize) {
    if n < 6 {
        return (0, n - 1);
    }
    let half = Z95 * (n as f64).sqrt() / 2.0;
    let lo = (n as f64 / 2.0 - half).floor().max(1.0) as usize - 1;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    (lo, hi)
}

/// When to stop measuring: at least `min_runs`, at most `max_runs`, and in between as soon
/// as the median is known to within `target` (relative half-width of its interval).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunPolicy {
    pub min_runs: usize,
    pub max_runs: usize,
    pub target: f64,
}

impl Default for RunPolicy {
    fn default() -> RunPolicy {
        RunPolicy {
            min_runs: 10,
            max_runs: 100,
            target: 0.02,
        }
    }
}

impl RunPolicy {
    /// Whether `samples` are enough.
    pub fn satisfied(&self, samples: &[f64]) -> bool {
        if samples.len() >= self.max_runs {
            return true;
        }
        if samples.len() < self.min_runs {
            return false;
        }
        Summary::of(samples).is_some_and(|s| s.relative_ci() <= self.target)
    }

    /// Calls `sample` until the policy is satisfied; returns the samples.
    pub fn run(&self, mut sample: impl FnMut() -> f64) -> Vec<f64> {
        let mut out = Vec::new();
        while !self.satisfied(&out) {
            out.push(sample());
        }
        out
    }
}

/// How B compares with A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// median(B) / median(A): above 1 is slower for timings.
    pub ratio: f64,
    /// Two-sided p-value of the Mann-Whitney U test (no difference in location).
    pub p_value: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// B is significantly lower (faster, for timings).
    Improvement,
    /// B is significantly higher.
    Regression,
    /// No difference both significant and larger than the threshold.
    NoChange,
}

/// Compares samples B with samples A: a change counts when the Mann-Whitney test rejects
/// "same distribution" at `alpha` and the medians differ by more than `min_effect` (relative;
/// 0.02 = 2%), so that a tiny but real drift is not called a regression.
pub fn compare(a: &[f64], b: &[f64], alpha: f64, min_effect: f64) -> Option<Comparison> {
    let (sa, sb) = (Summary::of(a)?, Summary::of(b)?);
    let ratio = if sa.median == 0.0 {
        if sb.median == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        sb.median / sa.median
    };
    let p_value = mann_whitney_p(a, b);
    let verdict = if p_value < alpha && (ratio - 1.0).abs() > min_effect {
        if ratio < 1.0 {
            Verdict::Improvement
        } else {
            Verdict::Regression
        }
    } else {
        Verdict::NoChange
    };
    Some(Comparison {
        ratio,
        p_value,
        verdict,
    })
}

/// The two-sided p-value of the Mann-Whitney U test, by the normal approximation with tie
/// correction and continuity correction (1 for empty or constant input).
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|x| (*x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Ranks with ties averaged; the tie term for the variance.
    let mut rank_sum_a = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_sum_a += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * (1.0 - normal_cdf(z))).min(1.0)
}

/// The standard normal distribution function, through erfc (the Chebyshev fit of Numerical
/// Recipes' `erfcc`: relative error below 1.2e-7 everywhere).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn uniform(r: &mut SplitMix64, n: usize) -> Vec<f64> {
        (0..n).map(|_| r.next_f64()).collect()
    }

    fn exponential(r: &mut SplitMix64, n: usize) -> Vec<f64> {
        (0..n).map(|_| -(1.0 - r.next_f64()).ln()).collect()
    }

    fn normal(r: &mut SplitMix64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let (u1, u2) = (1.0 - r.next_f64(), r.next_f64());
                mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    #[test]
    fn quantiles_match_r_and_numpy() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        // numpy.quantile(range(1, 11), [0.5, 0.95, 0.25]) = 5.5, 9.55, 3.25
        assert!((quantile_sorted(&s, 0.5) - 5.5).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.95) - 9.55).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.25) - 3.25).abs() < 1e-12);
        let odd: Vec<f64> = (1..=101).map(f64::from).collect();
        let sum = Summary::of(&odd).unwrap_or_else(|| panic!("summary"));
        assert_eq!(sum.median, 51.0);
        assert_eq!(sum.p95, 96.0);
        assert_eq!((sum.min, sum.max, sum.n), (1.0, 101.0, 101));
        assert!((sum.mean - 51.0).abs() < 1e-12);
        // The sample standard deviation of 1..=101 is sqrt(101 * 102 / 12).
        assert!((sum.stddev - (101.0f64 * 102.0 / 12.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn no_samples_or_non_finite_ones_give_no_summary() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
        let one = Summary::of(&[3.0]).unwrap_or_else(|| panic!("one sample"));
        assert_eq!(
            (one.median, one.median_ci, one.stddev),
            (3.0, (3.0, 3.0), 0.0)
        );
    }

    #[test]
    fn known_distributions_give_their_parameters() {
        let mut r = SplitMix64::new(1);
        let u = Summary::of(&uniform(&mut r, 20_000)).unwrap_or_else(|| panic!("uniform"));
        assert!((u.median - 0.5).abs() < 0.015, "{u:?}");
        assert!((u.p95 - 0.95).abs() < 0.01, "{u:?}");
        assert!((u.stddev - (1.0f64 / 12.0).sqrt()).abs() < 0.01, "{u:?}");
        let e = Summary::of(&exponential(&mut r, 20_000)).unwrap_or_else(|| panic!("exp"));
        assert!((e.median - std::f64::consts::LN_2).abs() < 0.03, "{e:?}");
        assert!((e.p95 - 20f64.ln()).abs() < 0.1, "{e:?}");
        let g = Summary::of(&normal(&mut r, 20_000, 10.0, 2.0)).unwrap_or_else(|| panic!("n"));
        assert!((g.median - 10.0).abs() < 0.06, "{g:?}");
        assert!((g.stddev - 2.0).abs() < 0.06, "{g:?}");
        assert!(
            (g.mad - 2.0).abs() < 0.1,
            "the scaled MAD estimates sigma: {g:?}"
        );
    }

    #[test]
    fn the_median_interval_covers_the_true_median_about_95_percent_of_the_time() {
        let mut r = SplitMix64::new(2);
        let trials = 400;
        let covered = (0..trials)
            .filter(|_| {
                let s = Summary::of(&exponential(&mut r, 40)).unwrap_or_else(|| panic!("s"));
                s.median_ci.0 <= std::f64::consts::LN_2 && std::f64::consts::LN_2 <= s.median_ci.1
            })
            .count();
        let rate = covered as f64 / trials as f64;
        // The order-statistic interval is slightly conservative: about 98% at n = 40.
        assert!((0.93..=0.995).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn outliers_are_flagged_and_do_not_move_the_median() {
        let mut s: Vec<f64> = (0..40).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        let before = Summary::of(&s).unwrap_or_else(|| panic!("s"));
        s.push(1000.0);
        s.push(950.0);
        let after = Summary::of(&s).unwrap_or_else(|| panic!("s"));
        assert_eq!(before.outliers, 0);
        assert_eq!(after.outliers, 2);
        assert!((after.median - before.median).abs() <= 0.1, "{after:?}");
        assert!(
            after.mean > 50.0,
            "the mean is what outliers move: {after:?}"
        );
    }

    #[test]
    fn the_run_policy_stops_early_on_quiet_data_and_late_on_noisy_data() {
        let policy = RunPolicy {
            min_runs: 5,
            max_runs: 200,
            target: 0.02,
        };
        let mut r = SplitMix64::new(3);
        let quiet = policy.run(|| 100.0 + r.next_f64());
        assert!(
            quiet.len() < 20,
            "quiet data needs few runs: {}",
            quiet.len()
        );
        let mut r = SplitMix64::new(4);
        let noisy = policy.run(|| 100.0 * (1.0 - r.next_f64()).ln().abs());
        assert_eq!(noisy.len(), 200, "noisy data runs to the cap");
    }

    #[test]
    fn mann_whitney_matches_a_hand_computed_case() {
        // A = {1, 2, 3}, B = {4, 5, 6}: U = 0, mean 4.5, variance 9 * 7 / 12 = 5.25;
        // z = (4.5 - 0.5) / sqrt(5.25) = 1.7457, p = 2 * (1 - Phi(1.7457)) = 0.0809.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((p - 0.0809).abs() < 1e-3, "{p}");
        assert_eq!(mann_whitney_p(&[1.0, 1.0], &[1.0, 1.0]), 1.0, "all tied");
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(-3.0) - 0.001_349_9).abs() < 1e-6);
    }

    #[test]
    fn comparisons_find_real_shifts_and_rarely_invent_them() {
        let mut r = SplitMix64::new(5);
        let a = normal(&mut r, 50, 100.0, 5.0);
        let slower = normal(&mut r, 50, 110.0, 5.0);
        let c = compare(&a, &slower, 0.01, 0.02).unwrap_or_else(|| panic!("c"));
        assert_eq!(c.verdict, Verdict::Regression, "{c:?}");
        assert!(c.p_value < 1e-6 && (c.ratio - 1.1).abs() < 0.03, "{c:?}");
        let faster = normal(&mut r, 50, 90.0, 5.0);
        assert_eq!(
            compare(&a, &faster, 0.01, 0.02).map(|c| c.verdict),
            Some(Verdict::Improvement)
        );
        // Same distribution: at alpha 0.05 about 5% false alarms, never many more.
        let trials = 300;
        let alarms = (0..trials)
            .filter(|_| {
                let x = normal(&mut r, 30, 100.0, 5.0);
                let y = normal(&mut r, 30, 100.0, 5.0);
                mann_whitney_p(&x, &y) < 0.05
            })
            .count();
        assert!(alarms <= trials / 10, "{alarms} false alarms in {trials}");
        // A significant but tiny shift is not a regression.
        let big_a = normal(&mut r, 2000, 100.0, 1.0);
        let big_b = normal(&mut r, 2000, 100.5, 1.0);
        let c = compare(&big_a, &big_b, 0.01, 0.02).unwrap_or_else(|| panic!("c"));
        assert!(c.p_value < 0.01 && c.verdict == Verdict::NoChange, "{c:?}");
    }
}
