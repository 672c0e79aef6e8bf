//! The C ABI: `#[repr(C)]` tables and the function pointer types in them.
//!
//! ```text
//! plugin exports   strata_plugin_entry() -> *const PluginEntry      (static, never freed)
//! host calls       PluginEntry.run(&HostTable, command, argv, argc) -> exit code
//! plugin calls     HostTable.call(ctx, method, request JSON, input opener?, output reader?,
//!                                 reply sink) -> 0 or an ErrorKind code
//!                  HostTable.log(ctx, level, target, message)
//! ```
//!
//! Compatibility rules: the host refuses an entry whose `abi_major` differs from
//! [`ABI_MAJOR`] or whose `size` is smaller than the fields the host reads. Minor versions
//! only append fields; readers check `size` before touching appended ones. Strings are UTF-8
//! (pointer + length, borrowed for the duration of the call, not NUL-terminated).
//!
//! Everything here is plain data; the unsafe conversions live in [`RawStr::as_str`] and the
//! adapters in [`crate::stream`] and the host module.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// The ABI major version this crate speaks. Bump on any incompatible change.
pub const ABI_MAJOR: u32 = 1;
/// The ABI minor version: appended fields and added store methods only. A host's table
/// carries the minor version it serves; a plugin may call the methods of that version and
/// below (see [`crate::store::METHODS`]).
pub const ABI_MINOR: u32 = 5;
/// The exported symbol's name.
pub const ENTRY_SYMBOL: &str = "strata_plugin_entry";

/// The type of the exported `strata_plugin_entry` function.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginEntry;

/// A borrowed UTF-8 string.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawStr {
    pub ptr: *const u8,
    pub len: usize,
}

impl RawStr {
    pub const fn new(s: &str) -> RawStr {
        RawStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The string, or `None` if the pointer is null or the bytes are not UTF-8.
    ///
    /// # Safety
    /// `ptr` must be null or point to `len` readable bytes that outlive `'a`.
    pub unsafe fn as_str<'a>(&self) -> Option<&'a str> {
        if self.ptr.is_null() {
            return if self.len == 0 { Some("") } else { None };
        }
        // SAFETY: the caller guarantees ptr/len describe live, readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes).ok()
    }
}

// SAFETY: a RawStr in a static entry table points to 'static string literals.
unsafe impl Sync for RawStr {}
// SAFETY: as above; the pointee is immutable.
unsafe impl Send for RawStr {}

/// One command a plugin adds.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawCommand {
    pub name: RawStr,
    pub about: RawStr,
}

/// `run(host, command, argv, argc)`: runs `command` with its arguments (not including the
/// command name). Returns the process exit code; on failure the plugin has already printed
/// its one-line `strata: error: ...` message to stderr.
pub type RunFn = unsafe extern "C" fn(
    host: *const HostTable,
    command: RawStr,
    argv: *const RawStr,
    argc: usize,
) -> i32;

/// What `strata_plugin_entry` returns.
#[repr(C)]
#[derive(Debug)]
pub struct PluginEntry {
    pub abi_major: u32,
    pub abi_minor: u32,
    /// `size_of::<PluginEntry>()` as the plugin was built.
    pub size: usize,
    pub name: RawStr,
    pub version: RawStr,
    pub commands: *const RawCommand,
    pub command_count: usize,
    pub run: Option<RunFn>,
}

// SAFETY: the entry is immutable static data; its pointers point to other static data.
unsafe impl Sync for PluginEntry {}
// SAFETY: as above.
unsafe impl Send for PluginEntry {}

/// Receives bytes (a reply, an error message). Called zero or more times.
#[repr(C)]
#[derive(Debug)]
pub struct RawSink {
    pub ctx: *mut c_void,
    pub write: unsafe extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize),
}

/// A byte stream. `read` returns the bytes read (0 at the end) or -1 after writing a message
/// to `err`. `drop` is called exactly once, by whoever holds the reader last.
#[repr(C)]
#[derive(Debug)]
pub struct RawReader {
    pub ctx: *mut c_void,
    pub read: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            buf: *mut u8,
            len: usize,
            err: *const RawSink,
        ) -> isize,
    >,
    pub drop: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
}

