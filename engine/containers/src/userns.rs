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
//! Rootless (maps are in the ids of the user's own namespace, where the user is 0 and the
//! subordinate ids follow; see [`rootless_map`]):
//! - `keep-id`: the user's uid and gid are the same inside the container (and it runs as
//!   them unless `--user` says otherwise); the other ids of the namespace fill the rest.
//! - `nomap`: the user's own ids are not mapped at all; the subordinate ids are `0..`.
//! - `auto[:size=N]`: a block of the namespace's subordinate ids no other container holds.
//!
//! The image's files are not chowned. As root the store idmaps its layers with the map on
//! every mount (see `strata_mount::mount_idmapped`) and maps owners back on diff and commit;
//! rootless, where the kernel idmaps only for the initial namespace's root, the store serves
//! the same layers through Strata's FUSE overlay, which shifts owners itself.
//!
//! What it does not do: `ns:PATH`, `--uidmap`/`--gidmap`, `auto` options other than `size`.

use std::path::Path;

use crate::error::{Context, Result};
use strata_types::idmap::{namespace_extent, parse_proc_map, parse_subids};
use strata_types::ErrorKind;
use strata_types::{IdMap, IdRange};

use crate::error::kinded;

/// The size of an `auto` namespace when none is given: the usual 16-bit id space.
pub const DEFAULT_AUTO_SIZE: u32 = 65536;

/// The `/etc/subuid` and `/etc/subgid` user whose ranges `auto` namespaces come from.
pub const RANGE_OWNER: &str = "containers";

/// A parsed `--userns` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Host,
    Auto {
        size: u32,
    },
    KeepId,
    /// Rootless only: the user's own ids are not mapped.
    NoMap,
}

/// Parses `--userns` for a root (`rootless == false`) or rootless container.
pub fn parse(value: &str, rootless: bool) -> Result<Mode> {
    let (name, opts) = value.split_once(':').unwrap_or((value, ""));
    let mode = match name {
        "" | "host" => return Ok(Mode::Host),
        "nomap" if rootless && opts.is_empty() => Mode::NoMap,
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
                    _ => {
                        return Err(kinded(
                            ErrorKind::Unsupported,
                            format!(
                                "--userns {value}: option {opt:?} is not supported (only size=N)"
                            ),
                        ))
                    }
                }
            }
            Mode::Auto { size }
        }
        "keep-id" if opts.is_empty() => Mode::KeepId,
        "nomap" if !rootless => {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                "--userns nomap is only supported in rootless mode",
            ))
        }
        "keep-id" | "nomap" | "ns" => {
            return Err(kinded(
                ErrorKind::Unsupported,
                format!("--userns {value} is not supported yet"),
            ))
        }
        _ => {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!("--userns {value}: unknown mode (host, auto[:size=N], keep-id)"),
            ))
        }
    };
    Ok(mode)
}

/// Every `user:start:count` range of `user` in a subordinate-id file's text.
pub fn ranges_of(text: &str, user: &str) -> Vec<(u32, u32)> {
    parse_subids(text, Some(user), None)
        .into_iter()
        .map(|r| (r.start, r.count))
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

/// The user's own namespace, as a rootless process sees it: its size (ids `0..size` exist),
/// and the user's and group's ids on the host (which are 0 inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnNs {
    pub uids: u32,
    pub gids: u32,
    pub host_uid: u32,
    pub host_gid: u32,
}

impl OwnNs {
    /// Reads `/proc/self/uid_map` and `gid_map`.
    pub fn current() -> Result<OwnNs> {
        let read = |f: &str| -> Result<(u32, u32)> {
            let text = std::fs::read_to_string(f).with_context(|| format!("read {f}"))?;
            parse_own_map(&text).with_context(|| format!("{f}: no mapping of id 0"))
        };
        let (uids, host_uid) = read("/proc/self/uid_map")?;
        let (gids, host_gid) = read("/proc/self/gid_map")?;
        Ok(OwnNs {
            uids,
            gids,
            host_uid,
            host_gid,
        })
    }
}

/// (ids in the namespace, host id of 0) from a `uid_map`'s text.
fn parse_own_map(text: &str) -> Option<(u32, u32)> {
    namespace_extent(&parse_proc_map(text))
}

/// `keep-id`'s ranges for one kind of id: `own` (the user's host id) is itself inside, the
/// namespace's other ids (`1..size`) fill the container's ids around it.
fn keep_id_ranges(size: u32, own: u32) -> Vec<IdRange> {
    let others = size.saturating_sub(1);
    let below = own.min(others);
    let mut v = Vec::new();
    if below > 0 {
        v.push(IdRange {
            inside: 0,
            outside: 1,
            count: below,
        });
    }
    v.push(IdRange {
        inside: own,
        outside: 0,
        count: 1,
    });
    if own < others {
        v.push(IdRange {
            inside: own + 1,
            outside: own + 1,
            count: others - own,
        });
    }
    v
}

