//! `start`: the root filesystem, the network namespace, the spec, the monitor, and one
//! `runtime run --detach` (run by the monitor).
//!
//! Order matters for crash safety: every step is recorded or undoable, and a failed start
//! undoes what it did (runtime record, network, mount) so the container stays startable.
//!
//! Namespaces shared with other containers (a pod's) are the caller's to find and pass in
//! ([`StartOptions::shared`]); `start` never starts another container.

use std::path::PathBuf;

use strata_engine_monitor::attach::AttachClient;
use strata_engine_monitor::{launch, MonitorArgs};

use crate::container::{runtime_alive, Container};
use crate::error::{Context, Error, Result};
use crate::runtime::{self, Runtime};
use crate::spec::{self, Ns, SpecInputs};
use crate::state::{self, State, Status};

/// How the caller wants to follow the container once it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Return at once (`-d`, `start` without `-a`).
    Detach,
    /// Attach before starting; `cleanup` says whether the caller will clean up after the
    /// exit itself (the monitor then leaves it to the caller unless it disappears).
    Attach { cleanup: bool },
}

/// Namespaces the container joins instead of having its own: a pod's, owned by its infra
/// container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNamespaces {
    pub net: PathBuf,
    pub ipc: PathBuf,
    pub uts: PathBuf,
    /// The user namespace to join instead of making one (a pod's, when its containers have
    /// the pod's id mapping).
    pub user: Option<PathBuf>,
}

impl SharedNamespaces {
    /// The network, IPC and UTS namespaces of process `pid`.
    pub fn of_process(pid: i32) -> SharedNamespaces {
        let ns = |n: &str| PathBuf::from(format!("/proc/{pid}/ns/{n}"));
        SharedNamespaces {
            net: ns("net"),
            ipc: ns("ipc"),
            uts: ns("uts"),
            user: None,
        }
    }
}

/// What `start` is asked to do besides starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOptions {
    pub follow: Follow,
    /// Join these namespaces instead of the container's own network, IPC and UTS ones
    /// (required for a pod's members; the container's network mode is then not set up).
    pub shared: Option<SharedNamespaces>,
    /// The terminal size (rows, columns) a `-t` container starts with, if the caller has one.
    pub console_size: Option<(u16, u16)>,
}

impl StartOptions {
    pub fn detached() -> StartOptions {
        StartOptions {
            follow: Follow::Detach,
            shared: None,
            console_size: None,
        }
    }

    pub fn attached(cleanup: bool) -> StartOptions {
        StartOptions {
            follow: Follow::Attach { cleanup },
            ..StartOptions::detached()
        }
    }
}

