//! The CRI front end, black box: a real `strata cri serve` on a test store, driven through a
//! CRI v1 gRPC client as a kubelet would, with real runtimes (crun, runc), real CNI plugins
//! (bridge, host-local, portmap) and a real registry. The same pod scenario runs against
//! containerd's CRI plugin (the reference) in `the_same_pod_behaves_alike_on_containerd`.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use strata_tests::cri::{self, api, Client, CriServer};
use strata_tests::{fixtures, require_privileged, streaming, Strata};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

/// A store with the busybox fixture under `docker.io/library/busybox:latest`, loaded by the
/// CLI (so every CRI test also shows the CLI's images serving the CRI).
fn store() -> Strata {
    let s = Strata::new("overlay");
    s.load(
        &format!("{}:latest", fixtures::oci("busybox")),
        &["--name", BUSYBOX],
    );
    s
}

fn server(s: &Strata, subnet: Option<(&str, &str)>) -> (CriServer, Client) {
    let cni = s.base().join("cni");
    std::fs::create_dir_all(&cni).expect("cni dir");
    if let Some((bridge, net)) = subnet {
        cri::write_bridge_conflist(&cni, "crinet", bridge, net);
    }
    let srv = CriServer::start(s, &cni, &[], &[]);
    let c = Client::connect(&srv.socket);
    (srv, c)
}

fn http_get(addr: &str) -> String {
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Every name `strata images` shows.
fn image_names(s: &Strata) -> Vec<String> {
    let v = s.json(["images", "--format", "json"]);
    v.as_array()
        .expect("images json")
        .iter()
        .flat_map(|i| i["Names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

fn netns_left(s: &Strata) -> Vec<String> {
    std::fs::read_dir(s.runroot.join("netns"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_server_reports_version_status_and_config_and_guards_its_socket() {
    if !require_privileged(
        "the_server_reports_version_status_and_config_and_guards_its_socket",
        "a CRI server (root)",
    ) {
        return;
    }
    let s = store();
    let (srv, c) = server(&s, None);
    let v = c.ok(
        "Version",
        c.runtime().version(api::VersionRequest {
            version: "v1".into(),
        }),
    );
    assert_eq!(v.runtime_name, "strata");
    assert_eq!(v.runtime_api_version, "v1");
    let mode = std::fs::metadata(&srv.socket).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.expect("socket"), 0o660, "the socket's mode");

    // No CNI config yet: the runtime is ready, the network is not (the kubelet waits).
    let st = c.ok(
        "Status",
        c.runtime().status(api::StatusRequest { verbose: false }),
    );
    let cond = |st: &api::StatusResponse, t: &str| {
        st.status
            .as_ref()
            .expect("status")
            .conditions
            .iter()
            .find(|x| x.r#type == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} condition"))
    };
    assert!(cond(&st, "RuntimeReady").status);
    let net = cond(&st, "NetworkReady");
    assert!(!net.status, "network ready without a CNI config");
    assert_eq!(net.reason, "NetworkPluginNotReady");
    cri::write_bridge_conflist(&s.base().join("cni"), "crinet", "cri-t0", "10.93.0.0/24");
    let st = c.ok(
        "Status",
        c.runtime().status(api::StatusRequest { verbose: true }),
    );
    assert!(cond(&st, "NetworkReady").status, "a config now exists");
    assert!(st.runtime_handlers.iter().any(|h| h.name == "runc"));

    let rc = c.ok(
        "RuntimeConfig",
        c.runtime().runtime_config(api::RuntimeConfigRequest {}),
    );
    assert_eq!(
        rc.linux.expect("linux").cgroup_driver,
        api::CgroupDriver::Cgroupfs as i32
    );
    let e = c.fails(
        "CheckpointContainer",
        c.runtime()
            .checkpoint_container(api::CheckpointContainerRequest {
                container_id: "x".into(),
                location: "/tmp/x".into(),
                timeout: 1,
            }),
    );
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    assert!(e.message().contains("CRIU"), "{}", e.message());
    // Stop and remove of unknown IDs succeed (the kubelet retries them).
    c.ok(
        "StopPodSandbox",
        c.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: "0123456789ab".into(),
        }),
    );
    c.ok(
        "StopContainer",
        c.runtime().stop_container(api::StopContainerRequest {
            container_id: "0123456789ab".into(),
            timeout: 0,
        }),
    );
    c.ok(
        "RemoveContainer",
        c.runtime().remove_container(api::RemoveContainerRequest {
            container_id: "0123456789ab".into(),
        }),
    );
    let e = c.fails(
        "PodSandboxStatus",
        c.runtime()
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: "0123456789ab".into(),
                verbose: false,
            }),
    );
    assert_eq!(e.code(), tonic::Code::NotFound);
    // A bad request is refused with a reason, and the server keeps serving.
    let e = c.fails(
        "RunPodSandbox",
        c.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
            config: None,
            runtime_handler: String::new(),
        }),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = c.fails(
        "RunPodSandbox",
        c.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(cri::pod_config("p", "u1", &s.scratch())),
            runtime_handler: "no-such-handler".into(),
        }),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("no-such-handler"), "{}", e.message());

    // A second server on the same socket is refused; the first keeps serving.
    let out = s
        .command()
        .args(["cri", "serve", "--listen"])
        .arg(format!("unix://{}", srv.socket.display()))
        .output()
        .expect("run a second server");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ok(
        "Version",
        c.runtime().version(api::VersionRequest::default()),
    );
    assert!(
        srv.log_text().contains("listening on unix://"),
        "start-up log: {}",
        srv.log_text()
    );
}

