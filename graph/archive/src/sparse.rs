//! Sparse files: writing them with holes.
//!
//! - GNU sparse entries (type `S`, `tar --format=gnu -S`): the tar crate expands them,
//!   producing zeros for the holes; we write every non-zero chunk at its offset and skip the
//!   zero ones, so holes stay holes.
//! - PAX sparse formats 0.0, 0.1 and 1.0 (`tar --format=pax -S`, GNU tar's default is 1.0):
//!   the tar crate sees a plain file whose data is the map (1.0) and the data regions; we read
//!   the map (from the PAX records or the data) and write each region at its offset.
//!
//! In both cases the stored bytes pass through the tap with capture on, so the tar-split
//! record keeps sparse entries' stored data inline (sparse files are rare in images and this
//! keeps the exporter simple). The logical size is held to the apply size limit.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

use crate::extract::CopyError;
use crate::pax::Pax;

/// Upper bound on the number of regions in a sparse map (bounds memory for hostile maps).
const MAX_REGIONS: u64 = 1 << 22;

/// A PAX-format sparse file description.
#[derive(Debug)]
pub(crate) struct PaxSparse {
    /// The real (logical) size of the file.
    pub(crate) real_size: u64,
    /// The real name of the file (the header's name is a placeholder).
    pub(crate) name: Option<Vec<u8>>,
    /// The region map for 0.x; `None` for 1.0, whose map precedes the data.
    map: Option<Vec<(u64, u64)>>,
}

/// Recognises the GNU sparse PAX records; `Err` for an unknown version or a bad map.
pub(crate) fn pax_sparse(pax: &Pax) -> Result<Option<PaxSparse>, String> {
    let major = pax.get("GNU.sparse.major");
    let minor = pax.get("GNU.sparse.minor");
    let v1 = match (major, minor) {
        (Some(b"0"), Some(b"0" | b"1")) => false,
        (Some(b"1"), Some(b"0")) => true,
        (None, None) => {
            if pax.get("GNU.sparse.map").is_none() && pax.get("GNU.sparse.offset").is_none() {
                return Ok(None);
            }
            false
        }
        _ => return Err("unknown GNU sparse format version".into()),
    };
    let real_size = match pax.get_u64("GNU.sparse.size")? {
        Some(s) => s,
        None => pax
            .get_u64("GNU.sparse.realsize")?
            .ok_or("sparse file without a real size")?,
    };
    let map = if v1 { None } else { Some(map_0x(pax)?) };
    Ok(Some(PaxSparse {
        real_size,
        name: pax.get_nonempty("GNU.sparse.name").map(<[u8]>::to_vec),
        map,
    }))
}

fn number(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad number {:?} in sparse map", String::from_utf8_lossy(v)))
}

