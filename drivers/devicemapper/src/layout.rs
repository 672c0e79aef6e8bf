//! The driver's home: where every record, mount point and pool file lives, the home-wide lock,
//! the thin id counter and the device-mapper names derived from the home.
//!
//! ```text
//! <home>/                        format version FORMAT_VERSION
//! ├── format                     "1": the layout version, checked on open
//! ├── lock                       flock held by every operation that changes devices or records
//! ├── next-thin-id               the next thin id to hand out (thin ids are never reused)
//! ├── pool/                      only for the driver's own pool (no dm.thinpooldev):
//! │   ├── data                   sparse file, attached as a loop device
//! │   └── metadata               sparse file, attached as a loop device
//! ├── base.json                  record of the base device (the empty filesystem)
//! ├── base/                      its mount point while it is being formatted
//! ├── devices/<key>.json         record of a committed layer or container
//! ├── mnt/<key>/                 where <key>'s filesystem is mounted while active
//! │   └── rootfs/                the layer's tree: its view, diff_dir and changes source
//! ├── staging/
//! │   ├── <name>.lock            flock held by the process filling the area
//! │   ├── <name>.json            record of the staging device
//! │   └── <name>/                its mount point; Staging.root is <name>/rootfs
//! └── removing/<thin id>.json    a device being removed (possibly deferred by the kernel)
//! ```
//!
//! Device-mapper names are global, so they carry the home's identity:
//! `strata-<major>:<minor>-<inode>-pool` for the driver's own pool and
//! `strata-<major>:<minor>-<inode>-<thin id>` for thin devices.
//!
//! What it does not do: interpret records (see `record`) or talk to the kernel.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use strata_driver_api::Key;

use crate::error::{Error, Result};

/// Version of the layout above.
pub const FORMAT_VERSION: u32 = 1;
/// The subdirectory of a mounted device that holds the layer's tree (the filesystem root
/// also has `lost+found`, which must not show in views).
pub const ROOTFS: &str = "rootfs";
/// Thin ids are 24 bits.
const MAX_THIN_ID: u32 = (1 << 24) - 1;

/// Paths and names of one home.
#[derive(Debug, Clone)]
pub struct Layout {
    pub home: PathBuf,
    /// `strata-<major>:<minor>-<inode>`.
    pub prefix: String,
}

