//! `--userns`: which user namespace a container gets, and the id map it carries.
//!
//! Modes, as podman spells them:
//! - `host` (the default, also empty): the host's ids; no user namespace.
//! - `auto[:size=N]` (root; `private` is the same): a namespace of its own, mapping container
//!   ids `0..N` (default 65536, which covers `nobody` at 65534) onto a block of host ids no
//!   other container of this store uses. Blocks come from the `containers` entries of
//!   `/etc/subuid` and `/etc/subgid`, podman's convention, so both tools can share a machine's
//!   ranges.
//! - `keep-id` (root): podman gives root "the current mapping in a new user namespace": all of
//!   the host's ids, mapped to themselves.
//! - `nomap`: rootless only in podman; refused for root with podman's message.
//!
//! The image's files are not chowned: the store idmaps its layers with the map on every mount
//! (see `strata_mount::mount_idmapped`) and maps owners back on diff and commit.
//!
//! Rootless containers keep the host mode: every mode above needs the image's owners shifted
//! within the user's own namespace, and the kernel lets only the initial namespace's root idmap
//! a filesystem like ext4; podman falls back to chowning a copy of the image, which we have not
//! built (the FUSE overlay driver is the planned way, shifting ids as it serves files).
//!
//! What it does not do: `ns:PATH`, `--uidmap`/`--gidmap`, `auto` options other than `size`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use strata_plugin_api::store::{IdMap, IdRange};
use strata_plugin_api::ErrorKind;

use crate::errors::kinded;

/// The size of an `auto` namespace when none is given: the usual 16-bit id space.
pub const DEFAULT_AUTO_SIZE: u32 = 65536;

/// The `/etc/subuid` and `/etc/subgid` user whose ranges `auto` namespaces come from.
pub const RANGE_OWNER: &str = "containers";

/// A parsed `--userns` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Host,
    Auto { size: u32 },
    KeepId,
}

/// Parses `--userns` for a root (`rootless == false`) or rootless container.
pub fn parse(value: &str, rootless: bool) -> Result<Mode> {
    let (name, opts) = value.split_once(':').unwrap_or((value, ""));
    let mode = match name {
        "" | "host" => return Ok(Mode::Host),
        "auto" | "private" => {
            let mut size = DEFAULT_AUTO_SIZE;
            for opt in opts.split(',').filter(|o| !o.is_empty()) {
                match opt.split_once('=') {
                    Some(("size", n)) => {
                        size = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                            kinded(
                                ErrorKind::InvalidArgument,
                                format!("--userns {value}: size must be a positive number"),
                            )
                        })?;
                    }
                    _ => bail!(kinded(
                        ErrorKind::Unsupported,
                        format!("--userns {value}: option {opt:?} is not supported (only size=N)")
                    )),
                }
            }
            Mode::Auto { size }
        }
        "keep-id" if opts.is_empty() => Mode::KeepId,
        "nomap" if !rootless => bail!(kinded(
            ErrorKind::InvalidArgument,
            "--userns nomap is only supported in rootless mode"
        )),
        "keep-id" | "nomap" | "ns" => bail!(kinded(
            ErrorKind::Unsupported,
            format!("--userns {value} is not supported yet")
        )),
        _ => bail!(kinded(
            ErrorKind::InvalidArgument,
            format!("--userns {value}: unknown mode (host, auto[:size=N], keep-id)")
        )),
    };
    if rootless {
        bail!(kinded(
            ErrorKind::Unsupported,
            format!(
                "--userns {value} is not supported for rootless containers yet: the image's file \
                 owners would have to be shifted inside your user namespace, and only root can \
                 idmap the store's filesystem"
            )
        ));
    }
    Ok(mode)
}

/// Every `user:start:count` range of `user` in a subordinate-id file's text.
pub fn ranges_of(text: &str, user: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (u, start, count) = (f.next()?, f.next()?, f.next()?);
            if u != user {
                return None;
            }
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// Picks a block of `size` ids within `ranges` that overlaps none of `used` (host start,
/// count), lowest first.
pub fn pick_block(ranges: &[(u32, u32)], used: &[(u32, u32)], size: u32) -> Option<u32> {
    let mut used = used.to_vec();
    used.sort_unstable();
    for &(start, count) in ranges {
        let end = u64::from(start) + u64::from(count);
        let mut at = u64::from(start);
        for &(u_start, u_count) in &used {
            let (u_start, u_end) = (u64::from(u_start), u64::from(u_start) + u64::from(u_count));
            if u_end <= at || u_start >= at + u64::from(size) {
                continue; // no overlap with [at, at+size)
            }
            at = at.max(u_end);
        }
        if at + u64::from(size) <= end {
            return u32::try_from(at).ok();
        }
    }
    None
}

/// The id map for `mode`, for a new root container; `used` lists the host uid blocks other
/// containers of the store hold. Call it under [`allocation_lock`].
pub fn id_map(mode: Mode, used: &[(u32, u32)]) -> Result<Option<IdMap>> {
    match mode {
        Mode::Host => Ok(None),
        Mode::KeepId => Ok(Some(uniform(0, 0, u32::MAX))),
        Mode::Auto { size } => {
            let read = |f: &str| -> Result<Vec<(u32, u32)>> {
                let text = std::fs::read_to_string(f).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(String::new()),
                    _ => Err(e),
                });
                Ok(ranges_of(
                    &text.with_context(|| format!("read {f}"))?,
                    RANGE_OWNER,
                ))
            };
            let (uids, gids) = (read("/etc/subuid")?, read("/etc/subgid")?);
            if uids.is_empty() || gids.is_empty() {
                bail!(kinded(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "--userns auto takes its ids from the {RANGE_OWNER:?} ranges of /etc/subuid \
                         and /etc/subgid, and there are none; add some, e.g. \
                         `usermod --add-subuids 2147483647-2147549182 --add-subgids \
                         2147483647-2147549182 {RANGE_OWNER}` or a line \
                         `{RANGE_OWNER}:2147483647:2147483648` in both files"
                    )
                ));
            }
            // One block serves uids and gids alike, so it must be free in both files' ranges.
            let both: Vec<(u32, u32)> = intersect(&uids, &gids);
            let start = pick_block(&both, used, size).ok_or_else(|| {
                kinded(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "--userns auto: no free block of {size} ids left in the {RANGE_OWNER:?} \
                         ranges of /etc/subuid and /etc/subgid ({} containers hold one)",
                        used.len()
                    ),
                )
            })?;
            Ok(Some(uniform(0, start, size)))
        }
    }
}

