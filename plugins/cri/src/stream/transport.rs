//! The two transports of the stream protocols: SPDY/3.1 (streams per channel) and websocket
//! (a channel byte per message), each turned into the session's [`Out`] and [`Event`]s.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::session::{self, Event, Out};
use super::{Head, Request};
use crate::server::Cri;
use strata_plugin_spdy::{self as spdy, Frame};

const V4: &str = "v4.channel.k8s.io";
const V5: &str = "v5.channel.k8s.io";
const PORT_FORWARD: &str = "portforward.k8s.io";

fn refuse(conn: &mut TcpStream, why: &str) -> Result<()> {
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}",
        why.len()
    );
    conn.write_all(resp.as_bytes())?;
    Ok(())
}

type SpdyWriter = Arc<Mutex<spdy::Writer<TcpStream>>>;

fn lock(w: &SpdyWriter) -> std::sync::MutexGuard<'_, spdy::Writer<TcpStream>> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

struct SpdyOut {
    w: SpdyWriter,
    stdout: Option<u32>,
    stderr: Option<u32>,
    error: u32,
    all: Vec<u32>,
}

impl Out for SpdyOut {
    fn stdout(&self, data: &[u8]) -> io::Result<()> {
        match self.stdout {
            Some(s) => lock(&self.w).data(s, data, false),
            None => Ok(()),
        }
    }

    fn stderr(&self, data: &[u8]) -> io::Result<()> {
        match self.stderr.or(self.stdout) {
            Some(s) => lock(&self.w).data(s, data, false),
            None => Ok(()),
        }
    }

    fn finish(&self, status: &[u8]) {
        let mut w = lock(&self.w);
        let _ = w.data(self.error, status, false);
        for s in &self.all {
            let _ = w.data(*s, &[], true);
        }
    }
}

/// Serves one SPDY connection.
pub fn spdy(cri: &Cri, mut conn: TcpStream, head: &Head, req: Request) -> Result<()> {
    let offered = head.values("x-stream-protocol-version");
    let want = if matches!(req, Request::PortForward(_)) {
        PORT_FORWARD
    } else {
        V4
    };
    if !offered.iter().any(|p| p == want) {
        return refuse(
            &mut conn,
            &format!("X-Stream-Protocol-Version must offer {want} (offered: {offered:?})\n"),
        );
    }
    conn.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {want}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let w: SpdyWriter = Arc::new(Mutex::new(spdy::Writer::new(conn.try_clone()?)));
    let mut r = spdy::Reader::new(conn.try_clone()?);
    let result = match req {
        Request::PortForward(pf) => port_forward(cri, &pf, &mut r, &w),
        Request::Exec(e) => {
            let expect = Expect {
                stdin: e.stdin,
                stdout: e.stdout,
                stderr: e.stderr && !e.tty,
                resize: e.tty,
            };
            let (out, events) = spdy_channels(&conn, &mut r, &w, expect)?;
            spawn_reader(r, w.clone(), out.1, events);
            session::exec(cri, &e, out.0, out.2);
            Ok(())
        }
        Request::Attach(a) => {
            let expect = Expect {
                stdin: a.stdin,
                stdout: a.stdout,
                stderr: a.stderr && !a.tty,
                resize: a.tty,
            };
            let (out, events) = spdy_channels(&conn, &mut r, &w, expect)?;
            spawn_reader(r, w.clone(), out.1, events);
            session::attach(cri, &a, out.0, out.2);
            Ok(())
        }
    };
    let _ = lock(&w).goaway(0);
    std::thread::sleep(Duration::from_millis(50));
    let _ = conn.shutdown(Shutdown::Both);
    result
}

#[derive(Debug, Clone, Copy)]
struct Expect {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    resize: bool,
}

/// Where client data goes once the channels are set up.
#[derive(Debug, Default, Clone)]
struct Routes {
    stdin: Option<u32>,
    resize: Option<u32>,
}

type Channels = (Arc<dyn Out>, Routes, std::sync::mpsc::Receiver<Event>);

