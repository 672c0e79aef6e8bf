//! `mount_setattr(2)`, which rustix does not wrap: used to make a detached bind mount read-only
//! *before* it is attached, so that neither the mount nor any copy propagated to peer mounts
//! is ever writable, and to idmap a detached mount.
//!
//! This is the crate's only unsafe code: one raw system call with a fully initialised struct.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// Sets `MOUNT_ATTR_RDONLY` on the (detached) mount `fd` refers to.
pub(crate) fn set_read_only(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    set(
        fd,
        libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

/// Idmaps the (detached, not yet attached) mount `fd` refers to with the maps of the user
/// namespace `userns`.
pub(crate) fn set_idmap(fd: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> Result<(), Errno> {
    let userns_fd = u64::try_from(userns.as_raw_fd()).map_err(|_| Errno::BADF)?;
    set(
        fd,
        libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd,
        },
    )
}

fn set(fd: BorrowedFd<'_>, attr: libc::mount_attr) -> Result<(), Errno> {
    let empty = c"";
    // SAFETY: `fd` is a valid open descriptor for the duration of the call; `empty` is a
    // NUL-terminated string; `attr` is a fully initialised `struct mount_attr` that outlives the
    // call and its exact size is passed, as the kernel's extensible-struct ABI requires.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
    }
}