impl RawReader {
    /// A reader slot for a callee to fill.
    pub const fn empty() -> RawReader {
        RawReader {
            ctx: std::ptr::null_mut(),
            read: None,
            drop: None,
        }
    }
}

/// Opens numbered input streams on demand (e.g. the layers of an image being imported, each
/// opened only if the store lacks it, possibly from several threads at once). `open` fills
/// `out` and returns 0, or returns an [`crate::ErrorKind`] code after writing to `err`.
#[repr(C)]
#[derive(Debug)]
pub struct RawOpener {
    pub ctx: *mut c_void,
    pub open: unsafe extern "C" fn(
        ctx: *mut c_void,
        index: usize,
        out: *mut RawReader,
        err: *const RawSink,
    ) -> u32,
}

/// What the host hands a plugin's `run`.
#[repr(C)]
#[derive(Debug)]
pub struct HostTable {
    pub abi_major: u32,
    pub abi_minor: u32,
    /// `size_of::<HostTable>()` as the host was built.
    pub size: usize,
    pub ctx: *mut c_void,
    /// Emits a log event into the host's log (`level`: 1 error .. 5 trace).
    pub log: unsafe extern "C" fn(ctx: *mut c_void, level: u32, target: RawStr, message: RawStr),
    /// Calls a host method (see [`crate::store`]). Returns 0 and writes the reply JSON to
    /// `reply`, or returns an [`crate::ErrorKind`] code and writes the error message to
    /// `reply`. `input` (may be null) supplies streams the method reads: the host opens them
    /// only during the call and drops every one before returning. `output` (may be null)
    /// receives a stream the method returns, which the plugin drops when done.
    pub call: unsafe extern "C" fn(
        ctx: *mut c_void,
        method: RawStr,
        request: RawStr,
        input: *const RawOpener,
        output: *mut RawReader,
        reply: *const RawSink,
    ) -> u32,
}

/// Declares the plugin's entry point. See the crate docs for an example.
///
/// `run` is `fn(&Host, &str, &[String]) -> Outcome`. The macro installs a `tracing`
/// subscriber that forwards the plugin's events to the host's log, catches panics, and
/// reports `Outcome::Error` to the host.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        commands: [$($cmd:expr),* $(,)?],
        run: $run:path $(,)?
    ) => {
        const _: () = {
            static COMMANDS: &[$crate::Command] = &[$($cmd),*];
            static RAW_COMMANDS: ::std::sync::OnceLock<::std::vec::Vec<$crate::abi::RawCommand>> =
                ::std::sync::OnceLock::new();
            static ENTRY: ::std::sync::OnceLock<$crate::abi::PluginEntry> =
                ::std::sync::OnceLock::new();

            unsafe extern "C" fn __strata_run(
                host: *const $crate::abi::HostTable,
                command: $crate::abi::RawStr,
                argv: *const $crate::abi::RawStr,
                argc: usize,
            ) -> i32 {
                // SAFETY: the host passes a valid table and argv of argc strings that live
                // for the duration of this call (abi module docs).
                unsafe { $crate::__private::run_trampoline(host, command, argv, argc, $run) }
            }

            #[no_mangle]
            pub extern "C" fn strata_plugin_entry() -> *const $crate::abi::PluginEntry {
                let commands = RAW_COMMANDS.get_or_init(|| {
                    COMMANDS
                        .iter()
                        .map(|c| $crate::abi::RawCommand {
                            name: $crate::abi::RawStr::new(c.name),
                            about: $crate::abi::RawStr::new(c.about),
                        })
                        .collect()
                });
                ENTRY.get_or_init(|| $crate::abi::PluginEntry {
                    abi_major: $crate::abi::ABI_MAJOR,
                    abi_minor: $crate::abi::ABI_MINOR,
                    size: ::std::mem::size_of::<$crate::abi::PluginEntry>(),
                    name: $crate::abi::RawStr::new($name),
                    version: $crate::abi::RawStr::new($version),
                    commands: commands.as_ptr(),
                    command_count: commands.len(),
                    run: Some(__strata_run),
                })
            }
        };
    };
}