/// Waits (up to 30 s) for the client to open every channel it asked for, replying to each.
fn spdy_channels(
    conn: &TcpStream,
    r: &mut spdy::Reader<TcpStream>,
    w: &SpdyWriter,
    e: Expect,
) -> Result<(Channels, Sender<Event>)> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut seen: HashMap<String, u32> = HashMap::new();
    let needed = 1
        + usize::from(e.stdin)
        + usize::from(e.stdout)
        + usize::from(e.stderr)
        + usize::from(e.resize);
    let mut early: Vec<Frame> = Vec::new();
    while seen.len() < needed {
        let f = r
            .read_frame()
            .context("wait for the client's streams")?
            .context("the client left before opening its streams")?;
        match &f {
            Frame::SynStream { stream, .. } => {
                let typ = f
                    .header("streamtype")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                lock(w).syn_reply(*stream, &[], false)?;
                seen.insert(typ, *stream);
            }
            Frame::Ping(id) => lock(w).ping(*id)?,
            Frame::Data { .. } => early.push(f),
            Frame::GoAway { .. } => bail!("the client went away"),
            _ => {}
        }
    }
    conn.set_read_timeout(None)?;
    let error = *seen
        .get("error")
        .context("the client opened no error stream")?;
    let stdout = seen.get("stdout").copied();
    let stderr = seen.get("stderr").copied();
    let routes = Routes {
        stdin: seen.get("stdin").copied(),
        resize: seen.get("resize").copied(),
    };
    let out = SpdyOut {
        w: w.clone(),
        stdout,
        stderr,
        error,
        all: seen
            .values()
            .copied()
            .filter(|s| Some(*s) != routes.stdin && Some(*s) != routes.resize)
            .collect(),
    };
    let (tx, rx) = channel();
    let mut resize_buf = Vec::new();
    for f in early {
        route(&f, &routes, &tx, &mut resize_buf);
    }
    Ok(((Arc::new(out), routes, rx), tx))
}

fn route(f: &Frame, routes: &Routes, tx: &Sender<Event>, resize_buf: &mut Vec<u8>) {
    if let Frame::Data { stream, fin, data } = f {
        if Some(*stream) == routes.stdin {
            if !data.is_empty() {
                let _ = tx.send(Event::Stdin(data.clone()));
            }
            if *fin {
                let _ = tx.send(Event::StdinEof);
            }
        } else if Some(*stream) == routes.resize {
            resize_buf.extend_from_slice(data);
            for ev in session::resizes(resize_buf) {
                let _ = tx.send(ev);
            }
        }
    }
}

fn spawn_reader(mut r: spdy::Reader<TcpStream>, w: SpdyWriter, routes: Routes, tx: Sender<Event>) {
    std::thread::spawn(move || {
        let mut resize_buf = Vec::new();
        loop {
            match r.read_frame() {
                Ok(Some(Frame::Ping(id))) => {
                    let _ = lock(&w).ping(id);
                }
                Ok(Some(Frame::SynStream { stream, .. })) => {
                    let _ = lock(&w).rst_stream(stream, 3);
                }
                Ok(Some(f @ Frame::Data { .. })) => route(&f, &routes, &tx, &mut resize_buf),
                Ok(Some(Frame::GoAway { .. })) | Ok(None) | Err(_) => {
                    let _ = tx.send(Event::Closed);
                    return;
                }
                Ok(Some(_)) => {}
            }
        }
    });
}

