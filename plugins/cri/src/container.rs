//! CRI containers: a Kubernetes container config turned into the engine's
//! `ContainerConfig` (Kubernetes' command/args rules over the image's entrypoint and cmd,
//! the security context, mounts with propagation, devices, resources, the pod's namespaces
//! and files), created in the pod as an engine container with the CRI's record beside the
//! engine's, and reported back as the CRI's statuses. Exec runs through the runtime's `exec`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_cri::v1 as cri;
use strata_engine_containers::spec::SeccompPolicy;
use strata_engine_containers::{
    Container, ContainerConfig, Device, ExecOptions, ImageDefaults, LinuxExtras, MountSpec,
    NetworkMode, Security, Status,
};
use strata_engine_pods as pods;
use strata_plugin_api::ErrorKind;

use crate::records::{self, ContainerRecord, Sandbox, METADATA_KEY};
use crate::rpc::kinded;
use crate::server::Cri;

/// The largest output ExecSync returns per stream (CRI-O's limit); the rest is dropped.
const EXEC_SYNC_LIMIT: usize = 16 << 20;

use crate::records::now_nanos;

/// The CRI record of an engine container, if it is a CRI container.
pub fn record(c: &Container<'_>) -> Option<ContainerRecord> {
    serde_json::from_value(c.record.metadata.get(METADATA_KEY)?.clone()).ok()
}

/// The CRI container an ID (or unique ID prefix) names.
pub fn find<'e>(cri: &'e Cri, id: &str) -> Result<Option<(Container<'e>, ContainerRecord)>> {
    if id.is_empty() {
        return Err(crate::rpc::missing("container ID"));
    }
    match cri.engine.container(id) {
        Ok(c) => Ok(record(&c).map(|r| (c, r))),
        Err(e) if strata_types::HasKind::kind(&e) == strata_types::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn need<'e>(cri: &'e Cri, id: &str) -> Result<(Container<'e>, ContainerRecord)> {
    find(cri, id)?.ok_or_else(|| kinded(ErrorKind::NotFound, format!("container {id} not found")))
}

/// The image a request names, from the store (by name, ID or digest).
pub fn image(cri: &Cri, name: &str) -> Result<strata_plugin_api::store::ImageInfo> {
    crate::image::lookup(cri, name)?.ok_or_else(|| {
        kinded(
            ErrorKind::NotFound,
            format!("image {name:?} not found in the store: pull it first"),
        )
    })
}

fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or_default().to_owned();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

fn seccomp(profile: Option<&cri::SecurityProfile>, path: &str) -> Result<SeccompPolicy> {
    let bad = |m: String| kinded(ErrorKind::InvalidArgument, m);
    if let Some(p) = profile {
        return match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => Ok(SeccompPolicy::Default),
            Ok(cri::security_profile::ProfileType::Unconfined) => Ok(SeccompPolicy::Unconfined),
            Ok(cri::security_profile::ProfileType::Localhost) => {
                SeccompPolicy::from_option(&p.localhost_ref)
                    .map_err(|e| bad(format!("seccomp profile {}: {e}", p.localhost_ref)))
            }
            Err(_) => Err(bad(format!(
                "unknown seccomp profile type {}",
                p.profile_type
            ))),
        };
    }
    match path {
        // No profile at all is unconfined (the CRI's contract; the kubelet always sends one).
        "" | "unconfined" => Ok(SeccompPolicy::Unconfined),
        "runtime/default" | "docker/default" => Ok(SeccompPolicy::Default),
        p => match p.strip_prefix("localhost/") {
            Some(file) => SeccompPolicy::from_option(file)
                .map_err(|e| bad(format!("seccomp profile {file}: {e}"))),
            None => Err(bad(format!(
                "seccomp profile {p:?}: use runtime/default, unconfined or localhost/PATH"
            ))),
        },
    }
}

