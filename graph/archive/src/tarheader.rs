//! Encoding tar headers for `write_changes`.
//!
//! Each entry gets a ustar header; when a value does not fit ustar (a name that cannot be
//! split into prefix/name, a non-ASCII name or link target, a link target over 100 bytes,
//! ids over 2097151, a size of 8 GiB or more, a negative or huge mtime) or the entry has
//! xattrs, a PAX extended header (`x`) carrying those records, sorted by key, precedes it.
//! This is the layout Go's `archive/tar` chooses automatically, so our layers look like the
//! ones podman and buildah write. Times are whole seconds; no user or group names are written
//! (layers are identified by numeric ids, and the output must not depend on the host's
//! passwd file).
//!
//! It does not read files or decide entry order; `changes` does.

use tar::Header;

use crate::pax;

/// Largest value of a 7-digit octal field (uid, gid, device numbers).
const MAX_OCTAL_7: u64 = 0o7_777_777;
/// Largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL_11: u64 = 0o77_777_777_777;

/// What goes into one entry's header.
#[derive(Debug)]
pub(crate) struct EntryHeader<'a> {
    /// The name as written (directories end with `/`).
    pub(crate) path: &'a [u8],
    pub(crate) typeflag: u8,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: i64,
    pub(crate) size: u64,
    pub(crate) link: &'a [u8],
    pub(crate) dev: (u32, u32),
    /// Sorted by name.
    pub(crate) xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Appends the header block(s) for `h` to `out` (the PAX header and its padded data first if
/// needed). Fails only for values no tar format here can hold.
pub(crate) fn encode(h: &EntryHeader<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    if u64::from(h.dev.0) > MAX_OCTAL_7 || u64::from(h.dev.1) > MAX_OCTAL_7 {
        return Err(format!(
            "device number {}:{} is too large",
            h.dev.0, h.dev.1
        ));
    }
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut header = Header::new_ustar();
    let fields = header
        .as_ustar_mut()
        .expect("a header made by new_ustar is a ustar header");
    match split_ustar(h.path) {
        Some((prefix, name)) => {
            fields.prefix[..prefix.len()].copy_from_slice(prefix);
            fields.name[..name.len()].copy_from_slice(name);
        }
        None => {
            records.push((b"path".to_vec(), h.path.to_vec()));
            put_truncated(&mut fields.name, &to_ascii(h.path));
        }
    }
    if h.link.len() <= fields.linkname.len() && h.link.is_ascii() {
        fields.linkname[..h.link.len()].copy_from_slice(h.link);
    } else {
        records.push((b"linkpath".to_vec(), h.link.to_vec()));
        put_truncated(&mut fields.linkname, &to_ascii(h.link));
    }
    header.set_entry_type(tar::EntryType::new(h.typeflag));
    header.set_mode(h.mode);
    let mut num = |key: &str, v: u64, max: u64| -> u64 {
        if v > max {
            records.push((key.as_bytes().to_vec(), v.to_string().into_bytes()));
            0
        } else {
            v
        }
    };
    header.set_uid(num("uid", h.uid, MAX_OCTAL_7));
    header.set_gid(num("gid", h.gid, MAX_OCTAL_7));
    header.set_size(num("size", h.size, MAX_OCTAL_11));
    match u64::try_from(h.mtime) {
        Ok(m) if m <= MAX_OCTAL_11 => header.set_mtime(m),
        _ => {
            records.push((b"mtime".to_vec(), h.mtime.to_string().into_bytes()));
            header.set_mtime(0);
        }
    }
    header
        .set_device_major(h.dev.0)
        .and_then(|()| header.set_device_minor(h.dev.1))
        .map_err(|e| e.to_string())?;
    for (name, value) in h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        records.push((key, value.clone()));
    }
    header.set_cksum();

    if !records.is_empty() {
        records.sort();
        let mut data = Vec::new();
        for (k, v) in &records {
            pax::record(&mut data, k, v);
        }
        let mut x = Header::new_ustar();
        let fields = x
            .as_ustar_mut()
            .expect("a header made by new_ustar is a ustar header");
        put_truncated(&mut fields.name, &pax_header_name(h.path));
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_mode(0);
        x.set_uid(0);
        x.set_gid(0);
        x.set_size(data.len() as u64);
        x.set_cksum();
        out.extend_from_slice(x.as_bytes());
        out.extend_from_slice(&data);
        pad(out, data.len() as u64);
    }
    out.extend_from_slice(header.as_bytes());
    Ok(())
}

/// Appends zeros up to the next 512-byte boundary after `len` bytes of data.
pub(crate) fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % 512) as usize;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// Go's `splitUSTARPath`: the path as (prefix, name) if it fits ustar, ASCII only.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if !path.is_ascii() {
        return None;
    }
    if path.len() <= 100 {
        return Some((&[], path));
    }
    let mut len = path.len();
    if len > 156 {
        len = 156;
    } else if path[len - 1] == b'/' {
        len -= 1;
    }
    let i = path[..len].iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..i], &path[i + 1..]);
    (i > 0 && !name.is_empty() && name.len() <= 100 && prefix.len() <= 155)
        .then_some((prefix, name))
}

/// Go's name for the PAX header of `path`: `dir/PaxHeaders.0/file`.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, file) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut name = to_ascii(dir);
    name.extend_from_slice(b"PaxHeaders.0/");
    name.extend_from_slice(&to_ascii(file));
    name
}

fn to_ascii(b: &[u8]) -> Vec<u8> {
    b.iter().copied().filter(u8::is_ascii).collect()
}

fn put_truncated(field: &mut [u8], v: &[u8]) {
    let n = v.len().min(field.len());
    field[..n].copy_from_slice(&v[..n]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h<'a>(path: &'a [u8], link: &'a [u8]) -> EntryHeader<'a> {
        EntryHeader {
            path,
            typeflag: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            size: 5,
            link,
            dev: (0, 0),
            xattrs: &[],
        }
    }

    #[test]
    fn short_names_need_no_pax() {
        let mut out = Vec::new();
        encode(&h(b"a/b.txt", b""), &mut out).unwrap();
        assert_eq!(out.len(), 512);
        let hdr = Header::from_byte_slice(&out);
        assert_eq!(&*hdr.path_bytes(), b"a/b.txt");
        assert_eq!(hdr.size().unwrap(), 5);
    }

    #[test]
    fn splits_into_prefix_when_possible_else_pax() {
        let long_dir = "d".repeat(120);
        let p = format!("{long_dir}/file");
        let mut out = Vec::new();
        encode(&h(p.as_bytes(), b""), &mut out).unwrap();
        assert_eq!(out.len(), 512, "ustar prefix split");
        assert_eq!(&*Header::from_byte_slice(&out).path_bytes(), p.as_bytes());

        let p = "x".repeat(300);
        let mut out = Vec::new();
        encode(&h(p.as_bytes(), b""), &mut out).unwrap();
        assert_eq!(out[156], b'x', "a PAX header comes first");
        assert!(out.len() > 1024);
    }

    #[test]
    fn go_split_rules() {
        assert_eq!(split_ustar(&[b'a'; 101]), None);
        assert_eq!(split_ustar("é".as_bytes()), None);
        let p = format!("{}/{}", "p".repeat(155), "n".repeat(100));
        assert!(split_ustar(p.as_bytes()).is_some());
        let p = format!("{}/{}", "p".repeat(156), "n");
        assert_eq!(split_ustar(p.as_bytes()), None);
    }
}
