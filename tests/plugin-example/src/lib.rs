//! `hello`: an example third-party plugin for strata. `strata hello [NAME]` greets, lists the
//! store's images through the host (`--images`), logs through the host (`--log`), and can
//! panic on purpose (`--panic`) to show that panics do not cross into the host.

use strata_plugin_api::{Command, ErrorKind, Host, Outcome};

fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
    let mut name = "world".to_owned();
    for a in args {
        match a.as_str() {
            "--panic" => panic!("asked to panic"),
            "--log" => tracing::warn!(answer = 42, "a warning from the hello plugin"),
            "--images" => match host.store().images() {
                Ok(images) => {
                    println!("{} images", images.len());
                    for i in images {
                        println!("{} {}", i.id, i.names.join(","));
                    }
                }
                Err(e) => {
                    return Outcome::Error {
                        kind: e.kind,
                        message: format!("cannot list images: {e}"),
                    }
                }
            },
            "--fail" => {
                return Outcome::Error {
                    kind: ErrorKind::NotFound,
                    message: "nothing to greet".into(),
                }
            }
            other if other.starts_with('-') => {
                return Outcome::Error {
                    kind: ErrorKind::InvalidArgument,
                    message: format!("unknown option {other}"),
                }
            }
            other => name = other.to_owned(),
        }
    }
    println!(
        "hello, {name}, from the {command} command of plugin {}",
        plugin_name()
    );
    Outcome::Ok
}

fn plugin_name() -> &'static str {
    if cfg!(feature = "duplicate") {
        "hello-two"
    } else {
        "hello"
    }
}

#[cfg(not(any(feature = "wrong-abi", feature = "truncated")))]
strata_plugin_api::export_plugin! {
    name: plugin_name(),
    version: env!("CARGO_PKG_VERSION"),
    commands: [Command { name: "hello", about: "Greet (an example plugin)" }],
    run: run,
}

/// Hand-made entry tables for the host's refusal tests.
#[cfg(any(feature = "wrong-abi", feature = "truncated"))]
mod broken {
    use strata_plugin_api::abi::{PluginEntry, RawStr, ABI_MAJOR, ABI_MINOR};

    static ENTRY: PluginEntry = PluginEntry {
        abi_major: if cfg!(feature = "wrong-abi") {
            99
        } else {
            ABI_MAJOR
        },
        abi_minor: ABI_MINOR,
        size: if cfg!(feature = "truncated") {
            16
        } else {
            std::mem::size_of::<PluginEntry>()
        },
        name: RawStr::new("hello"),
        version: RawStr::new("0.1.0"),
        commands: std::ptr::null(),
        command_count: 0,
        run: None,
    };

    #[no_mangle]
    pub extern "C" fn strata_plugin_entry() -> *const PluginEntry {
        &ENTRY
    }

    #[allow(dead_code)]
    fn unused() {
        let _ = super::run;
    }
}
