//! The filesystem's options, as one comma-separated `-o` string (the form `fuse-overlayfs` and
//! the kernel's overlay take): `lowerdir=A:B` (topmost first), `upperdir=`, `workdir=`,
//! `userxattr`, `uidmapping=`/`gidmapping=`, `squash_to_root`, `squash_to_uid=`,
//! `squash_to_gid=`, `threads=`, `passthrough=on|off|auto`, `timeout=SECONDS`.
//!
//! **Id mappings go the OCI way**: `uidmapping=C:H:N[:C:H:N...]` says that ids `C..C+N` of the
//! container are ids `H..H+N` outside it, exactly like `linux.uidMappings` and like an idmapped
//! mount: a file owned by `C+i` on disk is shown as `H+i`, and a file created by `H+i` is stored
//! as `C+i`. (This is the inverse of how `fuse-overlayfs` reads its option of the same name; we
//! keep the direction every other id map in Strata uses.)

use std::path::PathBuf;
use std::time::Duration;

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Lower layers, topmost first. Never empty.
    pub lower: Vec<PathBuf>,
    /// The writable layer; without it the filesystem is read-only.
    pub upper: Option<PathBuf>,
    /// Scratch space on the upper's filesystem (required with `upper`).
    pub work: Option<PathBuf>,
    /// Overlay metadata in `user.overlay.*` xattrs (layers made in a user namespace) rather
    /// than `trusted.overlay.*`.
    pub userxattr: bool,
    pub uid_map: Vec<Range>,
    pub gid_map: Vec<Range>,
    /// Show every file as owned by this uid/gid and keep on-disk owners as they are.
    pub squash_uid: Option<u32>,
    pub squash_gid: Option<u32>,
    /// Threads reading requests from the kernel.
    pub threads: usize,
    pub passthrough: Passthrough,
    /// How long the kernel may cache entries and attributes. Only this filesystem changes the
    /// upper directory while it is mounted, so this can be long.
    pub timeout: Duration,
}

/// One id range: container ids `container..container+size` are `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// Whether to hand file data to the kernel (FUSE passthrough, Linux 6.9+, needs real root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passthrough {
    /// Use it when the kernel offers it and the server may open backing files.
    Auto,
    Off,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lower: Vec::new(),
            upper: None,
            work: None,
            userxattr: false,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            squash_uid: None,
            squash_gid: None,
            threads: default_threads(),
            passthrough: Passthrough::Auto,
            timeout: Duration::from_secs(3600),
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().clamp(2, 8))
        .unwrap_or(2)
}

