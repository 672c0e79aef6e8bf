//! The plugin's view of the host: [`Host`] (logging, raw calls) and [`StoreClient`] (typed
//! store methods), plus the `run` trampoline [`crate::export_plugin!`] expands to.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::abi::{HostTable, RawOpener, RawReader, RawSink, RawStr, ABI_MAJOR};
use crate::store::{self, Empty};
use crate::stream::{sink_str, vec_sink, ImportedReader};
use crate::{ErrorKind, Outcome};

/// The host, as handed to a plugin's `run`. Cheap to copy; valid for the duration of `run`
/// (including threads the plugin joins before returning).
#[derive(Debug, Clone, Copy)]
pub struct Host {
    table: &'static HostTable,
}

// SAFETY: the host's table and its functions are thread-safe by the ABI's contract (the host
// serialises what needs it); the table outlives run().
unsafe impl Send for Host {}
// SAFETY: as above.
unsafe impl Sync for Host {}

/// A host call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

/// Opens layer `i`'s stream for an import. The streams may borrow from the caller: the host
/// drops every input stream before the call returns (abi docs).
pub type LayerOpener<'a> =
    dyn Fn(usize) -> Result<Box<dyn Read + Send + 'a>, CallError> + Send + Sync + 'a;

impl Host {
    /// Logs into the host's log. `level`: 1 error, 2 warn, 3 info, 4 debug, 5 trace.
    pub fn log(&self, level: u32, target: &str, message: &str) {
        // SAFETY: the table's log function accepts any strings for the call's duration.
        unsafe {
            (self.table.log)(
                self.table.ctx,
                level,
                RawStr::new(target),
                RawStr::new(message),
            )
        }
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(3, "plugin", message);
    }

    /// The host's store.
    pub fn store(&self) -> StoreClient {
        StoreClient { host: *self }
    }

    /// The ABI minor version the host reports in its table.
    pub fn abi_minor(&self) -> u32 {
        self.table.abi_minor
    }

    /// The ABI minor version whose store methods may be called (see [`store::METHODS`]).
    /// Hosts before 1.4 reported 0 whatever they served, so a report below 4 means "up to
    /// 1.3": those hosts answer a method they lack with `Unsupported` themselves.
    pub fn served_minor(&self) -> u32 {
        match self.table.abi_minor {
            m if m < 4 => 3,
            m => m,
        }
    }

    /// Calls a host method with a JSON request and returns the JSON reply.
    pub fn call<Req: Serialize, Rep: DeserializeOwned>(
        &self,
        method: &str,
        request: &Req,
        input: Option<&LayerOpener<'_>>,
        output: Option<&mut Option<ImportedReader>>,
    ) -> Result<Rep, CallError> {
        let req = serde_json::to_string(request).map_err(|e| CallError {
            kind: ErrorKind::Internal,
            message: format!("cannot encode the {method} request: {e}"),
        })?;
        let mut reply = Vec::new();
        let sink = vec_sink(&mut reply);
        let mut opener_ctx: Option<&LayerOpener<'_>> = input;
        let raw_opener = RawOpener {
            ctx: &mut opener_ctx as *mut Option<&LayerOpener<'_>> as *mut c_void,
            open: open_trampoline,
        };
        let mut out = RawReader::empty();
        // SAFETY: every pointer passed lives until call returns; the host does not keep the
        // opener beyond the call (abi docs).
        let code = unsafe {
            (self.table.call)(
                self.table.ctx,
                RawStr::new(method),
                RawStr::new(&req),
                if input.is_some() {
                    &raw_opener
                } else {
                    std::ptr::null()
                },
                if output.is_some() {
                    &mut out
                } else {
                    std::ptr::null_mut()
                },
                &sink,
            )
        };
        if code != 0 {
            // The host may have filled the reader before failing: release it.
            // SAFETY: out is either empty or a valid reader from the host.
            drop(unsafe { ImportedReader::new(out) });
            return Err(CallError {
                kind: ErrorKind::from_code(code),
                message: String::from_utf8_lossy(&reply).into_owned(),
            });
        }
        if let Some(slot) = output {
            // SAFETY: on success the host filled `out` with a live reader (or left it empty).
            *slot = Some(unsafe { ImportedReader::new(out) });
        }
        serde_json::from_slice(&reply).map_err(|e| CallError {
            kind: ErrorKind::Internal,
            message: format!("cannot decode the host's {method} reply: {e}"),
        })
    }
}