#[test]
fn images_are_the_cli_store_and_pulls_are_shared_and_named_as_asked() {
    if !require_privileged(
        "images_are_the_cli_store_and_pulls_are_shared_and_named_as_asked",
        "a CRI server (root)",
    ) {
        return;
    }
    let reg =
        strata_tests::registry::Registry::start(strata_tests::registry::RegistryOptions::default());
    let host = reg.host();
    let s = store();
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("{}:latest", fixtures::oci("layers")),
        &format!("docker://{host}/library/layers:v1"),
    ]);
    // A second registry behind a token server, for the auth configs' tokens.
    let treg = strata_tests::registry::Registry::start(strata_tests::registry::RegistryOptions {
        htpasswd: Some(("bob".into(), "pw".into())),
        token_auth: true,
        ..Default::default()
    });
    let thost = treg.host();
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:pw",
        &format!("{}:latest", fixtures::oci("layers")),
        &format!("docker://{thost}/tok/layers:v1"),
    ]);
    // The kubelet asks for docker.io names; registries.conf mirrors them to the local registry.
    let conf = s.scratch().join("registries.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{host}\"\ninsecure = true\n[[registry]]\nlocation = \"{thost}\"\ninsecure = true\n"),
    )
    .expect("registries.conf");
    let cni = s.base().join("cni");
    std::fs::create_dir_all(&cni).expect("cni");
    let srv = CriServer::start(&s, &cni, &[], &[("CONTAINERS_REGISTRIES_CONF", &conf)]);
    let c = Client::connect(&srv.socket);

    let list = c.ok(
        "ListImages",
        c.images()
            .list_images(api::ListImagesRequest { filter: None }),
    );
    let bb = list
        .images
        .iter()
        .find(|i| i.repo_tags.iter().any(|t| t == BUSYBOX))
        .unwrap_or_else(|| panic!("the CLI's image is not listed: {list:?}"));
    assert!(bb.id.starts_with("sha256:"));
    assert!(bb.size > 0);
    let st = c.ok(
        "ImageStatus",
        c.images().image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            verbose: true,
        }),
    );
    let img = st.image.expect("busybox is known");
    assert_eq!(img.id, bb.id);
    assert!(st.info["info"].contains("imageSpec"), "{:?}", st.info);
    // By ID, too.
    let by_id = c.ok(
        "ImageStatus",
        c.images().image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: bb.id.clone(),
                ..Default::default()
            }),
            verbose: false,
        }),
    );
    assert_eq!(by_id.image.expect("by id").id, bb.id);
    let missing = c.ok(
        "ImageStatus",
        c.images().image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: "docker.io/library/nothing:here".into(),
                ..Default::default()
            }),
            verbose: false,
        }),
    );
    assert!(
        missing.image.is_none(),
        "a missing image has no status, and no error"
    );

    // Three concurrent pulls of one image: one download, one answer.
    let want = "docker.io/library/layers:v1";
    let refs: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let socket = srv.socket.clone();
                sc.spawn(move || {
                    let c = Client::connect(&socket);
                    c.ok(
                        "PullImage",
                        c.images().pull_image(api::PullImageRequest {
                            image: Some(api::ImageSpec {
                                image: want.into(),
                                ..Default::default()
                            }),
                            auth: None,
                            sandbox_config: None,
                        }),
                    )
                    .image_ref
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("pull thread"))
            .collect()
    });
    assert!(
        refs.iter()
            .all(|r| r == &refs[0] && r.starts_with("sha256:")),
        "{refs:?}"
    );
    // Stored under the name asked for, though the bytes came from the mirror; the CLI sees it.
    assert!(
        image_names(&s).iter().any(|n| n == want),
        "strata images: {:?}",
        image_names(&s)
    );
    let log = reg.log();
    let manifest_gets = log.matches("GET /v2/library/layers/manifests/v1").count();
    assert!(manifest_gets >= 1, "the registry saw no pull:\n{log}");

    let fs = c.ok(
        "ImageFsInfo",
        c.images().image_fs_info(api::ImageFsInfoRequest {}),
    );
    let used = fs.image_filesystems[0]
        .used_bytes
        .as_ref()
        .expect("used")
        .value;
    assert!(used > 0);

    // Removal: gone from the CLI's listing too; removing again is fine.
    for _ in 0..2 {
        c.ok(
            "RemoveImage",
            c.images().remove_image(api::RemoveImageRequest {
                image: Some(api::ImageSpec {
                    image: want.into(),
                    ..Default::default()
                }),
            }),
        );
    }
    assert!(
        !image_names(&s).iter().any(|n| n == want),
        "still listed: {:?}",
        image_names(&s)
    );
    // Auth configs with tokens: an identity token is traded for bearer tokens (the OAuth2
    // form), a registry token is the bearer token itself; a wrong one is refused.
    let tokens = treg.token_server().expect("token server");
    let tok_image = format!("{thost}/tok/layers:v1");
    let request = |auth: api::AuthConfig| api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: tok_image.clone(),
            ..Default::default()
        }),
        auth: Some(auth),
        sandbox_config: None,
    };
    let remove_tok = || {
        c.ok(
            "RemoveImage",
            c.images().remove_image(api::RemoveImageRequest {
                image: Some(api::ImageSpec {
                    image: tok_image.clone(),
                    ..Default::default()
                }),
            }),
        )
    };
    // Credentials naming another registry are not sent to this one.
    let e = c.fails(
        "PullImage",
        c.images().pull_image(request(api::AuthConfig {
            identity_token: tokens.identity_token(),
            server_address: "https://elsewhere.example:5000/v2/".into(),
            ..Default::default()
        })),
    );
    assert!(e.message().contains("unauthorized"), "{}", e.message());
    let r = c.ok(
        "PullImage",
        c.images().pull_image(request(api::AuthConfig {
            identity_token: tokens.identity_token(),
            server_address: format!("http://{thost}"),
            ..Default::default()
        })),
    );
    assert_eq!(r.image_ref, refs[0], "the same image as the mirror's");
    assert!(
        tokens
            .requests()
            .iter()
            .any(|q| q.starts_with("POST ") && q.contains("grant_type=refresh_token")),
        "{:?}",
        tokens.requests()
    );
    remove_tok();
    let e = c.fails(
        "PullImage",
        c.images().pull_image(request(api::AuthConfig {
            identity_token: "not-the-token".into(),
            ..Default::default()
        })),
    );
    assert!(e.message().contains("unauthorized"), "{}", e.message());
    let bearer = ureq::get(&format!(
        "{}?service={}&scope=repository:tok/layers:pull",
        tokens.realm(),
        strata_tests::registry::token::SERVICE
    ))
    .header("authorization", "Basic Ym9iOnB3")
    .call()
    .expect("a token")
    .body_mut()
    .read_to_string()
    .expect("token reply");
    let bearer: serde_json::Value = serde_json::from_str(&bearer).expect("token JSON");
    let r = c.ok(
        "PullImage",
        c.images().pull_image(request(api::AuthConfig {
            registry_token: bearer["token"].as_str().expect("token").to_owned(),
            ..Default::default()
        })),
    );
    assert_eq!(r.image_ref, refs[0]);
    remove_tok();
    // A pull of something the registry lacks fails with a clear error.
    let e = c.fails(
        "PullImage",
        c.images().pull_image(api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: "docker.io/library/absent:v9".into(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        }),
    );
    assert!(e.message().contains("absent"), "{}", e.message());
    s.assert_clean();
}

/// The pod scenario both runtimes go through: two containers sharing localhost, a hostPort,
/// logs in the CRI format, exec, exit codes, filters, stop and removal. `ours` adds what only
/// Strata is checked for (websocket streams, start times before finish times).
struct PodRun {
    pod: String,
    ip: String,
}

