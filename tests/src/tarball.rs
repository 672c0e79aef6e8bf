//! A raw tar writer for hand-made layer tars, including hostile ones.
//!
//! Unlike `tar::Builder`, it writes names exactly as given (`../escape`, `/abs`, `a/../../x`)
//! and lets a test damage the last header (for checksum tests). Names and link targets longer
//! than 100 bytes get GNU long-name records; xattrs go into PAX records. It does not try to
//! make hostile archives "work": what it writes is what the test asked for.

/// One tar entry type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    File,
    Hardlink,
    Symlink,
    CharDevice,
    BlockDevice,
    Dir,
    Fifo,
}

impl EntryType {
    fn flag(self) -> u8 {
        match self {
            EntryType::File => b'0',
            EntryType::Hardlink => b'1',
            EntryType::Symlink => b'2',
            EntryType::CharDevice => b'3',
            EntryType::BlockDevice => b'4',
            EntryType::Dir => b'5',
            EntryType::Fifo => b'6',
        }
    }
}

/// A full description of one entry.
#[derive(Debug, Clone)]
pub struct EntrySpec {
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub device: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub data: Vec<u8>,
}

impl EntrySpec {
    /// An entry with defaults: root-owned, mode 0644 (0755 for directories), mtime 1700000000.
    pub fn new(kind: EntryType, name: impl AsRef<[u8]>) -> EntrySpec {
        EntrySpec {
            name: name.as_ref().to_vec(),
            kind,
            mode: if kind == EntryType::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            link: Vec::new(),
            device: (0, 0),
            xattrs: Vec::new(),
            data: Vec::new(),
        }
    }
}

/// Builds an uncompressed tar in memory.
#[derive(Debug, Default)]
pub struct TarBuilder {
    out: Vec<u8>,
    last_header: Option<usize>,
}

impl TarBuilder {
    pub fn new() -> TarBuilder {
        TarBuilder::default()
    }

    pub fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut Self {
        self.entry(EntrySpec::new(EntryType::Dir, name))
    }

    pub fn file(&mut self, name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> &mut Self {
        let mut e = EntrySpec::new(EntryType::File, name);
        e.data = data.as_ref().to_vec();
        self.entry(e)
    }

    pub fn file_mode(
        &mut self,
        name: impl AsRef<[u8]>,
        data: impl AsRef<[u8]>,
        mode: u32,
    ) -> &mut Self {
        let mut e = EntrySpec::new(EntryType::File, name);
        e.data = data.as_ref().to_vec();
        e.mode = mode;
        self.entry(e)
    }

    pub fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        let mut e = EntrySpec::new(EntryType::Symlink, name);
        e.mode = 0o777;
        e.link = target.as_ref().to_vec();
        self.entry(e)
    }

    pub fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        let mut e = EntrySpec::new(EntryType::Hardlink, name);
        e.link = target.as_ref().to_vec();
        self.entry(e)
    }

    /// An OCI whiteout for `path` (`dir/.wh.name`).
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(wh, b"")
    }

    /// An OCI opaque marker for directory `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), b"")
    }

    /// Appends `spec` (with a PAX record first if it has xattrs, and GNU long-name records for
    /// long names).
    pub fn entry(&mut self, spec: EntrySpec) -> &mut Self {
        if !spec.xattrs.is_empty() {
            let mut pax = Vec::new();
            for (k, v) in &spec.xattrs {
                let mut body = format!(" SCHILY.xattr.{k}=").into_bytes();
                body.extend_from_slice(v);
                body.push(b'\n');
                pax.extend(pax_record(&body));
            }
            let mut h = EntrySpec::new(EntryType::File, b"PaxHeaders/x");
            h.data = pax;
            self.write_raw(&h, b'x');
        }
        if spec.name.len() > 100 {
            let mut l = EntrySpec::new(EntryType::File, b"././@LongLink");
            l.data = [spec.name.as_slice(), b"\0"].concat();
            self.write_raw(&l, b'L');
        }
        if spec.link.len() > 100 {
            let mut l = EntrySpec::new(EntryType::File, b"././@LongLink");
            l.data = [spec.link.as_slice(), b"\0"].concat();
            self.write_raw(&l, b'K');
        }
        let flag = spec.kind.flag();
        self.write_raw(&spec, flag);
        self
    }

    /// Lets the test damage the most recently written header (e.g. its checksum field, bytes
    /// 148..156). The checksum is not recomputed afterwards.
    pub fn mangle_last_header(&mut self, f: impl FnOnce(&mut [u8])) -> &mut Self {
        let at = self.last_header.expect("a header was written");
        f(&mut self.out[at..at + 512]);
        self
    }

    /// Appends raw bytes (for malformed archives).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// The archive with its two terminating zero blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.out.clone();
        v.extend_from_slice(&[0u8; 1024]);
        v
    }

    fn write_raw(&mut self, spec: &EntrySpec, flag: u8) {
        let h = header(spec, flag, spec.data.len() as u64);
        self.last_header = Some(self.out.len());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(&spec.data);
        let pad = (512 - spec.data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }
}