/// Port-forward over SPDY: each request is a pair of streams (`streamType` error and data,
/// one `requestID`, the `port`); data is copied both ways to a connection dialled in the pod.
fn port_forward(
    cri: &Cri,
    pf: &k8s_cri::v1::PortForwardRequest,
    r: &mut spdy::Reader<TcpStream>,
    w: &SpdyWriter,
) -> Result<()> {
    // requestID → (error stream, data stream, the pod connection's write half)
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut conns: HashMap<u32, TcpStream> = HashMap::new();
    while let Ok(Some(f)) = r.read_frame() {
        match &f {
            Frame::SynStream { stream, .. } => {
                let stream = *stream;
                lock(w).syn_reply(stream, &[], false)?;
                let typ = f
                    .header("streamtype")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let id = f.header("requestid").unwrap_or_default().to_owned();
                let port = f.header("port").and_then(|p| p.parse::<u16>().ok());
                if typ == "error" {
                    errors.insert(id, stream);
                    continue;
                }
                let fail = |msg: String| {
                    let mut wl = lock(w);
                    if let Some(es) = errors.get(&id) {
                        let _ = wl.data(*es, msg.as_bytes(), true);
                    }
                    let _ = wl.data(stream, &[], true);
                };
                let Some(port) = port.filter(|p| *p > 0) else {
                    fail("invalid port".into());
                    continue;
                };
                if !pf.port.is_empty() && !pf.port.contains(&i32::from(port)) {
                    fail(format!("port {port} was not asked for"));
                    continue;
                }
                match session::dial(cri, &pf.pod_sandbox_id, port) {
                    Ok(tcp) => {
                        let mut reader = tcp.try_clone()?;
                        conns.insert(stream, tcp);
                        let w = w.clone();
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 32 * 1024];
                            loop {
                                match io::Read::read(&mut reader, &mut buf) {
                                    Ok(0) | Err(_) => {
                                        let _ = lock(&w).data(stream, &[], true);
                                        return;
                                    }
                                    Ok(n) => {
                                        if lock(&w).data(stream, &buf[..n], false).is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        });
                    }
                    Err(e) => fail(format!("{e:#}")),
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tcp) = conns.get_mut(stream) {
                    if !data.is_empty() && tcp.write_all(data).is_err() {
                        let _ = tcp.shutdown(Shutdown::Both);
                    }
                    if *fin {
                        let _ = tcp.shutdown(Shutdown::Write);
                    }
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some(tcp) = conns.remove(stream) {
                    let _ = tcp.shutdown(Shutdown::Both);
                }
            }
            Frame::Ping(id) => lock(w).ping(*id)?,
            Frame::GoAway { .. } => break,
            _ => {}
        }
    }
    for (_, tcp) in conns {
        let _ = tcp.shutdown(Shutdown::Both);
    }
    Ok(())
}

type Ws = Arc<Mutex<tungstenite::WebSocket<TcpStream>>>;

fn ws_lock(ws: &Ws) -> std::sync::MutexGuard<'_, tungstenite::WebSocket<TcpStream>> {
    ws.lock().unwrap_or_else(|p| p.into_inner())
}

struct WsOut {
    ws: Ws,
}

impl WsOut {
    fn send(&self, channel: u8, data: &[u8]) -> io::Result<()> {
        let mut m = Vec::with_capacity(data.len() + 1);
        m.push(channel);
        m.extend_from_slice(data);
        self.send_message(tungstenite::Message::Binary(m.into()))
    }

    fn send_message(&self, m: tungstenite::Message) -> io::Result<()> {
        let mut ws = ws_lock(&self.ws);
        // A message that meets a full socket is queued: only the flush is retried.
        let mut r = ws.send(m);
        loop {
            match r {
                Ok(()) => return Ok(()),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                    r = ws.flush();
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
    }
}

impl Out for WsOut {
    fn stdout(&self, data: &[u8]) -> io::Result<()> {
        self.send(1, data)
    }

    fn stderr(&self, data: &[u8]) -> io::Result<()> {
        self.send(2, data)
    }

    fn finish(&self, status: &[u8]) {
        let _ = self.send(3, status);
        let mut ws = ws_lock(&self.ws);
        let _ = ws.close(None);
        let _ = ws.flush();
    }
}

/// Completes the websocket handshake with subprotocol `proto` (none: no header); `None`
/// when the request had no key (refused). Reads then time out every 20 ms, so one lock
/// serves a reader and writers.
fn accept(conn: &mut TcpStream, head: &Head, proto: Option<&str>) -> Result<Option<Ws>> {
    let Some(key) = head.header("sec-websocket-key") else {
        refuse(conn, "no Sec-WebSocket-Key\n")?;
        return Ok(None);
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let proto_header = proto
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    conn.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{proto_header}\r\n"
        )
        .as_bytes(),
    )?;
    conn.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok(Some(Arc::new(Mutex::new(
        tungstenite::WebSocket::from_raw_socket(
            conn.try_clone()?,
            tungstenite::protocol::Role::Server,
            None,
        ),
    ))))
}

/// Serves one websocket connection (exec and attach).
pub fn websocket(cri: &Cri, mut conn: TcpStream, head: &Head, req: Request) -> Result<()> {
    let offered = head.values("sec-websocket-protocol");
    if let Request::PortForward(pf) = req {
        return ws_port_forward(cri, conn, head, &offered, &pf);
    }
    let proto = [V5, V4]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p));
    let Some(proto) = proto else {
        return refuse(
            &mut conn,
            &format!("Sec-WebSocket-Protocol must offer {V5} or {V4}\n"),
        );
    };
    let Some(ws) = accept(&mut conn, head, Some(proto))? else {
        return Ok(());
    };
    let (tx, rx) = channel();
    {
        let ws = ws.clone();
        std::thread::spawn(move || {
            let mut resize_buf = Vec::new();
            loop {
                let msg = ws_lock(&ws).read();
                match msg {
                    Ok(tungstenite::Message::Binary(b)) => match b.first() {
                        Some(0) => {
                            let _ = tx.send(Event::Stdin(b[1..].to_vec()));
                        }
                        Some(4) => {
                            resize_buf.extend_from_slice(&b[1..]);
                            for ev in session::resizes(&mut resize_buf) {
                                let _ = tx.send(ev);
                            }
                        }
                        Some(255) if b.get(1) == Some(&0) => {
                            let _ = tx.send(Event::StdinEof);
                        }
                        _ => {}
                    },
                    Ok(tungstenite::Message::Close(_)) => {
                        let _ = tx.send(Event::Closed);
                        return;
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::TimedOut =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => {
                        let _ = tx.send(Event::Closed);
                        return;
                    }
                }
            }
        });
    }
    let out: Arc<dyn Out> = Arc::new(WsOut { ws });
    match req {
        Request::Exec(e) => session::exec(cri, &e, out, rx),
        Request::Attach(a) => session::attach(cri, &a, out, rx),
        Request::PortForward(_) => {}
    }
    std::thread::sleep(Duration::from_millis(50));
    let _ = conn.shutdown(Shutdown::Both);
    Ok(())
}