fn pod_scenario(
    c: &Client,
    handler: &str,
    image: &str,
    log_dir: &Path,
    host_port: i32,
    uid: &str,
    ours: bool,
) -> PodRun {
    let mut pc = cri::pod_config("web", uid, log_dir);
    pc.port_mappings = vec![api::PortMapping {
        protocol: api::Protocol::Tcp as i32,
        container_port: 8080,
        host_port,
        host_ip: String::new(),
    }];
    let pod = c.run_pod(&pc, handler);
    let st = c.ok(
        "PodSandboxStatus",
        c.runtime()
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            }),
    );
    let status = st.status.expect("status");
    assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
    let ip = status.network.expect("network").ip;
    assert!(ip.starts_with("10."), "pod IP {ip:?}");

    // A web server and a client in one pod: they share localhost.
    let web = c.create(&pod, &pc, cri::container_config(
        "server",
        image,
        &["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"],
    ));
    c.start(&web);
    let side = c.create(
        &pod,
        &pc,
        cri::container_config("client", image, &["sleep", "3600"]),
    );
    c.start(&side);
    let mut got = String::new();
    for _ in 0..100 {
        let (code, out, _) = c.exec(
            &side,
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"],
        );
        if code == 0 {
            got = out;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        got.trim(),
        "hello-from-pod",
        "the client reaches the server on localhost"
    );
    // The hostPort, from the host.
    let reply = http_get(&format!("127.0.0.1:{host_port}"));
    assert!(
        reply.contains("hello-from-pod"),
        "hostPort reply: {reply:?}"
    );
    // The pod's hostname and its IP are what the sandbox says.
    let (_, hn, _) = c.exec(&side, &["hostname"]);
    assert_eq!(hn.trim(), "web");
    let (_, addrs, _) = c.exec(&side, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains(&ip), "{addrs}");

    // The streaming server: exec with stdin, stdout, stderr and the exit code over SPDY...
    let exec_url = |cmd: &[&str], tty: bool, stdin: bool| -> String {
        c.ok(
            "Exec",
            c.runtime().exec(api::ExecRequest {
                container_id: side.clone(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty,
                stdin,
                stdout: true,
                stderr: !tty,
            }),
        )
        .url
    };
    let o = streaming::spdy_exec(
        &exec_url(&["sh", "-c", "cat; echo err >&2; exit 3"], false, true),
        Some(b"piped-in"),
        false,
        true,
        None,
    );
    assert_eq!(
        (o.stdout().as_str(), o.stderr.as_slice(), o.exit_code()),
        ("piped-in", &b"err\n"[..], Some(3)),
        "{o:?}"
    );
    // ... with a terminal of the size the client gives ...
    let o = streaming::spdy_exec(
        &exec_url(&["sh", "-c", "sleep 1; stty size; tty"], true, false),
        None,
        true,
        false,
        Some((101, 33)),
    );
    assert!(
        o.stdout().contains("33 101") && o.stdout().contains("/dev/pts/"),
        "{o:?}"
    );
    assert_eq!(o.exit_code(), Some(0));
    // ... port-forward to the server inside the pod's network namespace ...
    let pf = c.ok(
        "PortForward",
        c.runtime().port_forward(api::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        }),
    );
    let reply = streaming::spdy_port_forward(&pf.url, 8080, b"GET /index.html HTTP/1.0\r\n\r\n")
        .expect("port-forward");
    assert!(
        String::from_utf8_lossy(&reply).contains("hello-from-pod"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // ... also over websocket (the kubelet's v4.channel.k8s.io port-forward) ...
    let pf = c.ok(
        "PortForward",
        c.runtime().port_forward(api::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        }),
    );
    let reply =
        streaming::websocket_port_forward(&pf.url, 8080, b"GET /index.html HTTP/1.0\r\n\r\n")
            .expect("port-forward over websocket");
    assert!(
        String::from_utf8_lossy(&reply).contains("hello-from-pod"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // ... and attach to a container waiting for its stdin. It answers a moment after the
    // line arrives, as a shell does for a person typing: an answer written at once can reach
    // containerd before the attach's stdout is wired, and is lost there (it failed so in CI).
    let mut cc = cri::container_config(
        "reader",
        image,
        &["sh", "-c", "read line; sleep 0.5; echo got-$line"],
    );
    cc.stdin = true;
    let reader = c.create(&pod, &pc, cc);
    c.start(&reader);
    let at = c.ok(
        "Attach",
        c.runtime().attach(api::AttachRequest {
            container_id: reader.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        }),
    );
    let o = streaming::spdy_attach(&at.url, b"hello\n");
    assert!(o.stdout().contains("got-hello"), "{o:?}");
    // With stdin_once, the client closing its stdin closes the container's: cat ends.
    let mut cc = cri::container_config("once", image, &["cat"]);
    cc.stdin = true;
    cc.stdin_once = true;
    let once = c.create(&pod, &pc, cc);
    c.start(&once);
    let at = c.ok(
        "Attach",
        c.runtime().attach(api::AttachRequest {
            container_id: once.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        }),
    );
    let o = streaming::spdy_attach_closing(&at.url, b"echoed-once\n");
    assert!(o.stdout().contains("echoed-once"), "{o:?}");
    assert_eq!(o.exit_code(), Some(0), "{o:?}");
    if ours {
        let o = streaming::websocket_exec(
            &exec_url(&["sh", "-c", "cat; exit 4"], false, true),
            Some(b"over-ws"),
        );
        assert_eq!(
            (o.stdout().as_str(), o.exit_code()),
            ("over-ws", Some(4)),
            "{o:?}"
        );
        // Port-forward over websocket with base64 frames and two ports, one with nothing
        // listening: its error channel says so, the other port answers.
        let pf = c.ok(
            "PortForward",
            c.runtime().port_forward(api::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![8080, 8089],
            }),
        );
        let got = streaming::websocket_port_forward_ports(
            &pf.url,
            &[8080, 8089],
            true,
            b"GET /index.html HTTP/1.0\r\n\r\n",
        );
        assert!(got[0].0.contains("hello-from-pod"), "{got:?}");
        assert!(got[1].0.is_empty() && !got[1].1.is_empty(), "{got:?}");
        // A port the request did not name is refused.
        let pf = c.ok(
            "PortForward",
            c.runtime().port_forward(api::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![8080],
            }),
        );
        let refused = streaming::websocket_port_forward(&pf.url, 9999, b"");
        assert!(refused.is_err(), "{refused:?}");
        // A URL is single-use.
        let url = exec_url(&["true"], false, true);
        let _ = streaming::websocket_exec(&url, Some(b""));
        let (host, path) = url
            .trim_start_matches("http://")
            .split_once('/')
            .expect("url");
        let mut s = std::net::TcpStream::connect(host).expect("connect");
        write!(s, "POST /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n").expect("send");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    }

    // Exit codes, stderr and a timeout.
    let (code, out, err) = c.exec(&side, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    let e = c.fails(
        "ExecSync",
        c.runtime().exec_sync(api::ExecSyncRequest {
            container_id: side.clone(),
            cmd: vec!["sleep".into(), "10".into()],
            timeout: 1,
        }),
    );
    assert!(
        matches!(
            e.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::Internal
        ),
        "{:?} {}",
        e.code(),
        e.message()
    );

    // A container that prints and ends: its log in the CRI format, and its exit.
    let talk = c.create(
        &pod,
        &pc,
        cri::container_config(
            "talker",
            image,
            &[
                "sh",
                "-c",
                "echo line-one; echo to-stderr >&2; printf partial",
            ],
        ),
    );
    c.start(&talk);
    let st = c.wait_exited(&talk, Duration::from_secs(20));
    assert_eq!(st.exit_code, 0);
    assert_eq!(st.reason, "Completed");
    // Strata stamps a start before the launch; containerd 1.6 can stamp it after a short
    // container already ended (seen here: started 188471129 ns, finished 188338355 ns).
    assert!(st.started_at > 0 && st.finished_at > 0, "{st:?}");
    if ours {
        assert!(st.finished_at >= st.started_at, "{st:?}");
    }
    let log = std::fs::read_to_string(log_dir.join("talker.log")).expect("the container's log");
    let lines: Vec<&str> = log.lines().collect();
    let parts = |l: &str| -> (String, String, String) {
        let mut it = l.splitn(4, ' ');
        let ts = it.next().unwrap_or_default().to_owned();
        let stream = it.next().unwrap_or_default().to_owned();
        let tag = it.next().unwrap_or_default().to_owned();
        let text = it.next().unwrap_or_default().to_owned();
        assert!(
            ts.contains('T') && ts.ends_with('Z') || ts.contains('+'),
            "timestamp {ts:?}"
        );
        (stream, tag, text)
    };
    let parsed: Vec<_> = lines.iter().map(|l| parts(l)).collect();
    assert!(
        parsed.contains(&("stdout".into(), "F".into(), "line-one".into())),
        "{log}"
    );
    assert!(
        parsed.contains(&("stderr".into(), "F".into(), "to-stderr".into())),
        "{log}"
    );
    assert!(
        parsed.contains(&("stdout".into(), "P".into(), "partial".into())),
        "{log}"
    );

    let failing = c.create(
        &pod,
        &pc,
        cri::container_config("failing", image, &["sh", "-c", "exit 7"]),
    );
    c.start(&failing);
    let st = c.wait_exited(&failing, Duration::from_secs(20));
    assert_eq!((st.exit_code, st.reason.as_str()), (7, "Error"));

    // Filters: by pod, by label, by state.
    let list = |f: api::ContainerFilter| -> Vec<String> {
        let mut v: Vec<String> = c
            .ok(
                "ListContainers",
                c.runtime()
                    .list_containers(api::ListContainersRequest { filter: Some(f) }),
            )
            .containers
            .into_iter()
            .map(|x| x.metadata.expect("metadata").name)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        list(api::ContainerFilter {
            pod_sandbox_id: pod.clone(),
            ..Default::default()
        }),
        ["client", "failing", "once", "reader", "server", "talker"]
    );
    assert_eq!(
        list(api::ContainerFilter {
            label_selector: [("container".to_owned(), "server".to_owned())].into(),
            ..Default::default()
        }),
        ["server"]
    );
    assert_eq!(
        list(api::ContainerFilter {
            pod_sandbox_id: pod.clone(),
            state: Some(api::ContainerStateValue {
                state: api::ContainerState::ContainerRunning as i32
            }),
            ..Default::default()
        }),
        ["client", "server"]
    );
    let pods = c.ok(
        "ListPodSandbox",
        c.runtime().list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: [("app".to_owned(), "web".to_owned())].into(),
                ..Default::default()
            }),
        }),
    );
    assert_eq!(pods.items.len(), 1);
    assert_eq!(pods.items[0].id, pod);

    // Stop one container with a grace period, then the pod.
    c.ok(
        "StopContainer",
        c.runtime().stop_container(api::StopContainerRequest {
            container_id: web.clone(),
            timeout: 2,
        }),
    );
    let st = c.container_state(&web);
    assert_eq!(st.state, api::ContainerState::ContainerExited as i32);
    c.ok(
        "StopPodSandbox",
        c.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }),
    );
    let st = c.ok(
        "PodSandboxStatus",
        c.runtime()
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            }),
    );
    assert_eq!(
        st.status.expect("status").state,
        api::PodSandboxState::SandboxNotready as i32
    );
    assert_eq!(
        c.container_state(&side).state,
        api::ContainerState::ContainerExited as i32
    );
    // Stopping twice is fine.
    c.ok(
        "StopPodSandbox",
        c.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }),
    );
    PodRun { pod, ip }
}

