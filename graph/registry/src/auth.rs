//! Registry credentials: `--creds user:pass`, and containers-auth.json(5) files, read, written
//! by `login` and pruned by `logout` as podman does.
//!
//! Lookup reads, in order: an explicit `--authfile` (alone, when given), else
//! `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$HOME/.config/containers/auth.json` and `$HOME/.docker/config.json`. In each file the
//! most specific key wins: `host/ns/repo`, then `host/ns`, then `host`; legacy keys with a
//! scheme (`https://index.docker.io/v1/`) stand for their host.
//!
//! `login` writes the first of: the explicit file, `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `$HOME/.config/containers/auth.json`. It keeps the
//! file's other entries and fields, writes a temporary file with mode 0600 and renames it
//! over the old one (so the mode is always 0600).
//!
//! An entry's `identitytoken` (an OAuth2 refresh token) is read and used for bearer tokens
//! (`token.rs`). Not supported: credential helpers (`credHelpers`, `credsStore`); they are
//! skipped with a debug message.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{RegistryError, Result};

/// A username and password for one registry, or a token standing for them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (auth.json's `identitytoken`, the CRI's `identity_token`):
    /// bearer tokens are then asked for with the OAuth2 form (`grant_type=refresh_token`)
    /// instead of Basic credentials.
    pub identity_token: Option<String>,
    /// A bearer token sent to the registry as it is (the CRI's `registry_token`).
    pub registry_token: Option<String>,
    /// The one registry (`HOST[:PORT]`, Docker Hub as `docker.io`) these are for; `None`:
    /// any. Another registry (a mirror, a search registry) gets its auth files' entry.
    pub registry: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("identity_token", &redacted(&self.identity_token))
            .field("registry_token", &redacted(&self.registry_token))
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
            identity_token: None,
            registry_token: None,
            registry: None,
        }
    }

    /// Only for `registry` (a host, or an auth.json-style key such as
    /// `https://index.docker.io/v1/`).
    pub fn for_registry(self, registry: &str) -> Credentials {
        let key = normalize_key(registry);
        let host = key.split('/').next().unwrap_or_default().to_owned();
        Credentials {
            registry: (!host.is_empty()).then_some(host),
            ..self
        }
    }

    /// Whether they are for `registry`.
    pub fn applies_to(&self, registry: &str) -> bool {
        self.registry.as_deref().is_none_or(|r| r == registry)
    }

    /// An identity (OAuth2 refresh) token, with the user name it was issued to (docker's
    /// logins store `<token>` there).
    pub fn with_identity_token(
        username: impl Into<String>,
        token: impl Into<String>,
    ) -> Credentials {
        Credentials {
            identity_token: Some(token.into()),
            ..Credentials::new(username, "")
        }
    }

    /// A registry (bearer) token used as it is.
    pub fn with_registry_token(token: impl Into<String>) -> Credentials {
        Credentials {
            registry_token: Some(token.into()),
            ..Credentials::new("", "")
        }
    }

    /// Parses `--creds USER[:PASSWORD]` (the password may contain ':').
    pub fn parse(creds: &str) -> Result<Credentials> {
        let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
        if user.is_empty() {
            return Err(RegistryError::InvalidReference {
                input: "--creds".into(),
                reason: "expected USERNAME[:PASSWORD] with a non-empty username".into(),
            });
        }
        Ok(Credentials::new(user, pass))
    }

    /// The Basic header's value: `base64(user:pass)`, the identity token standing for the
    /// password when there is one and no password (containerd's rule).
    pub fn basic(&self) -> String {
        match (&self.identity_token, self.password.is_empty()) {
            (Some(t), true) => {
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{t}", self.username))
            }
            _ => self.encoded(),
        }
    }

    /// `base64(user:pass)`, the `auth` field of auth.json and the Basic header value.
    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }

    /// Reads an `auth` value (base64 of `USER:PASSWORD`, as auth.json and the CRI carry it).
    pub fn decode(auth: &str) -> Option<Credentials> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Credentials::new(u, p))
    }
}

/// The environment auth files are found from (taken from the process, or given by tests).
#[derive(Debug, Clone, Default)]
pub struct AuthEnv {
    pub registry_auth_file: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl AuthEnv {
    pub fn from_process() -> AuthEnv {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthEnv {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            home: var("HOME"),
        }
    }
}

/// Where credentials are read from and written to.
#[derive(Debug, Clone, Default)]
pub struct AuthStore {
    env: AuthEnv,
    explicit: Option<PathBuf>,
}

impl AuthStore {
    /// The files the process environment points at.
    pub fn from_env() -> AuthStore {
        AuthStore::new(AuthEnv::from_process(), None)
    }

    /// `explicit` is an `--authfile` path: the only file read and the one written.
    pub fn new(env: AuthEnv, explicit: Option<PathBuf>) -> AuthStore {
        AuthStore { env, explicit }
    }

    /// The files read, in order (missing ones are skipped when reading).
    pub fn read_paths(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.explicit {
            return vec![p.clone()];
        }
        let mut out = Vec::new();
        out.extend(self.env.registry_auth_file.clone());
        if let Some(x) = &self.env.xdg_runtime_dir {
            out.push(x.join("containers/auth.json"));
        }
        if let Some(h) = &self.env.home {
            out.push(h.join(".config/containers/auth.json"));
            out.push(h.join(".docker/config.json"));
        }
        out
    }