fn mount(m: &cri::Mount, runtime: &str) -> Result<MountSpec> {
    if m.container_path.is_empty() || !m.container_path.starts_with('/') {
        return Err(kinded(
            ErrorKind::InvalidArgument,
            format!(
                "mount container path {:?} must be absolute",
                m.container_path
            ),
        ));
    }
    if m.host_path.is_empty() {
        return Err(kinded(
            ErrorKind::InvalidArgument,
            format!("mount for {} has no host path", m.container_path),
        ));
    }
    let host = Path::new(&m.host_path);
    if !host.exists() {
        // containerd's behaviour: a missing host directory is created.
        std::fs::create_dir_all(host)
            .with_context(|| format!("create the mount source {}", m.host_path))?;
    }
    // Symlinked host paths are followed to their target, as the runtime would otherwise
    // mount the link itself.
    let source = std::fs::canonicalize(host)
        .with_context(|| format!("resolve the mount source {}", m.host_path))?;
    let propagation = match cri::MountPropagation::try_from(m.propagation) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    };
    let mut options = vec![propagation.to_owned()];
    if m.recursive_read_only {
        if !m.readonly {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!(
                    "mount {}: recursive_read_only needs readonly",
                    m.container_path
                ),
            ));
        }
        if propagation != "rprivate" {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                format!(
                    "mount {}: recursive_read_only needs private propagation",
                    m.container_path
                ),
            ));
        }
        if !crate::config::supports_rro(runtime) {
            return Err(kinded(
                ErrorKind::Unsupported,
                format!(
                    "mount {}: the runtime {runtime} cannot make mounts recursively read-only (crun can)",
                    m.container_path
                ),
            ));
        }
        options.push("rro".into());
    }
    Ok(MountSpec {
        kind: "bind".into(),
        source: source.display().to_string(),
        destination: m.container_path.clone(),
        read_only: m.readonly,
        options,
    })
}

fn user(sc: &cri::LinuxContainerSecurityContext, image_user: &str) -> String {
    let group = sc.run_as_group.as_ref().map(|g| g.value);
    let user = if !sc.run_as_username.is_empty() {
        sc.run_as_username.clone()
    } else if let Some(u) = &sc.run_as_user {
        u.value.to_string()
    } else {
        image_user.split(':').next().unwrap_or_default().to_owned()
    };
    match (user.is_empty(), group) {
        (_, Some(g)) => format!("{}:{g}", if user.is_empty() { "0" } else { &user }),
        (true, None) => String::new(),
        (false, None) => {
            if sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
                image_user.to_owned()
            } else {
                user
            }
        }
    }
}

fn container_name(meta: &cri::ContainerMetadata, s: &Sandbox) -> String {
    let p = s.metadata();
    format!(
        "k8s_{}_{}_{}_{}_{}",
        meta.name, p.name, p.namespace, p.uid, meta.attempt
    )
}

/// Image volumes made for a container being created: removed again if the create fails.
struct Volumes<'a> {
    cri: &'a Cri,
    ids: Vec<String>,
}

impl Drop for Volumes<'_> {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            let _ = crate::image_volume::remove(self.cri, &self.ids);
        }
    }
}

