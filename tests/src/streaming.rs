//! A client of the Kubernetes stream protocols, as kubectl and the kubelet speak them to a
//! CRI streaming server: exec/attach over SPDY/3.1 (`v4.channel.k8s.io`) and websocket
//! (`v5.channel.k8s.io`), port-forward over SPDY (`portforward.k8s.io`). The SPDY framing is
//! the CRI plugin's (`strata_plugin_spdy`); the tests also run this client
//! against containerd's streaming server, which checks both ends against Go's spdystream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use strata_plugin_spdy::{Frame, Reader, Writer};

/// What an exec or attach returned.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The error channel's status (`{"status":"Success"}` or a failure with the exit code).
    pub status: serde_json::Value,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The exit code the status carries (0 for success).
    pub fn exit_code(&self) -> Option<i32> {
        if self.status["status"] == "Success" {
            return Some(0);
        }
        self.status["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")?["message"]
            .as_str()?
            .parse()
            .ok()
    }
}

fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .expect("an http:// streaming URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (host.to_owned(), format!("/{path}"))
}

fn upgrade(url: &str, protocol: &str) -> TcpStream {
    let (host, path) = split_url(url);
    let mut s = TcpStream::connect(&host).expect("connect to the streaming server");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send the request");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).expect("read the response"),
            1,
            "the server closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 101"), "no upgrade: {text}");
    s
}

fn h(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Exec or attach over SPDY: opens the streams the options ask for, sends `stdin` (then
/// closes it) and, with a terminal, one resize; collects everything until the server ends.
pub fn spdy_exec(
    url: &str,
    stdin: Option<&[u8]>,
    tty: bool,
    stderr: bool,
    size: Option<(u16, u16)>,
) -> Output {
    spdy_session(url, stdin, true, tty, stderr, size)
}

/// Attach over SPDY: sends `stdin` and keeps it open (closing it would detach), collects
/// the output until the container ends.
pub fn spdy_attach(url: &str, stdin: &[u8]) -> Output {
    spdy_session(url, Some(stdin), false, false, true, None)
}

/// Attach over SPDY that sends `stdin` and then closes it.
pub fn spdy_attach_closing(url: &str, stdin: &[u8]) -> Output {
    spdy_session(url, Some(stdin), true, false, true, None)
}

fn spdy_session(
    url: &str,
    stdin: Option<&[u8]>,
    close_stdin: bool,
    tty: bool,
    stderr: bool,
    size: Option<(u16, u16)>,
) -> Output {
    let s = upgrade(url, "v4.channel.k8s.io");
    let mut w = Writer::new(s.try_clone().expect("clone"));
    let mut r = Reader::new(s.try_clone().expect("clone"));
    let mut next = 1u32;
    let mut open = |w: &mut Writer<TcpStream>, typ: &str| {
        let id = next;
        next += 2;
        w.syn_stream(id, &[h("streamType", typ)], false)
            .expect("open a stream");
        id
    };
    let error = open(&mut w, "error");
    let input = stdin.map(|_| open(&mut w, "stdin"));
    let out = open(&mut w, "stdout");
    let err = (stderr && !tty).then(|| open(&mut w, "stderr"));
    let resize = tty.then(|| open(&mut w, "resize"));
    if let (Some(id), Some((width, height))) = (resize, size) {
        let msg = format!("{{\"Width\":{width},\"Height\":{height}}}");
        w.data(id, msg.as_bytes(), false).expect("resize");
    }
    if let (Some(id), Some(data)) = (input, stdin) {
        w.data(id, data, close_stdin).expect("stdin");
    }
    let mut o = Output::default();
    let mut status = Vec::new();
    let mut open_streams: std::collections::BTreeSet<u32> = [Some(error), Some(out), err]
        .into_iter()
        .flatten()
        .collect();
    while !open_streams.is_empty() {
        match r.read_frame() {
            Ok(Some(Frame::Data { stream, fin, data })) => {
                if stream == out {
                    o.stdout.extend_from_slice(&data);
                } else if Some(stream) == err {
                    o.stderr.extend_from_slice(&data);
                } else if stream == error {
                    status.extend_from_slice(&data);
                }
                if fin {
                    open_streams.remove(&stream);
                }
            }
            Ok(Some(Frame::Ping(id))) => w.ping(id).expect("pong"),
            Ok(Some(Frame::GoAway { .. })) | Ok(None) | Err(_) => break,
            Ok(Some(_)) => {}
        }
    }
    o.status = if status.is_empty() {
        serde_json::json!({ "status": "Success" })
    } else {
        serde_json::from_slice(&status)
            .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(&status) }))
    };
    o
}