#[test]
fn a_pod_shares_localhost_serves_its_host_port_and_logs_in_the_cri_format() {
    if !require_privileged(
        "a_pod_shares_localhost_serves_its_host_port_and_logs_in_the_cri_format",
        "pods with CNI networks (root)",
    ) {
        return;
    }
    for (i, handler) in ["crun", "runc"].iter().enumerate() {
        let s = store();
        let (srv, c) = server(&s, Some((&format!("cri-s{i}"), &format!("10.94.{i}.0/24"))));
        let logs = s.scratch().join("pod-logs");
        let run = pod_scenario(
            &c,
            handler,
            BUSYBOX,
            &logs,
            28080 + i as i32,
            &format!("uid-{i}"),
            true,
        );

        // The CLI sees the pod's containers, marked with their pod, and will not remove one
        // behind the kubelet's back.
        let ps = s.json(["ps", "-a", "--format", "json"]);
        let ps = ps.as_array().expect("ps json").clone();
        assert!(ps.len() >= 4, "{ps:?}");
        let talker = ps
            .iter()
            .find(|p| p["Names"].to_string().contains("k8s_talker_web_default"))
            .unwrap_or_else(|| panic!("ps -a lacks the CRI container: {ps:?}"));
        assert!(
            talker["Pod"]
                .as_str()
                .is_some_and(|p| run.pod.starts_with(p) || p.starts_with(&run.pod[..12])),
            "{talker}"
        );
        let name = talker["Names"][0].as_str().unwrap_or_default().to_owned();
        let (code, err) = s.fail(["rm", &name]);
        assert_ne!(code, 0);
        assert!(err.contains("CRI server"), "{err}");

        c.ok(
            "RemovePodSandbox",
            c.runtime()
                .remove_pod_sandbox(api::RemovePodSandboxRequest {
                    pod_sandbox_id: run.pod.clone(),
                }),
        );
        c.ok(
            "RemovePodSandbox",
            c.runtime()
                .remove_pod_sandbox(api::RemovePodSandboxRequest {
                    pod_sandbox_id: run.pod.clone(),
                }),
        );
        let left = c.ok(
            "ListContainers",
            c.runtime()
                .list_containers(api::ListContainersRequest { filter: None }),
        );
        assert!(left.containers.is_empty(), "{left:?}");
        assert!(
            netns_left(&s).is_empty(),
            "network namespaces left: {:?}",
            netns_left(&s)
        );
        let results = s.runroot.join("cri/networks/results");
        assert_eq!(
            std::fs::read_dir(&results).map(|d| d.count()).unwrap_or(0),
            0,
            "CNI attachments left in {}",
            results.display()
        );
        let ipam = s.base().join("cni/ipam/crinet");
        let leased: Vec<String> = std::fs::read_dir(&ipam)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !leased.contains(&run.ip),
            "the pod's address is still leased: {leased:?}"
        );
        assert!(s.list("containers").is_empty(), "store containers left");
        drop(c);
        drop(srv);
        s.assert_clean();
    }
}

#[test]
fn oom_kills_seccomp_and_the_security_context_are_honoured() {
    if !require_privileged(
        "oom_kills_seccomp_and_the_security_context_are_honoured",
        "containers with cgroups (root)",
    ) {
        return;
    }
    let s = store();
    let (_srv, c) = server(&s, Some(("cri-s9", "10.94.9.0/24")));
    let logs = s.scratch().join("logs");
    let pc = cri::pod_config("sec", "uid-sec", &logs);
    let pod = c.run_pod(&pc, "");

    // OOM: a 16 MiB limit and a shell that keeps growing a variable.
    let mut hog = cri::container_config(
        "hog",
        BUSYBOX,
        &["sh", "-c", "x=a; while true; do x=$x$x; done"],
    );
    hog.linux.as_mut().expect("linux").resources = Some(api::LinuxContainerResources {
        memory_limit_in_bytes: 16 << 20,
        ..Default::default()
    });
    let hog = c.create(&pod, &pc, hog);
    c.start(&hog);
    let st = c.wait_exited(&hog, Duration::from_secs(60));
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
        "{st:?}"
    );

    // Seccomp: RuntimeDefault filters, Unconfined does not (the kernel says which).
    let seccomp_of = |profile: api::security_profile::ProfileType, name: &str| -> String {
        let mut cc = cri::container_config(name, BUSYBOX, &["sleep", "3600"]);
        let sc = cc
            .linux
            .as_mut()
            .expect("linux")
            .security_context
            .as_mut()
            .expect("sc");
        sc.seccomp = Some(api::SecurityProfile {
            profile_type: profile as i32,
            localhost_ref: String::new(),
        });
        let id = c.create(&pod, &pc, cc);
        c.start(&id);
        let (_, out, _) = c.exec(&id, &["grep", "Seccomp:", "/proc/self/status"]);
        out.split_whitespace().nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(
        seccomp_of(
            api::security_profile::ProfileType::RuntimeDefault,
            "sc-default"
        ),
        "2"
    );
    assert_eq!(
        seccomp_of(api::security_profile::ProfileType::Unconfined, "sc-none"),
        "0"
    );

    // Users, groups, a read-only root, no_new_privs, dropped capabilities.
    let mut cc = cri::container_config("user", BUSYBOX, &["sleep", "3600"]);
    {
        let sc = cc
            .linux
            .as_mut()
            .expect("linux")
            .security_context
            .as_mut()
            .expect("sc");
        sc.run_as_user = Some(api::Int64Value { value: 1234 });
        sc.run_as_group = Some(api::Int64Value { value: 2345 });
        sc.supplemental_groups = vec![3456];
        sc.readonly_rootfs = true;
        sc.no_new_privs = true;
        sc.capabilities = Some(api::Capability {
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        });
    }
    let u = c.create(&pod, &pc, cc);
    c.start(&u);
    assert_eq!(c.exec(&u, &["id", "-u"]).1.trim(), "1234");
    assert_eq!(c.exec(&u, &["id", "-g"]).1.trim(), "2345");
    assert!(c
        .exec(&u, &["id", "-G"])
        .1
        .split_whitespace()
        .any(|g| g == "3456"));
    let (code, _, _) = c.exec(&u, &["touch", "/newfile"]);
    assert_ne!(code, 0, "the root filesystem is read-only");
    let status = c.exec(&u, &["cat", "/proc/self/status"]).1;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("CapBnd:") && l.ends_with("0000000000000000")),
        "{status}"
    );

    // Privileged: every capability.
    let mut cc = cri::container_config("priv", BUSYBOX, &["sleep", "3600"]);
    cc.linux
        .as_mut()
        .expect("linux")
        .security_context
        .as_mut()
        .expect("sc")
        .privileged = true;
    let p = c.create(&pod, &pc, cc);
    c.start(&p);
    let status = c.exec(&p, &["cat", "/proc/self/status"]).1;
    assert!(
        !status
            .lines()
            .any(|l| l.starts_with("CapEff:") && l.ends_with("0000000000000000")),
        "{status}"
    );

    // Sysctls and the shared PID namespace option are per pod.
    let mut pc2 = cri::pod_config("shared", "uid-shared", &logs);
    {
        let l = pc2.linux.as_mut().expect("linux");
        l.sysctls = [(
            "net.ipv4.ip_unprivileged_port_start".to_owned(),
            "22".to_owned(),
        )]
        .into();
        l.security_context.as_mut().expect("sc").namespace_options = Some(api::NamespaceOption {
            pid: api::NamespaceMode::Pod as i32,
            ..Default::default()
        });
    }
    let pod2 = c.run_pod(&pc2, "runc");
    let mut cc = cri::container_config("ps", BUSYBOX, &["sleep", "3600"]);
    cc.linux
        .as_mut()
        .expect("linux")
        .security_context
        .as_mut()
        .expect("sc")
        .namespace_options = Some(api::NamespaceOption {
        pid: api::NamespaceMode::Pod as i32,
        ..Default::default()
    });
    let x = c.create(&pod2, &pc2, cc);
    c.start(&x);
    assert_eq!(
        c.exec(
            &x,
            &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]
        )
        .1
        .trim(),
        "22"
    );
    let ps = c.exec(&x, &["ps", "-o", "pid,comm"]).1;
    assert!(
        ps.contains("catatonit"),
        "the pod's infra process is visible: {ps}"
    );
    // A sysctl that is not namespaced is refused.
    let mut bad = cri::pod_config("bad", "uid-bad", &logs);
    bad.linux.as_mut().expect("linux").sysctls =
        [("vm.swappiness".to_owned(), "1".to_owned())].into();
    let e = c.fails(
        "RunPodSandbox",
        c.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(bad),
            runtime_handler: String::new(),
        }),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());

    c.remove_pod(&pod);
    c.remove_pod(&pod2);
    assert!(netns_left(&s).is_empty());
}