/// CreateContainer; `sub_paths` are the image sub paths of the config's mounts, by index
/// (read beside the request by `newer.rs`; empty when there are none).
pub fn create(cri: &Cri, req: cri::CreateContainerRequest, sub_paths: &[String]) -> Result<String> {
    let config = req
        .config
        .ok_or_else(|| crate::rpc::missing("container config"))?;
    let meta = config.metadata.clone().unwrap_or_default();
    if meta.name.is_empty() {
        return Err(crate::rpc::missing("container name"));
    }
    let sandbox = records::find(&cri.root, &req.pod_sandbox_id)?.ok_or_else(|| {
        kinded(
            ErrorKind::NotFound,
            format!("pod sandbox {} not found", req.pod_sandbox_id),
        )
    })?;
    if !crate::sandbox::ready(cri, &sandbox) {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("pod sandbox {} is not ready", sandbox.id),
        ));
    }
    let image_name = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    if image_name.is_empty() {
        return Err(crate::rpc::missing("image"));
    }
    if let Some(sc) = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
    {
        if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
            return Err(kinded(
                ErrorKind::InvalidArgument,
                "run_as_group needs run_as_user or run_as_username",
            ));
        }
    }
    let image = image(cri, &image_name)?;
    let defaults = ImageDefaults::from_config(&image.config)?;
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let res = linux.resources.clone().unwrap_or_default();

    let args = if !config.command.is_empty() {
        config.command.iter().chain(&config.args).cloned().collect()
    } else if !config.args.is_empty() {
        defaults
            .entrypoint
            .iter()
            .chain(&config.args)
            .cloned()
            .collect()
    } else {
        defaults
            .entrypoint
            .iter()
            .chain(&defaults.cmd)
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut env = Vec::new();
    for e in defaults.env.iter() {
        set_env(&mut env, e.clone());
    }
    for kv in &config.envs {
        set_env(&mut env, format!("{}={}", kv.key, kv.value));
    }

    // Bind mounts are checked first, so a bad one fails before any image volume is made.
    let mut mounts: Vec<Option<MountSpec>> = config
        .mounts
        .iter()
        .map(|m| match &m.image {
            Some(_) => Ok(None),
            None => mount(m, &sandbox.runtime).map(Some),
        })
        .collect::<Result<_>>()?;
    // A container shares its pod's user namespace (the kubelet repeats the pod's options).
    let id_map = crate::sandbox::pod_id_map(&sandbox.config)?;
    // Held until the record naming the volumes exists (see `image_volume::sweep`).
    let _making = config
        .mounts
        .iter()
        .any(|m| m.image.is_some())
        .then(|| cri.volumes.lock().unwrap_or_else(|p| p.into_inner()));
    let mut volumes = Volumes {
        cri,
        ids: Vec::new(),
    };
    for (i, (slot, m)) in mounts.iter_mut().zip(&config.mounts).enumerate() {
        if m.image.is_some() {
            let sub_path = sub_paths.get(i).map(String::as_str).unwrap_or_default();
            let (spec, id) = crate::image_volume::prepare(cri, m, sub_path, id_map.as_ref())?;
            volumes.ids.push(id);
            *slot = Some(spec);
        }
    }
    let mut mounts: Vec<MountSpec> = mounts.into_iter().flatten().collect();
    for f in crate::sandbox::file_mounts(&cri.root, &sandbox.id) {
        if !mounts.iter().any(|m| m.destination == f.destination) {
            mounts.push(f);
        }
    }
    let devices = config
        .devices
        .iter()
        .map(|d| Device {
            host_path: d.host_path.clone(),
            container_path: d.container_path.clone(),
            permissions: d.permissions.clone(),
        })
        .collect();

    let ns = sc.namespace_options.clone().unwrap_or_default();
    let pid = match cri::NamespaceMode::try_from(ns.pid) {
        Ok(cri::NamespaceMode::Node) => "host".to_owned(),
        Ok(cri::NamespaceMode::Pod) => {
            let pid = crate::sandbox::infra_pid(cri, &sandbox).ok_or_else(|| {
                kinded(
                    ErrorKind::FailedPrecondition,
                    "the pod's infra process is not running",
                )
            })?;
            format!("/proc/{pid}/ns/pid")
        }
        Ok(cri::NamespaceMode::Target) => {
            let (t, _) = need(cri, &ns.target_id)?;
            let st = t.state()?;
            match (st.status, st.pid) {
                (Status::Running, Some(pid)) => format!("/proc/{pid}/ns/pid"),
                _ => {
                    return Err(kinded(
                        ErrorKind::FailedPrecondition,
                        format!("target container {} is not running", ns.target_id),
                    ))
                }
            }
        }
        _ => String::new(),
    };
    let caps = sc.capabilities.clone().unwrap_or_default();
    let security = Security {
        // A privileged container runs without a filter, whatever profile it names (as the
        // kubelet's other runtimes do). The path field is deprecated but still sent by older
        // kubelets.
        #[allow(deprecated)]
        seccomp: if sc.privileged {
            SeccompPolicy::Unconfined
        } else {
            seccomp(sc.seccomp.as_ref(), &sc.seccomp_profile_path)?
        },
        no_new_privileges: sc.no_new_privs,
        ..Security::default()
    };
    let sandbox_linux = sandbox.linux();
    let extras = LinuxExtras {
        pid,
        devices,
        groups: sc
            .supplemental_groups
            .iter()
            .filter_map(|g| u32::try_from(*g).ok())
            .collect(),
        groups_policy: if sc.supplemental_groups_policy
            == cri::SupplementalGroupsPolicy::Strict as i32
        {
            "strict".into()
        } else {
            "merge".into()
        },
        cgroup_parent: sandbox_linux.cgroup_parent.clone(),
        oom_score_adj: (res.oom_score_adj != 0).then_some(res.oom_score_adj as i32),
        cpu_shares: (res.cpu_shares > 0).then_some(res.cpu_shares as u64),
        cpu_quota: (res.cpu_quota != 0).then_some(res.cpu_quota),
        cpu_period: (res.cpu_period > 0).then_some(res.cpu_period as u64),
        cpuset_cpus: res.cpuset_cpus.clone(),
        cpuset_mems: res.cpuset_mems.clone(),
        hugepages: res
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        masked_paths: (!sc.masked_paths.is_empty()).then(|| sc.masked_paths.clone()),
        readonly_paths: (!sc.readonly_paths.is_empty()).then(|| sc.readonly_paths.clone()),
        annotations: records::sorted(&config.annotations).into_iter().collect(),
        id_map,
        ..LinuxExtras::default()
    };
    let log_path = match (sandbox_linux_log_dir(&sandbox), config.log_path.as_str()) {
        (Some(dir), p) if !p.is_empty() => {
            let full = Path::new(&dir).join(p);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("create the log directory {}", parent.display()))?;
            }
            full.display().to_string()
        }
        _ => String::new(),
    };
    let mut cfg = ContainerConfig {
        image_name: image_name.clone(),
        image_id: image.id.clone(),
        args,
        env,
        workdir: if config.working_dir.is_empty() {
            defaults.workdir.clone()
        } else {
            config.working_dir.clone()
        },
        user: user(&sc, &defaults.user),
        tty: config.tty,
        stdin: config.stdin,
        read_only: sc.readonly_rootfs,
        mounts,
        network: match &sandbox.netns {
            Some(p) => NetworkMode::Path(p.clone()),
            None => NetworkMode::Host,
        },
        cap_add: caps.add_capabilities.clone(),
        cap_drop: caps.drop_capabilities.clone(),
        privileged: sc.privileged,
        resources: strata_engine_containers::Resources {
            memory: (res.memory_limit_in_bytes > 0).then_some(res.memory_limit_in_bytes),
            cpus: None,
            pids_limit: None,
        },
        runtime: sandbox.runtime.clone(),
        stop_signal: if defaults.stop_signal.is_empty() {
            "SIGTERM".into()
        } else {
            defaults.stop_signal.clone()
        },
        stop_timeout: 10,
        command_line: config
            .command
            .iter()
            .chain(&config.args)
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        labels: records::sorted(&config.labels).into_iter().collect(),
        security,
        linux: extras,
        log_path: log_path.clone(),
        ..ContainerConfig::default()
    };
    pods::join(cri.engine, &sandbox.id, &mut cfg)?;
    let rec = ContainerRecord {
        sandbox: sandbox.id.clone(),
        created_at: now_nanos(),
        image: image_name,
        image_ref: crate::image::image_ref(&image.id),
        log_path,
        config: config.clone(),
        image_volumes: volumes.ids.clone(),
    };
    let mut extra = serde_json::Map::new();
    extra.insert(METADATA_KEY.into(), serde_json::to_value(&rec)?);
    let c = cri
        .engine
        .create(Some(container_name(&meta, &sandbox)), cfg, Some(extra))?;
    let id = c.id().to_owned();
    // The record names the volumes now: they live and die with the container.
    volumes.ids.clear();
    cri.index.insert(c, rec);
    crate::events::emit_container(cri, &id, cri::ContainerEventType::ContainerCreatedEvent);
    Ok(id)
}

