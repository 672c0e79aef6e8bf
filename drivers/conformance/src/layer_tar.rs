//! Layer tars built in memory with the `tar` crate, with the OCI conventions the checks need:
//! whiteouts (`.wh.<name>`), opaque markers (`.wh..wh..opq`), hardlinks, device nodes, owners,
//! modes and xattrs (as PAX `SCHILY.xattr.*` records, which the `tar` crate reads but does not
//! write by itself).

use tar::{Builder, EntryType, Header};

/// Modification time of every entry unless set otherwise.
pub const MTIME: u64 = 1_700_000_000;

/// One entry to add.
#[derive(Debug, Clone)]
pub struct E {
    pub path: String,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub data: Vec<u8>,
    pub link: String,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl E {
    fn new(kind: EntryType, path: &str, mode: u32) -> E {
        E {
            path: path.to_owned(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            data: Vec::new(),
            link: String::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
        }
    }

    pub fn file(path: &str, data: impl AsRef<[u8]>) -> E {
        let mut e = E::new(EntryType::Regular, path, 0o644);
        e.data = data.as_ref().to_vec();
        e
    }

    pub fn dir(path: &str) -> E {
        E::new(EntryType::Directory, path, 0o755)
    }

    pub fn symlink(path: &str, target: &str) -> E {
        let mut e = E::new(EntryType::Symlink, path, 0o777);
        e.link = target.to_owned();
        e
    }

    pub fn hardlink(path: &str, target: &str) -> E {
        let mut e = E::new(EntryType::Link, path, 0o644);
        e.link = target.to_owned();
        e
    }

    pub fn char_dev(path: &str, major: u32, minor: u32) -> E {
        let mut e = E::new(EntryType::Char, path, 0o666);
        e.dev = (major, minor);
        e
    }

    pub fn fifo(path: &str) -> E {
        E::new(EntryType::Fifo, path, 0o600)
    }

    /// An OCI whiteout deleting `path`.
    pub fn whiteout(path: &str) -> E {
        let wh = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        E::file(&wh, b"")
    }

    /// An OCI opaque marker for directory `dir`.
    pub fn opaque(dir: &str) -> E {
        E::file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn mode(mut self, mode: u32) -> E {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> E {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> E {
        self.xattrs.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }
}

/// An uncompressed layer tar under construction.
pub struct LayerTar {
    b: Builder<Vec<u8>>,
}

impl std::fmt::Debug for LayerTar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerTar")
    }
}

impl Default for LayerTar {
    fn default() -> Self {
        LayerTar::new()
    }
}

impl LayerTar {
    pub fn new() -> LayerTar {
        LayerTar {
            b: Builder::new(Vec::new()),
        }
    }

    /// A tar of `entries`.
    pub fn of(entries: impl IntoIterator<Item = E>) -> Vec<u8> {
        let mut t = LayerTar::new();
        for e in entries {
            t.add(e);
        }
        t.finish()
    }

    pub fn add(&mut self, e: E) -> &mut Self {
        if !e.xattrs.is_empty() {
            let mut records = Vec::new();
            for (k, v) in &e.xattrs {
                records.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
            }
            let mut h = Header::new_ustar();
            h.set_entry_type(EntryType::XHeader);
            h.set_mode(0o644);
            h.set_mtime(e.mtime);
            h.set_size(records.len() as u64);
            let name = format!("PaxHeaders/{}", e.path.rsplit('/').next().unwrap_or("x"));
            self.b
                .append_data(&mut h, name, &records[..])
                .expect("write a pax header to memory");
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.data.len() as u64);
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0)
                .expect("ustar headers have device fields");
            h.set_device_minor(e.dev.1)
                .expect("ustar headers have device fields");
        }
        if matches!(e.kind, EntryType::Symlink | EntryType::Link) {
            self.b
                .append_link(&mut h, &e.path, &e.link)
                .expect("write a link entry to memory");
        } else {
            self.b
                .append_data(&mut h, &e.path, &e.data[..])
                .expect("write an entry to memory");
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("finish a tar in memory")
    }
}

/// A PAX record `"<len> <key>=<value>\n"`, `<len>` counting the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn entries_and_xattrs_read_back() {
        let bytes = LayerTar::of([
            E::dir("d").mode(0o1777),
            E::file("d/f", b"hi")
                .owner(1000, 2000)
                .xattr("user.k", b"v"),
            E::whiteout("d/gone"),
            E::opaque("d"),
            E::char_dev("null", 1, 3),
            E::hardlink("h", "d/f"),
        ]);
        let mut a = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let p = e.path().expect("path").display().to_string();
            if p == "d/f" {
                let x: Vec<_> = e
                    .pax_extensions()
                    .expect("pax")
                    .expect("has pax")
                    .map(|x| {
                        let x = x.expect("record");
                        (x.key().expect("key").to_owned(), x.value_bytes().to_vec())
                    })
                    .collect();
                assert_eq!(x, [("SCHILY.xattr.user.k".to_owned(), b"v".to_vec())]);
                assert_eq!(e.header().uid().expect("uid"), 1000);
            }
            if p == "null" {
                assert_eq!(e.header().device_major().expect("major"), Some(1));
            }
            seen.push(p);
        }
        assert_eq!(
            seen,
            ["d", "d/f", "d/.wh.gone", "d/.wh..wh..opq", "null", "h"]
        );
        assert_eq!(pax_record("k", b"v"), b"6 k=v\n");
    }
}
