//! The overlay mount specs of a key: a pure function of the home, the key, its parents and the
//! driver's options.
//!
//! - A writable key: `lower` = the parents' `diff` dirs, nearest first (or the empty dir for a
//!   parentless one), `upper` = its `diff`, `work` = its `work`.
//! - A read-only view of a committed layer: `lower` = its own `diff`, then its parents'; no
//!   upper. A single layer gets the empty dir as a second lower: overlayfs needs two lowers
//!   without an upper, and going through overlay (rather than a bind mount) hides whiteout
//!   devices and opaque markers that a base layer's tar may carry.
//!
//! The fixed options make behaviour independent of kernel defaults and let [`crate::changes`]
//! rely on the upper dir: no metacopy-only files, no redirects, no index.

use std::path::{Path, PathBuf};

use strata_driver_api::Key;
use strata_types::Mount;

/// Options every overlay mount of this driver gets (before `userxattr` and user extras; in
/// rootless mode `redirect_dir=nofollow` replaces `redirect_dir=off`).
pub const FIXED_OPTIONS: &[&str] = &["index=off", "metacopy=off", "redirect_dir=off"];

/// Everything the specs depend on.
#[derive(Debug, Clone)]
pub struct MountPlan<'a> {
    pub home: &'a Path,
    pub rootless: bool,
    /// Extra options from the `mountopt` driver option.
    pub extra: &'a [String],
}

impl MountPlan<'_> {
    pub fn diff(&self, key: &Key) -> PathBuf {
        strata_driver_api::key_dir(self.home, "layers", key).join("diff")
    }

    pub fn work(&self, key: &Key) -> PathBuf {
        strata_driver_api::key_dir(self.home, "layers", key).join("work")
    }

    pub fn empty(&self) -> PathBuf {
        self.home.join("empty")
    }

    pub fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = FIXED_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
        if self.rootless {
            // The kernel refuses `userxattr` with redirects followed, which is what
            // `redirect_dir=off` means by default (`redirect_always_follow`); `nofollow`
            // neither creates nor follows them.
            for opt in &mut o {
                if opt == "redirect_dir=off" {
                    *opt = "redirect_dir=nofollow".into();
                }
            }
            o.push("userxattr".into());
        }
        o.extend(self.extra.iter().cloned());
        o
    }

    pub fn mounts(&self, key: &Key, parents: &[Key], writable: bool) -> Vec<Mount> {
        let parent_diffs = parents.iter().map(|p| self.diff(p));
        let (lower, upper, work) = if writable {
            let mut lower: Vec<PathBuf> = parent_diffs.collect();
            if lower.is_empty() {
                lower.push(self.empty());
            }
            (lower, Some(self.diff(key)), Some(self.work(key)))
        } else {
            let mut lower: Vec<PathBuf> = std::iter::once(self.diff(key))
                .chain(parent_diffs)
                .collect();
            if lower.len() == 1 {
                lower.push(self.empty());
            }
            (lower, None, None)
        };
        vec![Mount::Overlay {
            lower,
            upper,
            work,
            options: self.options(),
        }]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    fn overlay(m: &[Mount]) -> (&[PathBuf], Option<&Path>, Option<&Path>, &[String]) {
        match m {
            [Mount::Overlay {
                lower,
                upper,
                work,
                options,
            }] => (lower, upper.as_deref(), work.as_deref(), options),
            other => panic!("expected one overlay, got {other:?}"),
        }
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn writable_keys_stack_their_parents_nearest_first() {
        let plan = MountPlan {
            home: Path::new("/s/overlay"),
            rootless: false,
            extra: &[],
        };
        let m = plan.mounts(&k("c-1"), &[k("l2"), k("l1")], true);
        let (lower, upper, work, options) = overlay(&m);
        assert_eq!(
            lower,
            paths(&["/s/overlay/layers/l2/diff", "/s/overlay/layers/l1/diff"])
        );
        assert_eq!(upper, Some(Path::new("/s/overlay/layers/c-1/diff")));
        assert_eq!(work, Some(Path::new("/s/overlay/layers/c-1/work")));
        assert_eq!(options, ["index=off", "metacopy=off", "redirect_dir=off"]);
        assert!(!m[0].read_only());

        let m = plan.mounts(&k("c-2"), &[], true);
        assert_eq!(overlay(&m).0, paths(&["/s/overlay/empty"]));
    }

    #[test]
    fn read_only_views_put_the_layer_on_top_and_never_have_one_lower() {
        let extra = vec!["nodev".to_owned()];
        let plan = MountPlan {
            home: Path::new("/h"),
            rootless: true,
            extra: &extra,
        };
        let m = plan.mounts(&k("l3"), &[k("l2"), k("l1")], false);
        let (lower, upper, work, options) = overlay(&m);
        assert_eq!(
            lower,
            paths(&[
                "/h/layers/l3/diff",
                "/h/layers/l2/diff",
                "/h/layers/l1/diff"
            ])
        );
        assert_eq!((upper, work), (None, None));
        assert_eq!(
            options,
            [
                "index=off",
                "metacopy=off",
                "redirect_dir=nofollow",
                "userxattr",
                "nodev"
            ]
        );
        assert!(m[0].read_only());

        let m = plan.mounts(&k("base"), &[], false);
        assert_eq!(overlay(&m).0, paths(&["/h/layers/base/diff", "/h/empty"]));
    }

    #[test]
    fn deep_chains_list_every_parent_once() {
        let plan = MountPlan {
            home: Path::new("/h"),
            rootless: false,
            extra: &[],
        };
        let parents: Vec<Key> = (0..200).rev().map(|i| k(&format!("l{i}"))).collect();
        let m = plan.mounts(&k("top"), &parents, false);
        let lower = overlay(&m).0;
        assert_eq!(lower.len(), 201);
        assert_eq!(lower[1], Path::new("/h/layers/l199/diff"));
        assert_eq!(lower[200], Path::new("/h/layers/l0/diff"));
    }
}