fn sandbox_linux_log_dir(s: &Sandbox) -> Option<String> {
    (!s.config.log_directory.is_empty()).then(|| s.config.log_directory.clone())
}

pub fn start(cri: &Cri, id: &str) -> Result<()> {
    let (c, rec) = need(cri, id)?;
    let st = c.state()?;
    if st.status != Status::Created {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("container {id} is {}, not created", st.status.as_str()),
        ));
    }
    let sandbox = records::find(&cri.root, &rec.sandbox)?.ok_or_else(|| {
        kinded(
            ErrorKind::NotFound,
            format!("pod sandbox {} not found", rec.sandbox),
        )
    })?;
    if !crate::sandbox::ready(cri, &sandbox) {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("pod sandbox {} is not ready", sandbox.id),
        ));
    }
    crate::image_volume::mount(cri, &rec.image_volumes)?;
    pods::start(&c, strata_engine_containers::StartOptions::detached())?;
    crate::events::emit_container(cri, c.id(), cri::ContainerEventType::ContainerStartedEvent);
    Ok(())
}

pub fn stop(cri: &Cri, id: &str, timeout: i64) -> Result<()> {
    let Some((c, _)) = find(cri, id)? else {
        return Ok(());
    };
    if c.state()?.status == Status::Running {
        c.stop(Duration::from_secs(timeout.max(0) as u64))?;
        crate::events::emit_container(cri, c.id(), cri::ContainerEventType::ContainerStoppedEvent);
    }
    Ok(())
}

