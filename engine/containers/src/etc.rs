//! The `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` the engine writes for a container
//! next to its bundle, bind-mounted into it (podman's way: the image's files stay untouched).

use std::path::PathBuf;

use crate::config::NetworkMode;
use crate::container::Container;
use crate::error::{Context, Result};

/// Writes the files; returns (destination in the container, file on the host) pairs. `ip` is
/// the container's address on its network, if it has one of its own.
pub(crate) fn write(c: &Container<'_>, ip: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let cfg = &c.config;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost localhost.localdomain\n",
    );
    if cfg.network == NetworkMode::Host {
        hosts = std::fs::read_to_string("/etc/hosts").unwrap_or(hosts);
    } else {
        let addr = ip.unwrap_or("127.0.1.1");
        hosts.push_str(&format!("{addr}\t{} {}\n", cfg.hostname, c.name()));
    }
    let mut resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if cfg.network == NetworkMode::Slirp4netns {
        resolv = strata_engine_network::slirp::resolv_conf(&resolv);
    }
    let files = [
        ("/etc/hosts", "hosts", hosts),
        ("/etc/hostname", "hostname", format!("{}\n", cfg.hostname)),
        ("/etc/resolv.conf", "resolv.conf", resolv),
    ];
    let mut out = Vec::new();
    for (dest, file, text) in files {
        let p = c.paths.dir.join(file);
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
        out.push((dest.to_owned(), p));
    }
    Ok(out)
}
