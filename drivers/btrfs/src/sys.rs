//! The raw btrfs ioctls this driver uses, and nothing else: the one module of the crate that
//! contains `unsafe` code.
//!
//! Each ioctl's argument is a `#[repr(C)]` struct mirroring `<linux/btrfs.h>` (sizes and opcode
//! numbers are checked against the C header's values in the tests below). Calls go through
//! `rustix::ioctl`, which issues the system call and maps the result to an [`Errno`]; every
//! call site says why its argument matches what the kernel reads and writes.
//!
//! What it deliberately does not do: open paths, add context to errors or decide policy (which
//! flag to clear before a deletion, what to do on `EPERM`): [`crate::subvol`] and
//! [`crate::remove`] do.

#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Getter, Opcode, Setter, Updater};

const MAGIC: u8 = 0x94;

/// `BTRFS_SUBVOL_NAME_MAX`: longest subvolume name (bytes, without the terminating NUL).
pub const SUBVOL_NAME_MAX: usize = 4039;
/// `BTRFS_FIRST_FREE_OBJECTID`: the inode number of every subvolume's root directory.
pub const FIRST_FREE_OBJECTID: u64 = 256;
/// `BTRFS_SUBVOL_RDONLY`.
pub const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_QUOTA_CTL_ENABLE`.
const QUOTA_CTL_ENABLE: u64 = 1;
/// `BTRFS_QGROUP_LIMIT_MAX_RFER`.
const QGROUP_LIMIT_MAX_RFER: u64 = 1;
/// `BTRFS_SUPER_MAGIC`, the `f_type` statfs reports for btrfs.
pub const SUPER_MAGIC: u64 = 0x9123_683E;

/// `struct btrfs_ioctl_vol_args_v2` (4096 bytes). The first union (`size` plus a
/// `qgroup_inherit` pointer, or `unused[4]`) is always zero here: no inheritance is requested.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_quota_ctl_args`.
#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

/// `struct btrfs_qgroup_limit`.
#[repr(C)]
struct QgroupLimit {
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

/// `struct btrfs_ioctl_qgroup_limit_args`.
#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    lim: QgroupLimit,
}

const SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 23);
const SUBVOL_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 24);
const SUBVOL_GETFLAGS: Opcode = opcode::read::<u64>(MAGIC, 25);
const SUBVOL_SETFLAGS: Opcode = opcode::write::<u64>(MAGIC, 26);
const QUOTA_CTL: Opcode = opcode::read_write::<QuotaCtlArgs>(MAGIC, 40);
const QGROUP_LIMIT: Opcode = opcode::read::<QgroupLimitArgs>(MAGIC, 43);
const SNAP_DESTROY_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 63);

impl VolArgsV2 {
    /// Arguments naming `name` (a single path component) in the directory the ioctl is called on.
    fn named(name: &[u8]) -> Result<Box<VolArgsV2>, Errno> {
        if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
            return Err(Errno::INVAL);
        }
        if name.len() > SUBVOL_NAME_MAX {
            return Err(Errno::NAMETOOLONG);
        }
        let mut args = Box::new(VolArgsV2 {
            fd: 0,
            transid: 0,
            flags: 0,
            unused: [0; 4],
            name: [0; SUBVOL_NAME_MAX + 1],
        });
        // The buffer is one byte longer than the longest name: the NUL terminator stays.
        args.name[..name.len()].copy_from_slice(name);
        Ok(args)
    }
}

/// Creates an empty subvolume `name` in the directory `dir`.
pub fn subvol_create(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let mut args = VolArgsV2::named(name)?;
    // SAFETY: SUBVOL_CREATE_V2 reads a `struct btrfs_ioctl_vol_args_v2`, which `VolArgsV2`
    // mirrors field for field (size checked in the tests); the name is NUL-terminated, no
    // flags are set, so the kernel follows no pointer inside it.
    unsafe { ioctl(dir, Updater::<SUBVOL_CREATE_V2, VolArgsV2>::new(&mut args)) }
}

/// Creates `name` in `dir` as a snapshot of the subvolume open as `source` (read-only if asked).
pub fn snap_create(
    dir: BorrowedFd<'_>,
    name: &[u8],
    source: BorrowedFd<'_>,
    read_only: bool,
) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let mut args = VolArgsV2::named(name)?;
    args.fd = i64::from(source.as_raw_fd());
    args.flags = if read_only { SUBVOL_RDONLY } else { 0 };
    // SAFETY: SNAP_CREATE_V2 reads a `struct btrfs_ioctl_vol_args_v2` (mirrored by `VolArgsV2`);
    // `fd` is an open descriptor borrowed for the duration of the call; the only flag that may
    // be set is RDONLY, so the kernel does not read the (zeroed) qgroup_inherit pointer.
    unsafe { ioctl(dir, Updater::<SNAP_CREATE_V2, VolArgsV2>::new(&mut args)) }
}

