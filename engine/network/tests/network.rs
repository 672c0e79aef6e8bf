//! Container networking against the real CNI plugins (Debian's containernetworking-plugins)
//! in real network namespaces. The privileged tests each use their own bridge, subnet, state
//! directory and host ports (tests run in parallel) and detach and remove everything they made.
//! The unprivileged ones drive fake plugins (shell scripts) to check the exec protocol.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use serde_json::Value;
use strata_engine_network::{
    attach, detach, parse_publish, setup_loopback, AttachOptions, Attachment, CniNetwork,
    NetworkConfig, NetworkError, NetworkList, RuntimeConfig,
};
use strata_mount::{create_netns, remove_netns};
use strata_types::{ErrorKind, HasKind};

fn gate(test: &str) -> bool {
    strata_tests::require_privileged(
        &format!("network::{test}"),
        "network namespaces, CNI plugins and iptables",
    )
}

/// A bridge network of its own for one test; dropping it deletes the bridge.
struct Net {
    cfg: NetworkConfig,
    dir: tempfile::TempDir,
}

impl Net {
    /// `n` picks the bridge (`strata-t<n>`) and subnet (`10.201.<n>.0/<prefix>`).
    fn new(n: u8, prefix: u8) -> Net {
        let dir = tempfile::Builder::new()
            .prefix("strata-net-")
            .tempdir_in("/tmp")
            .unwrap();
        let cfg = NetworkConfig {
            name: format!("strata-test{n}"),
            bridge: format!("strata-t{n}"),
            subnet: format!("10.201.{n}.0/{prefix}"),
            state_dir: dir.path().join("networks"),
            ..NetworkConfig::default()
        };
        Net { cfg, dir }
    }

    /// A new namespace for container `id`, detached and removed on drop.
    fn container(&self, id: &str) -> Container<'_> {
        let netns = self.dir.path().join("netns").join(id);
        create_netns(&netns).unwrap();
        Container {
            net: self,
            id: id.into(),
            netns,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.cfg.bridge])
            .output();
    }
}

struct Container<'a> {
    net: &'a Net,
    id: String,
    netns: PathBuf,
}