/// The id map for `mode` of a rootless container, in the user's namespace's ids; `used` lists
/// the blocks other containers hold (for `auto`).
pub fn rootless_map(mode: Mode, ns: OwnNs, used: &[(u32, u32)]) -> Result<Option<IdMap>> {
    let size = ns.uids.min(ns.gids);
    if size < 2 && mode != Mode::Host {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            "this user namespace has no subordinate ids to map into a container: add ranges for \
             your user to /etc/subuid and /etc/subgid (usermod --add-subuids/--add-subgids)",
        ));
    }
    Ok(match mode {
        Mode::Host => None,
        Mode::KeepId => Some(IdMap {
            uids: keep_id_ranges(ns.uids, ns.host_uid),
            gids: keep_id_ranges(ns.gids, ns.host_gid),
        }),
        Mode::NoMap => Some(uniform(0, 1, size - 1)),
        Mode::Auto { size: want } => {
            let want = want.min(size - 1);
            let start = pick_block(&[(1, size - 1)], used, want).ok_or_else(|| {
                kinded(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "--userns auto: no free block of {want} ids left among your {} subordinate \
                         ids ({} containers hold one); ask for less with auto:size=N",
                        size - 1,
                        used.len()
                    ),
                )
            })?;
            Some(uniform(0, start, want))
        }
    })
}

/// The id map for `mode`, for a new root container; `used` lists the host uid blocks other
/// containers of the store hold. Call it under [`allocation_lock`].
pub fn id_map(mode: Mode, used: &[(u32, u32)]) -> Result<Option<IdMap>> {
    match mode {
        Mode::Host => Ok(None),
        Mode::KeepId => Ok(Some(uniform(0, 0, u32::MAX))),
        Mode::NoMap => Err(kinded(
            ErrorKind::InvalidArgument,
            "--userns nomap is only supported in rootless mode",
        )),
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
                return Err(kinded(
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
    IdMap::uniform(inside, outside, count)
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
    crate::state::lock_file(&root.join("userns.lock"))
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
        assert_eq!(parse("nomap", true).unwrap(), Mode::NoMap);
        assert_eq!(parse("keep-id", true).unwrap(), Mode::KeepId);
        assert_eq!(
            parse("auto", true).unwrap(),
            Mode::Auto {
                size: DEFAULT_AUTO_SIZE
            }
        );
        assert!(parse("auto:size=0", false).is_err());
        assert!(parse("auto:uidmapping=0:1:2", false).is_err());
        assert!(parse("bogus", false).is_err());
    }

    #[test]
    fn rootless_maps_are_made_of_the_users_own_namespace() {
        // uid 1000 with 65536 subordinate ids: the namespace has ids 0..65537.
        let (size, host) =
            parse_own_map("         0       1000          1\n         1     100000      65536\n")
                .unwrap();
        assert_eq!((size, host), (65537, 1000));
        let ns = OwnNs {
            uids: size,
            gids: size,
            host_uid: 1000,
            host_gid: 1000,
        };
        let keep = rootless_map(Mode::KeepId, ns, &[]).unwrap().unwrap();
        assert_eq!(
            keep.uids,
            [
                IdRange {
                    inside: 0,
                    outside: 1,
                    count: 1000
                },
                IdRange {
                    inside: 1000,
                    outside: 0,
                    count: 1
                },
                IdRange {
                    inside: 1001,
                    outside: 1001,
                    count: 64536
                },
            ]
        );
        // Every id of the namespace is used once.
        let total: u32 = keep.uids.iter().map(|r| r.count).sum();
        assert_eq!(total, 65537);
        // A uid beyond the subordinate count still keeps its id.
        let big = OwnNs {
            host_uid: 200_000,
            host_gid: 200_000,
            ..ns
        };
        let keep = rootless_map(Mode::KeepId, big, &[]).unwrap().unwrap();
        assert_eq!(
            keep.uids,
            [
                IdRange {
                    inside: 0,
                    outside: 1,
                    count: 65536
                },
                IdRange {
                    inside: 200_000,
                    outside: 0,
                    count: 1
                },
            ]
        );
        let nomap = rootless_map(Mode::NoMap, ns, &[]).unwrap().unwrap();
        assert_eq!(
            nomap.uids,
            [IdRange {
                inside: 0,
                outside: 1,
                count: 65536
            }]
        );
        let auto = rootless_map(Mode::Auto { size: 1000 }, ns, &[(1, 1000)])
            .unwrap()
            .unwrap();
        assert_eq!(
            auto.uids,
            [IdRange {
                inside: 0,
                outside: 1001,
                count: 1000
            }]
        );
        let e = rootless_map(Mode::Auto { size: 65536 }, ns, &[(1, 1000)]).unwrap_err();
        assert!(e.to_string().contains("no free block"), "{e}");
        let alone = OwnNs {
            uids: 1,
            gids: 1,
            ..ns
        };
        assert!(rootless_map(Mode::KeepId, alone, &[]).is_err());
        assert_eq!(rootless_map(Mode::Host, alone, &[]).unwrap(), None);
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
