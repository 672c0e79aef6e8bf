//! The attach server: accepting clients on `<state-dir>/attach`, decoding their frames into
//! [`Request`]s, and queueing output frames for them without ever blocking.
//!
//! Each client has a bounded output queue ([`CLIENT_BUFFER_LIMIT`]); a client that falls
//! further behind is dropped rather than allowed to stall the container. A client that sends
//! a malformed frame, or a server-side frame type, is dropped too. What a request does is the
//! event loop's business.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};

use crate::protocol;
use crate::protocol::{FrameDecoder, FrameType, Hello, CLIENT_BUFFER_LIMIT};

use super::trail::Trail;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Stdin(Vec<u8>),
    StdinEof,
    Resize { rows: u16, cols: u16 },
    ReopenLog,
    CleanupDone,
}

/// One connected attach client.
#[derive(Debug)]
pub struct Client {
    id: u64,
    stream: UnixStream,
    decoder: FrameDecoder,
    out: Vec<u8>,
    /// The client said it will run the cleanup itself.
    pub cleanup: bool,
    /// Disconnected or dropped; removed by [`Clients::remove_dead`].
    pub dead: bool,
}

impl Client {
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Queues a frame and tries to send it; drops the client past the buffer limit.
    fn queue(&mut self, frame: &[u8], trail: &Trail) {
        if self.dead {
            return;
        }
        if self.out.len() + frame.len() > CLIENT_BUFFER_LIMIT {
            trail.note(format_args!(
                "attach client {} dropped: more than {CLIENT_BUFFER_LIMIT} bytes of output \
                 waiting for it",
                self.id
            ));
            self.dead = true;
            return;
        }
        self.out.extend_from_slice(frame);
        self.flush();
    }

    /// Sends what the socket takes without blocking.
    pub fn flush(&mut self) {
        while !self.out.is_empty() && !self.dead {
            match self.stream.write(&self.out) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.dead = true,
            }
        }
    }

    /// Reads what is available and decodes it into `requests`; a hello is handled here.
    pub fn receive(&mut self, requests: &mut Vec<Request>, trail: &Trail) {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.dead = true;
                return;
            }
            Ok(n) => self.decoder.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return
            }
            Err(_) => {
                self.dead = true;
                return;
            }
        }
        loop {
            match self.decoder.next_frame() {
                Ok(Some((kind, payload))) => match self.request(kind, &payload) {
                    Ok(Some(request)) => requests.push(request),
                    Ok(None) => {}
                    Err(why) => return self.drop_for(&why, trail),
                },
                Ok(None) => return,
                Err(e) => return self.drop_for(&e.to_string(), trail),
            }
        }
    }

    fn request(&mut self, kind: FrameType, payload: &[u8]) -> Result<Option<Request>, String> {
        Ok(Some(match kind {
            FrameType::Hello => {
                let hello: Hello =
                    serde_json::from_slice(payload).map_err(|e| format!("malformed hello: {e}"))?;
                self.cleanup = hello.cleanup;
                return Ok(None);
            }
            FrameType::Stdin => Request::Stdin(payload.to_vec()),
            FrameType::StdinEof => Request::StdinEof,
            FrameType::Resize => {
                let (rows, cols) = protocol::decode_resize(payload)
                    .ok_or_else(|| format!("resize payload of {} bytes", payload.len()))?;
                Request::Resize { rows, cols }
            }
            FrameType::CleanupDone => Request::CleanupDone,
            FrameType::ReopenLog => Request::ReopenLog,
            FrameType::Stdout | FrameType::Stderr | FrameType::Exit => {
                return Err(format!("client sent a server frame {kind:?}"))
            }
        }))
    }

    fn drop_for(&mut self, why: &str, trail: &Trail) {
        trail.note(format_args!("attach client {} dropped: {why}", self.id));
        self.dead = true;
    }
}

/// The listening socket and its clients.
#[derive(Debug)]
pub struct Clients {
    pub listener: UnixListener,
    pub list: Vec<Client>,
    next_id: u64,
    /// Sent to every client accepted from now on (set once the container has exited).
    exit_frame: Option<Vec<u8>>,
}

impl Clients {
    pub fn new(listener: UnixListener) -> Clients {
        Clients {
            listener,
            list: Vec::new(),
            next_id: 1,
            exit_frame: None,
        }
    }

    /// Clients, with `first` (the launcher's connection, if any) already attached.
    pub fn with_first(listener: UnixListener, first: Option<UnixStream>) -> Clients {
        let mut clients = Clients::new(listener);
        if let Some(stream) = first {
            if stream.set_nonblocking(true).is_ok() {
                clients.push(stream);
            }
        }
        clients
    }

    fn push(&mut self, stream: UnixStream) -> &mut Client {
        self.list.push(Client {
            id: self.next_id,
            stream,
            decoder: FrameDecoder::default(),
            out: Vec::new(),
            cleanup: false,
            dead: false,
        });
        self.next_id += 1;
        self.list.last_mut().expect("just pushed")
    }

    /// Accepts every pending connection.
    pub fn accept_all(&mut self, trail: &Trail) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    trail.note(format_args!("accepting an attach client: {e}"));
                    return;
                }
            };
            if let Err(e) = stream.set_nonblocking(true) {
                trail.note(format_args!("attach client refused: {e}"));
                continue;
            }
            let exit_frame = self.exit_frame.clone();
            let client = self.push(stream);
            if let Some(frame) = &exit_frame {
                client.queue(frame, trail);
            }
        }
    }

    /// Queues a frame for every client.
    pub fn broadcast(&mut self, kind: FrameType, payload: &[u8], trail: &Trail) {
        if self.list.is_empty() {
            return;
        }
        let frame = protocol::encode_frame(kind, payload);
        for client in &mut self.list {
            client.queue(&frame, trail);
        }
    }

    /// Sends the exit frame to every client, now and to those connecting later.
    pub fn broadcast_exit(&mut self, payload: &[u8], trail: &Trail) {
        self.broadcast(FrameType::Exit, payload, trail);
        self.exit_frame = Some(protocol::encode_frame(FrameType::Exit, payload));
    }

    pub fn remove_dead(&mut self) {
        self.list.retain(|c| !c.dead);
    }
}
