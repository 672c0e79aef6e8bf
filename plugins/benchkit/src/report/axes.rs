//! Axes: a numeric axis (linear or logarithmic, fitted to its values, ticks at round
//! values in the unit its labels show) and an axis of named rows, both as plotters
//! coordinates.
//!
//! Not here: drawing; `plots` builds its charts on these.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

use super::numbers::{tidy, time_unit, MB, MIB};
use super::sections::shorten;

/// How many times its smallest value the largest must be for an axis to turn logarithmic.
const LOG_SPAN: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log10,
    Log2,
}

impl Scale {
    fn apply(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 => v.max(f64::MIN_POSITIVE).log10(),
            Scale::Log2 => v.max(f64::MIN_POSITIVE).log2(),
        }
    }
}

/// How an axis writes its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ticks {
    /// Seconds, each tick in the unit that suits it (`100 µs`, `1 ms`): for log axes.
    Duration,
    /// A plain number: the value divided by this (the unit is in the axis description).
    Scaled(f64),
}

/// How an axis is fitted to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// Distributions: from zero, unless the values sit in a band far from it (zero would
    /// squash them into a line).
    Spread,
    /// Curves: from zero.
    FromZero,
    /// Bars: linear from zero, with room for the value labels.
    Bars,
}

/// A numeric axis: linear or logarithmic, ticks at round values.
#[derive(Debug, Clone)]
pub(super) struct ValueAxis {
    lo: f64,
    hi: f64,
    scale: Scale,
    ticks: Ticks,
    pub(super) desc: String,
}

impl ValueAxis {
    /// An axis for `values` of `unit`.
    pub(super) fn fit(unit: &str, values: impl IntoIterator<Item = f64>, fit: Fit) -> ValueAxis {
        let (min, max) = bounds(values);
        let scale = if fit != Fit::Bars && min > 0.0 && max / min > LOG_SPAN {
            Scale::Log10
        } else {
            Scale::Linear
        };
        let (lo, hi) = match scale {
            Scale::Linear => {
                let lo = if fit == Fit::Spread && min > max / 2.0 {
                    min - (max - min) * 0.15
                } else {
                    min.min(0.0)
                };
                let room = if fit == Fit::Bars { 0.25 } else { 0.06 };
                widen(lo, max + (max - lo) * room)
            }
            Scale::Log10 | Scale::Log2 => (min / 1.3, max * 1.3),
        };
        let log = if scale == Scale::Linear {
            ""
        } else {
            ", log scale"
        };
        let (ticks, desc) = match unit {
            "s" if scale != Scale::Linear => (Ticks::Duration, "time (log scale)".to_owned()),
            "s" => {
                let (div, name) = time_unit(hi);
                (Ticks::Scaled(div), format!("time ({name})"))
            }
            "bytes/s" => (Ticks::Scaled(MB), format!("throughput (MB/s{log})")),
            "bytes" => (Ticks::Scaled(MIB), format!("space used (MiB{log})")),
            other => (Ticks::Scaled(1.0), format!("{}{log}", shorten(other, 24))),
        };
        ValueAxis {
            lo,
            hi,
            scale,
            ticks,
            desc,
        }
    }

    /// An axis for the values of a scaling parameter: log₂ when they are all positive.
    pub(super) fn parameter(name: &str, values: impl IntoIterator<Item = f64>) -> ValueAxis {
        let (min, max) = bounds(values);
        let (lo, hi, scale, desc) = if min > 0.0 {
            let pad = 2f64.powf(0.35);
            (
                min / pad,
                max * pad,
                Scale::Log2,
                format!("{name} (log₂ scale)"),
            )
        } else {
            let (lo, hi) = widen(min.min(0.0), max + (max - min) * 0.06);
            (lo, hi, Scale::Linear, name.to_owned())
        };
        ValueAxis {
            lo,
            hi,
            scale,
            ticks: Ticks::Scaled(1.0),
            desc,
        }
    }

    /// Where the ticks go (or the light grid lines, when `light`): round numbers in the
    /// unit the labels show.
    fn tick_values(&self, max: usize, light: bool) -> Vec<f64> {
        let div = match self.ticks {
            Ticks::Duration => 1.0,
            Ticks::Scaled(div) => div,
        };
        let (lo, hi) = (self.lo / div, self.hi / div);
        let ticks = match (self.scale, light) {
            (_, _) if max == 0 => Vec::new(),
            (Scale::Log10, true) => {
                let minor = decades(lo, hi)
                    .flat_map(|d| (2..10).map(move |m| f64::from(m) * d))
                    .filter(|v| (lo..=hi).contains(v))
                    .collect::<Vec<_>>();
                if minor.len() <= max {
                    minor
                } else {
                    Vec::new()
                }
            }
            (_, true) => Vec::new(),
            (Scale::Linear, false) => linear_ticks(lo, hi, max),
            (Scale::Log10, false) => {
                let mut t: Vec<f64> = decades(lo, hi).filter(|v| (lo..=hi).contains(v)).collect();
                if t.len() < 3 {
                    t = decades(lo, hi)
                        .flat_map(|d| [d, 2.0 * d, 5.0 * d])
                        .filter(|v| (lo..=hi).contains(v))
                        .collect();
                }
                thin(t, max)
            }
            (Scale::Log2, false) => {
                let (a, b) = (lo.log2().ceil() as i32, hi.log2().floor() as i32);
                let t: Vec<f64> = (a..=b).map(|k| 2f64.powi(k)).collect();
                if t.len() < 2 {
                    linear_ticks(lo, hi, max)
                } else {
                    thin(t, max)
                }
            }
        };
        ticks.into_iter().map(|t| t * div).collect()
    }