/// A ustar header block for `spec` with type flag `flag` and data size `size` (names longer
/// than 100 bytes are cut: [`TarBuilder::entry`] adds the long-name records).
pub fn header(spec: &EntrySpec, flag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let name = &spec.name[..spec.name.len().min(100)];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], u64::from(spec.mode));
    octal(&mut h[108..116], u64::from(spec.uid));
    octal(&mut h[116..124], u64::from(spec.gid));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], spec.mtime);
    h[156] = flag;
    let link = &spec.link[..spec.link.len().min(100)];
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(spec.device.0));
    octal(&mut h[337..345], u64::from(spec.device.1));
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A tar holding one file `zeros` of `size` zero bytes, produced lazily while it is read
/// (nothing is held in memory or written to disk).
pub fn zeros_tar(size: u64) -> impl std::io::Read {
    use std::io::Read as _;
    let hdr = header(&EntrySpec::new(EntryType::File, "zeros"), b'0', size);
    let pad = (512 - size % 512) % 512;
    std::io::Cursor::new(hdr).chain(std::io::repeat(0).take(size + pad + 1024))
}

/// [`zeros_tar`] gzip-compressed, lazily: a decompression bomb.
pub fn gzip_bomb(size: u64) -> impl std::io::Read {
    flate2::read::GzEncoder::new(zeros_tar(size), flate2::Compression::best())
}

/// Writes `v` as a NUL-terminated zero-padded octal number filling `field`.
fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    assert!(
        s.len() <= width,
        "value {v} does not fit a {width}-digit tar field"
    );
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

/// A PAX record `"<len> <body>"` where `body` starts with a space-less key and `<len>` counts
/// the whole record including itself.
fn pax_record(body_with_leading_space: &[u8]) -> Vec<u8> {
    let rest = body_with_leading_space.len();
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    [len.to_string().as_bytes(), body_with_leading_space].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_crate_reads_what_we_write() {
        let mut t = TarBuilder::new();
        t.dir("d")
            .file("d/f", b"data")
            .symlink("l", "d/f")
            .hardlink("h", "d/f");
        let long = format!("d/{}", "n".repeat(150));
        t.file(&long, b"x");
        let mut e = EntrySpec::new(EntryType::File, "x");
        e.xattrs.push(("user.k".into(), b"v".to_vec()));
        t.entry(e);
        let bytes = t.finish();
        let mut a = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("x") {
                let ext: Vec<_> = e
                    .pax_extensions()
                    .unwrap()
                    .unwrap()
                    .map(|x| x.unwrap().key().unwrap().to_owned())
                    .collect();
                assert_eq!(ext, ["SCHILY.xattr.user.k"]);
            }
            names.push(e.path().unwrap().display().to_string());
        }
        assert_eq!(names, ["d", "d/f", "l", "h", long.as_str(), "x"]);
    }

    #[test]
    fn hostile_names_are_written_verbatim() {
        let mut t = TarBuilder::new();
        t.file("../escape", b"x");
        let bytes = t.finish();
        assert_eq!(&bytes[..9], b"../escape");
    }

    #[test]
    fn the_bomb_is_a_valid_tar_of_zeros() {
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gzip_bomb(3 << 20)));
        let mut entries = a.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("zeros"));
        assert_eq!(e.header().size().unwrap(), 3 << 20);
        let n = std::io::copy(&mut e, &mut std::io::sink()).unwrap();
        assert_eq!(n, 3 << 20);
        drop(e);
        assert!(entries.next().is_none());
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let r = pax_record(b" k=v\n");
        assert_eq!(r, b"6 k=v\n");
        let body = vec![b'a'; 97];
        let r = pax_record(&body);
        assert_eq!(
            r.len().to_string(),
            String::from_utf8_lossy(&r[..r.len().to_string().len()])
        );
    }
}