#[test]
fn a_killed_server_finds_its_pods_as_they_are_and_logs_can_be_reopened() {
    if !require_privileged(
        "a_killed_server_finds_its_pods_as_they_are_and_logs_can_be_reopened",
        "a CRI server (root)",
    ) {
        return;
    }
    let s = store();
    let cni = s.base().join("cni");
    cri::write_bridge_conflist(&cni, "crinet", "cri-s8", "10.94.8.0/24");
    let mut srv = CriServer::start(&s, &cni, &[], &[]);
    let c = Client::connect(&srv.socket);
    let logs = s.scratch().join("logs");
    let pc = cri::pod_config("keep", "uid-keep", &logs);
    let pod = c.run_pod(&pc, "");
    // The evented PLEG's stream: created and started events, with the pod's status.
    let mut events = c.ok(
        "GetContainerEvents",
        c.runtime().get_container_events(api::GetEventsRequest {}),
    );
    let id = c.create(
        &pod,
        &pc,
        cri::container_config(
            "ticker",
            BUSYBOX,
            &[
                "sh",
                "-c",
                "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.1; done",
            ],
        ),
    );
    c.start(&id);
    for want in [
        api::ContainerEventType::ContainerCreatedEvent,
        api::ContainerEventType::ContainerStartedEvent,
    ] {
        let ev = c
            .run(events.message())
            .expect("an event")
            .expect("the stream goes on");
        assert_eq!(
            (ev.container_id.as_str(), ev.container_event_type),
            (id.as_str(), want as i32)
        );
        assert_eq!(ev.pod_sandbox_status.expect("pod status").id, pod);
    }
    drop(events);
    let pid_before = c.exec(&id, &["cat", "/proc/1/stat"]).1;
    drop(c);

    srv.kill9();
    std::thread::sleep(Duration::from_millis(300));
    srv.restart(&s, &[]);
    let c = Client::connect(&srv.socket);
    let st = c.ok(
        "PodSandboxStatus",
        c.runtime()
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            }),
    );
    assert_eq!(
        st.status.expect("status").state,
        api::PodSandboxState::SandboxReady as i32
    );
    assert_eq!(
        c.container_state(&id).state,
        api::ContainerState::ContainerRunning as i32
    );
    assert_eq!(
        c.exec(&id, &["cat", "/proc/1/stat"]).1,
        pid_before,
        "the same process, not a restart"
    );

    // Log rotation as the kubelet does it: move the file away, ask for a reopen.
    let log = logs.join("ticker.log");
    let rotated = logs.join("ticker.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    c.ok(
        "ReopenContainerLog",
        c.runtime()
            .reopen_container_log(api::ReopenContainerLogRequest {
                container_id: id.clone(),
            }),
    );
    strata_tests::containers::wait_for("ticks in the new log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("stdout F tick-"))
    });
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(old.contains("stdout F tick-0"), "{old}");

    // Stats from the container's cgroup.
    let stats = c.ok(
        "ContainerStats",
        c.runtime().container_stats(api::ContainerStatsRequest {
            container_id: id.clone(),
        }),
    );
    let stats = stats.stats.expect("stats");
    assert!(stats
        .cpu
        .and_then(|x| x.usage_core_nano_seconds)
        .is_some_and(|v| v.value > 0));
    assert!(stats
        .memory
        .and_then(|x| x.working_set_bytes)
        .is_some_and(|v| v.value > 0));
    let ps = c.ok(
        "PodSandboxStats",
        c.runtime().pod_sandbox_stats(api::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        }),
    );
    let linux = ps.stats.expect("stats").linux.expect("linux");
    assert_eq!(linux.containers.len(), 1);
    assert!(linux
        .network
        .and_then(|n| n.default_interface)
        .is_some_and(|i| i.name == "eth0"));

    // The streaming lists (newer than the unary ones) answer what the unary lists do.
    let unary_pods = c
        .ok(
            "ListPodSandbox",
            c.runtime()
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
        )
        .items;
    let streamed: Vec<api::PodSandbox> = c
        .stream_list(
            "RuntimeService",
            "StreamPodSandboxes",
            api::ListPodSandboxRequest { filter: None },
        )
        .expect("StreamPodSandboxes");
    assert_eq!(streamed, unary_pods);
    let streamed: Vec<api::Container> = c
        .stream_list(
            "RuntimeService",
            "StreamContainers",
            api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    pod_sandbox_id: pod.clone(),
                    ..Default::default()
                }),
            },
        )
        .expect("StreamContainers");
    assert_eq!(
        streamed.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let none: Vec<api::Container> = c
        .stream_list(
            "RuntimeService",
            "StreamContainers",
            api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    id: "no-such-container".into(),
                    ..Default::default()
                }),
            },
        )
        .expect("StreamContainers");
    assert!(none.is_empty());
    let stats: Vec<api::ContainerStats> = c
        .stream_list(
            "RuntimeService",
            "StreamContainerStats",
            api::ListContainerStatsRequest { filter: None },
        )
        .expect("StreamContainerStats");
    assert!(stats
        .iter()
        .any(|st| st.attributes.as_ref().is_some_and(|a| a.id == id)));
    let pstats: Vec<api::PodSandboxStats> = c
        .stream_list(
            "RuntimeService",
            "StreamPodSandboxStats",
            api::ListPodSandboxStatsRequest { filter: None },
        )
        .expect("StreamPodSandboxStats");
    assert!(pstats
        .iter()
        .any(|st| st.attributes.as_ref().is_some_and(|a| a.id == pod)));
    let metrics: Vec<api::PodSandboxMetrics> = c
        .stream_list(
            "RuntimeService",
            "StreamPodSandboxMetrics",
            api::ListPodSandboxMetricsRequest {},
        )
        .expect("StreamPodSandboxMetrics");
    assert!(metrics.iter().any(|m| m.pod_sandbox_id == pod));
    let images: Vec<api::Image> = c
        .stream_list(
            "ImageService",
            "StreamImages",
            api::ListImagesRequest { filter: None },
        )
        .expect("StreamImages");
    assert!(images
        .iter()
        .any(|i| i.repo_tags.iter().any(|t| t == BUSYBOX)));
    // In-place pod resize: the kubelet tells the runtime; a missing pod is NotFound.
    let resize = |pod_sandbox_id: &str| {
        c.unary::<_, cri::Empty>(
            "RuntimeService",
            "UpdatePodSandboxResources",
            cri::UpdatePodSandboxResourcesRequest {
                pod_sandbox_id: pod_sandbox_id.into(),
                resources: Some(api::LinuxContainerResources {
                    cpu_shares: 512,
                    memory_limit_in_bytes: 256 << 20,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    };
    resize(&pod).expect("UpdatePodSandboxResources");
    assert_eq!(
        resize("no-such-pod").expect_err("a missing pod").code(),
        tonic::Code::NotFound
    );

    c.remove_pod(&pod);
    assert!(netns_left(&s).is_empty());
    drop(srv);
    s.assert_clean();
}

#[test]
fn the_cli_and_the_cri_server_share_the_store_at_the_same_time() {
    if !require_privileged(
        "the_cli_and_the_cri_server_share_the_store_at_the_same_time",
        "a CRI server (root)",
    ) {
        return;
    }
    let s = store();
    let (_srv, c) = server(&s, Some(("cri-s7", "10.94.7.0/24")));
    let logs = s.scratch().join("logs");
    std::thread::scope(|sc| {
        let cli = sc.spawn(|| {
            for i in 0..8 {
                let name = format!("cli-{i}");
                s.ok([
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--name",
                    &name,
                    BUSYBOX,
                    "true",
                ]);
                s.ok(["create", "--name", &name, BUSYBOX, "true"]);
                s.ok(["rm", &name]);
            }
        });
        for i in 0..4 {
            let pc = cri::pod_config(&format!("p{i}"), &format!("uid-p{i}"), &logs);
            let pod = c.run_pod(&pc, "");
            let id = c.create(&pod, &pc, cri::container_config("one", BUSYBOX, &["true"]));
            c.start(&id);
            c.wait_exited(&id, Duration::from_secs(20));
            c.remove_pod(&pod);
        }
        cli.join().expect("the CLI thread");
    });
    assert!(s.list("containers").is_empty());
    assert!(netns_left(&s).is_empty());
}

/// The pod scenario against containerd 1.6's CRI plugin (runc, the same CNI list and image),
/// so every behaviour it checks is one a mature runtime shares. Where the two differ the
/// scenario avoids the difference and `ARCHITECTURE.md` says which is right: containerd
/// answers NotFound to StopPodSandbox/StopContainer of an unknown ID, Strata answers OK (the
/// CRI asks stop and remove to be idempotent; the v1.36 validation suite agrees).
#[test]
fn the_same_pod_behaves_alike_on_containerd() {
    if !require_privileged(
        "the_same_pod_behaves_alike_on_containerd",
        "containerd's CRI plugin (root)",
    ) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("cri-ref-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let cni = dir.path().join("cni");
    cri::write_bridge_conflist(&cni, "crinet", "cri-ref0", "10.94.20.0/24");
    let ctrd = strata_tests::containerd::Containerd::start(
        strata_tests::containerd::ContainerdOptions::with_cni(&cni),
    );
    let image = ctrd.import_layout(&fixtures::layout_dir("busybox"), BUSYBOX);
    let c = Client::connect(ctrd.socket());
    let logs = dir.path().join("logs");
    let run = pod_scenario(&c, "", &image, &logs, 28090, "uid-ref", false);
    c.ok(
        "RemovePodSandbox",
        c.runtime()
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: run.pod.clone(),
            }),
    );
    let e = c.fails(
        "StopPodSandbox",
        c.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: run.pod,
        }),
    );
    assert_eq!(
        e.code(),
        tonic::Code::NotFound,
        "containerd 1.6's answer, where Strata answers OK"
    );
    drop(c);
}

