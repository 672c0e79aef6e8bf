//! The streaming server for Exec, Attach and PortForward (the kubelet's `streaming` package):
//! the RPCs hand out single-use URLs (`http://ADDR:PORT/exec/TOKEN`, valid for a minute), and
//! the client (the kubelet proxying kubectl, or the validation suite) connects there and
//! upgrades the connection to one of the Kubernetes stream protocols:
//!
//! - SPDY/3.1 with `X-Stream-Protocol-Version: v4.channel.k8s.io` (exec, attach) or
//!   `portforward.k8s.io` (port-forward): one SPDY stream per channel (`streamType` error,
//!   stdin, stdout, stderr, resize; port-forward's data and error streams per `requestID`),
//!   framing in `strata-plugin-spdy` (`plugins/spdy`);
//! - websocket with `v5.channel.k8s.io` or `v4.channel.k8s.io` (exec, attach): one binary
//!   message per chunk, its first byte the channel (0 stdin, 1 stdout, 2 stderr, 3 error,
//!   4 resize; v5's 255 closes a channel); port-forward with `v4.channel.k8s.io` (or its
//!   base64 twin, or no subprotocol): port *i* of the request on channels `2i` (data) and
//!   `2i+1` (error), each first carrying the port as two little-endian bytes.
//!
//! The error channel carries a JSON `Status` at the end (`Success`, or `Failure` with reason
//! `NonZeroExitCode` and the exit code as a cause), which is how the client learns the exit
//! code. What runs behind a connection is in `session.rs`. Connections are served by plain
//! threads: each is a few blocking pipes.

mod session;
mod transport;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_cri::v1 as cri;

use crate::server::Cri;

/// How long a URL stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// What a token was issued for.
#[derive(Debug, Clone)]
pub enum Request {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    PortForward(cri::PortForwardRequest),
}

impl Request {
    fn path(&self) -> &'static str {
        match self {
            Request::Exec(_) => "exec",
            Request::Attach(_) => "attach",
            Request::PortForward(_) => "portforward",
        }
    }
}

/// The server: its address and the tokens handed out.
#[derive(Debug)]
pub struct Streaming {
    addr: std::net::SocketAddr,
    tokens: Mutex<HashMap<String, (Request, Instant)>>,
}

impl Streaming {
    /// Binds `address:port` (port 0: a free one).
    pub fn bind(address: &str, port: u16) -> Result<(Arc<Streaming>, TcpListener)> {
        let l = TcpListener::bind((address, port))
            .with_context(|| format!("bind the streaming server to {address}:{port}"))?;
        let addr = l.local_addr().context("the streaming server's address")?;
        Ok((
            Arc::new(Streaming {
                addr,
                tokens: Mutex::new(HashMap::new()),
            }),
            l,
        ))
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// A single-use URL for `req`.
    pub fn issue(&self, req: Request) -> Result<String> {
        let mut rnd = [0u8; 16];
        rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty())
            .map_err(std::io::Error::from)
            .context("make a streaming token")?;
        let token: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let url = format!("http://{}/{}/{token}", self.addr, req.path());
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        t.insert(token, (req, Instant::now()));
        Ok(url)
    }

    fn take(&self, kind: &str, token: &str) -> Option<Request> {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (req, at) = t.remove(token)?;
        (req.path() == kind && at.elapsed() < TOKEN_TTL).then_some(req)
    }
}

/// Accepts connections on `listener` until the process ends, one thread per connection.
pub fn serve(cri: Arc<Cri>, listener: TcpListener) {
    let spawned = std::thread::Builder::new()
        .name("cri-streaming".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let cri = cri.clone();
                let _ = std::thread::Builder::new()
                    .name("cri-stream".into())
                    .spawn(move || {
                        let peer = conn.peer_addr().ok();
                        if let Err(e) = connection(&cri, conn) {
                            crate::log::warn(format_args!(
                                "streaming connection from {peer:?}: {e:#}"
                            ));
                        }
                    });
            }
        });
    if let Err(e) = spawned {
        crate::log::error(format_args!("no streaming server: {e}"));
    }
}

/// An HTTP/1.1 request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated value of every `name` header, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(',').map(|x| x.trim().to_owned()))
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// Reads a request head (at most 16 KiB) byte by byte, so nothing after it is consumed.
pub fn read_head(conn: &mut TcpStream) -> Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            anyhow::bail!("request head over 16 KiB");
        }
        if conn.read(&mut b).context("read the request")? == 0 {
            anyhow::bail!("connection closed before the request ended");
        }
        buf.push(b[0]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Head {
        method,
        path,
        headers,
    })
}

fn respond(conn: &mut TcpStream, code: u16, reason: &str, body: &str) -> Result<()> {
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())
        .context("write the response")?;
    Ok(())
}

fn connection(cri: &Cri, mut conn: TcpStream) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = read_head(&mut conn)?;
    if head.method != "GET" && head.method != "POST" {
        return respond(&mut conn, 405, "Method Not Allowed", "use GET or POST\n");
    }
    let path = head.path.split('?').next().unwrap_or_default().to_owned();
    let mut segs = path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (
        segs.next().unwrap_or_default(),
        segs.next().unwrap_or_default(),
    );
    let Some(streaming) = cri.streaming.as_ref() else {
        return respond(&mut conn, 503, "Service Unavailable", "no streaming server");
    };
    let Some(req) = streaming.take(kind, token) else {
        return respond(
            &mut conn,
            404,
            "Not Found",
            "unknown or expired streaming URL\n",
        );
    };
    conn.set_read_timeout(None)?;
    let upgrade = head
        .header("upgrade")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if upgrade == "websocket" {
        transport::websocket(cri, conn, &head, req)
    } else if upgrade.starts_with("spdy/3") {
        transport::spdy(cri, conn, &head, req)
    } else {
        respond(
            &mut conn,
            400,
            "Bad Request",
            "upgrade to SPDY/3.1 or websocket (v5.channel.k8s.io)\n",
        )
    }
}
