//! Loading one plugin file: permission checks, `dlopen`, and checking its entry table.
//!
//! This is one of the few modules allowed `unsafe` (CONVENTIONS.md): loading foreign code and
//! reading a C table cannot be done otherwise. Each block says why it is sound.
#![allow(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_plugin_api::abi::{EntryFn, PluginEntry, RawCommand, RunFn, ABI_MAJOR, ENTRY_SYMBOL};

use super::{CommandInfo, Plugin};

/// A loaded plugin's run function. The library is never unloaded, so it stays valid.
#[derive(Clone, Copy)]
pub(crate) struct Runner(pub(crate) RunFn);

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

/// Checks and loads `path`. The error is the one-line reason it was refused.
pub(crate) fn load(path: &Path) -> Result<Plugin, String> {
    check_permissions(path)?;
    // SAFETY: loading a library runs its initialisers. The file passed the ownership and
    // permission checks above (only its owner, root or the user, can have written it), which
    // is the same trust the strata binary itself gets.
    let lib =
        unsafe { libloading::Library::new(path) }.map_err(|e| format!("cannot load it: {e}"))?;
    // SAFETY: the symbol's type is the ABI's EntryFn; a library exporting the name with
    // another type is not a strata plugin, and reading its table is guarded by the version
    // and size checks below.
    let entry_fn: EntryFn = match unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) } {
        Ok(sym) => *sym,
        Err(_) => {
            return Err(format!(
            "missing symbol {ENTRY_SYMBOL} (not a strata plugin, or built without export_plugin!)"
        ))
        }
    };
    // SAFETY: calling the plugin's entry function, which takes no arguments and returns a
    // pointer to static data.
    let entry = unsafe { entry_fn() };
    if entry.is_null() {
        return Err(format!("{ENTRY_SYMBOL} returned no entry table"));
    }
    // Read the version and size first: they are at the same offsets in every ABI version.
    // SAFETY: entry is non-null and points to at least the first two u32 and a usize of the
    // table (every ABI version starts with abi_major, abi_minor, size).
    let (major, size) = unsafe {
        let p = entry as *const u8;
        (
            std::ptr::read_unaligned(p as *const u32),
            std::ptr::read_unaligned(p.add(8) as *const usize),
        )
    };
    if major != ABI_MAJOR {
        return Err(format!(
            "built for plugin ABI {major}, this strata speaks ABI {ABI_MAJOR}; rebuild the plugin against strata-plugin-api {ABI_MAJOR}.x"
        ));
    }
    let want = std::mem::size_of::<PluginEntry>();
    if size < want {
        return Err(format!(
            "truncated entry table ({size} bytes, ABI {ABI_MAJOR} needs {want})"
        ));
    }
    // SAFETY: same major version and at least our size: the table has our layout.
    let entry: &PluginEntry = unsafe { &*entry };
    let run = entry
        .run
        .ok_or_else(|| "the entry table has no run function".to_owned())?;
    // SAFETY: the strings and the command array are static data of the plugin (ABI rules).
    let text = |s: &strata_plugin_api::abi::RawStr, what: &str| {
        unsafe { s.as_str() }
            .map(str::to_owned)
            .ok_or_else(|| format!("its {what} is not valid UTF-8"))
    };
    let name = text(&entry.name, "name")?;
    let version = text(&entry.version, "version")?;
    if entry.command_count > 0 && entry.commands.is_null() {
        return Err("its command table is missing".into());
    }
    let raw: &[RawCommand] = if entry.command_count == 0 {
        &[]
    } else {
        // SAFETY: non-null, command_count elements of static data (ABI rules).
        unsafe { std::slice::from_raw_parts(entry.commands, entry.command_count) }
    };
    let mut commands = Vec::with_capacity(raw.len());
    for c in raw {
        let cname = text(&c.name, "command name")?;
        if !valid_command_name(&cname) {
            return Err(format!(
                "invalid command name {cname:?} (lowercase letters, digits and dashes)"
            ));
        }
        commands.push(CommandInfo {
            name: cname,
            about: text(&c.about, "command description")?,
        });
    }
    if name.is_empty() || !valid_command_name(&name) {
        return Err(format!("invalid plugin name {name:?}"));
    }
    // Plugins stay loaded for the life of the process (see the module docs).
    std::mem::forget(lib);
    Ok(Plugin {
        name,
        version,
        path: path.to_owned(),
        commands,
        run: Runner(run),
    })
}

fn valid_command_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Refuses files anyone but their owner could have changed, and files owned by someone other
/// than root, the current user or the owner of the strata binary itself (trusted as much as
/// the binary: whoever owns it controls this process anyway). The last one matters in the
/// rootless user namespace, where root's files show as the overflow uid (65534).
fn check_permissions(path: &Path) -> Result<(), String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve it: {e}"))?;
    let me = rustix::process::geteuid().as_raw();
    let exe_owner = std::fs::metadata("/proc/self/exe").map(|m| m.uid()).ok();
    for (what, p) in [
        ("file", real.as_path()),
        ("directory", real.parent().unwrap_or(Path::new("/"))),
    ] {
        let m = std::fs::metadata(p).map_err(|e| format!("cannot stat {}: {e}", p.display()))?;
        if m.mode() & 0o022 != 0 {
            return Err(format!(
                "its {what} {} is group- or world-writable (mode {:o}); fix with chmod go-w",
                p.display(),
                m.mode() & 0o7777
            ));
        }
        if m.uid() != 0 && m.uid() != me && Some(m.uid()) != exe_owner {
            return Err(format!(
                "its {what} {} is owned by uid {}, neither root nor you",
                p.display(),
                m.uid()
            ));
        }
    }
    Ok(())
}