fn run_cmd(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("run a host command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the Kubernetes CRI validation suite checks of mounts and the security context, on
/// crun: propagation (host-to-container and bidirectional), recursive read-only mounts, no
/// profile meaning unconfined, a Localhost profile (and privileged containers ignoring it),
/// the pod hostname defaulting to the node's, and the supplemental-groups policies with the
/// user the status reports.
#[test]
fn mounts_profiles_hostnames_and_groups_behave_as_kubernetes_expects() {
    if !require_privileged(
        "mounts_profiles_hostnames_and_groups_behave_as_kubernetes_expects",
        "mounts on the host, containers (root)",
    ) {
        return;
    }
    let s = store();
    // An image whose user 1000 (busybox's `user`) is also in group 50000 (as the suite's
    // test-image-predefined-group).
    s.ok([
        "run",
        "--name",
        "grp",
        "--network",
        "none",
        BUSYBOX,
        "sh",
        "-c",
        "grep -q '^user:x:1000:' /etc/passwd && echo 'g50000:x:50000:user' >> /etc/group",
    ]);
    s.ok(["commit", "grp", "docker.io/library/groups:latest"]);
    s.ok(["rm", "grp"]);
    let (_srv, c) = server(&s, Some(("cri-s6", "10.94.6.0/24")));
    let logs = s.scratch().join("logs");
    let mut pc = cri::pod_config("checks", "uid-checks", &logs);
    pc.hostname = String::new();
    let pod = c.run_pod(&pc, "crun");
    let started = |cc: api::ContainerConfig| -> String {
        let id = c.create(&pod, &pc, cc);
        c.start(&id);
        id
    };
    let with_sc = |name: &str,
                   image: &str,
                   cmd: &[&str],
                   f: &dyn Fn(&mut api::LinuxContainerSecurityContext)| {
        let mut cc = cri::container_config(name, image, cmd);
        f(cc.linux
            .as_mut()
            .expect("linux")
            .security_context
            .as_mut()
            .expect("sc"));
        cc
    };

    // No hostname given: the node's.
    let plain = started(cri::container_config("plain", BUSYBOX, &["sleep", "3600"]));
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(c.exec(&plain, &["hostname"]).1.trim(), node.trim());
    // No seccomp field: unconfined, as the CRI says.
    assert_eq!(
        c.exec(&plain, &["grep", "Seccomp:", "/proc/self/status"])
            .1
            .split_whitespace()
            .nth(1),
        Some("0")
    );

    // A Localhost profile that forbids sethostname; ignored for a privileged container.
    let profile = s.scratch().join("no-sethostname.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("profile");
    let local = |sc: &mut api::LinuxContainerSecurityContext| {
        sc.seccomp = Some(api::SecurityProfile {
            profile_type: api::security_profile::ProfileType::Localhost as i32,
            localhost_ref: profile.display().to_string(),
        });
        sc.capabilities = Some(api::Capability {
            add_capabilities: vec!["SYS_ADMIN".into()],
            ..Default::default()
        });
    };
    let confined = started(with_sc("confined", BUSYBOX, &["sleep", "3600"], &local));
    assert_ne!(
        c.exec(&confined, &["hostname", "changed"]).0,
        0,
        "the profile forbids sethostname"
    );
    let privileged = started(with_sc("privileged", BUSYBOX, &["sleep", "3600"], &|sc| {
        local(sc);
        sc.privileged = true;
    }));
    assert_eq!(
        c.exec(&privileged, &["hostname", "changed"]).0,
        0,
        "a privileged container ignores it"
    );
    // run_as_group needs a user.
    let e = c.fails(
        "CreateContainer",
        c.runtime().create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(with_sc("groupless", BUSYBOX, &["true"], &|sc| {
                sc.run_as_group = Some(api::Int64Value { value: 5 });
            })),
            sandbox_config: Some(pc.clone()),
        }),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    // Propagation: the host source is a shared mount point.
    let src = s.scratch().join("prop");
    std::fs::create_dir_all(&src).expect("dir");
    run_cmd(
        std::process::Command::new("mount")
            .args(["--bind"])
            .arg(&src)
            .arg(&src),
    );
    run_cmd(
        std::process::Command::new("mount")
            .args(["--make-rshared"])
            .arg(&src),
    );
    let mount = |dst: &str, p: api::MountPropagation| api::Mount {
        container_path: dst.into(),
        host_path: src.display().to_string(),
        propagation: p as i32,
        ..Default::default()
    };
    let mut cc = cri::container_config("prop", BUSYBOX, &["sleep", "3600"]);
    cc.mounts = vec![
        mount("/slave", api::MountPropagation::PropagationHostToContainer),
        mount("/private", api::MountPropagation::PropagationPrivate),
        mount("/shared", api::MountPropagation::PropagationBidirectional),
    ];
    cc.linux
        .as_mut()
        .expect("linux")
        .security_context
        .as_mut()
        .expect("sc")
        .privileged = true;
    let prop = started(cc);
    let inner = src.join("from-host");
    std::fs::create_dir_all(&inner).expect("dir");
    run_cmd(
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "hosttmp"])
            .arg(&inner),
    );
    std::fs::write(inner.join("marker"), "m").expect("marker");
    assert_eq!(
        c.exec(&prop, &["cat", "/slave/from-host/marker"]).1,
        "m",
        "host-to-container"
    );
    assert_eq!(
        c.exec(&prop, &["cat", "/shared/from-host/marker"]).1,
        "m",
        "bidirectional"
    );
    assert_ne!(
        c.exec(&prop, &["cat", "/private/from-host/marker"]).0,
        0,
        "private"
    );
    let (code, _, err) = c.exec(&prop, &["sh", "-c", "mkdir -p /shared/from-ctr && mount -t tmpfs ctrtmp /shared/from-ctr && echo c > /shared/from-ctr/x"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(src.join("from-ctr/x"))
            .ok()
            .as_deref(),
        Some("c\n"),
        "container-to-host"
    );

    // Recursive read-only (crun): the submount is read-only too.
    let mut cc = cri::container_config("rro", BUSYBOX, &["sleep", "3600"]);
    cc.mounts = vec![api::Mount {
        container_path: "/ro".into(),
        host_path: src.display().to_string(),
        readonly: true,
        recursive_read_only: true,
        ..Default::default()
    }];
    let rro = started(cc);
    let (code, _, err) = c.exec(&rro, &["touch", "/ro/from-host/new"]);
    assert_ne!(code, 0);
    assert!(err.contains("Read-only"), "{err}");
    let mut bad = cri::container_config("rro-rw", BUSYBOX, &["true"]);
    bad.mounts = vec![api::Mount {
        container_path: "/ro".into(),
        host_path: src.display().to_string(),
        readonly: false,
        recursive_read_only: true,
        ..Default::default()
    }];
    let e = c.fails(
        "CreateContainer",
        c.runtime().create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(bad),
            sandbox_config: Some(pc.clone()),
        }),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let st = c.ok(
        "Status",
        c.runtime().status(api::StatusRequest { verbose: false }),
    );
    let crun = st
        .runtime_handlers
        .iter()
        .find(|h| h.name == "crun")
        .expect("crun");
    assert!(crun
        .features
        .as_ref()
        .is_some_and(|f| f.recursive_read_only_mounts));
    let runc = st
        .runtime_handlers
        .iter()
        .find(|h| h.name == "runc")
        .expect("runc");
    assert!(!runc
        .features
        .as_ref()
        .is_some_and(|f| f.recursive_read_only_mounts));
    assert!(st.features.is_some_and(|f| f.supplemental_groups_policy));

    // Supplemental groups: Merge (the default) adds the image's memberships, Strict does not.
    for (name, policy, want) in [
        (
            "merge",
            api::SupplementalGroupsPolicy::Merge,
            vec![1000, 1234, 50000],
        ),
        (
            "strict",
            api::SupplementalGroupsPolicy::Strict,
            vec![1000, 1234],
        ),
    ] {
        let id = started(with_sc(
            name,
            "docker.io/library/groups:latest",
            &["sleep", "3600"],
            &|sc| {
                sc.run_as_user = Some(api::Int64Value { value: 1000 });
                sc.supplemental_groups = vec![1234];
                sc.supplemental_groups_policy = policy as i32;
            },
        ));
        let mut got: Vec<i64> = c
            .exec(&id, &["id", "-G"])
            .1
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "{name}: id -G");
        let user = c
            .container_state(&id)
            .user
            .and_then(|u| u.linux)
            .expect("the status reports the user");
        assert_eq!(
            (user.uid, user.gid, user.supplemental_groups),
            (1000, 1000, want),
            "{name}"
        );
    }

    // A pod in its own user namespace (crun): root inside is 200000 outside, for every
    // container of the pod.
    let userns = |uids: Vec<api::IdMapping>, mode: api::NamespaceMode| {
        let mut p = cri::pod_config("userns", "uid-userns", &logs);
        p.linux
            .as_mut()
            .expect("linux")
            .security_context
            .as_mut()
            .expect("sc")
            .namespace_options = Some(api::NamespaceOption {
            userns_options: Some(api::UserNamespace {
                mode: mode as i32,
                gids: uids.clone(),
                uids,
            }),
            ..Default::default()
        });
        p
    };
    let map = |host_id: u32, container_id: u32| api::IdMapping {
        host_id,
        container_id,
        length: 65536,
    };
    let upc = userns(vec![map(200_000, 0)], api::NamespaceMode::Pod);
    let upod = c.run_pod(&upc, "crun");
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let id = c.create(
            &upod,
            &upc,
            cri::container_config(name, BUSYBOX, &["sleep", "3600"]),
        );
        c.start(&id);
        let uid_map: Vec<String> = c
            .exec(&id, &["cat", "/proc/self/uid_map"])
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(uid_map, ["0", "200000", "65536"], "{name}");
        assert_eq!(c.exec(&id, &["id", "-u"]).1.trim(), "0");
        assert_eq!(
            c.exec(&id, &["stat", "-c", "%u", "/bin/sh"]).1.trim(),
            "0",
            "the rootfs is root's inside"
        );
        ids.push(id);
    }
    let user_ns = |id: &str| c.exec(id, &["readlink", "/proc/self/ns/user"]).1;
    assert_eq!(
        user_ns(&ids[0]),
        user_ns(&ids[1]),
        "one user namespace per pod"
    );
    let st = c.ok(
        "ContainerStatus",
        c.runtime().container_status(api::ContainerStatusRequest {
            container_id: ids[0].clone(),
            verbose: true,
        }),
    );
    let info: serde_json::Value = serde_json::from_str(&st.info["info"]).expect("info");
    let pid = info["pid"].as_i64().expect("pid");
    let host = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        host.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("200000")),
        "{host}"
    );
    c.remove_pod(&upod);
    for (bad, mode) in [
        (
            vec![map(300_000, 0), map(400_000, 65536)],
            api::NamespaceMode::Pod,
        ),
        (vec![map(300_000, 1)], api::NamespaceMode::Pod),
        (vec![map(300_000, 0)], api::NamespaceMode::Container),
    ] {
        let e = c.fails(
            "RunPodSandbox",
            c.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(userns(bad, mode)),
                runtime_handler: "crun".into(),
            }),
        );
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    }
    let st = c.ok(
        "Status",
        c.runtime().status(api::StatusRequest { verbose: false }),
    );
    let default = st
        .runtime_handlers
        .iter()
        .find(|h| h.name.is_empty())
        .expect("default handler");
    assert!(default.features.as_ref().is_some_and(|f| f.user_namespaces));

    c.remove_pod(&pod);
    for m in [src.join("from-ctr"), inner, src.clone()] {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&m)
            .status();
    }
}

