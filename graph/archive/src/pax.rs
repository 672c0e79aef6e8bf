//! PAX extended header records, parsed from the raw bytes the tap captured.
//!
//! The `tar` crate positions the stream correctly but its PAX parser splits records on
//! newlines, which loses values that contain `\n` (binary xattrs such as
//! `security.capability` often do, so do file names). This module parses the records by
//! their length prefix instead, from the extension headers that precede an entry's header in
//! the captured segment.
//!
//! It does not interpret GNU long-name records (the tar crate does) nor apply global (`g`)
//! headers, which container tooling ignores.

use tar::Header;

/// Parsed `key=value` records of one entry's PAX header, in stream order.
#[derive(Debug, Default)]
pub(crate) struct Pax {
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A timestamp with nanoseconds, as PAX records and headers express it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Time {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
}

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

impl Pax {
    /// Parses `len key=value\n` records. Trailing NUL padding is tolerated.
    pub(crate) fn parse(mut data: &[u8]) -> Result<Pax, String> {
        let mut records = Vec::new();
        while !data.is_empty() {
            if data.iter().all(|&b| b == 0) {
                break;
            }
            let sp = data
                .iter()
                .position(|&b| b == b' ')
                .ok_or("PAX record without a length")?;
            let len: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("PAX record with a bad length")?;
            if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err("PAX record length does not match its content".into());
            }
            let kv = &data[sp + 1..len - 1];
            let eq = kv
                .iter()
                .position(|&b| b == b'=')
                .ok_or("PAX record without '='")?;
            if eq == 0 {
                return Err("PAX record with an empty key".into());
            }
            records.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
            data = &data[len..];
        }
        Ok(Pax { records })
    }

    /// The last value of `key` (later records override earlier ones).
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        self.records
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// A non-empty value of `key` (an empty value means "unset" for path-like keys).
    pub(crate) fn get_nonempty(&self, key: &str) -> Option<&[u8]> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// A decimal integer value.
    pub(crate) fn get_u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get_nonempty(key) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("PAX record {key} is not a number")),
        }
    }

    /// A `secs[.fraction]` timestamp value.
    pub(crate) fn get_time(&self, key: &str) -> Result<Option<Time>, String> {
        match self.get_nonempty(key) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| format!("PAX record {key} is not a timestamp")),
        }
    }

    /// All values of `key`, in order (GNU sparse 0.0 repeats its keys).
    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.records
            .iter()
            .filter(move |(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// `SCHILY.xattr.NAME` records as (NAME, value); the last one wins for a repeated name.
    pub(crate) fn xattrs(&self) -> Vec<(&[u8], &[u8])> {
        let mut out: Vec<(&[u8], &[u8])> = Vec::new();
        for (k, v) in &self.records {
            if let Some(name) = k.strip_prefix(XATTR_PREFIX) {
                if name.is_empty() {
                    continue;
                }
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = v,
                    None => out.push((name, v)),
                }
            }
        }
        out
    }
}

/// Parses `[-]secs[.fraction]` (fraction truncated to nanoseconds).
pub(crate) fn parse_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if !neg {
        Time { secs, nanos }
    } else if nanos == 0 {
        Time {
            secs: -secs,
            nanos: 0,
        }
    } else {
        Time {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}

/// Walks the extension headers in `region` (the captured bytes between the previous entry's
/// data and this entry's header, starting at a block boundary) and parses the PAX one.
pub(crate) fn region_pax(region: &[u8]) -> Result<Option<Pax>, String> {
    let mut pax = None;
    let mut off = 0usize;
    while off < region.len() {
        let block = region
            .get(off..off + 512)
            .ok_or("extension header is cut short")?;
        let header = Header::from_byte_slice(block);
        let size = header.entry_size().map_err(|e| e.to_string())?;
        let start = off + 512;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|&e| e <= region.len())
            .ok_or("extension data is cut short")?;
        match block[156] {
            b'x' => pax = Some(Pax::parse(&region[start..end])?),
            b'L' | b'K' => {}
            t => {
                return Err(format!(
                    "unexpected header type {:?} before an entry",
                    char::from(t)
                ))
            }
        }
        off = start + (end - start).div_ceil(512) * 512;
    }
    if off != region.len() {
        return Err("extension headers do not end at the entry's header".into());
    }
    Ok(pax)
}

/// Builds one PAX record `len key=value\n`.
pub(crate) fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 3 + key.len() + value.len(); // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + decimal_len(len) {
        len = rest + decimal_len(len);
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn decimal_len(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_containing_newlines() {
        let mut data = Vec::new();
        record(
            &mut data,
            b"SCHILY.xattr.security.capability",
            b"\x01\n\x0a\0x",
        );
        record(&mut data, b"path", b"a\nb");
        record(&mut data, b"mtime", b"1700000000.5");
        let pax = Pax::parse(&data).unwrap();
        assert_eq!(pax.get("path"), Some(&b"a\nb"[..]));
        assert_eq!(
            pax.xattrs(),
            vec![(&b"security.capability"[..], &b"\x01\n\x0a\0x"[..])]
        );
        assert_eq!(
            pax.get_time("mtime").unwrap(),
            Some(Time {
                secs: 1_700_000_000,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn record_lengths_are_self_consistent() {
        for n in 0..300 {
            let mut out = Vec::new();
            record(&mut out, b"k", &vec![b'v'; n]);
            let pax = Pax::parse(&out).unwrap();
            assert_eq!(pax.get("k").unwrap().len(), n);
        }
    }

    #[test]
    fn rejects_bad_records() {
        for bad in [
            &b"5 a=b\n"[..],
            b"x a=b\n",
            b"7 ab\n",
            b"100 a=b\n",
            b"6 =bc\n",
        ] {
            assert!(
                Pax::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn negative_and_fractional_times() {
        assert_eq!(
            parse_time(b"-1.25"),
            Some(Time {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(parse_time(b"12"), Some(Time { secs: 12, nanos: 0 }));
        assert_eq!(
            parse_time(b"1.1234567891"),
            Some(Time {
                secs: 1,
                nanos: 123_456_789
            })
        );
        assert_eq!(parse_time(b"1.x"), None);
        assert_eq!(parse_time(b""), None);
    }
}
