//! Extended attribute copying and reading, on open files or (for symlinks and device nodes,
//! which cannot be opened for this) on paths without following symlinks.

use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// Largest attribute list and value Linux allows (`XATTR_LIST_MAX`, `XATTR_SIZE_MAX`).
const XATTR_MAX: usize = 64 * 1024;

/// Where an attribute lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    Fd(BorrowedFd<'a>),
    /// A path; a symlink is not followed.
    Path(&'a Path),
}

impl Node<'_> {
    fn list(self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Node::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            Node::Path(p) => rustix::fs::llistxattr(p, buf),
        }
    }

    fn get(self, name: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Node::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            Node::Path(p) => rustix::fs::lgetxattr(p, name, buf),
        }
    }

    fn set(self, name: &[u8], value: &[u8]) -> Result<(), Errno> {
        match self {
            Node::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()),
            Node::Path(p) => rustix::fs::lsetxattr(p, name, value, XattrFlags::empty()),
        }
    }
}

/// One attribute: (name, value).
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

/// All attributes of `node` as (name, value), sorted by name. A filesystem without xattr
/// support has none; an attribute removed between listing and reading is skipped.
pub(crate) fn read_all(node: Node<'_>) -> Result<Vec<Xattr>, Errno> {
    let mut names = vec![0u8; XATTR_MAX];
    let n = match node.list(&mut names) {
        Ok(n) => n,
        Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; XATTR_MAX];
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        match node.get(name, &mut value) {
            Ok(len) => out.push((name.to_vec(), value[..len].to_vec())),
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Copies every attribute of `src` to `dst`. With `strict` false (not root), attributes the
/// process may not set (`trusted.*`, `security.*`) are skipped.
pub(crate) fn copy(src: Node<'_>, dst: Node<'_>, strict: bool) -> Result<(), Errno> {
    for (name, value) in read_all(src)? {
        match dst.set(&name, &value) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::ACCESS)
                if !strict && (name.starts_with(b"trusted.") || name.starts_with(b"security.")) =>
            {
                tracing::debug!(name = %String::from_utf8_lossy(&name), "skipped an xattr this process may not set");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
