//! Lexical validation and normalisation of entry names and hardlink targets.
//!
//! Names are normalised the way container tooling does it: a leading `/` and `./` are
//! dropped, empty and `.` components vanish, and `..` climbs one level; climbing above the
//! root is refused. The result is a relative path of plain components joined by `/` (empty
//! for the root itself). Whether the path *physically* stays inside the root (symlinks) is not
//! decided here: the in-root resolution in `tree` guarantees it.

/// A normalised relative path (`a/b/c`, or empty for the root).
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.is_empty() {
        return Err("empty name");
    }
    if raw.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err("name escapes the root");
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// Splits a normalised path into (parent, last component). The root has no last component.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Joins a normalised directory and a child name.
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, &'static str> {
        normalize(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn strips_prefixes_and_dots() {
        assert_eq!(n("./a/b").unwrap(), "a/b");
        assert_eq!(n("/a//b/").unwrap(), "a/b");
        assert_eq!(n("a/./b/../c").unwrap(), "a/c");
        assert_eq!(n("./").unwrap(), "");
        assert_eq!(n("/").unwrap(), "");
        assert_eq!(n("a/..").unwrap(), "");
    }

    #[test]
    fn refuses_escapes_and_bad_names() {
        assert!(n("../x").is_err());
        assert!(n("a/../../x").is_err());
        assert!(n("/../x").is_err());
        assert!(n("./..").is_err());
        assert!(n("").is_err());
        assert!(normalize(b"a\0b").is_err());
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a/b", b"x"), b"a/b/x");
    }
}
