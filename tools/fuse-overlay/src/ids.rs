//! Owner translation between disk and what the kernel (and so the container) is shown.
//!
//! With a map, a file owned by container id `c` on disk is shown as the map's host id for `c`,
//! and a file created by shown id `h` is stored as container id `c`: the layers keep image
//! ids, so no chown copy is ever needed for a new user-namespace map. Ids the map cannot show
//! are shown as the overflow id (65534), as the kernel does. With squashing, every file is
//! shown as the squash id and disk owners are left alone (for hosts that give a user one id).

use crate::options::{Options, Range};

/// The kernel's overflow id.
pub const OVERFLOW: u32 = 65534;

#[derive(Debug, Clone, Default)]
pub struct Ids {
    uid: Vec<Range>,
    gid: Vec<Range>,
    squash_uid: Option<u32>,
    squash_gid: Option<u32>,
}

fn to_host(map: &[Range], id: u32) -> Option<u32> {
    if map.is_empty() {
        return Some(id);
    }
    map.iter()
        .find(|r| id >= r.container && id - r.container < r.size)
        .map(|r| r.host + (id - r.container))
}

fn to_container(map: &[Range], id: u32) -> Option<u32> {
    if map.is_empty() {
        return Some(id);
    }
    map.iter()
        .find(|r| id >= r.host && id - r.host < r.size)
        .map(|r| r.container + (id - r.host))
}

impl Ids {
    pub fn new(o: &Options) -> Ids {
        Ids {
            uid: o.uid_map.clone(),
            gid: o.gid_map.clone(),
            squash_uid: o.squash_uid,
            squash_gid: o.squash_gid,
        }
    }

    /// The uid shown for a disk uid.
    pub fn shown_uid(&self, disk: u32) -> u32 {
        self.squash_uid
            .unwrap_or_else(|| to_host(&self.uid, disk).unwrap_or(OVERFLOW))
    }

    pub fn shown_gid(&self, disk: u32) -> u32 {
        self.squash_gid
            .unwrap_or_else(|| to_host(&self.gid, disk).unwrap_or(OVERFLOW))
    }

    /// The disk owner for a shown uid, or `None` when it cannot be stored (unmapped). With a
    /// squashed uid, owners on disk are not changed: `Some(None)`.
    pub fn disk_uid(&self, shown: u32) -> Option<Option<u32>> {
        if self.squash_uid.is_some() {
            return Some(None);
        }
        to_container(&self.uid, shown).map(Some)
    }

    pub fn disk_gid(&self, shown: u32) -> Option<Option<u32>> {
        if self.squash_gid.is_some() {
            return Some(None);
        }
        to_container(&self.gid, shown).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keep_id_map_shows_image_owners_shifted_and_stores_them_back() {
        // keep-id for uid 1000 in a namespace of 65537 ids: container 0..999 → 1..1000,
        // 1000 → 0, 1001.. → 1001..
        let o = Options {
            uid_map: vec![
                Range {
                    container: 0,
                    host: 1,
                    size: 1000,
                },
                Range {
                    container: 1000,
                    host: 0,
                    size: 1,
                },
                Range {
                    container: 1001,
                    host: 1001,
                    size: 64535,
                },
            ],
            ..Options::default()
        };
        let ids = Ids::new(&o);
        assert_eq!(ids.shown_uid(0), 1);
        assert_eq!(ids.shown_uid(1000), 0);
        assert_eq!(ids.shown_uid(70000), OVERFLOW);
        assert_eq!(ids.disk_uid(0), Some(Some(1000)));
        assert_eq!(ids.disk_uid(1), Some(Some(0)));
        assert_eq!(ids.disk_uid(65536), None);
        // no map: identity
        assert_eq!(ids.shown_gid(7), 7);
        assert_eq!(ids.disk_gid(7), Some(Some(7)));
        let squash = Ids::new(&Options {
            squash_uid: Some(0),
            squash_gid: Some(0),
            ..Options::default()
        });
        assert_eq!(squash.shown_uid(1234), 0);
        assert_eq!(squash.disk_uid(5), Some(None));
    }
}
