//! Removing the `bridge` plugin's outbound NAT rule when the container's namespace is already
//! gone.
//!
//! The plugin's DEL learns the container's addresses from its interface inside the namespace;
//! without the namespace it releases the address but leaves its masquerade rule
//! (`POSTROUTING -s <ip> -m comment --comment 'name: "<network>" id: "<container>"' -j CNI-<hash>`)
//! and chain behind, as it does under podman and CRI-O. Detaching before removing the
//! namespace avoids this; after a crash between the two, this module finds the rule by its
//! comment (the chain name is a hash, read from the rule) and deletes it, the way the plugin's
//! teardown would.
//!
//! It deliberately handles only that rule, only for iptables (the plugin's backend in
//! containernetworking-plugins 1.x) and only IPv4.

use std::process::Command;

use super::NetworkError;

/// Deletes the masquerade rule and chain of `container` on `network` for source `ip`, if any.
pub(crate) fn remove_leftover(
    network: &str,
    container: &str,
    ip: &str,
) -> Result<(), NetworkError> {
    let listing = iptables(&["-t", "nat", "-S", "POSTROUTING"])?;
    let comment = format!("name: \"{network}\" id: \"{container}\"");
    // `iptables -S` prints the comment with its quotes escaped.
    let printed = format!("\"{}\"", comment.replace('"', "\\\""));
    let source = format!("{ip}/32");
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let has = |flag: &str, value: &str| words.windows(2).any(|w| w[0] == flag && w[1] == value);
        if !line.contains(&printed) || !has("-s", &source) {
            continue;
        }
        let Some(chain) = words
            .windows(2)
            .find(|w| w[0] == "-j" && w[1].starts_with("CNI-"))
            .map(|w| w[1])
        else {
            continue;
        };
        iptables(&[
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-s",
            &source,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            chain,
        ])?;
        iptables(&["-t", "nat", "-F", chain])?;
        iptables(&["-t", "nat", "-X", chain])?;
        tracing::info!(
            container,
            chain,
            "removed a masquerade rule left by the bridge plugin"
        );
    }
    Ok(())
}

fn iptables(args: &[&str]) -> Result<String, NetworkError> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .env("PATH", crate::cni::exec::path_with_sbin())
        .output()
        .map_err(NetworkError::io("run", "iptables"))?;
    if !out.status.success() {
        return Err(NetworkError::Iptables {
            args: args.join(" "),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
