//! Platforms (`os/architecture[/variant]`): parsing, the host default, and picking an entry
//! of an index.
//!
//! Names follow the OCI image spec (Go's `GOOS`/`GOARCH`), so Rust's architecture names are
//! mapped (`x86_64` -> `amd64`, `aarch64` -> `arm64`/`v8`, ...). `arm64` without a variant
//! is treated as `arm64/v8`, as containers/image does. OS features and OS versions (Windows)
//! are deliberately ignored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ImageError, Result};
use crate::transport::Descriptor;

/// An image platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI names.
    pub fn host() -> Platform {
        let (architecture, variant) = strata_types::arch::go_platform();
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            ImageError::Invalid(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64"
            ))
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(bad()),
        }
    }

    /// Builds a platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform an index entry declares, if any.
    pub fn of_descriptor(desc: &Descriptor) -> Option<Platform> {
        desc.platform
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Whether an image of platform `candidate` runs where `self` is wanted: same OS and
    /// architecture, and the same variant when `self` names one.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match self.normalized_variant() {
            None => true,
            Some(v) => candidate.normalized_variant() == Some(v),
        }
    }

    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, v) => v,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the entry of an index that matches `want`. The error lists the platforms available.
pub fn select<'a>(entries: &'a [Descriptor], want: &Platform) -> Result<&'a Descriptor> {
    let found = entries.iter().find(|d| {
        Platform::of_descriptor(d)
            .map(|p| want.matches(&p))
            .unwrap_or(false)
    });
    found.ok_or_else(|| {
        let available: Vec<String> = entries
            .iter()
            .filter_map(Platform::of_descriptor)
            .map(|p| p.to_string())
            .collect();
        ImageError::NotFound {
            what: "platform",
            name: format!(
                "{want} in the image index (available: {})",
                if available.is_empty() {
                    "none declared".to_owned()
                } else {
                    available.join(", ")
                }
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p, Platform::new("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(Platform::parse("linux/amd64").unwrap().variant, None);
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_uses_oci_names() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert_ne!(host.architecture, "x86_64");
        assert_ne!(host.architecture, "aarch64");
    }

    #[test]
    fn arm64_without_variant_is_v8() {
        let want = Platform::new("linux", "arm64", Some("v8"));
        assert!(want.matches(&Platform::new("linux", "arm64", None)));
        assert!(!want.matches(&Platform::new("linux", "arm64", Some("v9"))));
        let any_arm = Platform::new("linux", "arm", None);
        assert!(any_arm.matches(&Platform::new("linux", "arm", Some("v6"))));
        assert!(!any_arm.matches(&Platform::new("windows", "arm", None)));
    }
}