/// 0.1: `GNU.sparse.map=off,len,...`; 0.0: repeated `GNU.sparse.offset`/`numbytes` records.
fn map_0x(pax: &Pax) -> Result<Vec<(u64, u64)>, String> {
    let mut nums = Vec::new();
    if let Some(map) = pax.get("GNU.sparse.map") {
        if !map.is_empty() {
            for n in map.split(|&b| b == b',') {
                nums.push(number(n)?);
            }
        }
    } else {
        let offsets: Vec<&[u8]> = pax.all("GNU.sparse.offset").collect();
        let sizes: Vec<&[u8]> = pax.all("GNU.sparse.numbytes").collect();
        if offsets.len() != sizes.len() {
            return Err("sparse map has unpaired offsets and sizes".into());
        }
        for (o, s) in offsets.into_iter().zip(sizes) {
            nums.push(number(o)?);
            nums.push(number(s)?);
        }
    }
    if nums.len() % 2 != 0 || nums.len() as u64 / 2 > MAX_REGIONS {
        return Err("malformed sparse map".into());
    }
    Ok(nums.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

/// Writes a PAX sparse file from its `stored` bytes of entry data.
pub(crate) fn write_pax(
    file: &File,
    content: &mut dyn Read,
    stored: u64,
    sp: &PaxSparse,
    buf: &mut [u8],
) -> Result<(), CopyError> {
    let (map, mut used) = match &sp.map {
        Some(m) => (m.clone(), 0),
        None => read_map_1x0(content, stored)?,
    };
    let mut end = 0u64;
    for (off, len) in map {
        let region_end = off
            .checked_add(len)
            .filter(|&e| off >= end && e <= sp.real_size)
            .ok_or_else(|| CopyError::Format("sparse map regions overlap or overrun".into()))?;
        used = used
            .checked_add(len)
            .filter(|&u| u <= stored)
            .ok_or_else(|| CopyError::Format("sparse map lists more data than stored".into()))?;
        let mut pos = off;
        while pos < region_end {
            let want = buf.len().min((region_end - pos) as usize);
            let n = content.read(&mut buf[..want]).map_err(CopyError::Stream)?;
            if n == 0 {
                return Err(CopyError::Truncated);
            }
            file.write_all_at(&buf[..n], pos)
                .map_err(CopyError::Write)?;
            pos += n as u64;
        }
        end = region_end;
    }
    if used != stored {
        return Err(CopyError::Format(
            "sparse data does not fill the entry".into(),
        ));
    }
    file.set_len(sp.real_size).map_err(CopyError::Write)
}

/// Reads the 1.0 map: decimal numbers, one per line (count, then offset/size pairs), padded
/// to whole 512-byte blocks. Returns the map and the bytes it took.
fn read_map_1x0(content: &mut dyn Read, stored: u64) -> Result<(Vec<(u64, u64)>, u64), CopyError> {
    let mut text: Vec<u8> = Vec::with_capacity(512);
    let mut parsed = 0usize;
    let mut next = |text: &mut Vec<u8>| -> Result<u64, CopyError> {
        loop {
            if let Some(nl) = text[parsed..].iter().position(|&b| b == b'\n') {
                let n = number(&text[parsed..parsed + nl]).map_err(CopyError::Format)?;
                parsed += nl + 1;
                return Ok(n);
            }
            if text.len() as u64 + 512 > stored {
                return Err(CopyError::Format(
                    "sparse map runs past the entry data".into(),
                ));
            }
            let at = text.len();
            text.resize(at + 512, 0);
            content
                .read_exact(&mut text[at..])
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => CopyError::Truncated,
                    _ => CopyError::Stream(e),
                })?;
        }
    };
    let count = next(&mut text)?;
    if count > MAX_REGIONS {
        return Err(CopyError::Format("sparse map has too many regions".into()));
    }
    let mut map = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = next(&mut text)?;
        let len = next(&mut text)?;
        map.push((off, len));
    }
    Ok((map, text.len() as u64))
}

/// Copies `size` bytes of expanded content, skipping all-zero chunks so they become holes.
pub(crate) fn write_detecting_holes(
    file: &File,
    content: &mut dyn Read,
    size: u64,
    buf: &mut [u8],
) -> Result<(), CopyError> {
    let mut off = 0u64;
    while off < size {
        let want = buf.len().min((size - off) as usize);
        let n = content.read(&mut buf[..want]).map_err(CopyError::Stream)?;
        if n == 0 {
            return Err(CopyError::Truncated);
        }
        let chunk = &buf[..n];
        if !is_zero(chunk) {
            file.write_all_at(chunk, off).map_err(CopyError::Write)?;
        }
        off += n as u64;
    }
    file.set_len(size).map_err(CopyError::Write)
}

fn is_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(16);
    let wide = words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0);
    wide && words.remainder().iter().all(|&x| x == 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0; 100]));
        let mut v = vec![0u8; 100];
        v[99] = 1;
        assert!(!is_zero(&v));
        v[99] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
    }

    #[test]
    fn map_1x0_parses_and_counts_blocks() {
        let mut data = b"2\n0\n3\n1000\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcde");
        let (map, used) = read_map_1x0(&mut &data[..], data.len() as u64).unwrap();
        assert_eq!(map, vec![(0, 3), (1000, 2)]);
        assert_eq!(used, 512);
    }
}