impl Container<'_> {
    fn attach(&self, publish: &[&str]) -> Attachment {
        let ports: Vec<_> = publish
            .iter()
            .flat_map(|p| parse_publish(p).unwrap())
            .collect();
        attach(&self.net.cfg, &self.id, &self.netns, &ports).unwrap()
    }

    fn detach(&self) {
        detach(&self.net.cfg, &self.id, &self.netns, &[]).unwrap();
    }

    /// Runs `f` on a thread inside the container's network namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = File::open(&self.netns).unwrap();
        std::thread::spawn(move || {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// `ip -j addr` inside the namespace.
    fn links(&self) -> Vec<Value> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .args(["ip", "-j", "addr", "show"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let detached = detach(&self.net.cfg, &self.id, &self.netns, &[]);
        remove_netns(&self.netns).unwrap();
        if !std::thread::panicking() {
            detached.unwrap();
        }
    }
}

/// A TCP server answering `reply` to every connection, stopped on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(listener: TcpListener, reply: &str) -> Server {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, reply) = (stop.clone(), reply.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `addr` and reads what the server says.
fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn iptables_rules() -> String {
    let out = Command::new("iptables-save").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The host's own address on its default route (not loopback, not a test bridge).
fn host_ip() -> String {
    let out = Command::new("ip")
        .args(["-j", "route", "get", "1.1.1.1"])
        .output()
        .unwrap();
    let routes: Value = serde_json::from_slice(&out.stdout).unwrap();
    routes[0]["prefsrc"].as_str().unwrap().to_string()
}

#[test]
fn bridge_attach_gives_an_address_and_detach_releases_it() {
    if !gate("bridge_attach_gives_an_address_and_detach_releases_it") {
        return;
    }
    // A /30 holds a single container address: a second container only gets one if the
    // first one's was released.
    let net = Net::new(1, 30);
    let a = net.container("bridge-a");
    let att = a.attach(&[]);
    assert_eq!(att.interface, "eth0");
    assert_eq!((att.ip.as_str(), att.prefix_len), ("10.201.1.2", 30));
    assert_eq!(att.gateway, "10.201.1.1");
    let links = a.links();
    let lo = links.iter().find(|l| l["ifname"] == "lo").unwrap();
    assert!(
        lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{lo}"
    );
    let eth0 = links.iter().find(|l| l["ifname"] == "eth0").unwrap();
    assert_eq!(eth0["address"], att.mac.as_str());
    assert!(
        eth0["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["local"] == "10.201.1.2"),
        "{eth0}"
    );

    // Host -> container, and container -> host through its gateway.
    let server = a.run(|| TcpListener::bind("0.0.0.0:7000").unwrap());
    let server = Server::start(server, "from a");
    assert_eq!(fetch(sock(&att.ip, 7000)).unwrap(), "from a");
    drop(server);
    let host = Server::start(TcpListener::bind("0.0.0.0:0").unwrap(), "from the host");
    let to_host = sock(&att.gateway, host.addr.port());
    assert_eq!(a.run(move || fetch(to_host)).unwrap(), "from the host");
    assert!(
        iptables_rules().contains("bridge-a"),
        "no masquerade rule for the container"
    );

    a.detach();
    assert!(!iptables_rules().contains("bridge-a"), "rules left behind");
    a.detach(); // idempotent
    let b = net.container("bridge-b");
    assert_eq!(
        b.attach(&[]).ip,
        "10.201.1.2",
        "the address was not released"
    );
    b.detach();
    assert_eq!(a.attach(&[]).ip, "10.201.1.2");
}

#[test]
fn a_conflist_from_a_directory_attaches_publishes_and_detaches() {
    if !gate("a_conflist_from_a_directory_attaches_publishes_and_detaches") {
        return;
    }
    // What the CRI does with /etc/cni/net.d: a standard list, read from a directory, run
    // plugin by plugin with the runtime's port mappings for the plugins that declare them.
    let net = Net::new(6, 24);
    let conf_dir = net.dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("05-broken.conflist"), "{ not json").unwrap();
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "strata-conflist6",
        "plugins": [
            { "type": "bridge", "bridge": "strata-t6", "isGateway": true, "ipMasq": true,
              "hairpinMode": true,
              "ipam": { "type": "host-local", "dataDir": net.dir.path().join("ipam"),
                        "ranges": [[{ "subnet": "10.201.6.0/24" }]],
                        "routes": [{ "dst": "0.0.0.0/0" }] } },
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            { "type": "firewall" }
        ]
    });
    std::fs::write(
        conf_dir.join("10-strata.conflist"),
        serde_json::to_vec_pretty(&conflist).unwrap(),
    )
    .unwrap();
    let list = NetworkList::find_in(&conf_dir, None).unwrap();
    assert_eq!(
        list.name, "strata-conflist6",
        "the first valid file is the default"
    );
    let network = CniNetwork {
        list,
        cni_path: NetworkConfig::default().cni_path,
        state_dir: net.dir.path().join("state"),
    };
    let c = net.container("conflist-c");
    let opts = AttachOptions {
        runtime: RuntimeConfig::ports(&parse_publish("18090:80").unwrap()),
        args: vec![("K8S_POD_NAME".into(), "web".into())],
        ..AttachOptions::default()
    };
    let att = network.attach(&c.id, &c.netns, &opts).unwrap();
    assert!(att.ip.starts_with("10.201.6."), "{att:?}");
    assert_eq!(att.gateway, "10.201.6.1");
    let server = Server::start(c.run(|| TcpListener::bind("0.0.0.0:80").unwrap()), "cri");
    assert_eq!(
        fetch(sock("127.0.0.1", 18090)).unwrap(),
        "cri",
        "portMappings reached portmap"
    );
    let e = network.attach(&c.id, &c.netns, &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    network
        .detach(&c.id, &c.netns, &AttachOptions::default())
        .unwrap();
    drop(server);
    assert!(
        fetch(sock("127.0.0.1", 18090)).is_err(),
        "the DNAT went with detach"
    );
    assert!(
        !iptables_rules().contains("conflist-c"),
        "rules left behind"
    );
    network
        .detach(&c.id, &c.netns, &AttachOptions::default())
        .unwrap();
}

#[test]
fn containers_on_one_bridge_reach_each_other() {
    if !gate("containers_on_one_bridge_reach_each_other") {
        return;
    }
    let net = Net::new(2, 24);
    let (a, b) = (net.container("pair-a"), net.container("pair-b"));
    let (att_a, att_b) = (a.attach(&[]), b.attach(&[]));
    assert_ne!(att_a.ip, att_b.ip);
    let server = Server::start(b.run(|| TcpListener::bind("0.0.0.0:7000").unwrap()), "b");
    let to_b = sock(&att_b.ip, 7000);
    assert_eq!(a.run(move || fetch(to_b)).unwrap(), "b");
    drop(server);
}

#[test]
fn published_ports_answer_on_localhost_and_the_host_address() {
    if !gate("published_ports_answer_on_localhost_and_the_host_address") {
        return;
    }
    let net = Net::new(3, 24);
    let c = net.container("publish-c");
    let att = c.attach(&["18080:80", "18081:81/udp"]);
    let server = Server::start(c.run(|| TcpListener::bind("0.0.0.0:80").unwrap()), "web");
    let host = host_ip();
    assert_eq!(fetch(sock("127.0.0.1", 18080)).unwrap(), "web");
    assert_eq!(fetch(sock(&host, 18080)).unwrap(), "web");
    // Hairpin: the container reaches itself through its published port.
    let via_host = sock(&host, 18080);
    assert_eq!(c.run(move || fetch(via_host)).unwrap(), "web");
    assert!(iptables_rules().contains("publish-c"));

    c.detach();
    drop(server);
    let rules = iptables_rules();
    assert!(!rules.contains("publish-c"), "rules left behind:\n{rules}");
    assert!(
        !rules.contains(&format!("{}:80", att.ip)),
        "DNAT left behind:\n{rules}"
    );
    assert!(fetch(sock("127.0.0.1", 18080)).is_err());
}

#[test]
fn network_none_has_only_loopback_up() {
    if !gate("network_none_has_only_loopback_up") {
        return;
    }
    let net = Net::new(4, 24);
    let c = net.container("none-c");
    setup_loopback(&c.netns, &c.id, &net.cfg).unwrap();
    let links = c.links();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["ifname"], "lo");
    assert!(links[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    let server = Server::start(c.run(|| TcpListener::bind("127.0.0.1:7000").unwrap()), "lo");
    assert_eq!(c.run(|| fetch(sock("127.0.0.1", 7000))).unwrap(), "lo");
    drop(server);
}

#[test]
fn concurrent_attaches_get_distinct_addresses() {
    if !gate("concurrent_attaches_get_distinct_addresses") {
        return;
    }
    let net = Net::new(5, 24);
    let containers: Vec<_> = (0..4)
        .map(|i| net.container(&format!("conc-{i}")))
        .collect();
    let ips: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let port = format!("{}:80", 18090 + i);
                s.spawn(move || c.attach(&[&port]).ip)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ips:?}");
    std::thread::scope(|s| {
        for c in &containers {
            s.spawn(|| c.detach());
        }
    });
    assert!(!iptables_rules().contains("conc-"));
}

#[test]
fn detach_after_the_namespace_is_gone_releases_the_address() {
    if !gate("detach_after_the_namespace_is_gone_releases_the_address") {
        return;
    }
    let net = Net::new(6, 30);
    let a = net.container("gone-a");
    a.attach(&["18100:80"]);
    remove_netns(&a.netns).unwrap();
    a.detach();
    let rules = iptables_rules();
    assert!(!rules.contains("gone-a"), "rules left behind:\n{rules}");
    let b = net.container("gone-b");
    assert_eq!(
        b.attach(&[]).ip,
        "10.201.6.2",
        "the address was not released"
    );
}

#[test]
fn attaching_twice_is_refused() {
    if !gate("attaching_twice_is_refused") {
        return;
    }
    let net = Net::new(7, 24);
    let c = net.container("twice-c");
    c.attach(&[]);
    let e = attach(&net.cfg, &c.id, &c.netns, &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
}

// Unprivileged: the exec protocol, against fake plugins.

/// A directory holding an executable `name` with `script` as its body.
fn fake_plugin(name: &str, script: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A namespace path that needs no privilege: fake plugins do not enter it.
fn fake_netns() -> PathBuf {
    "/proc/self/ns/net".into()
}

#[test]
fn plugins_get_the_cni_environment_and_config_on_stdin() {
    let dir = fake_plugin(
        "loopback",
        "env | grep ^CNI_ | sort > \"$(dirname \"$0\")/env\"; cat > \"$(dirname \"$0\")/stdin\"\n\
         echo '{\"cniVersion\":\"1.0.0\"}'",
    );
    let cfg = NetworkConfig {
        cni_path: vec![dir.path().into()],
        ..NetworkConfig::default()
    };
    let netns = fake_netns();
    setup_loopback(&netns, "c0ffee", &cfg).unwrap();
    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    let expected = format!(
        "CNI_COMMAND=ADD\nCNI_CONTAINERID=c0ffee\nCNI_IFNAME=lo\nCNI_NETNS={}\nCNI_PATH={}\n",
        netns.display(),
        dir.path().display()
    );
    assert_eq!(env, expected);
    let stdin: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("stdin")).unwrap()).unwrap();
    assert_eq!(stdin["cniVersion"], "1.0.0");
    assert_eq!(stdin["type"], "loopback");
}

#[test]
fn a_failing_plugin_reports_its_cni_error() {
    let dir = fake_plugin(
        "loopback",
        "cat >/dev/null; echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"busy\",\"details\":\"try later\"}'; exit 1",
    );
    let cfg = NetworkConfig {
        cni_path: vec![dir.path().into()],
        ..NetworkConfig::default()
    };
    let e = setup_loopback(&fake_netns(), "c1", &cfg).unwrap_err();
    assert!(
        matches!(&e, NetworkError::Plugin(f) if f.code == Some(11)),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        e.to_string(),
        "CNI plugin `loopback` ADD for container c1: busy: try later \
         (CNI error code 11, exit status: 1)"
    );
    // Without a CNI error object, stderr is the message.
    let dir = fake_plugin("loopback", "echo 'segfault-ish' >&2; exit 2");
    let cfg = NetworkConfig {
        cni_path: vec![dir.path().into()],
        ..NetworkConfig::default()
    };
    let e = setup_loopback(&fake_netns(), "c1", &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "CNI plugin `loopback` ADD for container c1: segfault-ish (exit status: 2)"
    );
}

#[test]
fn a_missing_plugin_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig {
        cni_path: vec![dir.path().join("a"), dir.path().join("b")],
        ..NetworkConfig::default()
    };
    let e = setup_loopback(&fake_netns(), "c1", &cfg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(
        e.to_string(),
        format!(
            "CNI plugin `loopback` not found in {0}/a:{0}/b; install containernetworking-plugins",
            dir.path().display()
        )
    );
}

#[test]
fn bad_container_ids_and_missing_namespaces_are_refused_before_any_plugin_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig {
        cni_path: vec![dir.path().into()],
        ..NetworkConfig::default()
    };
    let e = attach(&cfg, "../x", &fake_netns(), &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // A missing path, and the bare file left where a namespace was unpinned.
    let bare = dir.path().join("bare");
    std::fs::write(&bare, "").unwrap();
    for netns in [dir.path().join("nope"), bare] {
        let e = attach(&cfg, "c1", &netns, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
