//! sha256 on a helper thread, so hashing a layer overlaps with decompressing and extracting it.
//!
//! [`HashPipe::update`] copies bytes into 1 MiB chunks and hands full chunks to a worker
//! thread over a bounded channel (the worker sends emptied chunks back for reuse, so steady
//! state allocates nothing). On a machine where sha256 runs at ~1.2 GB/s this takes one full
//! hashing pass off the extracting thread. If the thread cannot be started, hashing happens
//! inline. It computes nothing but sha256.

use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use strata_types::{Digest, Hasher};

const CHUNK: usize = 256 << 10;
/// Chunks in flight before `update` waits for the worker.
const IN_FLIGHT: usize = 4;

/// A streaming sha256 computed on a helper thread.
#[derive(Debug)]
pub(crate) struct HashPipe {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Threaded {
        buf: Vec<u8>,
        tx: SyncSender<Vec<u8>>,
        back: Receiver<Vec<u8>>,
        worker: JoinHandle<Digest>,
    },
    Inline(Hasher),
}

impl HashPipe {
    pub(crate) fn new() -> HashPipe {
        let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (back_tx, back) = channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("strata-sha256".into())
            .spawn(move || {
                let mut h = Hasher::new();
                for mut chunk in rx {
                    h.update(&chunk);
                    chunk.clear();
                    // The pipe may be gone already (finished or dropped): nothing to recycle.
                    let _ = back_tx.send(chunk);
                }
                h.finish()
            });
        let inner = match spawned {
            Ok(worker) => Inner::Threaded {
                buf: Vec::with_capacity(CHUNK),
                tx,
                back,
                worker,
            },
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a hashing thread; hashing inline");
                Inner::Inline(Hasher::new())
            }
        };
        HashPipe { inner }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        match &mut self.inner {
            Inner::Inline(h) => h.update(data),
            Inner::Threaded { buf, tx, back, .. } => {
                while !data.is_empty() {
                    let n = (CHUNK - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if buf.len() == CHUNK {
                        let next = back
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                        let full = std::mem::replace(buf, next);
                        if let Err(lost) = tx.send(full) {
                            // The worker is gone, which only a panic can cause: re-raise it.
                            drop(lost);
                            self.rethrow();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn rethrow(&mut self) {
        let inner = std::mem::replace(&mut self.inner, Inner::Inline(Hasher::new()));
        if let Inner::Threaded { worker, .. } = inner {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// The digest of everything passed to `update`.
    pub(crate) fn finish(self) -> Digest {
        match self.inner {
            Inner::Inline(h) => h.finish(),
            Inner::Threaded {
                buf, tx, worker, ..
            } => {
                if !buf.is_empty() {
                    // A send error means the worker panicked; join below re-raises it.
                    let _ = tx.send(buf);
                }
                drop(tx);
                match worker.join() {
                    Ok(d) => d,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn equals_a_one_shot_digest() {
        let data: Vec<u8> = (0..3 * CHUNK + 12345).map(|i| (i % 251) as u8).collect();
        let mut p = HashPipe::new();
        for piece in data.chunks(77_777) {
            p.update(piece);
        }
        assert_eq!(p.finish(), Digest::of(&data));
        assert_eq!(HashPipe::new().finish(), Digest::of(b""));
    }
}