impl Options {
    /// Parses a `-o` string. Unknown options are errors (a typo must not silently change
    /// ownership or layering).
    pub fn parse(s: &str) -> Result<Options, String> {
        let mut o = Options::default();
        for opt in s.split(',').filter(|o| !o.is_empty()) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k {
                "lowerdir" => {
                    o.lower = v
                        .split(':')
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect()
                }
                "upperdir" => o.upper = Some(PathBuf::from(v)),
                "workdir" => o.work = Some(PathBuf::from(v)),
                "userxattr" => o.userxattr = true,
                "uidmapping" => o.uid_map = parse_map(v)?,
                "gidmapping" => o.gid_map = parse_map(v)?,
                "squash_to_root" => {
                    o.squash_uid = Some(0);
                    o.squash_gid = Some(0);
                }
                "squash_to_uid" => o.squash_uid = Some(number(k, v)?),
                "squash_to_gid" => o.squash_gid = Some(number(k, v)?),
                "threads" => o.threads = number::<usize>(k, v)?.clamp(1, 64),
                "passthrough" => {
                    o.passthrough = match v {
                        "auto" | "on" | "" => Passthrough::Auto,
                        "off" => Passthrough::Off,
                        _ => return Err(format!("passthrough={v}: expected on, off or auto")),
                    }
                }
                "timeout" => o.timeout = Duration::from_secs(number(k, v)?),
                // Accepted for compatibility with fuse-overlayfs command lines; these are
                // always what this filesystem does.
                "fsync" | "noacl" | "allow_other" | "default_permissions" => {}
                _ => return Err(format!("unknown option {opt:?}")),
            }
        }
        if o.lower.is_empty() {
            return Err("lowerdir= is required".into());
        }
        if o.upper.is_some() != o.work.is_some() {
            return Err("upperdir= and workdir= go together".into());
        }
        Ok(o)
    }

    /// The option string that parses back to `self` (what the mount crate passes on).
    pub fn to_option_string(&self) -> String {
        let join = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut out = vec![format!("lowerdir={}", join(&self.lower))];
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            out.push(format!("upperdir={}", u.display()));
            out.push(format!("workdir={}", w.display()));
        }
        if self.userxattr {
            out.push("userxattr".into());
        }
        for (name, map) in [("uidmapping", &self.uid_map), ("gidmapping", &self.gid_map)] {
            if !map.is_empty() {
                out.push(format!("{name}={}", format_map(map)));
            }
        }
        if let Some(u) = self.squash_uid {
            out.push(format!("squash_to_uid={u}"));
        }
        if let Some(g) = self.squash_gid {
            out.push(format!("squash_to_gid={g}"));
        }
        out.push(format!("threads={}", self.threads));
        if self.passthrough == Passthrough::Off {
            out.push("passthrough=off".into());
        }
        out.push(format!("timeout={}", self.timeout.as_secs()));
        out.join(",")
    }
}

fn number<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{k}={v}: not a number"))
}

/// `C:H:N[:C:H:N...]`.
pub fn parse_map(v: &str) -> Result<Vec<Range>, String> {
    let parts: Vec<&str> = v.split(':').collect();
    if parts.is_empty() || !parts.len().is_multiple_of(3) {
        return Err(format!(
            "{v:?}: an id mapping is CONTAINER:HOST:SIZE triples"
        ));
    }
    parts
        .chunks(3)
        .map(|c| {
            let n = |s: &str| -> Result<u32, String> {
                s.parse().map_err(|_| format!("{v:?}: {s:?} is not an id"))
            };
            let r = Range {
                container: n(c[0])?,
                host: n(c[1])?,
                size: n(c[2])?,
            };
            if r.size == 0
                || r.container.checked_add(r.size - 1).is_none()
                || r.host.checked_add(r.size - 1).is_none()
            {
                return Err(format!(
                    "{v:?}: range {}:{}:{} is empty or overflows",
                    c[0], c[1], c[2]
                ));
            }
            Ok(r)
        })
        .collect()
}

pub fn format_map(map: &[Range]) -> String {
    map.iter()
        .map(|r| format!("{}:{}:{}", r.container, r.host, r.size))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_and_typos_are_refused() {
        let o = Options::parse(
            "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,userxattr,uidmapping=0:1000:1:1:100000:65536,squash_to_gid=5,threads=3,passthrough=off,timeout=7",
        )
        .unwrap();
        assert_eq!(o.lower, [PathBuf::from("/l1"), PathBuf::from("/l2")]);
        assert_eq!(o.uid_map.len(), 2);
        assert_eq!(
            o.uid_map[1],
            Range {
                container: 1,
                host: 100000,
                size: 65536
            }
        );
        assert_eq!(o.squash_gid, Some(5));
        assert_eq!(Options::parse(&o.to_option_string()).unwrap(), o);
        assert!(Options::parse("lowerdir=/a,uppredir=/u")
            .unwrap_err()
            .contains("unknown"));
        assert!(Options::parse("upperdir=/u,workdir=/w").is_err());
        assert!(Options::parse("lowerdir=/a,upperdir=/u").is_err());
        assert!(parse_map("0:1").is_err());
        assert!(parse_map("0:4294967295:2").is_err());
    }
}
