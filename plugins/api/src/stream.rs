//! Streams across the boundary: [`RawReader`] from and to `std::io::Read`.
//!
//! A stream is read by calling back into the side that made it, so bytes are copied once,
//! straight into the reader's buffer, as with any `Read`. Either side may make a stream and
//! either may consume it; the consumer calls `drop` exactly once.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{RawReader, RawSink};

type BoxedRead = Box<dyn Read + Send>;

/// Wraps a Rust reader as a [`RawReader`] the other side can consume.
pub fn export_reader(r: BoxedRead) -> RawReader {
    let ctx = Box::into_raw(Box::new(r)) as *mut c_void;
    RawReader {
        ctx,
        read: Some(read_boxed),
        drop: Some(drop_boxed),
    }
}

/// [`export_reader`] for a reader that borrows: the lifetime is erased.
///
/// # Safety
/// The consumer must drop the stream (call its `drop`) while `'a` is still alive. The ABI
/// guarantees this for input streams: the host drops them before the call returns.
pub unsafe fn export_scoped_reader<'a>(r: Box<dyn Read + Send + 'a>) -> RawReader {
    // SAFETY: only the lifetime changes (same layout); the caller guarantees the stream is
    // dropped before 'a ends.
    let r: BoxedRead = unsafe {
        std::mem::transmute::<Box<dyn Read + Send + 'a>, Box<dyn Read + Send + 'static>>(r)
    };
    export_reader(r)
}

unsafe extern "C" fn read_boxed(
    ctx: *mut c_void,
    buf: *mut u8,
    len: usize,
    err: *const RawSink,
) -> isize {
    // SAFETY: ctx came from export_reader (a Box<BoxedRead>) and is not yet dropped; the
    // consumer guarantees buf has len writable bytes and uses the reader from one thread at
    // a time.
    let r = unsafe { &mut *(ctx as *mut BoxedRead) };
    let out = if len == 0 || buf.is_null() {
        &mut [][..]
    } else {
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts_mut(buf, len) }
    };
    let res = catch_unwind(AssertUnwindSafe(|| loop {
        match r.read(out) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    }));
    match res {
        Ok(Ok(n)) => n as isize,
        Ok(Err(e)) => {
            // SAFETY: err is null or a valid sink for this call.
            unsafe { sink_str(err, &e.to_string()) };
            -1
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { sink_str(err, "the stream's reader panicked") };
            -1
        }
    }
}

unsafe extern "C" fn drop_boxed(ctx: *mut c_void) {
    if !ctx.is_null() {
        // SAFETY: ctx came from Box::into_raw in export_reader and is dropped only once.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(ctx as *mut BoxedRead) })
        }));
    }
}

/// Writes `s` into a sink (if any).
///
/// # Safety
/// `sink` must be null or point to a valid [`RawSink`] for the duration of the call.
pub unsafe fn sink_str(sink: *const RawSink, s: &str) {
    if let Some(sink) = unsafe { sink.as_ref() } {
        // SAFETY: the sink's contract: write may be called with any byte slice.
        unsafe { (sink.write)(sink.ctx, s.as_ptr(), s.len()) };
    }
}

/// A sink that appends to a `Vec<u8>`; pass `&mut vec` as `ctx`.
pub fn vec_sink(v: &mut Vec<u8>) -> RawSink {
    RawSink {
        ctx: v as *mut Vec<u8> as *mut c_void,
        write: write_vec,
    }
}

unsafe extern "C" fn write_vec(ctx: *mut c_void, ptr: *const u8, len: usize) {
    if ctx.is_null() || ptr.is_null() {
        return;
    }
    // SAFETY: ctx is the &mut Vec<u8> given to vec_sink, alive for the call; ptr/len are the
    // caller's readable bytes.
    unsafe { (*(ctx as *mut Vec<u8>)).extend_from_slice(std::slice::from_raw_parts(ptr, len)) };
}

/// Consumes a [`RawReader`] made by the other side as a Rust reader. Dropping it calls the
/// stream's `drop`.
#[derive(Debug)]
pub struct ImportedReader {
    raw: RawReader,
}

// SAFETY: the ABI requires streams to be usable from any one thread at a time (the maker
// promises it by construction: export_reader only takes Send readers, and the host does the
// same).
unsafe impl Send for ImportedReader {}

impl ImportedReader {
    /// Takes ownership of `raw`.
    ///
    /// # Safety
    /// `raw` must be a reader filled in by the other side per the ABI, not yet dropped.
    pub unsafe fn new(raw: RawReader) -> ImportedReader {
        ImportedReader { raw }
    }
}

impl Read for ImportedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(read) = self.raw.read else {
            return Ok(0);
        };
        let mut err = Vec::new();
        let sink = vec_sink(&mut err);
        // SAFETY: raw is a live reader per ImportedReader::new; buf is writable for its len.
        let n = unsafe { read(self.raw.ctx, buf.as_mut_ptr(), buf.len(), &sink) };
        if n < 0 {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&err).into_owned(),
            ));
        }
        Ok((n as usize).min(buf.len()))
    }
}

impl Drop for ImportedReader {
    fn drop(&mut self) {
        if let Some(d) = self.raw.drop.take() {
            // SAFETY: the stream is dropped exactly once, here.
            unsafe { d(self.raw.ctx) };
        }
    }
}
