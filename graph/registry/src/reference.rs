//! Docker image references (`[registry/]repository[:tag][@digest]`) parsed and normalized as
//! podman and skopeo do: `busybox` is `docker.io/library/busybox:latest`.
//!
//! The first path component is a registry when it contains `.` or `:`, is `localhost`, or has
//! upper-case letters; otherwise the name is on Docker Hub (`docker.io`, with `library/` for
//! one-component names). A reference without tag and digest gets the `latest` tag.
//!
//! Short-name resolution through registries.conf (aliases, search registries) is not done
//! here; see [`crate::registries_conf`].

use std::fmt;

use strata_types::Digest;

use crate::error::{RegistryError, Result};

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const MAX_NAME_LEN: usize = 255;

/// A normalized, validated image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes a reference. Adds the `latest` tag when there is neither tag
    /// nor digest.
    pub fn parse(input: &str) -> Result<Reference> {
        let mut r = Reference::parse_name_or_ref(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_owned());
        }
        Ok(r)
    }

    /// The details of a `docker://` transport reference: `//busybox:1` (skopeo's form).
    pub fn from_transport(details: &str) -> Result<Reference> {
        let rest = details
            .strip_prefix("//")
            .ok_or_else(|| invalid(details, "docker references must start with //"))?;
        Reference::parse(rest)
    }

    /// Parses without adding a default tag (for repository-level operations such as
    /// listing tags).
    pub fn parse_name_or_ref(input: &str) -> Result<Reference> {
        if input.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|e| invalid(input, &e.to_string()))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_owned()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            validate_tag(input, t)?;
        }
        let (registry, repository) = split_domain(name);
        validate_domain(input, &registry)?;
        validate_repository(input, &repository)?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid(
                input,
                "repository name must not exceed 255 characters",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Whether the user typed a name without a registry (`busybox`, `library/busybox`),
    /// which podman resolves through registries.conf.
    pub fn is_short_name(input: &str) -> bool {
        let name = input.split('@').next().unwrap_or(input);
        match name.split_once('/') {
            None => true,
            Some((first, _)) => !is_domain(first),
        }
    }

    /// The registry as written in references (`docker.io`, `quay.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) that serves the registry API (`registry-1.docker.io` for
    /// Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The manifest reference used in API paths: the digest if there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag, tag)?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository named by `digest` (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same tag/digest in another registry and repository (registries.conf mirrors).
    pub(crate) fn with_name(&self, registry: String, repository: String) -> Reference {
        Reference {
            registry,
            repository,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

fn invalid(input: &str, reason: &str) -> RegistryError {
    RegistryError::InvalidReference {
        input: input.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(crate) fn is_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn split_domain(name: &str) -> (String, String) {
    let (mut registry, mut repository) = match name.split_once('/') {
        Some((first, rest)) if is_domain(first) => (first.to_owned(), rest.to_owned()),
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    if registry == "index.docker.io" {
        registry = DOCKER_HUB.to_owned();
    }
    if registry == DOCKER_HUB && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    (registry, repository)
}

fn validate_tag(input: &str, tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            &format!("invalid tag {tag:?} (letters, digits, '_', '.', '-'; at most 128)"),
        ))
    }
}

fn validate_domain(input: &str, domain: &str) -> Result<()> {
    let (host, port) = if domain.starts_with('[') {
        match domain.find(']') {
            Some(end) => match &domain[end + 1..] {
                "" => (domain, None),
                rest => (&domain[..=end], Some(rest.strip_prefix(':').unwrap_or(""))),
            },
            None => return Err(invalid(input, &format!("invalid registry name {domain:?}"))),
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                input,
                &format!("invalid port in registry {domain:?}"),
            ));
        }
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
    } else {
        !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && !c.starts_with('-')
                    && !c.ends_with('-')
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if host_ok {
        Ok(())
    } else {
        Err(invalid(input, &format!("invalid registry name {domain:?}")))
    }
}

fn validate_repository(input: &str, repository: &str) -> Result<()> {
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid(input, "repository name must be lowercase"));
    }
    for component in repository.split('/') {
        if !valid_component(component) {
            return Err(invalid(
                input,
                &format!(
                    "invalid repository component {component:?} (lowercase letters and \
                     digits, separated by '.', '_', '__' or '-')"
                ),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Reference::parse(s).expect(s).to_string()
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalizes_like_podman() {
        assert_eq!(canon("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            canon("library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(canon("index.docker.io/foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(
            canon("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(canon("host:5000/a/b:tag"), "host:5000/a/b:tag");
        assert_eq!(canon("localhost/x"), "localhost/x:latest");
        assert_eq!(canon("quay.io/a/b/c:v1.2-rc_3"), "quay.io/a/b/c:v1.2-rc_3");
        assert_eq!(
            canon(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            canon(&format!("localhost:5000/x:1@{D}")),
            format!("localhost:5000/x:1@{D}")
        );
        assert_eq!(canon("[::1]:5000/x"), "[::1]:5000/x:latest");
    }

    #[test]
    fn accessors() {
        let r = Reference::parse(&format!("busybox:1@{D}")).expect("valid");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.name(), "docker.io/library/busybox");
        let h = Reference::parse("myhost:5000/ns/app").expect("valid");
        assert_eq!(h.api_host(), "myhost:5000");
        assert_eq!(h.manifest_ref(), "latest");
        let bare = Reference::parse_name_or_ref("quay.io/a").expect("valid");
        assert_eq!(bare.tag(), None);
    }

    #[test]
    fn errors_name_the_input() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Busybox",
            "a//b",
            "a/-b",
            "host:port/x",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "a..b/c",
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let e = Reference::parse("docker.io/Busybox").expect_err("uppercase");
        assert!(e.to_string().contains("lowercase"), "{e}");
    }

    #[test]
    fn components_and_short_names() {
        assert!(valid_component("a__b"));
        assert!(valid_component("a---b"));
        assert!(!valid_component("a___b"));
        assert!(!valid_component("a._b"));
        assert!(Reference::is_short_name("busybox"));
        assert!(Reference::is_short_name("library/busybox"));
        assert!(!Reference::is_short_name("localhost/busybox"));
        assert!(!Reference::is_short_name("quay.io/busybox"));
    }

    #[test]
    fn transport_form_needs_slashes() {
        assert_eq!(
            Reference::from_transport("//busybox")
                .expect("valid")
                .to_string(),
            "docker.io/library/busybox:latest"
        );
        assert!(Reference::from_transport("busybox").is_err());
    }
}