pub fn remove(cri: &Cri, id: &str) -> Result<()> {
    // The index has the container and its record in memory (the kubelet names containers by
    // full ID); only a container it does not know is looked up in the store.
    let (c, rec) = match cri.index.get(id) {
        Some(e) => (e.c.clone(), e.rec.clone()),
        None => match find(cri, id)? {
            Some((c, rec)) => (c, rec),
            None => return Ok(()),
        },
    };
    let cid = c.id().to_owned();
    if let Err(e) = c.remove(true) {
        // Removed behind the server's back meanwhile (`strata rm -f`): done.
        if find(cri, &cid)?.is_some() {
            return Err(e.into());
        }
    }
    cri.index.remove(&cid);
    // The container is gone whatever happens to its volumes: one left behind is swept later.
    if let Err(e) = crate::image_volume::remove(cri, &rec.image_volumes) {
        crate::log::warn(format_args!(
            "container {cid}: image volumes left behind: {e:#}"
        ));
    }
    crate::events::emit_container(cri, &cid, cri::ContainerEventType::ContainerDeletedEvent);
    Ok(())
}

fn state(st: Status) -> cri::ContainerState {
    match st {
        Status::Created => cri::ContainerState::ContainerCreated,
        Status::Running => cri::ContainerState::ContainerRunning,
        Status::Exited => cri::ContainerState::ContainerExited,
    }
}

/// The container's state as the CRI names it (unknown when it cannot be read).
pub fn cri_state(c: &Container<'_>) -> cri::ContainerState {
    c.state()
        .map(|s| state(s.status))
        .unwrap_or(cri::ContainerState::ContainerUnknown)
}

fn to_cri(c: &Container<'_>, rec: &ContainerRecord, st: cri::ContainerState) -> cri::Container {
    cri::Container {
        id: c.id().to_owned(),
        pod_sandbox_id: rec.sandbox.clone(),
        metadata: rec.config.metadata.clone(),
        image: rec.config.image.clone(),
        image_ref: rec.image_ref.clone(),
        state: st as i32,
        created_at: rec.created_at,
        labels: rec.config.labels.clone(),
        annotations: rec.config.annotations.clone(),
        image_id: rec.image_ref.clone(),
    }
}