impl Container<'_> {
    /// Starts a created or exited container. Returns the attach connection if asked for.
    pub fn start(&self, opts: &StartOptions) -> Result<Option<AttachClient>> {
        if self.config.pod.is_some() && !self.config.infra && opts.shared.is_none() {
            return Err(Error::precondition(format!(
                "container {} belongs to a pod: start it through its pod, which starts the infra \
                 container and shares its namespaces",
                self.name()
            )));
        }
        let _lock = state::lock(&self.paths)?;
        let rt = Runtime::find(&self.config.runtime, self.engine.runroot())?;
        let mut st = self.saved_state()?;
        st.refresh(&self.paths, || runtime_alive(&rt, self.id()));
        if st.status == Status::Running {
            return Err(Error::precondition(format!(
                "container {} is already running",
                self.name()
            )));
        }
        if st.status == Status::Exited && !st.cleaned {
            self.cleanup_locked(&mut st, &rt)?;
        }
        let result = self.start_locked(&rt, &mut st, opts);
        if result.is_err() {
            // Undo: whatever got set up goes, the container stays startable.
            let _ = rt.delete(self.id());
            let _ = crate::netns::teardown(self, &mut st);
            if crate::userns_root::needed(self.engine.rootless(), self.id_map()) {
                let _ = crate::userns_root::hide(self.id());
            }
            let _ = self.engine.store().unmount(self.id());
            st.status = if st.started_at.is_some() {
                Status::Exited
            } else {
                Status::Created
            };
            st.cleaned = true;
            let _ = st.save(&self.paths);
        }
        result
    }

    fn start_locked(
        &self,
        rt: &Runtime,
        st: &mut State,
        opts: &StartOptions,
    ) -> Result<Option<AttachClient>> {
        let engine = self.engine;
        let mut rootfs = engine.store().mount(self.id())?;
        let user = crate::user::resolve(&rootfs, &self.config.user)?;
        if crate::userns_root::needed(engine.rootless(), self.id_map()) {
            rootfs = crate::userns_root::expose(&rootfs, self.id())?;
        }
        for m in &self.config.mounts {
            if m.kind == "bind" && !std::path::Path::new(&m.source).exists() {
                return Err(Error::invalid(format!(
                    "bind mount source {} does not exist",
                    m.source
                )));
            }
        }
        st.error = None;
        let (net, ipc, uts) = match &opts.shared {
            Some(s) => (
                Ns::Path(s.net.clone()),
                Ns::Path(s.ipc.clone()),
                Ns::Path(s.uts.clone()),
            ),
            None => {
                let own = |mode: &str| if mode == "host" { Ns::Host } else { Ns::New };
                (
                    crate::netns::setup(self, st)?,
                    own(&self.config.linux.ipc),
                    own(&self.config.linux.uts),
                )
            }
        };
        let ip = st
            .network
            .as_ref()
            .and_then(|n| n.get("ip"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let etc = crate::etc::write(self, ip.as_deref())?;
        let mut spec = spec::generate(&SpecInputs {
            config: &self.config,
            rootfs: &rootfs,
            user: &user,
            cgroups_path: if engine.rootless() {
                crate::cgroups::delegated()
                    .map(|d| crate::cgroups::prepare_rootless(&d, self.id()))
                    .transpose()?
            } else {
                Some(crate::cgroups::path(
                    &self.config.linux.cgroup_parent,
                    self.id(),
                ))
            },
            net,
            ipc,
            uts,
            cgroupns: runtime::cgroup_v2_only(),
            userns: match opts.shared.as_ref().and_then(|s| s.user.clone()) {
                Some(p) => Ns::Path(p),
                None => Ns::New,
            },
            etc_files: etc,
            rootless: engine.rootless(),
            id_map: self.id_map(),
            rlimits: if self.config.before_security_defaults {
                Vec::new()
            } else {
                spec::security::rlimits(
                    &spec::HostLimits::current(engine.rootless()),
                    &self.config.ulimits,
                )?
            },
            host: spec::seccomp::Host::current(),
            cap_bounding: spec::bounding_set(),
        })?;
        // crun takes the filter compiled once and kept (see `spec::seccomp::bpf`) instead of
        // compiling it at every start; other runtimes compile it from the spec.
        if rt.name == "crun" {
            if let Some(filter) = spec.linux().as_ref().and_then(|l| l.seccomp().clone()) {
                match spec::seccomp::bpf::cached(&engine.runroot().join("seccomp"), &filter) {
                    Ok(bpf) => {
                        use base64::Engine as _;
                        let data = base64::engine::general_purpose::STANDARD.encode(bpf);
                        let mut notes = spec.annotations().clone().unwrap_or_default();
                        notes.insert(spec::seccomp::bpf::CRUN_BPF_ANNOTATION.into(), data);
                        spec.set_annotations(Some(notes));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e.chain(), "crun compiles the seccomp filter itself")
                    }
                }
            }
        }
        // The terminal starts with the user's size: the process may ask for it at once.
        if self.config.tty && matches!(opts.follow, Follow::Attach { .. }) {
            if let (Some((rows, cols)), Some(p)) = (opts.console_size, spec.process_mut()) {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(u64::from(rows))
                    .width(u64::from(cols))
                    .build()?;
                p.set_console_size(Some(size));
            }
        }
        let spec_path = self.paths.spec();
        std::fs::write(&spec_path, serde_json::to_vec(&spec)?)
            .with_context(|| format!("write {}", spec_path.display()))?;
        // Leftovers of an earlier run.
        for f in ["exit", "attach", "pid", "monitor.pid"] {
            let _ = std::fs::remove_file(self.paths.run_dir.join(f));
        }
        std::fs::create_dir_all(&self.paths.run_dir)
            .with_context(|| format!("create {}", self.paths.run_dir.display()))?;
        std::fs::create_dir_all(&rt.root)
            .with_context(|| format!("create {}", rt.root.display()))?;
        // A runtime record left by a crash would make `create` fail.
        if rt.root.join(self.id()).exists() {
            let _ = rt.delete(self.id());
        }
        let (exit_cmd, exit_args) = engine.exit_command(self.id())?;
        let mut args = MonitorArgs::new(
            self.id(),
            &self.paths.dir,
            &rt.path,
            &self.paths.run_dir,
            self.log_path(),
        );
        args.runtime_args = rt.global_args().into_iter().map(Into::into).collect();
        args.terminal = self.config.tty;
        args.stdin = self.config.stdin;
        args.exit_command = Some(exit_cmd);
        args.exit_command_args = exit_args.into_iter().map(Into::into).collect();
        // One runtime call creates and starts (`run --detach`); an attaching caller is
        // connected from before the container exists, so no output is missed.
        args.start = true;
        let monitor = engine.monitor_path()?;
        // Stamped before the launch: a short-lived container may end before it returns.
        let now = state::now();
        let (launched, attach) = match opts.follow {
            Follow::Detach => (launch(&monitor, &args)?, None),
            Follow::Attach { cleanup } => {
                let (launched, client) =
                    strata_engine_monitor::launch::launch_attached(&monitor, &args, cleanup)?;
                (launched, Some(client))
            }
        };
        st.status = Status::Running;
        st.pid = Some(launched.container_pid);
        st.monitor_pid = Some(launched.monitor_pid);
        st.monitor_start = state::process_start(launched.monitor_pid);
        st.runtime = Some(rt.name.clone());
        st.exit_code = None;
        st.finished_at = None;
        st.finished_unix = None;
        st.cleaned = false;
        st.started_at = Some(now.0);
        st.started_unix = Some(now.1);
        st.save(&self.paths)?;
        Ok(attach)
    }
}
