//! Strata's built-in bridge network: a configuration list built in code from a
//! [`NetworkConfig`] rather than read from a `.conflist` file. The chain is podman's default
//! CNI network (`87-podman-bridge.conflist`):
//!
//! 1. `bridge` with `host-local` IPAM: a veth pair into the namespace, the host end on the
//!    bridge, which is the gateway (`isGateway`), outbound NAT (`ipMasq`), and hairpin mode so a
//!    container reaches itself through a published port;
//! 2. `portmap`: DNAT of published ports (`runtimeConfig.portMappings`, the `portMappings`
//!    capability), with `snat` so that connections from the host itself (127.0.0.1 included:
//!    the plugin sets `route_localnet` on the bridge) and hairpin connections come back;
//! 3. `firewall`: accepts the container's forwarded traffic even where the host's FORWARD
//!    policy drops (as Docker sets it);
//! 4. `tuning`: a no-op without sysctls, kept so the chain is podman's.
//!
//! The loopback plugin is separate: `--network none` runs it alone.
//!
//! Only IPv4 subnets are supported: IPAM gets one range, and the default route is `0.0.0.0/0`.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{json, Value};

use crate::cni::NetworkList;
#[cfg(test)]
use crate::{cni::RuntimeConfig, PortMapping};
use crate::{NetworkConfig, NetworkError};

/// The CNI spec version of every configuration Strata writes.
pub(crate) const CNI_VERSION: &str = "1.0.0";

/// The loopback plugin's configuration (its network name is informational only).
pub(crate) fn loopback() -> Value {
    json!({ "cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback" })
}

/// The bridge network as a configuration list (no runtime arguments yet).
pub(crate) fn list(cfg: &NetworkConfig) -> Result<NetworkList, NetworkError> {
    let (subnet, gateway) = parse_subnet(&cfg.subnet)?;
    let ipam_dir: &Path = &cfg.state_dir.join("ipam");
    let plugins = vec![
        json!({
            "type": "bridge",
            "bridge": cfg.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": ipam_dir,
                "routes": [{ "dst": "0.0.0.0/0" }],
                "ranges": [[{ "subnet": subnet, "gateway": gateway.to_string() }]],
            },
        }),
        json!({
            "type": "portmap",
            "capabilities": { "portMappings": true },
            "snat": true,
        }),
        json!({ "type": "firewall" }),
        json!({ "type": "tuning" }),
    ];
    NetworkList::new(CNI_VERSION, &cfg.name, plugins)
}

/// The configurations of the bridge chain as they are run, in ADD order, without
/// `prevResult`.
#[cfg(test)]
pub(crate) fn bridge_chain(
    cfg: &NetworkConfig,
    ports: &[PortMapping],
) -> Result<Vec<Value>, NetworkError> {
    Ok(list(cfg)?.plugin_configs(&RuntimeConfig::ports(ports)))
}

/// Validates an IPv4 `a.b.c.d/len` subnet (a prefix of 1 to 30 bits, so that it holds a
/// gateway and at least one container) and returns it with its gateway, the first host
/// address.
fn parse_subnet(subnet: &str) -> Result<(String, Ipv4Addr), NetworkError> {
    let invalid = |why: &str| {
        NetworkError::InvalidConfig(format!(
            "subnet `{subnet}`: {why} (expected an IPv4 network such as 10.89.0.0/24)"
        ))
    };
    let (addr, len) = subnet
        .split_once('/')
        .ok_or_else(|| invalid("no prefix length"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
    let len: u8 = len.parse().map_err(|_| invalid("bad prefix length"))?;
    if !(1..=30).contains(&len) {
        return Err(invalid("the prefix length must be 1 to 30"));
    }
    let mask = u32::MAX << (32 - len);
    let network = u32::from(addr) & mask;
    if network != u32::from(addr) {
        return Err(invalid("host bits are set"));
    }
    Ok((
        format!("{}/{len}", Ipv4Addr::from(network)),
        Ipv4Addr::from(network + 1),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::Protocol;

    #[test]
    fn the_chain_is_podmans_with_our_names_and_ports() {
        let cfg = NetworkConfig {
            state_dir: "/run/x/networks".into(),
            ..NetworkConfig::default()
        };
        let ports = [PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        }];
        let chain = bridge_chain(&cfg, &ports).unwrap();
        let types: Vec<&str> = chain.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["bridge", "portmap", "firewall", "tuning"]);
        for p in &chain {
            assert_eq!(p["cniVersion"], "1.0.0");
            assert_eq!(p["name"], "strata");
        }
        assert_eq!(chain[0]["bridge"], "strata0");
        assert_eq!(chain[0]["ipam"]["dataDir"], "/run/x/networks/ipam");
        assert_eq!(
            chain[0]["ipam"]["ranges"][0][0],
            json!({ "subnet": "10.89.0.0/24", "gateway": "10.89.0.1" })
        );
        assert_eq!(
            chain[1]["runtimeConfig"]["portMappings"],
            json!([{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "" }])
        );
    }

    #[test]
    fn subnets_are_checked() {
        assert_eq!(
            parse_subnet("172.16.0.0/12").unwrap(),
            ("172.16.0.0/12".into(), Ipv4Addr::new(172, 16, 0, 1))
        );
        for (bad, why) in [
            ("10.89.0.0", "no prefix length"),
            ("10.89.0.1/24", "host bits are set"),
            ("10.89.0.0/31", "1 to 30"),
            ("fd00::/64", "not an IPv4 address"),
        ] {
            let e = parse_subnet(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