pub fn list(cri: &Cri, filter: Option<&cri::ContainerFilter>) -> Result<Vec<cri::Container>> {
    let mut out = Vec::new();
    let mut gone = Vec::new();
    for e in cri.index.known(cri)? {
        let (c, rec) = (&e.c, &e.rec);
        if let Some(f) = filter {
            if !f.id.is_empty() && !c.id().starts_with(&f.id) {
                continue;
            }
            if !f.pod_sandbox_id.is_empty() && !rec.sandbox.starts_with(&f.pod_sandbox_id) {
                continue;
            }
            if !records::labels_match(&rec.config.labels, &f.label_selector) {
                continue;
            }
        }
        let Some(st) = e.listed_state() else {
            gone.push(c.id().to_owned());
            continue;
        };
        if filter
            .and_then(|f| f.state.as_ref())
            .is_some_and(|s| s.state != st as i32)
        {
            continue;
        }
        out.push(to_cri(c, rec, st));
    }
    cri.index.forget_gone(&gone);
    out.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(out)
}

fn rfc3339_nanos(s: Option<&str>) -> i64 {
    s.and_then(strata_engine_monitor::timestamp::parse_rfc3339)
        .map(|n| n as i64)
        .unwrap_or(0)
}

pub fn status(cri: &Cri, id: &str, verbose: bool) -> Result<cri::ContainerStatusResponse> {
    let (c, rec) = need(cri, id)?;
    let st = c.state()?;
    let exit = strata_engine_monitor::exitfile::read_exit(&c.paths.run_dir)
        .ok()
        .flatten();
    let oom = exit.as_ref().is_some_and(|e| e.oom_killed);
    let code = st.exit_code.unwrap_or(0);
    let (reason, message) = match st.status {
        Status::Exited if oom => ("OOMKilled", String::new()),
        Status::Exited if code == 0 => ("Completed", String::new()),
        Status::Exited => ("Error", st.error.clone().unwrap_or_default()),
        _ => ("", String::new()),
    };
    let mounts = rec.config.mounts.to_vec();
    let status = cri::ContainerStatus {
        id: c.id().to_owned(),
        metadata: rec.config.metadata.clone(),
        state: state(st.status) as i32,
        created_at: rec.created_at,
        started_at: rfc3339_nanos(st.started_at.as_deref()),
        finished_at: exit
            .as_ref()
            .map(|e| e.finished_at_unix_nanos as i64)
            .filter(|_| st.status == Status::Exited)
            .unwrap_or_else(|| rfc3339_nanos(st.finished_at.as_deref())),
        exit_code: if oom && code == 0 { 137 } else { code },
        image: rec.config.image.clone(),
        image_ref: rec.image_ref.clone(),
        reason: reason.into(),
        message,
        labels: rec.config.labels.clone(),
        annotations: rec.config.annotations.clone(),
        mounts,
        log_path: rec.log_path.clone(),
        resources: rec
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|r| cri::ContainerResources {
                linux: Some(r),
                windows: None,
            }),
        image_id: rec.image_ref.clone(),
        user: user_of(&c),
    };
    let mut info = HashMap::new();
    if verbose {
        info.insert(
            "info".to_owned(),
            serde_json::json!({
                "pid": st.pid,
                "sandboxID": rec.sandbox,
                "runtime": st.runtime,
                "config": c.config,
                "state": st.status.as_str(),
            })
            .to_string(),
        );
    }
    Ok(cri::ContainerStatusResponse {
        status: Some(status),
        info,
    })
}

/// The identity the container's process runs as, from the spec of its last start: uid, gid
/// and every group it has (the primary one included, as the kubelet reports them).
fn user_of(c: &Container<'_>) -> Option<cri::ContainerUser> {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.spec_path()).ok()?).ok()?;
    let u = &spec["process"]["user"];
    let uid = u["uid"].as_i64()?;
    let gid = u["gid"].as_i64()?;
    let mut groups: Vec<i64> = u["additionalGids"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| g.as_i64()).collect())
        .unwrap_or_default();
    groups.push(gid);
    groups.sort_unstable();
    groups.dedup();
    Some(cri::ContainerUser {
        linux: Some(cri::LinuxContainerUser {
            uid,
            gid,
            supplemental_groups: groups,
        }),
    })
}