/// The host uid block a container's map holds (for allocation), if it is an `auto` one.
pub fn held_block(map: &IdMap) -> Option<(u32, u32)> {
    match map.uids.as_slice() {
        [r] if r.inside == 0 && r.outside != 0 => Some((r.outside, r.count)),
        _ => None,
    }
}

fn uniform(inside: u32, outside: u32, count: u32) -> IdMap {
    let r = IdRange {
        inside,
        outside,
        count,
    };
    IdMap {
        uids: vec![r],
        gids: vec![r],
    }
}

fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(s1, c1) in a {
        for &(s2, c2) in b {
            let start = u64::from(s1.max(s2));
            let end = (u64::from(s1) + u64::from(c1)).min(u64::from(s2) + u64::from(c2));
            if end > start {
                if let (Ok(s), Ok(c)) = (u32::try_from(start), u32::try_from(end - start)) {
                    out.push((s, c));
                }
            }
        }
    }
    out
}

/// Serialises `auto` allocations among concurrent creates of one store.
pub fn allocation_lock(root: &Path) -> Result<std::fs::File> {
    let p = root.join("userns.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("lock {}", p.display()))?;
    Ok(f)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_podman_spells_them() {
        assert_eq!(parse("", false).unwrap(), Mode::Host);
        assert_eq!(parse("host", true).unwrap(), Mode::Host);
        assert_eq!(
            parse("auto", false).unwrap(),
            Mode::Auto {
                size: DEFAULT_AUTO_SIZE
            }
        );
        assert_eq!(
            parse("auto:size=1024", false).unwrap(),
            Mode::Auto { size: 1024 }
        );
        assert_eq!(parse("keep-id", false).unwrap(), Mode::KeepId);
        let e = parse("nomap", false).unwrap_err().to_string();
        assert!(e.contains("only supported in rootless mode"), "{e}");
        let e = parse("auto", true).unwrap_err().to_string();
        assert!(e.contains("rootless"), "{e}");
        assert!(parse("auto:size=0", false).is_err());
        assert!(parse("auto:uidmapping=0:1:2", false).is_err());
        assert!(parse("bogus", false).is_err());
    }

    #[test]
    fn blocks_avoid_used_ones_and_stay_in_range() {
        let ranges = [(100_000, 200_000)];
        assert_eq!(pick_block(&ranges, &[], 65536), Some(100_000));
        assert_eq!(
            pick_block(&ranges, &[(100_000, 65536)], 65536),
            Some(165_536)
        );
        // A hole that is too small is skipped; the block after the used ones is taken.
        assert_eq!(
            pick_block(&ranges, &[(100_000, 1000), (102_000, 65536)], 65536),
            Some(167_536)
        );
        assert_eq!(
            pick_block(&ranges, &[(100_000, 65536), (165_536, 65536)], 70_000),
            None,
            "two blocks of 65536 leave 68928 ids: not enough for 70000"
        );
        assert_eq!(
            pick_block(&ranges, &[(100_000, 65536), (165_536, 65536)], 68_928),
            Some(231_072),
            "exactly what is left fits"
        );
        assert_eq!(
            pick_block(&ranges, &[(100_000, 65536), (165_536, 65536)], 1024),
            Some(231_072)
        );
    }

    #[test]
    fn subordinate_files_are_read_per_user() {
        let text = "alice:100000:65536\ncontainers:2147483647:2147483648\n\ncontainers:5:x\n";
        assert_eq!(
            ranges_of(text, "containers"),
            vec![(2_147_483_647, 2_147_483_648)]
        );
        assert_eq!(
            intersect(&[(10, 100)], &[(50, 100)]),
            vec![(50, 60)],
            "a block must be free for uids and gids alike"
        );
    }
}