    fn label(&self, v: f64) -> String {
        match self.ticks {
            Ticks::Duration => {
                let (div, name) = time_unit(v);
                format!("{} {name}", tidy(v / div))
            }
            Ticks::Scaled(div) => tidy(v / div),
        }
    }
}

fn bounds(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if min > max {
        (0.0, 1.0)
    } else {
        (min, max)
    }
}

/// A range that is not empty.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        let pad = lo.abs() * 0.1;
        (lo - pad, hi + pad)
    }
}

/// The powers of ten from the one below `lo` to the one below `hi`.
fn decades(lo: f64, hi: f64) -> impl Iterator<Item = f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().floor() as i32);
    (a..=b).map(|k| 10f64.powi(k))
}

/// Ticks at multiples of 1, 2 or 5 times a power of ten, at most `max` of them.
fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo];
    }
    let mag = 10f64.powf((span / max as f64).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= max as f64)
        .unwrap_or(10.0 * mag);
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Every k-th of `ticks`, so that at most `max` remain.
fn thin(ticks: Vec<f64>, max: usize) -> Vec<f64> {
    let every = ticks.len().div_ceil(max.max(1)).max(1);
    ticks.into_iter().step_by(every).collect()
}

impl Ranged for ValueAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (lo, hi) = (self.scale.apply(self.lo), self.scale.apply(self.hi));
        let f = (self.scale.apply(*v) - lo) / (hi - lo);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        self.tick_values(hint.max_num_points(), hint.weight().allow_light_points())
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for ValueAxis {
    fn format_ext(&self, v: &f64) -> String {
        self.label(*v)
    }
}

/// Named rows, the first at the top: row `i` is centred on value `i`.
#[derive(Debug, Clone)]
pub(super) struct RowAxis(pub(super) Vec<String>);

impl Ranged for RowAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let n = self.0.len().max(1) as f64;
        let f = (n - 0.5 - v) / n;
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        (0..self.0.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.0.len() as f64 - 0.5
    }
}

impl ValueFormatter<f64> for RowAxis {
    fn format_ext(&self, v: &f64) -> String {
        let i = v.round();
        if i < 0.0 {
            return String::new();
        }
        self.0.get(i as usize).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_go_logarithmic_past_the_span_and_tick_round_values() {
        let lin = ValueAxis::fit("s", [0.1, 0.5], Fit::Spread);
        assert_eq!(
            (lin.scale, lin.lo, lin.ticks),
            (Scale::Linear, 0.0, Ticks::Scaled(1e-3))
        );
        assert_eq!(lin.desc, "time (ms)");
        let labels = |a: &ValueAxis, max: usize| -> Vec<String> {
            a.tick_values(max, false)
                .into_iter()
                .map(|v| a.label(v))
                .collect()
        };
        assert_eq!(labels(&lin, 6), ["0", "100", "200", "300", "400", "500"]);
        // Ticks are round in the unit shown, not in bytes.
        let space = ValueAxis::fit("bytes", [0.0, 300.0 * MIB], Fit::Bars);
        assert_eq!(space.desc, "space used (MiB)");
        assert_eq!(
            labels(&space, 8),
            ["0", "50", "100", "150", "200", "250", "300", "350"]
        );
        let narrow = ValueAxis::fit("s", [1.0, 1.1], Fit::Spread);
        assert!(narrow.lo > 0.9, "{narrow:?}");
        let log = ValueAxis::fit("s", [1e-4, 1.0], Fit::Spread);
        assert_eq!((log.scale, log.ticks), (Scale::Log10, Ticks::Duration));
        assert_eq!(log.tick_values(10, false), [1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        assert_eq!(log.label(1e-4), "100 µs");
        let bars = ValueAxis::fit("bytes/s", [1e6, 1e9], Fit::Bars);
        assert_eq!((bars.scale, bars.lo), (Scale::Linear, 0.0));
        let x = ValueAxis::parameter("depth", [1.0, 128.0]);
        assert_eq!(x.scale, Scale::Log2);
        assert_eq!(
            x.tick_values(10, false),
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
        );
        assert_eq!(x.tick_values(4, false), [1.0, 4.0, 16.0, 64.0]);
        let flat = ValueAxis::fit("s", [3.0], Fit::Spread);
        assert!(flat.hi > flat.lo, "{flat:?}");
    }
}
