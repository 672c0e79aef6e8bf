//! Resolving `-u/--user` (and the image's `User`) to IDs through the container's own
//! `/etc/passwd` and `/etc/group`, as podman does.
//!
//! The files are opened with `openat2(RESOLVE_IN_ROOT)` so a hostile image whose
//! `/etc/passwd` is a symlink to `/../../etc/shadow` reads its own tree, never the host's.
//! Names that are not in the files are an error; numeric IDs need no entry.

use std::io::Read;
use std::path::Path;

use crate::error::{bail, Context, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Groups that list the user in `/etc/group` (besides its primary group), when no group
    /// was given (docker's and podman's rule).
    pub additional_gids: Vec<u32>,
    /// Groups that list the user in `/etc/group`, whether or not a group was given (the
    /// Kubernetes `Merge` supplemental-groups policy).
    pub member_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, for `HOME` (default `/`).
    pub home: String,
}

/// Reads a file inside `root` without following links out of it; missing is `None`.
fn read_in_root(root: &Path, path: &str) -> Result<Option<String>> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open container root {}", root.display()))?;
    let fd = match rustix::fs::openat2(
        &dir,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("open {path} in the container")),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .with_context(|| format!("read {path} in the container"))?;
    Ok(Some(s))
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd> + '_ {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(Passwd {
            name: f[0].to_owned(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5].to_owned(),
        })
    })
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn group_entries(text: &str) -> impl Iterator<Item = Group> + '_ {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(Group {
            name: f[0].to_owned(),
            gid: f[2].parse().ok()?,
            members: f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    })
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`; empty means root) inside `root`.
pub fn resolve(root: &Path, spec: &str) -> Result<ResolvedUser> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd = read_in_root(root, "/etc/passwd")?.unwrap_or_default();
    let entry = passwd_entries(&passwd).find(|p| match user.parse::<u32>() {
        Ok(uid) => p.uid == uid,
        Err(_) => p.name == user,
    });
    let (uid, mut gid, home, name) = match (&entry, user.parse::<u32>()) {
        (Some(p), _) => (p.uid, p.gid, p.home.clone(), Some(p.name.clone())),
        (None, Ok(uid)) => (uid, 0, "/".to_owned(), None),
        (None, Err(_)) => {
            bail!("unable to find user {user}: no matching entries in the container's /etc/passwd")
        }
    };
    let groups = read_in_root(root, "/etc/group")?.unwrap_or_default();
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(&groups)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .with_context(|| {
                    format!("unable to find group {g}: no matching entries in the container's /etc/group")
                })?,
        };
    }
    let member_gids: Vec<u32> = match &name {
        Some(n) => group_entries(&groups)
            .filter(|e| e.gid != gid && e.members.iter().any(|m| m == n))
            .map(|e| e.gid)
            .collect(),
        None => Vec::new(),
    };
    let additional_gids = if group.is_none() {
        member_gids.clone()
    } else {
        Vec::new()
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        member_gids,
        home: if home.is_empty() {
            "/".to_owned()
        } else {
            home
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("etc")).expect("etc");
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nweb:x:1000:www,other\n",
        )
        .expect("group");
        d
    }

    #[test]
    fn names_and_ids_resolve_through_the_container_files() {
        let r = rootfs();
        let www = resolve(r.path(), "www").expect("www");
        assert_eq!((www.uid, www.gid, www.home.as_str()), (33, 33, "/var/www"));
        assert_eq!(www.additional_gids, vec![1000]);
        let root = resolve(r.path(), "").expect("root");
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let numeric = resolve(r.path(), "4242:4343").expect("numeric");
        assert_eq!((numeric.uid, numeric.gid), (4242, 4343));
        let named_group = resolve(r.path(), "0:web").expect("group by name");
        assert_eq!(named_group.gid, 1000);
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let r = rootfs();
        let e = resolve(r.path(), "nobody-here").expect_err("unknown user");
        assert!(
            e.to_string().contains("unable to find user nobody-here"),
            "{e}"
        );
        let e = resolve(r.path(), "0:nogroup").expect_err("unknown group");
        assert!(
            e.to_string().contains("unable to find group nogroup"),
            "{e}"
        );
    }

    #[test]
    fn a_passwd_symlink_cannot_climb_out_of_the_root() {
        let r = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(r.path().join("etc")).expect("etc");
        // `..` past the container's root stays at the root: this link names the container's
        // own /etc/passwd.inroot, never a host file.
        std::os::unix::fs::symlink(
            "../../../../../../../../etc/passwd.inroot",
            r.path().join("etc/passwd"),
        )
        .expect("symlink");
        std::fs::write(
            r.path().join("etc/passwd.inroot"),
            "root:x:0:0:root:/inroot:/bin/sh\n",
        )
        .expect("passwd.inroot");
        assert_eq!(resolve(r.path(), "root").expect("root").home, "/inroot");
    }
}
