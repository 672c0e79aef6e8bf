//! A blob download that loses its connection part-way resumes with a `Range` request and
//! still delivers the exact bytes.
//!
//! The real registry cannot be made to drop a connection mid-stream, so a tiny TCP proxy
//! sits in front of it and injects that fault: it cuts the first blob download after a
//! fixed number of response bytes. This is a fault injector for a failure we cannot cause
//! for real, not a mock of the registry: every byte still comes from docker-registry.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{image, options, push, reference};
use strata_graph_registry::{Client, DockerDestination};
use strata_tests::registry::{Registry, RegistryOptions};

/// Forwards 127.0.0.1:PORT to `upstream`; cuts the first blob GET without a Range header
/// after `cut_after` bytes of its response.
struct CuttingProxy {
    addr: SocketAddr,
    cut_done: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CuttingProxy {
    fn start(upstream: SocketAddr, cut_after: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut_done = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (cd, rq) = (cut_done.clone(), requests.clone());
        // The accept thread ends with the test process (it holds no resources we must free).
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                relay(client, server, cut_after, cd.clone(), rq.clone());
            }
        });
        CuttingProxy {
            addr,
            cut_done,
            requests,
        }
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    cut_after: usize,
    cut_done: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let armed = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let (mut c_in, mut s_out) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    {
        let (armed, sent, cut_done) = (armed.clone(), sent.clone(), cut_done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = c_in.read(&mut buf) {
                let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                if head.starts_with("get ") || head.starts_with("head ") {
                    let is_blob_get = head.starts_with("get ") && head.contains("/blobs/sha256:");
                    if is_blob_get
                        && !head.contains("\r\nrange:")
                        && !cut_done.load(Ordering::SeqCst)
                    {
                        sent.store(0, Ordering::SeqCst);
                        armed.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut r) = requests.lock() {
                        r.push(head);
                    }
                }
                if s_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s_out.shutdown(Shutdown::Write);
        });
    }
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = s_in.read(&mut buf) {
            if armed.load(Ordering::SeqCst) {
                let already = sent.load(Ordering::SeqCst);
                let allowed = cut_after.saturating_sub(already).min(n);
                let _ = c_out.write_all(&buf[..allowed]);
                sent.fetch_add(allowed, Ordering::SeqCst);
                if allowed < n {
                    // The injected fault: drop the connection mid-body.
                    cut_done.store(true, Ordering::SeqCst);
                    let _ = c_out.shutdown(Shutdown::Both);
                    let _ = s_in.shutdown(Shutdown::Both);
                    return;
                }
            } else if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Write);
    });
}

#[test]
fn dropped_blob_download_resumes_with_range() {
    let reg = Registry::start(RegistryOptions::default());
    let opts = options(&reg);
    let img = image(40, &[1_000_000]);
    let r = reference(&reg, "resume/app:1");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");

    let proxy = CuttingProxy::start(reg.addr(), 200_000);
    let client = Client::new(&proxy.addr.to_string(), &opts.client).expect("client");
    let (layer, data) = &img.layers[0];
    let mut reader = client
        .blob("resume/app", &layer.digest, Some(layer.size))
        .expect("open blob");
    let mut got = Vec::new();
    reader
        .read_to_end(&mut got)
        .expect("the download resumes and completes");

    assert!(
        proxy.cut_done.load(Ordering::SeqCst),
        "the fault was injected"
    );
    assert_eq!(got.len(), data.len());
    assert!(&got == data, "resumed blob content differs");
    assert!(reader.resumes() >= 1, "{reader:?}");
    let requests = proxy.requests.lock().expect("requests").clone();
    let range_gets: Vec<&String> = requests
        .iter()
        .filter(|h| {
            h.contains(&format!("/blobs/{}", layer.digest)) && h.contains("\r\nrange: bytes=")
        })
        .collect();
    assert!(
        !range_gets.is_empty(),
        "no Range request among {requests:?}"
    );
    // The Range starts where the first connection stopped, not at 0.
    assert!(
        !range_gets[0].contains("range: bytes=0-"),
        "{:?}",
        range_gets[0]
    );
}
