//! Numbers for humans: three significant digits, durations in the unit that suits them,
//! bytes in binary units, throughput in MB/s.
//!
//! Not here: escaping, which belongs to the format written (`html`, `markdown`), and the
//! tick labels of an axis, which `axes` builds from these.

pub(super) const MB: f64 = 1e6;
pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// Three significant digits: `1.23`, `12.3`, `123`, `1234`.
fn sig3(v: f64) -> String {
    let digits = if v == 0.0 || !v.is_finite() {
        2
    } else {
        (2 - v.abs().log10().floor() as i32).clamp(0, 9) as usize
    };
    format!("{v:.digits$}")
}

/// Like [`sig3`] without trailing zeros (axis ticks: `0.5`, `1`, `250`).
pub(super) fn tidy(v: f64) -> String {
    let s = sig3(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// The unit a duration reads best in: its divisor and name.
pub(super) fn time_unit(seconds: f64) -> (f64, &'static str) {
    let a = seconds.abs();
    if a >= 1.0 || a == 0.0 {
        (1.0, "s")
    } else if a >= 1e-3 {
        (1e-3, "ms")
    } else if a >= 1e-6 {
        (1e-6, "µs")
    } else {
        (1e-9, "ns")
    }
}

pub(super) fn duration(seconds: f64) -> String {
    let (div, name) = time_unit(seconds);
    format!("{} {name}", sig3(seconds / div))
}

pub(super) fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b.abs() < 1024.0 {
        return format!("{b:.0} B");
    }
    let mut v = b;
    let mut unit = UNITS[0];
    for u in UNITS {
        v /= 1024.0;
        unit = u;
        if v.abs() < 1024.0 {
            break;
        }
    }
    format!("{} {unit}", sig3(v))
}

/// Throughput in MB/s (10⁶ bytes per second), the unit storage is compared in, or kB/s
/// below one.
fn rate(bytes_per_second: f64) -> String {
    let v = bytes_per_second;
    if v.abs() >= MB || v == 0.0 {
        format!("{} MB/s", sig3(v / MB))
    } else {
        format!("{} kB/s", sig3(v / 1e3))
    }
}

/// A value of `unit` for a person (an unknown unit follows the number as it is).
pub(super) fn human(unit: &str, v: f64) -> String {
    match unit {
        "s" => duration(v),
        "bytes" => bytes(v),
        "bytes/s" => rate(v),
        other => format!("{} {other}", sig3(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(duration(0.001_234), "1.23 ms");
        assert_eq!(duration(2.0), "2.00 s");
        assert_eq!(duration(0.000_045_6), "45.6 µs");
        assert_eq!(duration(123.4), "123 s");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1.5 * MIB), "1.50 MiB");
        assert_eq!(bytes(8.0 * 1024.0 * MIB), "8.00 GiB");
        assert_eq!(rate(250e6), "250 MB/s");
        assert_eq!(rate(1.5e9), "1500 MB/s");
        assert_eq!(rate(5e3), "5.00 kB/s");
        assert_eq!(human("ops", 3.0), "3.00 ops");
        assert_eq!(
            (tidy(0.5), tidy(250.0), tidy(0.1 + 0.2), tidy(0.0)),
            ("0.5".into(), "250".into(), "0.3".into(), "0".into())
        );
    }
}