/// `kill -9` of the server in the middle of PullImage, at spread points of a measured pull
/// of the 200-layer image: after each restart the store is consistent (fsck finds no
/// problems; gc leaves no garbage), the image is either absent or whole (never half-made),
/// and the pull asked again completes.
#[test]
fn a_pull_killed_midway_leaves_nothing_half_made() {
    if !require_privileged(
        "a_pull_killed_midway_leaves_nothing_half_made",
        "a CRI server (root)",
    ) {
        return;
    }
    let reg =
        strata_tests::registry::Registry::start(strata_tests::registry::RegistryOptions::default());
    let host = reg.host();
    let s = store();
    let image = format!("{host}/library/deep:v1");
    s.ok([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("{}:latest", fixtures::oci("deep")),
        &format!("docker://{image}"),
    ]);
    let conf = s.scratch().join("registries.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"),
    )
    .expect("registries.conf");
    let env = [("CONTAINERS_REGISTRIES_CONF", conf.as_path())];
    let cni = s.base().join("cni");
    std::fs::create_dir_all(&cni).expect("cni");
    let mut srv = CriServer::start(&s, &cni, &[], &env);
    let spec = || api::ImageSpec {
        image: image.clone(),
        ..Default::default()
    };
    let pull = |socket: &Path| {
        let c = Client::connect(socket);
        c.run(c.images().pull_image(api::PullImageRequest {
            image: Some(spec()),
            auth: None,
            sandbox_config: None,
        }))
        .map(|r| r.into_inner().image_ref)
    };
    let status = |c: &Client| {
        c.ok(
            "ImageStatus",
            c.images().image_status(api::ImageStatusRequest {
                image: Some(spec()),
                verbose: false,
            }),
        )
        .image
    };
    // One whole pull to time, then its image removed (layers and blobs with it).
    let started = std::time::Instant::now();
    let want = pull(&srv.socket).expect("the first pull");
    let took = started.elapsed();
    {
        let c = Client::connect(&srv.socket);
        c.ok(
            "RemoveImage",
            c.images().remove_image(api::RemoveImageRequest {
                image: Some(spec()),
            }),
        );
    }
    const KILLS: u32 = 4;
    let mut landed = 0;
    for i in 1..=KILLS {
        let socket = srv.socket.clone();
        let result = std::thread::scope(|sc| {
            let puller = sc.spawn(|| pull(&socket));
            std::thread::sleep(took * i / (KILLS + 1));
            srv.kill9();
            puller.join().expect("pull thread")
        });
        if result.is_err() {
            landed += 1;
        }
        let report = s.fsck();
        assert_eq!(
            report["problems"],
            serde_json::json!([]),
            "kill {i}: fsck after the kill: {report:#}"
        );
        srv.restart(&s, &env);
        let c = Client::connect(&srv.socket);
        if let Some(img) = status(&c) {
            // Finished before the kill: then it is whole.
            assert_eq!(img.id, want, "kill {i}");
            c.ok(
                "RemoveImage",
                c.images().remove_image(api::RemoveImageRequest {
                    image: Some(spec()),
                }),
            );
        }
        assert!(
            !image_names(&s).iter().any(|n| n == &image),
            "kill {i}: a half-pulled image is listed"
        );
    }
    eprintln!("{landed} of {KILLS} kills landed mid-pull (a pull takes {took:?})");
    assert!(
        landed >= 1,
        "no kill landed during a pull ({took:?} each): the test proved nothing"
    );
    // Asked again, the pull completes and the image is whole.
    assert_eq!(pull(&srv.socket).expect("the pull after the kills"), want);
    let c = Client::connect(&srv.socket);
    assert_eq!(status(&c).expect("pulled").id, want);
    let report = s.fsck();
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    drop(c);
    drop(srv);
    s.ok(["storage", "gc"]);
    let report = s.fsck();
    assert_eq!(report["garbage"], serde_json::json!([]), "{report:#}");
}

