//! Port publishing (`-p`/`--publish`): podman's syntax
//! `[[ip:][hostPort]:]containerPort[/protocol]`, with port ranges (`8000-8001:80-81`), a
//! bracketed IPv6 host address (`[::1]:8080:80`) and several protocols (`53:53/tcp,udp`).
//!
//! What it deliberately does not do: pick random host ports. Podman publishes
//! `-p 80` (or `-p 127.0.0.1::80`) on a free port it chooses; here a spec without a host port is
//! refused, because choosing a port at parse time would race with other processes and the
//! port would not survive a restart anyway.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::NetworkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: connections to `host_ip:host_port` (every host address when `host_ip`
/// is `None`) reach the container's `container_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<String>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// Parses one `-p` value into its mappings (one per port of a range and per protocol).
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, NetworkError> {
    let invalid = |reason: &str| NetworkError::InvalidPublish {
        spec: spec.into(),
        reason: reason.into(),
    };
    let (addr, protocols) = match spec.rsplit_once('/') {
        Some((addr, protos)) => (addr, parse_protocols(protos).map_err(|r| invalid(&r))?),
        None => (spec, vec![Protocol::Tcp]),
    };
    let (host_ip, ports) = split_host_ip(addr).map_err(|r| invalid(&r))?;
    let (host, container) = match ports.rsplit_once(':') {
        Some((host, container)) => (host, container),
        None => ("", ports),
    };
    if host.is_empty() {
        return Err(invalid(
            "a host port is required (random host ports are not supported), e.g. 8080:80",
        ));
    }
    let host = parse_range(host).map_err(|r| invalid(&format!("host port: {r}")))?;
    let container = parse_range(container).map_err(|r| invalid(&format!("container port: {r}")))?;
    if host.1 - host.0 != container.1 - container.0 {
        return Err(invalid(
            "the host and container port ranges have different lengths",
        ));
    }
    let mut out = Vec::new();
    for protocol in protocols {
        for offset in 0..=(host.1 - host.0) {
            out.push(PortMapping {
                host_ip: host_ip.clone(),
                host_port: host.0 + offset,
                container_port: container.0 + offset,
                protocol,
            });
        }
    }
    Ok(out)
}

fn parse_protocols(list: &str) -> Result<Vec<Protocol>, String> {
    let mut out = Vec::new();
    for p in list.split(',') {
        let p = match p.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => return Err(format!("unknown protocol `{other}` (tcp or udp)")),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Splits `[ip:]ports` into the host address (validated) and the rest.
fn split_host_ip(addr: &str) -> Result<(Option<String>, &str), String> {
    let (ip, rest) = if let Some(bracketed) = addr.strip_prefix('[') {
        let (ip, rest) = bracketed
            .split_once(']')
            .ok_or("missing `]` after the IPv6 host address")?;
        let rest = rest
            .strip_prefix(':')
            .ok_or("expected `:` after the bracketed host address")?;
        (Some(ip), rest)
    } else {
        match addr.matches(':').count() {
            0 | 1 => (None, addr),
            2 => {
                let (ip, rest) = addr.split_once(':').expect("the spec has two `:`");
                (Some(ip), rest)
            }
            _ => return Err("too many `:`; write an IPv6 host address in brackets".into()),
        }
    };
    match ip {
        None | Some("") => Ok((None, rest)),
        Some(ip) => {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("`{ip}` is not an IP address"))?;
            Ok((Some(ip.to_string()), rest))
        }
    }
}

/// Parses `80` or `8000-8010` into an inclusive range of non-zero ports.
fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{p}` is not a port number (1-65535)")),
        Ok(n) => Ok(n),
    };
    match s.split_once('-') {
        None => port(s).map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("`{s}` is an empty range"));
            }
            Ok((a, b))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn map(ip: Option<&str>, host: u16, container: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(str::to_string),
            host_port: host,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn host_and_container_port() {
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            [map(None, 8080, 80, Protocol::Tcp)]
        );
        assert_eq!(
            parse_publish("5353:53/udp").unwrap(),
            [map(None, 5353, 53, Protocol::Udp)]
        );
    }

    #[test]
    fn host_address_v4_and_bracketed_v6() {
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/tcp").unwrap(),
            [map(Some("127.0.0.1"), 8080, 80, Protocol::Tcp)]
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            [map(Some("::1"), 8080, 80, Protocol::Tcp)]
        );
        // An empty address means every address, as in podman.
        assert_eq!(
            parse_publish(":8080:80").unwrap(),
            [map(None, 8080, 80, Protocol::Tcp)]
        );
    }

    #[test]
    fn ranges_expand_pairwise() {
        assert_eq!(
            parse_publish("8000-8001:80-81").unwrap(),
            [
                map(None, 8000, 80, Protocol::Tcp),
                map(None, 8001, 81, Protocol::Tcp)
            ]
        );
    }

    #[test]
    fn several_protocols_give_one_mapping_each() {
        assert_eq!(
            parse_publish("53:53/tcp,udp").unwrap(),
            [
                map(None, 53, 53, Protocol::Tcp),
                map(None, 53, 53, Protocol::Udp)
            ]
        );
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("80", "host port is required"),
            ("127.0.0.1::80", "host port is required"),
            ("8000-8002:80-81", "different lengths"),
            ("8080:0", "container port: `0` is not a port"),
            ("70000:80", "host port: `70000`"),
            ("8080:80/sctp", "unknown protocol `sctp`"),
            ("300.1.1.1:8080:80", "`300.1.1.1` is not an IP address"),
            ("::1:8080:80", "write an IPv6 host address in brackets"),
            ("[::1:8080:80", "missing `]`"),
            ("8001-8000:80-79", "empty range"),
            ("x:80", "host port: `x`"),
        ];
        for (spec, why) in cases {
            let e = parse_publish(spec).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid port publish spec `{spec}`")),
                "{e}"
            );
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