/// Deletes the subvolume `name` in `dir` (it need not be empty, but must hold no other
/// subvolume).
pub fn snap_destroy(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let mut args = VolArgsV2::named(name)?;
    // SAFETY: SNAP_DESTROY_V2 reads a `struct btrfs_ioctl_vol_args_v2` (mirrored by
    // `VolArgsV2`); without BTRFS_SUBVOL_SPEC_BY_ID it reads the NUL-terminated name.
    unsafe { ioctl(dir, Updater::<SNAP_DESTROY_V2, VolArgsV2>::new(&mut args)) }
}

/// The subvolume flags (`BTRFS_SUBVOL_RDONLY`) of the subvolume whose root is open as `subvol`.
pub fn subvol_flags(subvol: BorrowedFd<'_>) -> Result<u64, Errno> {
    // SAFETY: SUBVOL_GETFLAGS writes one `__u64` through the pointer Getter provides.
    unsafe { ioctl(subvol, Getter::<SUBVOL_GETFLAGS, u64>::new()) }
}

/// Sets the subvolume flags of `subvol` (the kernel accepts only `BTRFS_SUBVOL_RDONLY`).
pub fn set_subvol_flags(subvol: BorrowedFd<'_>, flags: u64) -> Result<(), Errno> {
    // SAFETY: SUBVOL_SETFLAGS reads one `__u64` through the pointer Setter passes.
    unsafe { ioctl(subvol, Setter::<SUBVOL_SETFLAGS, u64>::new(flags)) }
}

/// Enables quota groups on the filesystem holding `fd` (a no-op when already enabled).
pub fn quota_enable(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut args = QuotaCtlArgs {
        cmd: QUOTA_CTL_ENABLE,
        status: 0,
    };
    // SAFETY: QUOTA_CTL reads and writes a `struct btrfs_ioctl_quota_ctl_args` (two `__u64`s,
    // mirrored by `QuotaCtlArgs`).
    unsafe { ioctl(fd, Updater::<QUOTA_CTL, QuotaCtlArgs>::new(&mut args)) }
}

/// Limits the bytes the subvolume open as `subvol` may reference (its own quota group).
pub fn limit_referenced(subvol: BorrowedFd<'_>, bytes: u64) -> Result<(), Errno> {
    let mut args = QgroupLimitArgs {
        // 0: the quota group of the subvolume the ioctl is called on.
        qgroupid: 0,
        lim: QgroupLimit {
            flags: QGROUP_LIMIT_MAX_RFER,
            max_rfer: bytes,
            max_excl: 0,
            rsv_rfer: 0,
            rsv_excl: 0,
        },
    };
    // SAFETY: QGROUP_LIMIT reads a `struct btrfs_ioctl_qgroup_limit_args` (mirrored by
    // `QgroupLimitArgs`, 48 bytes); the header declares it _IOR, hence the read opcode.
    unsafe {
        ioctl(
            subvol,
            Updater::<QGROUP_LIMIT, QgroupLimitArgs>::new(&mut args),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by a C program including `<linux/btrfs.h>` (x86_64 and aarch64 agree).
    #[test]
    fn structs_and_opcodes_match_the_kernel_header() {
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::size_of::<QuotaCtlArgs>(), 16);
        assert_eq!(std::mem::size_of::<QgroupLimitArgs>(), 48);
        let ops = [
            (SNAP_CREATE_V2, 0x5000_9417u64),
            (SUBVOL_CREATE_V2, 0x5000_9418),
            (SNAP_DESTROY_V2, 0x5000_943f),
            (SUBVOL_GETFLAGS, 0x8008_9419),
            (SUBVOL_SETFLAGS, 0x4008_941a),
            (QUOTA_CTL, 0xc010_9428),
            (QGROUP_LIMIT, 0x8030_942b),
        ];
        for (got, want) in ops {
            assert_eq!(u64::from(got), want, "opcode {want:#x}");
        }
    }

    #[test]
    fn names_must_be_one_component() {
        assert!(VolArgsV2::named(b"ok").is_ok());
        assert_eq!(VolArgsV2::named(b"").err(), Some(Errno::INVAL));
        assert_eq!(VolArgsV2::named(b"a/b").err(), Some(Errno::INVAL));
        assert_eq!(
            VolArgsV2::named(&[b'x'; SUBVOL_NAME_MAX + 1]).err(),
            Some(Errno::NAMETOOLONG)
        );
        let longest = VolArgsV2::named(&[b'x'; SUBVOL_NAME_MAX]).expect("longest name");
        assert_eq!(longest.name[SUBVOL_NAME_MAX], 0, "NUL-terminated");
    }
}