/// Port-forward over websocket (the kubelet's `portforward/websocket.go`): the ports are the
/// request's (or the URL's `port` query values); port *i* has data channel `2i` and error
/// channel `2i+1`, each opened by the server with the port as two little-endian bytes. With
/// `v4.base64.channel.k8s.io` messages are text: the channel as an ASCII digit, then base64.
fn ws_port_forward(
    cri: &Cri,
    mut conn: TcpStream,
    head: &Head,
    offered: &[String],
    pf: &k8s_cri::v1::PortForwardRequest,
) -> Result<()> {
    const PF_BINARY: &str = "v4.channel.k8s.io";
    const PF_BASE64: &str = "v4.base64.channel.k8s.io";
    // No subprotocol at all is the binary protocol, as the kubelet's server takes it.
    let proto = if offered.is_empty() {
        None
    } else {
        match [PF_BINARY, PF_BASE64]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p))
        {
            Some(p) => Some(p),
            None => {
                return refuse(
                    &mut conn,
                    &format!("Sec-WebSocket-Protocol must offer {PF_BINARY} or {PF_BASE64}\n"),
                )
            }
        }
    };
    let mut ports: Vec<u16> = Vec::new();
    let requested: Vec<i32> = if pf.port.is_empty() {
        query_values(&head.path, "port")
            .iter()
            .map(|p| p.parse::<i32>().unwrap_or(0))
            .collect()
    } else {
        pf.port.clone()
    };
    for p in requested {
        match u16::try_from(p) {
            Ok(p) if p > 0 => ports.push(p),
            _ => return refuse(&mut conn, &format!("invalid port {p}\n")),
        }
    }
    if ports.is_empty() {
        return refuse(&mut conn, "at least one port must be given\n");
    }
    if !pf.port.is_empty() {
        let asked = query_values(&head.path, "port");
        if let Some(p) = asked
            .iter()
            .find(|p| !pf.port.iter().any(|q| q.to_string() == **p))
        {
            return refuse(&mut conn, &format!("port {p} was not asked for\n"));
        }
    }
    // Channels are one byte: at most 128 ports (channels 0..=255).
    if ports.len() > 128 {
        return refuse(&mut conn, "at most 128 ports per connection\n");
    }
    let Some(ws) = accept(&mut conn, head, proto)? else {
        return Ok(());
    };
    // One thread owns the websocket (reads and writes: no lock held across a read, so data
    // from the pod never waits for the client); pumps hand it the pods' bytes through a
    // bounded channel (backpressure), and a write that stalls 30 s ends the session.
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let base64 = proto == Some(PF_BASE64);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u8, Vec<u8>)>(64);
    let session = PfSession {
        ws: ws.clone(),
        base64,
        conns: Vec::new(),
    };
    let mut session = session;
    for (i, port) in ports.iter().enumerate() {
        let ch = (2 * i) as u8;
        session.send(ch, &port.to_le_bytes())?;
        session.send(ch + 1, &port.to_le_bytes())?;
    }
    let mut pumps = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let ch = (2 * i) as u8;
        match session::dial(cri, &pf.pod_sandbox_id, *port) {
            Ok(tcp) => {
                let mut reader = tcp.try_clone()?;
                session.conns.push(Some(tcp));
                let tx = tx.clone();
                pumps.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match io::Read::read(&mut reader, &mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if tx.send((ch, buf[..n].to_vec())).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }));
            }
            Err(e) => {
                session.send(ch + 1, format!("{e:#}").as_bytes())?;
                session.conns.push(None);
            }
        }
    }
    drop(tx);
    session.run(&rx, &pumps);
    // The session's drop shuts the pod connections, which ends the pumps.
    drop(session);
    for p in pumps {
        let _ = p.join();
    }
    {
        let mut w = ws_lock(&ws);
        let _ = w.close(None);
        let _ = w.flush();
    }
    std::thread::sleep(Duration::from_millis(50));
    let _ = conn.shutdown(Shutdown::Both);
    Ok(())
}