impl Layout {
    /// Creates the home's directories and checks its format version. The home is made
    /// absolute and free of symlinks, so that its mount points compare equal to the ones the
    /// kernel reports.
    pub fn prepare(home: &Path) -> Result<Layout> {
        std::fs::create_dir_all(home).map_err(Error::io("create", home))?;
        let home = &std::fs::canonicalize(home).map_err(Error::io("resolve", home))?;
        for d in ["devices", "mnt", "staging", "removing"] {
            let p = home.join(d);
            std::fs::create_dir_all(&p).map_err(Error::io("create", &p))?;
        }
        let format = home.join("format");
        match std::fs::read_to_string(&format) {
            Ok(v) if v.trim() == FORMAT_VERSION.to_string() => {}
            Ok(v) => {
                return Err(Error::Corrupt {
                    path: format,
                    reason: format!(
                        "layout version {:?}; this build reads version {FORMAT_VERSION}",
                        v.trim()
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&format, format!("{FORMAT_VERSION}\n").as_bytes())?;
            }
            Err(e) => return Err(Error::io("read", &format)(e)),
        }
        let m = std::fs::metadata(home).map_err(Error::io("stat", home))?;
        let prefix = format!(
            "strata-{}:{}-{}",
            rustix::fs::major(m.dev()),
            rustix::fs::minor(m.dev()),
            m.ino()
        );
        Ok(Layout {
            home: home.to_path_buf(),
            prefix,
        })
    }

    pub fn pool_name(&self) -> String {
        format!("{}-pool", self.prefix)
    }

    pub fn thin_name(&self, thin_id: u32) -> String {
        format!("{}-{thin_id}", self.prefix)
    }

    /// The thin id in a device-mapper name of this home, if it is one.
    pub fn thin_id_of(&self, name: &str) -> Option<u32> {
        name.strip_prefix(&self.prefix)?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    pub fn pool_file(&self, name: &str) -> PathBuf {
        self.home.join("pool").join(name)
    }

    pub fn base_record(&self) -> PathBuf {
        self.home.join("base.json")
    }

    pub fn key_record(&self, key: &Key) -> PathBuf {
        self.home.join("devices").join(format!("{key}.json"))
    }

    pub fn devices_dir(&self) -> PathBuf {
        self.home.join("devices")
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.home.join("staging")
    }

    pub fn removing_dir(&self) -> PathBuf {
        self.home.join("removing")
    }

    pub fn removing_record(&self, thin_id: u32) -> PathBuf {
        self.removing_dir().join(format!("{thin_id}.json"))
    }

    /// The record of the staging area `area` (`staging/<name>` → `staging/<name>.json`).
    pub fn staging_record(area: &Path) -> PathBuf {
        let mut p = area.as_os_str().to_owned();
        p.push(".json");
        PathBuf::from(p)
    }

    /// A key's mount point, relative to the home (as records store it).
    pub fn key_mount(key: &Key) -> PathBuf {
        Path::new("mnt").join(key.as_str())
    }

    /// The tree of a key: its view.
    pub fn key_root(&self, key: &Key) -> PathBuf {
        self.home.join(Layout::key_mount(key)).join(ROOTFS)
    }

    /// Takes the home-wide lock (blocking) until the guard is dropped.
    pub fn lock(&self) -> Result<File> {
        let p = self.home.join("lock");
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(Error::io("open", &p))?;
        rustix::fs::flock(&f, FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", &p)(e.into()))?;
        Ok(f)
    }

    /// Hands out a fresh thin id. Call with the home lock held.
    pub fn allocate_thin_id(&self) -> Result<u32> {
        let p = self.home.join("next-thin-id");
        let next = match std::fs::read_to_string(&p) {
            Ok(s) => s.trim().parse::<u32>().map_err(|e| Error::Corrupt {
                path: p.clone(),
                reason: format!("not a thin id: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(Error::io("read", &p)(e)),
        };
        if next > MAX_THIN_ID {
            return Err(Error::PoolUnusable {
                pool: self.home.display().to_string(),
                reason: format!("all {MAX_THIN_ID} thin ids have been used"),
            });
        }
        write_atomic(&p, format!("{}\n", next + 1).as_bytes())?;
        Ok(next)
    }

    /// Every thin id handed out so far is below this.
    pub fn thin_id_limit(&self) -> Result<u32> {
        let p = self.home.join("next-thin-id");
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(s.trim().parse().unwrap_or(1)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
            Err(e) => Err(Error::io("read", &p)(e)),
        }
    }
}

/// Writes a small file atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(data).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("rename into place", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync", dir))
}

/// Keys named by `*.json` records in `dir`, sorted; other names are skipped.
pub fn keys_in(dir: &Path) -> Result<Vec<Key>> {
    let mut keys = Vec::new();
    for e in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let e = e.map_err(Error::io("read", dir))?;
        let name = e.file_name();
        if let Some(k) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| Key::new(n).ok())
        {
            keys.push(k);
        }
    }
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_gets_its_layout_names_and_fresh_thin_ids() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(t.path(), t.path().join("link")).unwrap();
        let l = Layout::prepare(&t.path().join("link/./")).unwrap();
        let t_path = std::fs::canonicalize(t.path()).unwrap();
        assert_eq!(l.home, t_path, "the home is canonical");
        assert!(l.prefix.starts_with("strata-"));
        assert_eq!(l.thin_id_of(&l.thin_name(42)), Some(42));
        assert_eq!(l.thin_id_of(&l.pool_name()), None);
        assert_eq!(l.thin_id_of("strata-other-42"), None);
        let k = Key::new("abc").unwrap();
        assert_eq!(l.key_root(&k), t_path.join("mnt/abc/rootfs"));
        assert_eq!(
            Layout::staging_record(&t_path.join("staging/x")),
            t_path.join("staging/x.json")
        );

        let _g = l.lock().unwrap();
        assert_eq!(l.thin_id_limit().unwrap(), 1);
        assert_eq!(
            (l.allocate_thin_id().unwrap(), l.allocate_thin_id().unwrap()),
            (1, 2)
        );
        assert_eq!(l.thin_id_limit().unwrap(), 3);

        // Reopening keeps the counter and accepts the format; another format is refused.
        let again = Layout::prepare(t.path()).unwrap();
        assert_eq!(
            (again.prefix.clone(), again.allocate_thin_id().unwrap()),
            (l.prefix.clone(), 3)
        );
        std::fs::write(t.path().join("format"), "7\n").unwrap();
        let e = Layout::prepare(t.path()).unwrap_err();
        assert!(e.to_string().contains("layout version \"7\""), "{e}");
    }

    #[test]
    fn keys_are_read_from_record_names() {
        let t = tempfile::tempdir().unwrap();
        for n in ["b.json", "a.json", "a.json.tmp-1", "not a key.json", "c"] {
            std::fs::write(t.path().join(n), "").unwrap();
        }
        let keys: Vec<String> = keys_in(t.path())
            .unwrap()
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