/// Port-forward over SPDY: sends `request` to `port` in the pod and returns the reply (read
/// until the pod side closes), or the error stream's message.
pub fn spdy_port_forward(url: &str, port: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let s = upgrade(url, "portforward.k8s.io");
    let mut w = Writer::new(s.try_clone().expect("clone"));
    let mut r = Reader::new(s.try_clone().expect("clone"));
    let p = port.to_string();
    w.syn_stream(
        1,
        &[h("streamType", "error"), h("port", &p), h("requestID", "0")],
        false,
    )
    .expect("error stream");
    w.syn_stream(
        3,
        &[h("streamType", "data"), h("port", &p), h("requestID", "0")],
        false,
    )
    .expect("data stream");
    w.data(3, request, false).expect("send");
    let mut reply = Vec::new();
    let mut error = Vec::new();
    loop {
        match r.read_frame() {
            Ok(Some(Frame::Data {
                stream: 3,
                fin,
                data,
            })) => {
                reply.extend_from_slice(&data);
                if fin {
                    break;
                }
            }
            Ok(Some(Frame::Data {
                stream: 1, data, ..
            })) => error.extend_from_slice(&data),
            Ok(Some(Frame::Ping(id))) => w.ping(id).expect("pong"),
            Ok(Some(Frame::GoAway { .. })) | Ok(None) | Err(_) => break,
            Ok(Some(_)) => {}
        }
    }
    let _ = w.data(3, &[], true);
    let _ = w.goaway(3);
    if reply.is_empty() && !error.is_empty() {
        return Err(String::from_utf8_lossy(&error).into_owned());
    }
    Ok(reply)
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// Opens a websocket to `url` + `query` offering `protocol` (reads time out after 60 s).
fn ws_connect(
    url: &str,
    query: &str,
    protocol: &str,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let ws_url = format!("{}{query}", url.replacen("http://", "ws://", 1));
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        protocol.parse().expect("a header value"),
    );
    let (host, _) = split_url(url);
    let stream = TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    tungstenite::client(req, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => {
            tungstenite::Error::Io(std::io::Error::other("handshake interrupted"))
        }
    })
}

/// Exec or attach over websocket (`v5.channel.k8s.io`): sends `stdin` and closes it (v5's
/// close signal), collects the channels until the server closes.
pub fn websocket_exec(url: &str, stdin: Option<&[u8]>) -> Output {
    let (mut ws, resp) = ws_connect(url, "", "v5.channel.k8s.io").expect("websocket handshake");
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v5.channel.k8s.io")
    );
    if let Some(data) = stdin {
        let mut m = vec![0u8];
        m.extend_from_slice(data);
        ws.send(tungstenite::Message::Binary(m.into()))
            .expect("stdin");
        ws.send(tungstenite::Message::Binary(vec![255u8, 0].into()))
            .expect("close stdin");
    }
    let mut o = Output::default();
    let mut status = Vec::new();
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => match b.first() {
                Some(1) => o.stdout.extend_from_slice(&b[1..]),
                Some(2) => o.stderr.extend_from_slice(&b[1..]),
                Some(3) => status.extend_from_slice(&b[1..]),
                _ => {}
            },
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    o.status = if status.is_empty() {
        serde_json::json!({ "status": "Success" })
    } else {
        serde_json::from_slice(&status).unwrap_or_default()
    };
    o
}