/// A port-forward connection: the websocket (read and written by one thread) and the pod
/// connections by port index. Dropping it shuts those connections.
struct PfSession {
    ws: Ws,
    base64: bool,
    conns: Vec<Option<TcpStream>>,
}

impl Drop for PfSession {
    fn drop(&mut self) {
        for tcp in self.conns.iter().flatten() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }
}

impl PfSession {
    /// Sends `data` on `channel`: a binary message, or the base64 protocol's text one.
    fn send(&self, channel: u8, data: &[u8]) -> io::Result<()> {
        let out = WsOut {
            ws: self.ws.clone(),
        };
        if !self.base64 {
            return out.send(channel, data);
        }
        use base64::Engine as _;
        let text = format!(
            "{}{}",
            char::from(b'0'.wrapping_add(channel)),
            base64::engine::general_purpose::STANDARD.encode(data)
        );
        out.send_message(tungstenite::Message::Text(text.into()))
    }

    /// Forwards both ways until the client closes or every pod connection has ended.
    fn run(
        &mut self,
        from_pods: &std::sync::mpsc::Receiver<(u8, Vec<u8>)>,
        pumps: &[std::thread::JoinHandle<()>],
    ) {
        loop {
            // What the pods sent, all of it, before waiting on the client again.
            loop {
                match from_pods.try_recv() {
                    Ok((ch, data)) => {
                        if self.send(ch, &data).is_err() {
                            return;
                        }
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        // Every pump ended and everything they sent is out.
                        if pumps.iter().all(|p| p.is_finished()) {
                            return;
                        }
                        break;
                    }
                }
            }
            // Reads time out after 20 ms (the socket's timeout), so the pods' data waits at
            // most that long when the client is quiet.
            let msg = ws_lock(&self.ws).read();
            let (ch, data) = match msg {
                Ok(tungstenite::Message::Binary(b)) if !self.base64 && !b.is_empty() => {
                    (b[0], b[1..].to_vec())
                }
                Ok(tungstenite::Message::Text(t)) if self.base64 && !t.is_empty() => {
                    use base64::Engine as _;
                    let b = t.as_bytes();
                    let ch = b[0].wrapping_sub(b'0');
                    match base64::engine::general_purpose::STANDARD.decode(&b[1..]) {
                        Ok(d) => (ch, d),
                        Err(_) => continue,
                    }
                }
                Ok(tungstenite::Message::Close(_)) => return,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => return,
            };
            // Data channels are even; what arrives on an error channel is ignored, as the
            // kubelet does.
            if ch % 2 == 0 {
                if let Some(Some(tcp)) = self.conns.get_mut(usize::from(ch / 2)) {
                    if !data.is_empty() && tcp.write_all(&data).is_err() {
                        let _ = tcp.shutdown(Shutdown::Both);
                    }
                }
            }
        }
    }
}

/// The values of `name` in a request path's query string (`/portforward/T?port=80&port=443`).
fn query_values(path: &str, name: &str) -> Vec<String> {
    path.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
                .collect()
        })
        .unwrap_or_default()
}