pub fn exec_sync(cri: &Cri, req: cri::ExecSyncRequest) -> Result<cri::ExecSyncResponse> {
    let (c, _) = need(cri, &req.container_id)?;
    if req.cmd.is_empty() {
        return Err(crate::rpc::missing("command"));
    }
    let pid_file = c
        .paths
        .run_dir
        .join(format!("exec-sync-{}.pid", now_nanos()));
    let prepared = c.prepare_exec(&ExecOptions {
        args: req.cmd.clone(),
        pid_file: Some(pid_file.clone()),
        ..ExecOptions::default()
    })?;
    let mut cmd = prepared.command;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().context("run the runtime's exec")?;
    let out = child
        .stdout
        .take()
        .map(|s| std::thread::spawn(move || drain(s)));
    let err = child
        .stderr
        .take()
        .map(|s| std::thread::spawn(move || drain(s)));
    let deadline =
        (req.timeout > 0).then(|| Instant::now() + Duration::from_secs(req.timeout as u64));
    let status = loop {
        if let Some(s) = child.try_wait().context("wait for exec")? {
            break Some(s);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // The command itself, inside the container (its pipes end with it), then the
            // runtime's exec process.
            kill_pid_file(&pid_file);
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&pid_file);
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    match status {
        None => Err(kinded(
            ErrorKind::Unavailable,
            format!(
                "command {:?} timed out after {} s (DeadlineExceeded)",
                req.cmd, req.timeout
            ),
        )),
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            let code = s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
            Ok(cri::ExecSyncResponse {
                stdout,
                stderr,
                exit_code: code,
            })
        }
    }
}

fn kill_pid_file(p: &Path) {
    let pid = std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn drain(mut r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = EXEC_SYNC_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

pub fn reopen_log(cri: &Cri, id: &str) -> Result<()> {
    let (c, _) = need(cri, id)?;
    if c.state()?.status != Status::Running {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("container {id} is not running"),
        ));
    }
    let mut client = strata_engine_monitor::attach::AttachClient::connect(&c.paths.run_dir, false)
        .context("reach the container's monitor")?;
    client
        .reopen_log()
        .context("ask the monitor to reopen the log")?;
    // The monitor reopens before it reads the next frame; wait until the file is back.
    let log = c.log_path();
    let until = Instant::now() + Duration::from_secs(5);
    while !log.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn update_resources(cri: &Cri, req: cri::UpdateContainerResourcesRequest) -> Result<()> {
    let (c, _) = need(cri, &req.container_id)?;
    let st = c.state()?;
    if st.status != Status::Running && st.status != Status::Created {
        return Err(kinded(
            ErrorKind::FailedPrecondition,
            format!("container {} is not running", req.container_id),
        ));
    }
    let Some(r) = req.linux else {
        return Ok(());
    };
    let mut res = serde_json::json!({});
    if r.memory_limit_in_bytes > 0 {
        res["memory"] = serde_json::json!({ "limit": r.memory_limit_in_bytes });
    }
    let mut cpu = serde_json::Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), r.cpu_shares.into());
    }
    if r.cpu_quota != 0 {
        cpu.insert("quota".into(), r.cpu_quota.into());
    }
    if r.cpu_period > 0 {
        cpu.insert("period".into(), r.cpu_period.into());
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), r.cpuset_cpus.clone().into());
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), r.cpuset_mems.clone().into());
    }
    if !cpu.is_empty() {
        res["cpu"] = serde_json::Value::Object(cpu);
    }
    if st.status != Status::Running {
        return Ok(());
    }
    let rt = c.runtime(&st)?;
    let file = tempfile_in(&c.paths.run_dir, &serde_json::to_vec(&res)?)?;
    let out = rt
        .command()
        .arg("update")
        .arg("--resources")
        .arg(&file)
        .arg(c.id())
        .output()
        .context("run the runtime's update")?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "{} update failed: {}",
            rt.name,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn tempfile_in(dir: &Path, data: &[u8]) -> Result<std::path::PathBuf> {
    let p = dir.join(format!(
        "update-{}-{}.json",
        std::process::id(),
        now_nanos()
    ));
    std::fs::write(&p, data).with_context(|| format!("write {}", p.display()))?;
    Ok(p)
}