/// Port-forward over websocket with several ports and either framing (`base64`: the
/// `v4.base64.channel.k8s.io` text frames): sends `request` to every port that opened, reads
/// until the server closes; each port's (data, error) as text, channel-opening bytes checked
/// and dropped.
pub fn websocket_port_forward_ports(
    url: &str,
    ports: &[u16],
    base64: bool,
    request: &[u8],
) -> Vec<(String, String)> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let query: Vec<String> = ports.iter().map(|p| format!("port={p}")).collect();
    let protocol = if base64 {
        "v4.base64.channel.k8s.io"
    } else {
        "v4.channel.k8s.io"
    };
    let (mut ws, _) =
        ws_connect(url, &format!("?{}", query.join("&")), protocol).expect("websocket handshake");
    let mut channels: Vec<Vec<u8>> = vec![Vec::new(); ports.len() * 2];
    let mut sent = false;
    loop {
        let (ch, data) = match ws.read() {
            Ok(tungstenite::Message::Binary(b)) if !base64 && !b.is_empty() => {
                (usize::from(b[0]), b[1..].to_vec())
            }
            Ok(tungstenite::Message::Text(t)) if base64 && !t.is_empty() => {
                let b = t.as_bytes();
                let data = b64.decode(&b[1..]).expect("base64 frame");
                (usize::from(b[0] - b'0'), data)
            }
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(other) => panic!("unexpected frame {other:?}"),
        };
        channels[ch].extend_from_slice(&data);
        if !sent && channels.iter().all(|c| c.len() >= 2) {
            for (i, c) in channels.iter().enumerate() {
                assert_eq!(
                    c[..2],
                    ports[i / 2].to_le_bytes(),
                    "channel {i} opens with its port"
                );
            }
            for i in 0..ports.len() {
                let msg = if base64 {
                    tungstenite::Message::Text(
                        format!("{}{}", char::from(b'0' + 2 * i as u8), b64.encode(request)).into(),
                    )
                } else {
                    let mut m = vec![2 * i as u8];
                    m.extend_from_slice(request);
                    tungstenite::Message::Binary(m.into())
                };
                // A port whose dial failed may already be closed on the server's side.
                let _ = ws.send(msg);
            }
            sent = true;
        }
    }
    channels
        .chunks(2)
        .map(|c| {
            let text =
                |v: &Vec<u8>| String::from_utf8_lossy(v.get(2..).unwrap_or_default()).into_owned();
            (text(&c[0]), text(&c[1]))
        })
        .collect()
}

/// Port-forward over websocket (`v4.channel.k8s.io`, the kubelet's port-forward protocol):
/// channel 0 carries `port`'s data and channel 1 its errors, each opened by the server with
/// the port as two little-endian bytes. Sends `request`, reads until the server closes.
pub fn websocket_port_forward(url: &str, port: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let (mut ws, _) = ws_connect(url, &format!("?port={port}"), "v4.channel.k8s.io")
        .map_err(|e| e.to_string())?;
    let mut channels: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut sent = false;
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) if !b.is_empty() && b[0] < 2 => {
                channels[usize::from(b[0])].extend_from_slice(&b[1..]);
                // Both channels announced: the connection is set up, send the request.
                if !sent && channels.iter().all(|c| c.len() >= 2) {
                    for c in &channels {
                        assert_eq!(c[..2], port.to_le_bytes(), "a channel opens with its port");
                    }
                    let mut m = vec![0u8];
                    m.extend_from_slice(request);
                    ws.send(tungstenite::Message::Binary(m.into()))
                        .map_err(|e| e.to_string())?;
                    sent = true;
                }
            }
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let [data, error] = channels;
    let data = data.get(2..).unwrap_or_default().to_vec();
    let error = error.get(2..).unwrap_or_default().to_vec();
    if data.is_empty() && !error.is_empty() {
        return Err(String::from_utf8_lossy(&error).into_owned());
    }
    Ok(data)
}