/// Image volumes (the kubelet's `image` volume source): the image's files read-only (but
/// executable) at the container path, refused when asked writable or for a missing image,
/// removed with the container; one left behind by a container removed behind the server's
/// back is removed when the server starts again.
#[test]
fn image_volumes_mount_an_image_read_only() {
    if !require_privileged(
        "image_volumes_mount_an_image_read_only",
        "a CRI server (root)",
    ) {
        return;
    }
    let s = store();
    // An image whose links point out of it (absolute, and up past its root).
    s.ok([
        "run",
        "--name",
        "lnk",
        "--network",
        "none",
        BUSYBOX,
        "sh",
        "-c",
        "ln -s / /escape && ln -s ../../../.. /up && touch /marker-in-image",
    ]);
    s.ok(["commit", "lnk", "docker.io/library/links:latest"]);
    s.ok(["rm", "lnk"]);
    let cni = s.base().join("cni");
    cri::write_bridge_conflist(&cni, "crinet", "cri-s4", "10.94.4.0/24");
    let mut srv = CriServer::start(&s, &cni, &[], &[]);
    let c = Client::connect(&srv.socket);
    let logs = s.scratch().join("logs");
    let pc = cri::pod_config("imgvol", "uid-imgvol", &logs);
    let pod = c.run_pod(&pc, "");
    let store_containers = || s.list("containers").len();
    let before = store_containers();
    let with_volume = |name: &str, readonly: bool, image: &str| {
        let mut cc = cri::container_config(name, BUSYBOX, &["sleep", "3600"]);
        cc.mounts = vec![api::Mount {
            container_path: "/mnt/image-volume".into(),
            readonly,
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        cc
    };
    let id = c.create(&pod, &pc, with_volume("reader", true, BUSYBOX));
    c.start(&id);
    assert_eq!(c.exec(&id, &["ls", "/mnt/image-volume/bin/sh"]).0, 0);
    let (code, _, err) = c.exec(&id, &["touch", "/mnt/image-volume/written"]);
    assert_ne!(code, 0, "the image volume is writable");
    assert!(err.contains("Read-only"), "{err}");
    let (code, out, _) = c.exec(&id, &["/mnt/image-volume/bin/ls", "/mnt/image-volume"]);
    assert_eq!(code, 0, "binaries of the image volume run (no noexec)");
    assert!(out.contains("etc"), "{out}");
    let st = c.ok(
        "ContainerStatus",
        c.runtime().container_status(api::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        }),
    );
    let m = &st.status.expect("status").mounts;
    assert!(
        m.iter().any(|m| m.container_path == "/mnt/image-volume"
            && m.image.as_ref().is_some_and(|i| i.image == BUSYBOX)),
        "{m:?}"
    );
    // The mount's image reference (a newer field) is the image's ID, as PullImage answers.
    let refs: cri::StatusImageRefs = c
        .unary(
            "RuntimeService",
            "ContainerStatus",
            api::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            },
        )
        .expect("ContainerStatus");
    let busybox_id = c
        .ok(
            "ImageStatus",
            c.images().image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: BUSYBOX.into(),
                    ..Default::default()
                }),
                verbose: false,
            }),
        )
        .image
        .expect("busybox")
        .id;
    let volume = refs
        .status
        .expect("status")
        .mounts
        .into_iter()
        .find(|m| m.container_path == "/mnt/image-volume")
        .and_then(|m| m.image)
        .expect("the image volume's mount");
    assert_eq!(
        (volume.image.as_str(), volume.image_ref.as_str()),
        (BUSYBOX, busybox_id.as_str())
    );
    // The volume is the store's (a container of the image), not a container `ps` shows.
    assert_eq!(store_containers(), before + 2);
    let ps = s.json(["ps", "-a", "--format", "json"]);
    assert_eq!(ps.as_array().map(Vec::len), Some(2), "{ps:#}");

    let e = c.fails(
        "CreateContainer",
        c.runtime().create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(with_volume("writer", false, BUSYBOX)),
            sandbox_config: Some(pc.clone()),
        }),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    let e = c.fails(
        "CreateContainer",
        c.runtime().create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(with_volume("missing", true, "docker.io/library/absent:v1")),
            sandbox_config: Some(pc.clone()),
        }),
    );
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
    assert_eq!(
        store_containers(),
        before + 2,
        "a refused create left a volume"
    );

    // A sub path of the image (a newer kubelet's `image_sub_path`): that directory, its
    // links resolved inside the image; one the image lacks fails the create.
    let sub = c
        .create_with_sub_paths(&pod, &pc, with_volume("sub", true, BUSYBOX), &["etc"])
        .expect("create with a sub path");
    c.start(&sub);
    assert_eq!(c.exec(&sub, &["ls", "/mnt/image-volume/passwd"]).0, 0);
    assert_ne!(c.exec(&sub, &["ls", "/mnt/image-volume/etc"]).0, 0);
    // Links in the image resolve inside it: both land on the image's root, not the host's.
    for (i, link) in ["escape", "up"].iter().enumerate() {
        let id = c
            .create_with_sub_paths(
                &pod,
                &pc,
                with_volume(&format!("link{i}"), true, "docker.io/library/links:latest"),
                &[link],
            )
            .expect("create with a linked sub path");
        c.start(&id);
        assert_eq!(
            c.exec(&id, &["ls", "/mnt/image-volume/marker-in-image"]).0,
            0,
            "{link} left the image"
        );
        c.ok(
            "RemoveContainer",
            c.runtime().remove_container(api::RemoveContainerRequest {
                container_id: id.clone(),
            }),
        );
    }
    for (i, bad) in ["not-existing", "../../../../etc", "/etc"]
        .iter()
        .enumerate()
    {
        let e = c
            .create_with_sub_paths(
                &pod,
                &pc,
                with_volume(&format!("bad{i}"), true, BUSYBOX),
                &[bad],
            )
            .expect_err("a bad sub path");
        assert!(
            matches!(
                e.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(
        store_containers(),
        before + 4,
        "a refused create left a volume"
    );

    for id in [&id, &sub] {
        c.ok(
            "StopContainer",
            c.runtime().stop_container(api::StopContainerRequest {
                container_id: id.clone(),
                timeout: 0,
            }),
        );
        c.ok(
            "RemoveContainer",
            c.runtime().remove_container(api::RemoveContainerRequest {
                container_id: id.clone(),
            }),
        );
    }
    assert_eq!(
        store_containers(),
        before,
        "the volumes went with their containers"
    );

    // A container removed with the CLI while the server is down leaves its volume behind;
    // the server removes it when it starts.
    let id = c.create(&pod, &pc, with_volume("orphaned", true, BUSYBOX));
    drop(c);
    srv.kill9();
    s.ok(["rm", "--force", &id]);
    assert_eq!(store_containers(), before + 1);
    srv.restart(&s, &[]);
    let c = Client::connect(&srv.socket);
    assert_eq!(
        store_containers(),
        before,
        "the orphaned volume was not removed"
    );
    c.remove_pod(&pod);
    drop(c);
    drop(srv);
    s.assert_clean();
}
