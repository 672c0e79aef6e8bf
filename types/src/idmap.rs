//! User-namespace id maps as plain data, and the pure parsers of the two texts they come from:
//! a process's map (`/proc/PID/uid_map`, `gid_map`: `inside outside count` lines) and the
//! subordinate-id files (`/etc/subuid`, `/etc/subgid`: `owner:start:count` lines, the owner a
//! user name or uid).
//!
//! Callers read the files; nothing here does I/O. The mount crate applies maps, the store
//! records them with containers, the engine allocates them and the host's rootless mode writes
//! them; all of them parse with these functions.

use serde::{Deserialize, Serialize};

/// One contiguous range of a user-namespace map: ids `inside..inside+count` in the namespace
/// are ids `outside..outside+count` outside it (the `uid_map` line `inside outside count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A user namespace's uid and gid maps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// The same single range for uids and gids.
    pub fn uniform(inside: u32, outside: u32, count: u32) -> IdMap {
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

    /// Whether this map changes nothing (every range maps an id to itself).
    pub fn is_identity(&self) -> bool {
        self.uids
            .iter()
            .chain(&self.gids)
            .all(|r| r.inside == r.outside)
    }

    /// The host uid that container uid `id` maps to, if any.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        outside_id(&self.uids, id)
    }

    /// The host gid that container gid `id` maps to, if any.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        outside_id(&self.gids, id)
    }

    /// The container uid that host uid `id` is, if the map covers it.
    pub fn container_uid(&self, id: u32) -> Option<u32> {
        inside_id(&self.uids, id)
    }

    /// The container gid that host gid `id` is, if the map covers it.
    pub fn container_gid(&self, id: u32) -> Option<u32> {
        inside_id(&self.gids, id)
    }
}

/// Maps `id` from inside to outside through `ranges`.
pub fn outside_id(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.inside)?;
        (off < r.count)
            .then(|| r.outside.checked_add(off))
            .flatten()
    })
}

/// Maps `id` from outside to inside through `ranges`.
pub fn inside_id(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.outside)?;
        (off < r.count).then(|| r.inside.checked_add(off)).flatten()
    })
}

/// Parses a process's map (`/proc/PID/uid_map` text). Lines that are not three numbers are
/// skipped; so are empty ranges.
pub fn parse_proc_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(str::parse::<u32>);
            let (inside, outside, count) = (f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?);
            if f.next().is_some() || count == 0 {
                return None;
            }
            Some(IdRange {
                inside,
                outside,
                count,
            })
        })
        .collect()
}

/// Formats ranges as `/proc/PID/uid_map` wants them written: one `inside outside count` line
/// each.
pub fn proc_map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Whether a parsed map is the initial namespace's identity map (`0 0 4294967295`), which is
/// how a process tells that it is not in a user namespace of its own.
pub fn is_initial_map(ranges: &[IdRange]) -> bool {
    matches!(
        ranges,
        [IdRange {
            inside: 0,
            outside: 0,
            count: u32::MAX
        }]
    )
}

/// How many ids a namespace has (`0..size` exist inside) and which outside id its id 0 is;
/// `None` when id 0 is not mapped.
pub fn namespace_extent(ranges: &[IdRange]) -> Option<(u32, u32)> {
    let size = ranges
        .iter()
        .map(|r| r.inside.saturating_add(r.count))
        .max()
        .unwrap_or(0);
    outside_id(ranges, 0).map(|zero| (size, zero))
}

/// The inside ids a map covers, adjacent ranges merged, for messages: `0-65536`, or `none`.
pub fn describe_inside(ranges: &[IdRange]) -> String {
    let mut spans: Vec<(u64, u64)> = ranges
        .iter()
        .map(|r| {
            let lo = u64::from(r.inside);
            (lo, (lo + u64::from(r.count)).saturating_sub(1))
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (lo, hi) in spans {
        match merged.last_mut() {
            Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    if merged.is_empty() {
        return "none".into();
    }
    merged
        .iter()
        .map(|(lo, hi)| format!("{lo}-{hi}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One subordinate range: `count` ids from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubIdRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges a subordinate-id file's text (`/etc/subuid`, `/etc/subgid`) gives an owner,
/// matched by name or by uid (either may be absent), in file order. Comments, malformed lines
/// and empty ranges are skipped.
pub fn parse_subids(text: &str, name: Option<&str>, uid: Option<u32>) -> Vec<SubIdRange> {
    let uid = uid.map(|u| u.to_string());
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let owner = f.next()?;
            let start = f.next()?.parse().ok()?;
            let count = f.next()?.parse().ok()?;
            let ours = Some(owner) == name || Some(owner) == uid.as_deref();
            (ours && count > 0).then_some(SubIdRange { start, count })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_translate_ids_inside_their_ranges_only() {
        let m = IdMap {
            uids: vec![
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536,
                },
            ],
            gids: vec![],
        };
        assert_eq!(m.host_uid(0), Some(1000));
        assert_eq!(m.host_uid(1), Some(100000));
        assert_eq!(m.host_uid(65536), Some(165535));
        assert_eq!(m.host_uid(65537), None);
        assert_eq!(m.host_gid(0), None);
        assert_eq!(m.container_uid(1000), Some(0));
        assert_eq!(m.container_uid(165535), Some(65536));
        assert_eq!(m.container_uid(0), None);
        assert_eq!(proc_map_text(&m.uids), "0 1000 1\n1 100000 65536\n");
        assert!(!m.is_identity());
        assert!(IdMap::uniform(0, 0, 4294967295).is_identity());
        // A map past the end of the id space maps nothing there, and does not overflow.
        let edge = IdMap::uniform(0, u32::MAX - 1, 10);
        assert_eq!(edge.host_uid(1), Some(u32::MAX));
        assert_eq!(edge.host_uid(2), None);
        assert_eq!(IdMap::uniform(u32::MAX - 1, 0, 10).container_uid(2), None);
    }

    #[test]
    fn proc_maps_parse_and_the_initial_map_is_told_apart() {
        let initial = parse_proc_map("         0          0 4294967295\n");
        assert!(is_initial_map(&initial));
        let own = parse_proc_map("0 1000 1\n1 100000 65536\ngarbage\n5 5 0\n");
        assert_eq!(own.len(), 2);
        assert!(!is_initial_map(&own));
        assert_eq!(namespace_extent(&own), Some((65537, 1000)));
        assert_eq!(namespace_extent(&parse_proc_map("1 5 5\n")), None);
        assert_eq!(describe_inside(&own), "0-65536");
        assert_eq!(describe_inside(&[]), "none");
        assert_eq!(
            describe_inside(&parse_proc_map("0 1 10\n20 100 5\n")),
            "0-9,20-24"
        );
    }

    #[test]
    fn subordinate_ranges_match_by_name_or_uid() {
        let text = "# comment\nalice:100000:65536\nbob:165536:65536\n1002:300000:10\nalice:500000:5\ncarol:1:0\n";
        assert_eq!(
            parse_subids(text, Some("alice"), Some(1000)),
            [
                SubIdRange {
                    start: 100000,
                    count: 65536
                },
                SubIdRange {
                    start: 500000,
                    count: 5
                }
            ]
        );
        assert_eq!(
            parse_subids(text, None, Some(1002)),
            [SubIdRange {
                start: 300000,
                count: 10
            }]
        );
        assert!(parse_subids(text, Some("carol"), Some(1003)).is_empty());
        assert!(parse_subids(text, Some("dave"), None).is_empty());
    }
}
