//! Decompression on a helper thread, so that inflating a layer overlaps with extracting it.
//!
//! The caller's reader need not be `Send`: the calling thread keeps reading (and counting,
//! hashing) the raw input and ships raw chunks to a decoder thread, which ships decompressed
//! chunks back. Buffers travel back for reuse. To never deadlock, the decoder announces when it
//! is about to wait for input (`NeedInput`); the calling thread only ever blocks on the
//! decoder's output, and answers `NeedInput` by reading more raw input (or by closing the raw
//! channel at end of input).
//!
//! [`Source`] is what `apply` reads: a plain stream, an in-thread decoder (the fallback when a
//! thread cannot be started), or the threaded one. It does not know about tar.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{
    channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError, TrySendError,
};
use std::thread::JoinHandle;

use crate::compression::Decoder;
use crate::{Compression, COPY_BUFFER};

/// Raw and decompressed chunks in flight each way.
const IN_FLIGHT: usize = 4;

/// The uncompressed layer stream, read by the tap.
pub(crate) enum Source<R: Read> {
    Plain(BufReader<R>),
    Inline(Decoder<BufReader<R>>),
    Threaded(Threaded<R>),
}

impl<R: Read> Source<R> {
    pub(crate) fn new(raw: R, c: Compression) -> io::Result<Self> {
        match c {
            Compression::None => Ok(Source::Plain(BufReader::with_capacity(COPY_BUFFER, raw))),
            c => match Threaded::spawn(c, raw) {
                Ok(t) => Ok(Source::Threaded(t)),
                Err(raw) => Ok(Source::Inline(Decoder::new(
                    BufReader::with_capacity(COPY_BUFFER, raw),
                    c,
                )?)),
            },
        }
    }

    /// Reads whatever raw input the decoder left unread (so the blob digest covers it).
    pub(crate) fn drain_raw(self) -> io::Result<u64> {
        let sink = &mut io::sink();
        match self {
            Source::Plain(mut r) => io::copy(&mut r, sink),
            Source::Inline(d) => io::copy(&mut d.into_input(), sink),
            Source::Threaded(mut t) => {
                t.shutdown();
                match t.raw.take() {
                    Some(mut raw) => io::copy(&mut raw, sink),
                    None => Ok(0),
                }
            }
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Inline(r) => r.read(buf),
            Source::Threaded(r) => r.read(buf),
        }
    }
}

/// Messages from the decoder thread.
enum Msg {
    Data(Vec<u8>),
    NeedInput,
    Err(io::Error),
}

/// The calling thread's end of a threaded decoder.
pub(crate) struct Threaded<R> {
    raw: Option<R>,
    /// `None` once the raw input ended (the decoder then sees end of input).
    raw_tx: Option<SyncSender<Vec<u8>>>,
    /// A raw chunk read but not yet accepted by the channel.
    pending: Option<Vec<u8>>,
    free_raw: Receiver<Vec<u8>>,
    out_rx: Option<Receiver<Msg>>,
    free_out: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    worker: Option<JoinHandle<()>>,
}

impl<R: Read> Threaded<R> {
    /// Starts a decoder thread for `raw`; gives `raw` back if the thread cannot be started.
    fn spawn(c: Compression, raw: R) -> Result<Threaded<R>, R> {
        let (raw_tx, raw_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (free_raw_tx, free_raw) = channel::<Vec<u8>>();
        let (out_tx, out_rx) = sync_channel::<Msg>(IN_FLIGHT);
        let (free_out, free_out_rx) = channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("strata-decompress".into())
            .spawn(move || {
                let input = ChannelReader {
                    rx: raw_rx,
                    free: free_raw_tx,
                    notify: out_tx.clone(),
                    cur: Vec::new(),
                    pos: 0,
                };
                decode(c, input, out_tx, free_out_rx)
            });
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a decompression thread; decompressing inline");
                return Err(raw);
            }
        };
        Ok(Threaded {
            raw: Some(raw),
            raw_tx: Some(raw_tx),
            pending: None,
            free_raw,
            out_rx: Some(out_rx),
            free_out,
            cur: Vec::new(),
            pos: 0,
            done: false,
            worker: Some(worker),
        })
    }
}