unsafe extern "C" fn open_trampoline(
    ctx: *mut c_void,
    index: usize,
    out: *mut RawReader,
    err: *const RawSink,
) -> u32 {
    // SAFETY: ctx is the &mut Option<&LayerOpener> made in Host::call, alive during the call.
    let opener = unsafe { *(ctx as *const Option<&LayerOpener<'_>>) };
    let Some(opener) = opener else {
        // SAFETY: err is a valid sink or null.
        unsafe { sink_str(err, "no input streams were given") };
        return ErrorKind::Internal as u32;
    };
    match catch_unwind(AssertUnwindSafe(|| opener(index))) {
        Ok(Ok(r)) => {
            // SAFETY: out is null or the host's reader slot, valid for this call.
            if let Some(slot) = unsafe { out.as_mut() } {
                // SAFETY: input streams are dropped by the host before the call that asked
                // for them returns (abi docs), so the borrow `r` may hold outlives its use.
                *slot = unsafe { crate::stream::export_scoped_reader(r) };
            }
            0
        }
        Ok(Err(e)) => {
            // SAFETY: as above.
            unsafe { sink_str(err, &e.message) };
            e.kind as u32
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { sink_str(err, "the plugin's stream opener panicked") };
            ErrorKind::Internal as u32
        }
    }
}

/// Typed store methods (see [`crate::store`]).
#[derive(Debug, Clone, Copy)]
pub struct StoreClient {
    host: Host,
}

impl StoreClient {
    /// Calls a store method after checking that the host serves it: a host older than the
    /// method answers `Unsupported` with what to upgrade, instead of misreading the request.
    fn call<Req: Serialize, Rep: DeserializeOwned>(
        &self,
        method: &str,
        request: &Req,
        input: Option<&LayerOpener<'_>>,
        output: Option<&mut Option<ImportedReader>>,
    ) -> Result<Rep, CallError> {
        if let Some(minor) = store::method_minor(method) {
            self.needs(minor, method)?;
        }
        self.host.call(method, request, input, output)
    }

    /// Fails with `Unsupported` unless the host serves ABI `1.minor` (for `what`).
    fn needs(&self, minor: u32, what: &str) -> Result<(), CallError> {
        let served = self.host.served_minor();
        if minor <= served {
            return Ok(());
        }
        Err(CallError {
            kind: ErrorKind::Unsupported,
            message: format!(
                "{what} needs plugin ABI 1.{minor}, and this strata serves 1.{served}; upgrade strata"
            ),
        })
    }

    /// Imports an image; `open(i)` streams layer `i`'s blob when the store needs it (possibly
    /// from several threads at once).
    pub fn import_image(
        &self,
        request: &store::ImportImageRequest,
        open: &LayerOpener<'_>,
    ) -> Result<store::ImportImageReply, CallError> {
        self.call(store::IMPORT_IMAGE, request, Some(open), None)
    }

    pub fn image(&self, name: &str) -> Result<store::ImageInfo, CallError> {
        self.call(
            store::IMAGE,
            &store::ImageRequest {
                name: name.to_owned(),
            },
            None,
            None,
        )
    }

    pub fn images(&self) -> Result<Vec<store::ImageSummary>, CallError> {
        self.call(store::IMAGES, &Empty {}, None, None)
    }

    pub fn info(&self) -> Result<store::StoreInfo, CallError> {
        self.call(store::INFO, &Empty {}, None, None)
    }

    pub fn tag(&self, image: &str, names: &[String]) -> Result<(), CallError> {
        let req = store::TagRequest {
            image: image.to_owned(),
            names: names.to_vec(),
        };
        self.call::<_, Empty>(store::TAG, &req, None, None)?;
        Ok(())
    }

    pub fn untag(&self, name: &str) -> Result<(), CallError> {
        let req = store::ImageRequest {
            name: name.to_owned(),
        };
        self.call::<_, Empty>(store::UNTAG, &req, None, None)?;
        Ok(())
    }

    pub fn remove_image(&self, name: &str) -> Result<store::RemoveImageReply, CallError> {
        let req = store::ImageRequest {
            name: name.to_owned(),
        };
        self.call(store::REMOVE_IMAGE, &req, None, None)
    }

    pub fn create_container(
        &self,
        request: &store::CreateContainerRequest,
    ) -> Result<store::ContainerInfo, CallError> {
        self.call(store::CREATE_CONTAINER, request, None, None)
    }

    pub fn container(&self, name: &str) -> Result<store::ContainerInfo, CallError> {
        self.call(store::CONTAINER, &container_req(name), None, None)
    }

    pub fn containers(&self) -> Result<Vec<store::ContainerInfo>, CallError> {
        self.call(store::CONTAINERS, &Empty {}, None, None)
    }

    /// Mounts the container's root filesystem; returns the mount point.
    pub fn mount(&self, name: &str) -> Result<String, CallError> {
        let r: store::MountReply = self.call(store::MOUNT, &container_req(name), None, None)?;
        Ok(r.path)
    }

    pub fn unmount(&self, name: &str) -> Result<(), CallError> {
        self.call::<_, Empty>(store::UNMOUNT, &container_req(name), None, None)?;
        Ok(())
    }

    pub fn remove_container(&self, name: &str) -> Result<store::ContainerInfo, CallError> {
        self.call(store::REMOVE_CONTAINER, &container_req(name), None, None)
    }

    pub fn commit(&self, container: &str, name: &str) -> Result<store::CommitReply, CallError> {
        let req = store::CommitRequest {
            container: container.to_owned(),
            name: name.to_owned(),
            ..store::CommitRequest::default()
        };
        self.call(store::COMMIT, &req, None, None)
    }

    /// The container's changes as an uncompressed layer tar.
    pub fn diff(&self, container: &str) -> Result<ImportedReader, CallError> {
        let mut out = None;
        let _: Empty = self.call(store::DIFF, &container_req(container), None, Some(&mut out))?;
        out.ok_or_else(|| CallError {
            kind: ErrorKind::Internal,
            message: "the host returned no stream for store.diff".into(),
        })
    }

    /// The paths the container changed relative to its image (`A`/`C`/`D`), sorted by path.
    pub fn changes(&self, container: &str) -> Result<Vec<store::Change>, CallError> {
        self.call(store::CHANGES, &container_req(container), None, None)
    }

    /// Runs the store's garbage collection; returns what it removed.
    pub fn gc(&self) -> Result<store::GcReply, CallError> {
        self.call(store::GC, &Empty {}, None, None)
    }

    /// The layer's uncompressed tar as a stream.
    pub fn export_layer(&self, layer: &str) -> Result<ImportedReader, CallError> {
        let mut out = None;
        let _: Empty = self.call(
            store::EXPORT_LAYER,
            &store::ExportLayerRequest {
                layer: layer.to_owned(),
            },
            None,
            Some(&mut out),
        )?;
        out.ok_or_else(|| CallError {
            kind: ErrorKind::Internal,
            message: "the host returned no stream for store.export_layer".into(),
        })
    }

    /// The containers `filter` selects (1.4).
    pub fn containers_where(
        &self,
        filter: &store::ContainerFilter,
    ) -> Result<Vec<store::ContainerInfo>, CallError> {
        self.needs(4, "filtered store.containers")?;
        let req = store::ContainersRequest {
            filter: filter.clone(),
        };
        self.call(store::CONTAINERS, &req, None, None)
    }

    /// The images `filter` selects, with sizes and digests (1.4).
    pub fn images_where(
        &self,
        filter: &store::ImageFilter,
    ) -> Result<Vec<store::ImageSummary>, CallError> {
        self.needs(4, "filtered store.images")?;
        let req = store::ImagesRequest {
            filter: filter.clone(),
        };
        self.call(store::IMAGES, &req, None, None)
    }

    /// Commits a container as `request` says (names, config, empty layer: 1.4).
    pub fn commit_with(
        &self,
        request: &store::CommitRequest,
    ) -> Result<store::CommitReply, CallError> {
        let new_fields =
            !request.names.is_empty() || request.config.is_some() || request.empty_layer;
        if new_fields {
            self.needs(4, "store.commit with names, a config or an empty layer")?;
        }
        self.call(store::COMMIT, request, None, None)
    }

    /// Imports one layer from `layer` (plain, gzip or zstd tar) on top of `request.parent`
    /// (1.4).
    pub fn import_layer(
        &self,
        request: &store::ImportLayerRequest,
        layer: Box<dyn Read + Send + '_>,
    ) -> Result<store::ImportLayerReply, CallError> {
        let slot = Mutex::new(Some(layer));
        let open = |i: usize| -> Result<Box<dyn Read + Send + '_>, CallError> {
            match (i, slot.lock().unwrap_or_else(|p| p.into_inner()).take()) {
                (0, Some(r)) => Ok(r),
                _ => Err(CallError {
                    kind: ErrorKind::InvalidArgument,
                    message: format!("store.import_layer has one input stream, not {}", i + 1),
                }),
            }
        };
        self.call(store::IMPORT_LAYER, request, Some(&open), None)
    }

    /// Sets (or with `null` removes) one top-level key of a container's metadata (1.4).
    pub fn set_metadata(
        &self,
        container: &str,
        key: &str,
        value: serde_json::Value,
    ) -> Result<store::ContainerInfo, CallError> {
        let req = store::SetMetadataRequest {
            container: container.to_owned(),
            key: key.to_owned(),
            value,
        };
        self.call(store::SET_METADATA, &req, None, None)
    }

    /// The image the build step with `key` produced, if the store still has it (1.5).
    pub fn cache_lookup(&self, key: &str) -> Result<Option<String>, CallError> {
        let req = store::CacheLookupRequest {
            key: key.to_owned(),
        };
        let r: store::CacheLookupReply = self.call(store::CACHE_LOOKUP, &req, None, None)?;
        Ok(r.image)
    }

    /// Records that the build step with `key` produced `image` (1.5).
    pub fn cache_record(&self, key: &str, image: &str) -> Result<(), CallError> {
        let req = store::CacheRecordRequest {
            key: key.to_owned(),
            image: image.to_owned(),
        };
        self.call::<_, Empty>(store::CACHE_RECORD, &req, None, None)?;
        Ok(())
    }
}

fn container_req(name: &str) -> store::ContainerRequest {
    store::ContainerRequest {
        name: name.to_owned(),
    }
}

static CURRENT: Mutex<Option<Host>> = Mutex::new(None);

/// The host of the running command, for the log forwarder.
pub(crate) fn current() -> Option<Host> {
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

#[doc(hidden)]
pub mod private {
    use super::*;

    /// What [`crate::export_plugin!`]'s `run` calls: checks the host table, converts the
    /// arguments, routes logs, catches panics and prints errors.
    ///
    /// # Safety
    /// `host` must point to a valid [`HostTable`] that outlives the call; `argv` to `argc`
    /// valid [`RawStr`]s.
    pub unsafe fn run_trampoline(
        host: *const HostTable,
        command: RawStr,
        argv: *const RawStr,
        argc: usize,
        run: fn(&Host, &str, &[String]) -> Outcome,
    ) -> i32 {
        let result = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the caller's contract.
            let Some(table) = (unsafe { host.as_ref() }) else {
                return fail(ErrorKind::Internal, "the host passed no host table");
            };
            if table.abi_major != ABI_MAJOR || table.size < std::mem::size_of::<HostTable>() {
                return fail(
                    ErrorKind::FailedPrecondition,
                    &format!(
                        "this plugin speaks plugin ABI {ABI_MAJOR}, the host speaks {}",
                        table.abi_major
                    ),
                );
            }
            // SAFETY: the table outlives run (caller's contract); Host is only used within.
            let table: &'static HostTable = unsafe { &*(table as *const HostTable) };
            let h = Host { table };
            // SAFETY: the caller's contract.
            let Some(command) = (unsafe { command.as_str() }) else {
                return fail(ErrorKind::InvalidArgument, "the command name is not UTF-8");
            };
            let mut args = Vec::with_capacity(argc);
            for i in 0..argc {
                // SAFETY: argv has argc elements (caller's contract).
                let raw = unsafe { &*argv.add(i) };
                // SAFETY: as above.
                match unsafe { raw.as_str() } {
                    Some(a) => args.push(a.to_owned()),
                    None => return fail(ErrorKind::InvalidArgument, "an argument is not UTF-8"),
                }
            }
            *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
            crate::logging::install();
            install_panic_hook();
            let outcome = run(&h, command, &args);
            *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = None;
            match outcome {
                Outcome::Ok => 0,
                Outcome::Exit(code) => i32::from(code),
                Outcome::Error { kind, message } => fail(kind, &message),
            }
        }));
        result.unwrap_or_else(|_| {
            *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let what = LAST_PANIC
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default();
            fail(
                ErrorKind::Internal,
                &format!("the plugin panicked{what} (a bug in the plugin; please report it)"),
            )
        })
    }

    static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

    /// Replaces the plugin's default panic output (a multi-line report on stderr) with a
    /// debug event in the host's log; the message becomes part of the one error line.
    fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                if let Some(h) = current() {
                    h.log(4, "panic", &format!("{msg}{at}"));
                }
                *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!(": {msg}{at}"));
            }));
        });
    }

    fn fail(kind: ErrorKind, message: &str) -> i32 {
        let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
        eprintln!("strata: error: {one_line}");
        i32::from(kind.exit_code())
    }
}
