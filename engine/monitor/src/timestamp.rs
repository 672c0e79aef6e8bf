//! RFC 3339 timestamps with nanoseconds in UTC (`2026-11-29T10:11:12.123456789Z`), the format
//! of the CRI log and the exit file, computed from `SystemTime` without a date library.
//!
//! Formatting always writes nine fraction digits and `Z`, so timestamps sort as strings.
//! Parsing accepts what RFC 3339 allows (zero to nine fraction digits, `Z` or a `±hh:mm`
//! offset), which covers Go's RFC3339Nano and user input for `--since`. Instants before the
//! Unix epoch are not representable (the unit is `u64` nanoseconds since 1970); leap seconds
//! are refused.

use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// Nanoseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current time, formatted by [`format_rfc3339_nanos`].
pub fn timestamp_now() -> String {
    format_rfc3339_nanos(now_unix_nanos())
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for nanoseconds since the Unix epoch.
pub fn format_rfc3339_nanos(unix_nanos: u64) -> String {
    let secs = unix_nanos / NANOS_PER_SEC;
    let nanos = unix_nanos % NANOS_PER_SEC;
    let days = secs / SECS_PER_DAY;
    let rem = secs % SECS_PER_DAY;
    // Nanoseconds in a u64 end in 2554, so the day count always fits in an i64.
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Nanoseconds since the Unix epoch for an RFC 3339 timestamp; `None` if it is malformed or
/// before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut pos = 19;
    let mut nanos = 0u64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let count = pos - start;
        if count == 0 || count > 9 {
            return None;
        }
        nanos = digits(b, start, count)? * 10u64.pow(9 - count as u32);
    }

    let offset_secs: i64 = match &b[pos..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h0, h1, b':', m0, m1] => {
            let hours = digits(&[*h0, *h1], 0, 2)?;
            let minutes = digits(&[*m0, *m1], 0, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let off = (hours * 3600 + minutes * 60) as i64;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };

    let days = days_from_civil(year as i64, month as u32, day as u32);
    let local = days * SECS_PER_DAY as i64 + (hour * 3600 + minute * 60 + second) as i64;
    let utc = u64::try_from(local - offset_secs).ok()?;
    utc.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

/// The decimal number in `b[start..start + len]`, `None` unless it is all digits.
fn digits(b: &[u8], start: usize, len: usize) -> Option<u64> {
    let slice = b.get(start..start + len)?;
    slice.iter().try_fold(0u64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) for a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 for a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (a leap day in a year divisible by 400), 23:59:59.5
        assert_eq!(
            format_rfc3339_nanos(951_868_799_500_000_000),
            "2000-02-29T23:59:59.500000000Z"
        );
        assert_eq!(
            format_rfc3339_nanos(1_795_947_072_123_456_789),
            "2026-11-29T10:11:12.123456789Z"
        );
    }

    #[test]
    fn parsing_inverts_formatting_across_centuries() {
        // Every ~7 days (with odd hours, seconds and nanoseconds) from 1970 to 2554.
        let step = (7 * 86_400 + 3_601) * NANOS_PER_SEC + 234_567_891;
        let mut t = 0u64;
        let mut checked = 0;
        while let Some(next) = t.checked_add(step) {
            let s = format_rfc3339_nanos(t);
            assert_eq!(parse_rfc3339(&s), Some(t), "{s}");
            t = next;
            checked += 1;
        }
        assert!(checked > 30_000, "{checked}");
        let last = format_rfc3339_nanos(u64::MAX);
        assert!(last.starts_with("2554-"), "{last}");
        assert_eq!(parse_rfc3339(&last), Some(u64::MAX));
    }

    #[test]
    fn parses_offsets_and_short_fractions() {
        let base = parse_rfc3339("2026-11-29T10:11:12Z").expect("no fraction");
        assert_eq!(base, 1_795_947_072 * NANOS_PER_SEC);
        assert_eq!(
            parse_rfc3339("2026-11-29T10:11:12.5Z"),
            Some(base + 500_000_000)
        );
        assert_eq!(parse_rfc3339("2026-11-29T11:41:12+01:30"), Some(base));
        assert_eq!(parse_rfc3339("2026-11-29T05:11:12-05:00"), Some(base));
        assert_eq!(parse_rfc3339("2026-11-29 10:11:12z"), Some(base));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2026-11-29",
            "2026-11-29T10:11:12",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T10:11:12.Z",
            "2026-11-29T10:11:12.1234567890Z",
            "2026-11-29T10:11:12+0100",
            "1969-12-31T23:59:59Z",
            "2026-11-29T10:11:12Zjunk",
            "20x6-11-29T10:11:12Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
