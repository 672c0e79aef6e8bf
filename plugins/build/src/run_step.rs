//! RUN steps: a container made by the engine (the same `Container` `strata run` uses: its
//! spec, security defaults, runtime, monitor and network), its output streamed to ours,
//! committed when it exits 0, removed in every case.
//!
//! Ctrl-C or SIGTERM during a build ([`Interrupt`]) kills the running step's container and
//! ends the build with nothing left behind. A SIGKILLed build cannot clean up after itself:
//! its containers carry the build's pid and start time in their `build` metadata, and the next
//! build removes those whose build is gone ([`remove_stale`]).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde_json::json;
use strata_engine_containers::{
    ContainerConfig, Engine, MountSpec, NetworkMode, Signaller, StartOptions,
};
use strata_engine_monitor::attach::ServerMessage;
use strata_plugin_api::store::ContainerFilter;
use strata_plugin_api::StoreClient;

use crate::commit::METADATA_KEY;

/// Ctrl-C and SIGTERM: set the flag and kill the step that is running, if any.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    pub flag: Arc<AtomicBool>,
    running: Arc<Mutex<Option<Signaller>>>,
}

impl Interrupt {
    /// Installs the handlers (for the rest of the process: a plugin command is one build).
    pub fn install() -> Result<Interrupt> {
        let i = Interrupt::default();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])
        .context("install signal handlers")?;
        let j = i.clone();
        std::thread::spawn(move || {
            for _ in signals.forever() {
                j.flag.store(true, Ordering::SeqCst);
                if let Some(s) = j.running.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    let _ = s.send("KILL");
                }
            }
        });
        Ok(i)
    }

    pub fn check(&self) -> Result<()> {
        if self.flag.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }
}

/// Who made a working container: this process (pid and start time, so a reused pid is not
/// mistaken for it).
pub fn owner_metadata(step: &str) -> serde_json::Value {
    let pid = std::process::id() as i32;
    json!({
        "step": step,
        "pid": pid,
        "start": strata_engine_containers::state::process_start(pid),
    })
}

/// Removes the containers of builds that no longer run (killed with SIGKILL, a machine that
/// went down); returns how many.
pub fn remove_stale(engine: &Engine, store: StoreClient) -> usize {
    let filter = ContainerFilter {
        metadata_keys: vec![METADATA_KEY.into()],
        ..ContainerFilter::default()
    };
    let Ok(list) = store.containers_where(&filter) else {
        return 0;
    };
    let mut removed = 0;
    for c in list {
        let b = &c.metadata[METADATA_KEY];
        let pid = b["pid"].as_i64().unwrap_or(0) as i32;
        let alive = pid > 0
            && b["start"].as_u64().is_some()
            && strata_engine_containers::state::process_start(pid) == b["start"].as_u64();
        if alive {
            continue;
        }
        let gone = match engine.container(&c.id) {
            Ok(ec) => ec.remove(true).is_ok(),
            Err(_) => {
                let _ = store.unmount(&c.id);
                store.remove_container(&c.id).is_ok()
            }
        };
        if gone {
            tracing::info!("removed container {} of a build that is gone", c.id);
            removed += 1;
        }
    }
    removed
}

/// Starts `c` attached, streams its output to ours until it exits, cleans up after it, and
/// returns its exit code (`None` when it is unknown).
pub fn start_attached(c: &strata_engine_containers::Container<'_>) -> Result<Option<i32>> {
    let Some(mut client) = c.start(&StartOptions::attached(true))? else {
        return Ok(None);
    };
    let mut code = None;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        match client.recv() {
            Ok(Some(ServerMessage::Stdout(b))) => {
                let _ = out.write_all(&b);
                let _ = out.flush();
            }
            Ok(Some(ServerMessage::Stderr(b))) => {
                let _ = err.write_all(&b);
            }
            Ok(Some(ServerMessage::Exit(s))) => {
                code = Some(s.exit_code);
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let code = match code {
        Some(c) => Some(c),
        None => c.wait(None)?.and_then(|s| s.exit_code),
    };
    c.cleanup()?;
    let _ = client.ack_cleanup();
    Ok(code)
}

/// What a RUN step runs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    pub network: NetworkMode,
    pub mounts: Vec<MountSpec>,
    pub runtime: Option<String>,
    pub step: String,
}

/// Runs the step; `commit(container_id)` is called when it exits 0 and returns the image.
pub fn run(
    engine: &Engine,
    spec: RunSpec,
    interrupt: &Interrupt,
    commit: impl FnOnce(&str) -> Result<String>,
) -> Result<String> {
    let config = ContainerConfig {
        image_name: spec.image.clone(),
        image_id: spec.image.clone(),
        command_line: spec.args.join(" "),
        args: spec.args,
        env: spec.env,
        workdir: if spec.workdir.is_empty() {
            "/".into()
        } else {
            spec.workdir
        },
        user: spec.user,
        network: spec.network,
        mounts: spec.mounts,
        runtime: spec
            .runtime
            .unwrap_or_else(strata_engine_containers::settings::default_runtime),
        stop_signal: "SIGKILL".into(),
        stop_timeout: 0,
        ..ContainerConfig::default()
    };
    let mut extra = serde_json::Map::new();
    extra.insert(METADATA_KEY.into(), owner_metadata(&spec.step));
    let c = engine
        .create(None, config, Some(extra))
        .context("create the RUN container")?;
    let result = (|| -> Result<String> {
        interrupt.check()?;
        *interrupt.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.signaller()?);
        let code = start_attached(&c)?;
        *interrupt.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
        interrupt.check()?;
        match code {
            Some(0) => commit(c.id()),
            Some(n) => bail!("the command exited with {n}"),
            None => bail!("the command's exit status is unknown"),
        }
    })();
    if let Err(e) = c.remove(true) {
        tracing::warn!("cannot remove the RUN container {}: {e:#}", c.id());
    }
    result
}
