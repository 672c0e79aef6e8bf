//! The host side of the ABI: the [`HostTable`] handed to a plugin's `run`, and its two entry
//! points (`log`, `call`). Calls are dispatched to [`super::methods`].
//!
//! One of the few modules allowed `unsafe` (CONVENTIONS.md): it receives raw pointers from
//! plugins. Each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use strata_plugin_api::abi::{
    HostTable, RawOpener, RawReader, RawSink, RawStr, ABI_MAJOR, ABI_MINOR,
};
use strata_plugin_api::stream::{sink_str, vec_sink, ImportedReader};
use strata_plugin_api::ErrorKind;

use super::methods::{self, HostCtx};
use super::Plugin;
use crate::config::Settings;

/// Runs `command` of `plugin` with `args`; returns the exit code.
pub fn run_command(settings: &Settings, plugin: &Plugin, command: &str, args: &[String]) -> i32 {
    let mut ctx = HostCtx::new(settings.clone());
    let table = HostTable {
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        size: std::mem::size_of::<HostTable>(),
        ctx: &mut ctx as *mut HostCtx as *mut c_void,
        log: host_log,
        call: host_call,
    };
    let argv: Vec<RawStr> = args.iter().map(|a| RawStr::new(a)).collect();
    let _span = tracing::debug_span!("plugin", plugin = %plugin.name, command).entered();
    // SAFETY: the plugin passed load()'s checks; the table, ctx, command and argv live until
    // run returns, which is all the ABI promises the plugin.
    unsafe { (plugin.run.0)(&table, RawStr::new(command), argv.as_ptr(), argv.len()) }
}

unsafe extern "C" fn host_log(ctx: *mut c_void, level: u32, target: RawStr, message: RawStr) {
    let _ = ctx;
    let _ = catch_unwind(|| {
        // SAFETY: the plugin passes strings valid for the call (ABI rules).
        let target = unsafe { target.as_str() }.unwrap_or("plugin");
        // SAFETY: as above.
        let message = unsafe { message.as_str() }.unwrap_or("(message not UTF-8)");
        match level {
            1 => tracing::error!(target: "plugin", source = target, "{message}"),
            2 => tracing::warn!(target: "plugin", source = target, "{message}"),
            3 => tracing::info!(target: "plugin", source = target, "{message}"),
            4 => tracing::debug!(target: "plugin", source = target, "{message}"),
            _ => tracing::trace!(target: "plugin", source = target, "{message}"),
        }
    });
}

unsafe extern "C" fn host_call(
    ctx: *mut c_void,
    method: RawStr,
    request: RawStr,
    input: *const RawOpener,
    output: *mut RawReader,
    reply: *const RawSink,
) -> u32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: ctx is the HostCtx run_command made, alive during run; HostCtx is Sync.
        let ctx = unsafe { &*(ctx as *const HostCtx) };
        // SAFETY: the plugin passes strings valid for the call.
        let (Some(method), Some(request)) =
            (unsafe { method.as_str() }, unsafe { request.as_str() })
        else {
            return Err((
                ErrorKind::InvalidArgument,
                "method or request is not UTF-8".to_owned(),
            ));
        };
        // SAFETY: input is null or an opener valid for the call (ABI rules).
        let opener = unsafe { input.as_ref() }.map(|raw| RemoteOpener { raw });
        // SAFETY: output is null or a reader slot valid for the call.
        let output = unsafe { output.as_mut() };
        methods::dispatch(ctx, method, request, opener.as_ref(), output)
    }));
    let (code, text) = match result {
        Ok(Ok(json)) => (0, json),
        Ok(Err((kind, message))) => (kind as u32, message),
        Err(_) => (
            ErrorKind::Internal as u32,
            "strata panicked while serving a plugin call (a bug; please report it)".to_owned(),
        ),
    };
    // SAFETY: reply is null or a valid sink for the call.
    unsafe { sink_str(reply, &text) };
    code
}

/// A plugin's stream opener, callable from the store's import threads during the call.
pub(crate) struct RemoteOpener<'a> {
    raw: &'a RawOpener,
}

// SAFETY: the ABI requires openers to be callable from several threads at once during the
// call (the plugin API only builds them from Send + Sync closures).
unsafe impl Send for RemoteOpener<'_> {}
// SAFETY: as above.
unsafe impl Sync for RemoteOpener<'_> {}

impl RemoteOpener<'_> {
    /// Opens stream `index`.
    pub(crate) fn open(&self, index: usize) -> Result<ImportedReader, (ErrorKind, String)> {
        let mut out = RawReader::empty();
        let mut err = Vec::new();
        let sink = vec_sink(&mut err);
        // SAFETY: the opener is valid during the call; out and sink live across it.
        let code = unsafe { (self.raw.open)(self.raw.ctx, index, &mut out, &sink) };
        // SAFETY: out is empty or a reader the plugin filled; either way we own it now.
        let reader = unsafe { ImportedReader::new(out) };
        if code != 0 {
            return Err((
                ErrorKind::from_code(code),
                String::from_utf8_lossy(&err).into_owned(),
            ));
        }
        Ok(reader)
    }
}