impl<R> Threaded<R> {
    /// Stops the decoder thread and waits for it.
    fn shutdown(&mut self) {
        self.raw_tx = None;
        self.out_rx = None;
        if let Some(w) = self.worker.take() {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl<R> Drop for Threaded<R> {
    fn drop(&mut self) {
        self.raw_tx = None;
        self.out_rx = None;
        if let Some(w) = self.worker.take() {
            // Both channels are closed, so the thread ends promptly; a panic there is moot now.
            let _ = w.join();
        }
    }
}

impl<R: Read> Threaded<R> {
    /// Keeps the raw channel full: reads raw chunks and hands them over without blocking.
    fn feed(&mut self) -> io::Result<()> {
        for _ in 0..IN_FLIGHT {
            let Some(tx) = &self.raw_tx else {
                return Ok(());
            };
            let chunk = match self.pending.take() {
                Some(c) => c,
                None => {
                    let Some(raw) = self.raw.as_mut() else {
                        return Ok(());
                    };
                    let mut chunk = self.free_raw.try_recv().unwrap_or_default();
                    chunk.resize(COPY_BUFFER, 0);
                    let n = loop {
                        match raw.read(&mut chunk) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            other => break other?,
                        }
                    };
                    if n == 0 {
                        self.raw_tx = None; // end of input
                        return Ok(());
                    }
                    chunk.truncate(n);
                    chunk
                }
            };
            match tx.try_send(chunk) {
                Ok(()) => {}
                Err(TrySendError::Full(c)) => {
                    self.pending = Some(c);
                    return Ok(());
                }
                // The decoder finished (or failed; its message is on the way).
                Err(TrySendError::Disconnected(_)) => {
                    self.raw_tx = None;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.feed()?;
            let Some(rx) = &self.out_rx else { return Ok(0) };
            match rx.recv() {
                Ok(Msg::Data(chunk)) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    self.pos = 0;
                    // The decoder may be gone already; the buffer is then simply freed.
                    let _ = self.free_out.send(old);
                }
                Ok(Msg::NeedInput) => {}
                Ok(Msg::Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
    }
}

/// The decoder thread: decompresses raw chunks into output chunks until end of input.
fn decode(c: Compression, input: ChannelReader, out: SyncSender<Msg>, free: Receiver<Vec<u8>>) {
    let mut dec = match Decoder::new(input, c) {
        Ok(d) => d,
        Err(e) => {
            let _ = out.send(Msg::Err(e));
            return;
        }
    };
    loop {
        let mut chunk = free.try_recv().unwrap_or_default();
        chunk.resize(COPY_BUFFER, 0);
        let mut filled = 0;
        while filled < chunk.len() {
            match dec.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if filled > 0 {
                        chunk.truncate(filled);
                        if out.send(Msg::Data(chunk)).is_err() {
                            return;
                        }
                    }
                    let _ = out.send(Msg::Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return; // end of stream: dropping `out` tells the reader
        }
        chunk.truncate(filled);
        if out.send(Msg::Data(chunk)).is_err() {
            return; // the reader went away
        }
    }
}

/// The decoder thread's view of the raw input.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    free: Sender<Vec<u8>>,
    notify: SyncSender<Msg>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.cur.len() {
            let next = match self.rx.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    // Ask for input before waiting for it (see the module docs).
                    if self.notify.send(Msg::NeedInput).is_err() {
                        return Ok(&[]);
                    }
                    self.rx.recv().ok()
                }
            };
            match next {
                Some(c) => {
                    let old = std::mem::replace(&mut self.cur, c);
                    self.pos = 0;
                    let _ = self.free.send(old);
                }
                None => return Ok(&[]),
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data() -> Vec<u8> {
        (0..3_000_000u32)
            .flat_map(|i| (i / 7).to_le_bytes())
            .collect()
    }

    #[test]
    fn threaded_decoding_matches_the_input() {
        let data = data();
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut w = crate::compressor(Vec::new(), c).unwrap();
            w.write_all(&data).unwrap();
            let z = w.finish().unwrap();
            let mut src = Source::new(&z[..], c).unwrap();
            assert!(matches!(src, Source::Threaded(_)));
            let mut out = Vec::new();
            // Small reads, as the tar parser does.
            let mut buf = [0u8; 512];
            loop {
                let n = src.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert!(out == data, "{c}");
            assert_eq!(src.drain_raw().unwrap(), 0);
        }
    }

    #[test]
    fn decoder_errors_surface_and_threads_end() {
        let mut z = crate::compressor(Vec::new(), Compression::Gzip).unwrap();
        z.write_all(&data()).unwrap();
        let z = z.finish().unwrap();
        let cut = &z[..z.len() / 2];
        let mut src = Source::new(cut, Compression::Gzip).unwrap();
        let err = io::copy(&mut src, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        drop(src);

        // Dropping early (an apply that failed) must not hang.
        let src = Source::new(&z[..], Compression::Gzip).unwrap();
        drop(src);
    }
}
