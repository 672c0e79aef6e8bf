//! A writer for the `newc` cpio format (the one the kernel unpacks as an initramfs), so the
//! guest's initramfs is built without a staging tree, without root, and with device nodes
//! (`/dev/console`) that an unprivileged host could not `mknod`.
//!
//! It writes only what an initramfs needs (directories, regular files, symlinks, character
//! devices, all owned by root with mtime 0 so the archive is reproducible); it does not read
//! archives, compress, or record hard links.

use std::io::{self, Write};

/// What one archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A character device with its major and minor numbers.
    CharDev(u32, u32),
}

impl Kind {
    fn type_bits(self) -> u32 {
        match self {
            Kind::Dir => 0o040000,
            Kind::File => 0o100000,
            Kind::Symlink => 0o120000,
            Kind::CharDev(..) => 0o020000,
        }
    }
}

/// Streams `newc` entries into `out`; [`Writer::finish`] writes the trailer.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// Adds an entry named `name` (relative, no leading `/`) with permission bits `perm`;
    /// `data` is the file content or the symlink target (empty for directories and devices).
    pub fn entry(&mut self, name: &str, kind: Kind, perm: u32, data: &[u8]) -> io::Result<()> {
        let (rmajor, rminor) = match kind {
            Kind::CharDev(major, minor) => (major, minor),
            _ => (0, 0),
        };
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: over 4 GiB"))
        })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if kind == Kind::Dir { 2 } else { 1 };
        self.header(
            name,
            ino,
            kind.type_bits() | (perm & 0o7777),
            nlink,
            size,
            rmajor,
            rminor,
        )?;
        self.write(data)?;
        self.pad()
    }

    /// Writes the `TRAILER!!!` entry and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, 1, 0, 0, 0)?;
        // Whole 512-byte blocks, as cpio(1) writes them.
        self.pad_to(512)?;
        self.out.flush()?;
        Ok(self.out)
    }

    #[allow(clippy::too_many_arguments)] // one argument per header field
    fn header(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        size: u32,
        rmajor: u32,
        rminor: u32,
    ) -> io::Result<()> {
        let namesize = u32::try_from(name.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "entry name too long"))?;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, namesize, 0,
        ];
        let mut head = String::with_capacity(110);
        head.push_str("070701");
        for f in fields {
            head.push_str(&format!("{f:08x}"));
        }
        self.write(head.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Pads to the format's 4-byte alignment.
    fn pad(&mut self) -> io::Result<()> {
        self.pad_to(4)
    }

    /// Writes zeros up to the next multiple of `align` (at most 512).
    fn pad_to(&mut self, align: u64) -> io::Result<()> {
        let len = (align - self.written % align) % align;
        self.write(&[0; 512][..len as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn archive() -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        w.entry("bin", Kind::Dir, 0o755, b"").expect("dir");
        w.entry("bin/hello", Kind::File, 0o755, b"#!/bin/sh\necho hi\n")
            .expect("file");
        w.entry("bin/sh", Kind::Symlink, 0o777, b"hello")
            .expect("link");
        w.entry("console", Kind::CharDev(5, 1), 0o600, b"")
            .expect("dev");
        w.finish().expect("trailer")
    }

    #[test]
    fn header_fields_are_where_the_format_puts_them() {
        let bytes = archive();
        assert_eq!(&bytes[..6], b"070701");
        // mode of the first entry (a directory, 0755): field 2, after magic and ino.
        assert_eq!(&bytes[14..22], b"000041ed");
        assert_eq!(bytes.len() % 512, 0, "padded to whole blocks");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        // The device entry: its header starts 110 bytes before its name.
        let at = text.find("console\0").expect("device entry") - 110;
        let field = |i: usize| &text[at + 6 + 8 * i..at + 14 + 8 * i];
        assert_eq!(field(1), "00002180", "character device, mode 0600");
        assert_eq!((field(9), field(10)), ("00000005", "00000001"), "rdev 5:1");
    }

    #[test]
    fn busybox_cpio_lists_what_was_written() {
        // busybox-static is one of the packages the VM tier installs; it reads newc.
        let mut child = match Command::new("busybox")
            .args(["cpio", "-t", "-v"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                panic!("busybox is needed for this test (apt-get install busybox-static): {e}")
            }
        };
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(&archive())
            .expect("write archive");
        let out = child.wait_with_output().expect("busybox cpio runs");
        let listing = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"));
        assert!(lines[1].starts_with("-rwxr-xr-x") && lines[1].contains(" 18 "));
        assert!(lines[2].starts_with('l') && lines[2].ends_with("bin/sh -> hello"));
        assert!(lines[3].starts_with("crw-------") && lines[3].ends_with(" console"));
    }
}
