//! `hello`: an example third-party plugin for strata. `strata hello [NAME]` greets, lists the
//! store's images through the host (`--images`), logs through the host (`--log`), and can
//! panic on purpose (`--panic`) to show that panics do not cross into the host. It also
//! drives the store methods of plugin ABI 1.4, each printing the host's reply as JSON:
//! `--import-layer FILE [PARENT]`, `--set-metadata CONTAINER KEY JSON`, `--containers-with
//! KEY`, `--images-full`.

use strata_plugin_api::store::{ContainerFilter, ImageFilter, ImportLayerRequest};
use strata_plugin_api::{CallError, Command, ErrorKind, Host, Outcome};

fn print<T: serde::Serialize>(r: Result<T, CallError>) -> Outcome {
    match r {
        Ok(v) => {
            println!("{}", serde_json::to_string(&v).expect("a reply serialises"));
            Outcome::Ok
        }
        Err(e) => Outcome::Error {
            kind: e.kind,
            message: e.message,
        },
    }
}

/// The 1.4 store methods, one per option.
fn protocol(host: &Host, args: &[String]) -> Option<Outcome> {
    let store = host.store();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    Some(match args.first()?.as_str() {
        "--import-layer" => {
            let file = match std::fs::File::open(arg(1)) {
                Ok(f) => f,
                Err(e) => {
                    return Some(Outcome::Error {
                        kind: ErrorKind::InvalidArgument,
                        message: format!("open {}: {e}", arg(1)),
                    })
                }
            };
            let request = ImportLayerRequest {
                parent: args.get(2).cloned(),
                diff_id: None,
            };
            print(store.import_layer(&request, Box::new(file)))
        }
        "--set-metadata" => {
            let value = serde_json::from_str(&arg(3)).unwrap_or(serde_json::Value::Null);
            print(store.set_metadata(&arg(1), &arg(2), value))
        }
        "--containers-with" => print(
            store
                .containers_where(&ContainerFilter {
                    metadata_keys: vec![arg(1)],
                    ..ContainerFilter::default()
                })
                .map(|all| all.into_iter().map(|c| c.name).collect::<Vec<_>>()),
        ),
        "--images-full" => print(store.images_where(&ImageFilter::default())),
        _ => return None,
    })
}

fn run(host: &Host, command: &str, args: &[String]) -> Outcome {
    if let Some(outcome) = protocol(host, args) {
        return outcome;
    }
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
