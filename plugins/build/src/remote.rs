//! ADD's remote sources: `ADD https://host/path/file /dest` (and `http://`), with Docker's
//! rules: the file is downloaded (never extracted), saved with mode 0600 unless `--chmod`,
//! named after the URL's last path segment when the destination is a directory, and with
//! `--checksum=sha256:HEX` verified before it is used.
//!
//! TLS is verified against the system roots and `/etc/containers/certs.d/HOST` (the registry
//! client's settings, `strata_graph_registry::tls`). A download streams to a temporary file
//! under the build directory while it is hashed; nothing is buffered whole.
//!
//! Caching: with `--checksum` the key is the checksum and a hit downloads nothing; without it
//! the file is downloaded on every build and keyed by its content, as BuildKit does.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use strata_graph_registry::tls::{tls_config, TlsOptions};
use strata_types::Hasher;

/// Whether an ADD source is a URL.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The file name a URL's content gets in a destination directory.
pub fn file_name(url: &str) -> Result<String> {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let name = path.split_once('/').map(|(_, p)| p).unwrap_or("");
    match name.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => Ok(n.to_owned()),
        _ => bail!("ADD {url}: the URL names no file; give a destination file path"),
    }
}

/// A downloaded file (removed on drop) and its digest.
#[derive(Debug)]
pub struct Downloaded {
    pub path: PathBuf,
    pub digest: String,
}

impl Drop for Downloaded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Downloads `url` into `dir`; checks `checksum` (`sha256:HEX`) if given.
pub fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Downloaded> {
    let host = url
        .split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or(""))
        .unwrap_or("");
    let tls = tls_config(host, &TlsOptions::default())
        .map_err(|e| anyhow::anyhow!("TLS settings for {host}: {e}"))?;
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build()
        .new_agent();
    let resp = agent
        .get(url)
        .call()
        .with_context(|| format!("download {url}"))?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(
        "download-{}-{}",
        std::process::id(),
        file_name(url).unwrap_or_default()
    ));
    let mut out = Downloaded {
        path,
        digest: String::new(),
    };
    let mut file = std::fs::File::create(&out.path)
        .with_context(|| format!("create {}", out.path.display()))?;
    let mut body = resp.into_body().into_reader();
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .with_context(|| format!("download {url}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        file.write_all(&buf[..n])?;
    }
    file.sync_all()?;
    out.digest = h.finish().as_str().to_owned();
    if let Some(want) = checksum {
        if want != out.digest {
            bail!(
                "ADD {url}: checksum mismatch: --checksum says {want}, the download is {}",
                out.digest
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_path_segment() {
        assert_eq!(file_name("https://h/a/b.tar.gz?x=1").unwrap(), "b.tar.gz");
        assert_eq!(file_name("http://h:8080/file").unwrap(), "file");
        assert!(file_name("https://h/").is_err());
        assert!(file_name("https://h").is_err());
    }
}