    /// The file `login` writes and `logout` edits.
    pub fn write_path(&self) -> Result<PathBuf> {
        if let Some(p) = self
            .explicit
            .as_ref()
            .or(self.env.registry_auth_file.as_ref())
        {
            return Ok(p.clone());
        }
        if let Some(x) = &self.env.xdg_runtime_dir {
            return Ok(x.join("containers/auth.json"));
        }
        if let Some(h) = &self.env.home {
            return Ok(h.join(".config/containers/auth.json"));
        }
        Err(RegistryError::InvalidConfig {
            what: "environment",
            path: PathBuf::from("$HOME"),
            reason: "neither XDG_RUNTIME_DIR nor HOME is set; pass --authfile".into(),
        })
    }

    /// The credentials for `name` (`host` or `host/ns/repo`), from the first file that has
    /// an entry for it.
    pub fn lookup(&self, name: &str) -> Result<Option<Credentials>> {
        for path in self.read_paths() {
            let Some(doc) = read_doc(&path)? else {
                continue;
            };
            if let Some(c) = find_in(&doc, name, &path) {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Stores credentials for `key` (`host` or `host/ns/repo`); returns the file written.
    pub fn login(&self, key: &str, creds: &Credentials) -> Result<PathBuf> {
        let path = self.write_path()?;
        let mut doc = read_doc(&path)?.unwrap_or_else(|| Value::Object(Map::new()));
        let auths = auths_mut(&mut doc, &path)?;
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(creds.encoded()));
        auths.insert(normalize_key(key), Value::Object(entry));
        write_doc(&path, &doc)?;
        Ok(path)
    }

    /// Removes the entry for `key` (and its legacy forms); fails if there was none.
    pub fn logout(&self, key: &str) -> Result<PathBuf> {
        let path = self.write_path()?;
        let wanted = normalize_key(key);
        let mut doc = read_doc(&path)?.unwrap_or_else(|| Value::Object(Map::new()));
        let auths = auths_mut(&mut doc, &path)?;
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != wanted);
        if auths.len() == before {
            return Err(RegistryError::NotLoggedIn {
                key: key.to_owned(),
                path,
            });
        }
        write_doc(&path, &doc)?;
        Ok(path)
    }

    /// Removes every entry (`logout --all`); returns the file edited, if it existed.
    pub fn logout_all(&self) -> Result<Option<PathBuf>> {
        let path = self.write_path()?;
        let Some(mut doc) = read_doc(&path)? else {
            return Ok(None);
        };
        auths_mut(&mut doc, &path)?.clear();
        write_doc(&path, &doc)?;
        Ok(Some(path))
    }
}

/// podman's key normalization: a legacy key with a scheme stands for its host, and
/// `index.docker.io` is `docker.io`.
pub fn normalize_key(key: &str) -> String {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    let key = match stripped {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => key.trim_end_matches('/'),
    };
    match key.split_once('/') {
        Some(("index.docker.io", rest)) => format!("docker.io/{rest}"),
        _ if key == "index.docker.io" || key == "registry-1.docker.io" => "docker.io".into(),
        _ => key.to_owned(),
    }
}

fn find_in(doc: &Value, name: &str, path: &Path) -> Option<Credentials> {
    let auths = doc.get("auths")?.as_object()?;
    let name = normalize_key(name);
    // Most specific first: host/a/b, host/a, host.
    let mut candidates = vec![name.as_str()];
    let mut cur = name.as_str();
    while let Some((parent, _)) = cur.rsplit_once('/') {
        candidates.push(parent);
        cur = parent;
    }
    for want in candidates {
        for (k, v) in auths {
            if normalize_key(k) != want {
                continue;
            }
            let auth = v
                .get("auth")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty());
            // An identity token wins over the `auth` pair beside it (whose user it keeps),
            // as containers/image reads the file.
            if let Some(t) = v.get("identitytoken").and_then(Value::as_str) {
                if !t.is_empty() {
                    let user = auth
                        .and_then(Credentials::decode)
                        .map(|c| c.username)
                        .unwrap_or_default();
                    return Some(Credentials::with_identity_token(user, t));
                }
            }
            match auth {
                Some(a) => match Credentials::decode(a) {
                    Some(c) => return Some(c),
                    None => tracing::warn!(key = %k, path = %path.display(),
                        "auth entry is not base64(user:password); ignored"),
                },
                None => tracing::debug!(key = %k, path = %path.display(),
                    "auth entry without `auth` or `identitytoken`; ignored"),
            }
        }
    }
    None
}

fn read_doc(path: &Path) -> Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::io("read", path)(e)),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| RegistryError::InvalidConfig {
            what: "auth file",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn auths_mut<'a>(doc: &'a mut Value, path: &Path) -> Result<&'a mut Map<String, Value>> {
    let bad = |reason: &str| RegistryError::InvalidConfig {
        what: "auth file",
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object"))?;
    obj.entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| bad("\"auths\" is not an object"))
}

fn write_doc(path: &Path, doc: &Value) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(RegistryError::io("create directory", dir))?;
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| RegistryError::InvalidConfig {
        what: "auth file",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth.json".into());
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(RegistryError::io("write", path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
