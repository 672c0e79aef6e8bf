//! Reading a CNI 1.0.0 result: the container's interface and its IPv4 address.
//!
//! A result lists `interfaces` (host-side ones without `sandbox`, the container's with it)
//! and `ips`, each pointing at an interface by index. Only what [`Attachment`] reports is read;
//! routes and DNS are left to the plugins and the runtime.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NetworkError;

/// Where a container landed on the network: its interface, address and gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The interface inside the container (`eth0`).
    pub interface: String,
    /// The container's IPv4 address, e.g. `10.89.0.5`.
    pub ip: String,
    pub prefix_len: u8,
    pub gateway: String,
    pub mac: String,
}

#[derive(Debug, Deserialize)]
struct CniResult {
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
}

#[derive(Debug, Deserialize)]
struct Interface {
    name: String,
    #[serde(default)]
    mac: String,
    sandbox: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IpConfig {
    interface: Option<usize>,
    address: String,
    gateway: Option<String>,
}

/// The container's IPv4 attachment in the final result of the chain.
pub(crate) fn attachment_from(result: &Value) -> Result<Attachment, NetworkError> {
    let bad = |reason: String| NetworkError::BadResult {
        plugin: "bridge".into(),
        reason,
    };
    let parsed = CniResult::deserialize(result).map_err(|e| bad(e.to_string()))?;
    for ip in &parsed.ips {
        let Some(iface) = ip.interface.and_then(|i| parsed.interfaces.get(i)) else {
            continue;
        };
        if iface.sandbox.is_none() {
            continue;
        }
        let Some((addr, len)) = ip.address.split_once('/') else {
            return Err(bad(format!(
                "address `{}` has no prefix length",
                ip.address
            )));
        };
        if addr.parse::<Ipv4Addr>().is_err() {
            continue;
        }
        let prefix_len = len
            .parse()
            .map_err(|_| bad(format!("address `{}` has a bad prefix length", ip.address)))?;
        return Ok(Attachment {
            interface: iface.name.clone(),
            ip: addr.into(),
            prefix_len,
            gateway: ip.gateway.clone().unwrap_or_default(),
            mac: iface.mac.clone(),
        });
    }
    Err(bad(
        "no IPv4 address on an interface inside the container".into()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_side_address_is_picked() {
        // As printed by Debian's bridge plugin 1.1.1.
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                { "name": "strata0", "mac": "1e:0f:d0:97:da:f6" },
                { "name": "vethba044b72", "mac": "be:f3:bb:5e:4f:b7" },
                { "name": "eth0", "mac": "8a:08:c8:3a:68:ef", "sandbox": "/run/netns/x" }
            ],
            "ips": [{ "interface": 2, "address": "10.89.0.2/24", "gateway": "10.89.0.1" }],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dns": {}
        });
        assert_eq!(
            attachment_from(&result).unwrap(),
            Attachment {
                interface: "eth0".into(),
                ip: "10.89.0.2".into(),
                prefix_len: 24,
                gateway: "10.89.0.1".into(),
                mac: "8a:08:c8:3a:68:ef".into(),
            }
        );
    }

    #[test]
    fn a_result_without_a_container_address_is_refused() {
        let result = json!({
            "interfaces": [{ "name": "strata0", "mac": "1e:0f:d0:97:da:f6" }],
            "ips": [{ "interface": 0, "address": "10.89.0.1/24" }]
        });
        let e = attachment_from(&result).unwrap_err().to_string();
        assert!(e.contains("no IPv4 address on an interface inside"), "{e}");
    }
}
