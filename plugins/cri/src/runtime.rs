//! The CRI runtime service: each RPC checks its request and runs the engine work on the
//! blocking pool (`rpc::blocking`), in `sandbox.rs`, `container.rs` and `stats.rs`.

use std::pin::Pin;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::rpc::blocking;
use crate::server::Cri;
use crate::{container, sandbox, stats};

/// The runtime service.
#[derive(Debug)]
pub struct Runtime(pub Arc<Cri>);

fn invalid(msg: &str) -> anyhow::Error {
    crate::rpc::kinded(strata_plugin_api::ErrorKind::InvalidArgument, msg)
}

/// Fails unless container `id` exists and runs.
fn running(cri: &Cri, id: &str) -> anyhow::Result<()> {
    let (c, _) = container::find(cri, id)?.ok_or_else(|| {
        crate::rpc::kinded(
            strata_plugin_api::ErrorKind::NotFound,
            format!("container {id} not found"),
        )
    })?;
    if c.state()?.status != strata_engine_containers::Status::Running {
        return Err(crate::rpc::kinded(
            strata_plugin_api::ErrorKind::FailedPrecondition,
            format!("container {id} is not running"),
        ));
    }
    Ok(())
}

fn issue(cri: &Cri, req: crate::stream::Request) -> anyhow::Result<String> {
    let s = cri.streaming.as_ref().ok_or_else(|| {
        crate::rpc::kinded(
            strata_plugin_api::ErrorKind::Unavailable,
            "the streaming server is not running",
        )
    })?;
    s.issue(req)
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _r: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "strata".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        let id = blocking("RunPodSandbox", true, move || sandbox::run(&cri, req)).await?;
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().pod_sandbox_id;
        blocking("StopPodSandbox", true, move || sandbox::stop(&cri, &id)).await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().pod_sandbox_id;
        blocking("RemovePodSandbox", true, move || sandbox::remove(&cri, &id)).await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        Ok(Response::new(
            blocking("PodSandboxStatus", false, move || {
                sandbox::status(&cri, &req.pod_sandbox_id, req.verbose)
            })
            .await?,
        ))
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        let cri = self.0.clone();
        let f = r.into_inner().filter;
        let items = blocking("ListPodSandbox", false, move || {
            Ok(sandbox::list(&cri, f.as_ref()))
        })
        .await?;
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        let id = blocking("CreateContainer", true, move || {
            container::create(&cri, req, &[])
        })
        .await?;
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> Result<Response<cri::StartContainerResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().container_id;
        blocking("StartContainer", true, move || container::start(&cri, &id)).await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> Result<Response<cri::StopContainerResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        blocking("StopContainer", true, move || {
            container::stop(&cri, &req.container_id, req.timeout)
        })
        .await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().container_id;
        blocking("RemoveContainer", true, move || {
            container::remove(&cri, &id)
        })
        .await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        let cri = self.0.clone();
        let f = r.into_inner().filter;
        let containers = blocking("ListContainers", false, move || {
            container::list(&cri, f.as_ref())
        })
        .await?;
        Ok(Response::new(cri::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        Ok(Response::new(
            blocking("ContainerStatus", false, move || {
                container::status(&cri, &req.container_id, req.verbose)
            })
            .await?,
        ))
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        blocking("UpdateContainerResources", true, move || {
            container::update_resources(&cri, req)
        })
        .await?;
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().container_id;
        blocking("ReopenContainerLog", true, move || {
            container::reopen_log(&cri, &id)
        })
        .await?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        r: Request<cri::ExecSyncRequest>,
    ) -> Result<Response<cri::ExecSyncResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        let timeout = req.timeout;
        blocking("ExecSync", false, move || container::exec_sync(&cri, req))
            .await
            .map(Response::new)
            .map_err(|s| {
                if timeout > 0 && s.message().contains("timed out") {
                    Status::deadline_exceeded(s.message().to_owned())
                } else {
                    s
                }
            })
    }

    async fn exec(
        &self,
        r: Request<cri::ExecRequest>,
    ) -> Result<Response<cri::ExecResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        let url = blocking("Exec", false, move || {
            if req.cmd.is_empty() {
                return Err(crate::rpc::missing("command"));
            }
            if !(req.stdin || req.stdout || req.stderr) {
                return Err(invalid("one of stdin, stdout and stderr must be true"));
            }
            if req.tty && req.stderr {
                return Err(invalid("tty and stderr cannot both be true"));
            }
            running(&cri, &req.container_id)?;
            issue(&cri, crate::stream::Request::Exec(req))
        })
        .await?;
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(
        &self,
        r: Request<cri::AttachRequest>,
    ) -> Result<Response<cri::AttachResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        let url = blocking("Attach", false, move || {
            if !(req.stdin || req.stdout || req.stderr) {
                return Err(invalid("one of stdin, stdout and stderr must be true"));
            }
            running(&cri, &req.container_id)?;
            issue(&cri, crate::stream::Request::Attach(req))
        })
        .await?;
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        r: Request<cri::PortForwardRequest>,
    ) -> Result<Response<cri::PortForwardResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        let url = blocking("PortForward", false, move || {
            let s = crate::records::find(&cri.root, &req.pod_sandbox_id)?.ok_or_else(|| {
                crate::rpc::kinded(
                    strata_plugin_api::ErrorKind::NotFound,
                    format!("pod sandbox {} not found", req.pod_sandbox_id),
                )
            })?;
            if !sandbox::ready(&cri, &s) {
                return Err(crate::rpc::kinded(
                    strata_plugin_api::ErrorKind::FailedPrecondition,
                    format!("pod sandbox {} is not ready", s.id),
                ));
            }
            if req.port.iter().any(|p| !(1..=65535).contains(p)) {
                return Err(invalid("ports must be between 1 and 65535"));
            }
            issue(&cri, crate::stream::Request::PortForward(req))
        })
        .await?;
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().container_id;
        let stats = blocking("ContainerStats", false, move || {
            let (c, rec) = container::find(&cri, &id)?.ok_or_else(|| {
                crate::rpc::kinded(
                    strata_plugin_api::ErrorKind::NotFound,
                    format!("container {id} not found"),
                )
            })?;
            Ok(stats::container_stats(&cri, &c, &rec))
        })
        .await?;
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        let cri = self.0.clone();
        let f = r.into_inner().filter.unwrap_or_default();
        let stats = blocking("ListContainerStats", false, move || {
            let mut out = Vec::new();
            for e in cri.index.all(&cri)? {
                let (c, rec) = (&e.c, &e.rec);
                if (!f.id.is_empty() && !c.id().starts_with(&f.id))
                    || (!f.pod_sandbox_id.is_empty() && !rec.sandbox.starts_with(&f.pod_sandbox_id))
                    || !crate::records::labels_match(&rec.config.labels, &f.label_selector)
                {
                    continue;
                }
                out.push(stats::container_stats(&cri, c, rec));
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        r: Request<cri::PodSandboxStatsRequest>,
    ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        let cri = self.0.clone();
        let id = r.into_inner().pod_sandbox_id;
        let stats = blocking("PodSandboxStats", false, move || {
            let s = crate::records::find(&cri.root, &id)?.ok_or_else(|| {
                crate::rpc::kinded(
                    strata_plugin_api::ErrorKind::NotFound,
                    format!("pod sandbox {id} not found"),
                )
            })?;
            stats::sandbox_stats(&cri, &s)
        })
        .await?;
        Ok(Response::new(cri::PodSandboxStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        let cri = self.0.clone();
        let f = r.into_inner().filter.unwrap_or_default();
        let stats = blocking("ListPodSandboxStats", false, move || {
            let mut out = Vec::new();
            for s in crate::records::all(&cri.root) {
                if (!f.id.is_empty() && !s.id.starts_with(&f.id))
                    || !crate::records::labels_match(s.labels(), &f.label_selector)
                {
                    continue;
                }
                out.push(stats::sandbox_stats(&cri, &s)?);
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
    }

    async fn update_runtime_config(
        &self,
        r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        let cidr = r
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if !cidr.is_empty() {
            crate::log::info(format_args!("pod CIDR is now {cidr}"));
            *self.0.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()) = cidr;
        }
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(
        &self,
        r: Request<cri::StatusRequest>,
    ) -> Result<Response<cri::StatusResponse>, Status> {
        let cri = self.0.clone();
        let verbose = r.into_inner().verbose;
        let resp = blocking("Status", false, move || {
            let net = sandbox::pod_network(&cri);
            let network = match &net {
                Ok(_) => cri::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                Err(e) => cri::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: false,
                    reason: "NetworkPluginNotReady".into(),
                    message: format!("Network plugin returns error: {e:#}"),
                },
            };
            let runtime = cri::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            };
            let features = |runtime: &str| cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: crate::config::supports_rro(runtime),
                user_namespaces: crate::config::supports_userns(runtime),
            };
            let handlers = cri
                .config
                .runtimes
                .iter()
                .map(|(name, h)| cri::RuntimeHandler {
                    name: name.clone(),
                    features: Some(features(&h.runtime_path)),
                })
                .chain(std::iter::once(cri::RuntimeHandler {
                    name: String::new(),
                    features: Some(features(&cri.config.runtime_for("").unwrap_or_default())),
                }))
                .collect();
            let mut info = std::collections::HashMap::new();
            if verbose {
                info.insert(
                    "config".to_owned(),
                    serde_json::to_string(&cri.config).unwrap_or_default(),
                );
                if let Ok(n) = &net {
                    info.insert("network".to_owned(), n.list.name.clone());
                }
            }
            Ok(cri::StatusResponse {
                status: Some(cri::RuntimeStatus {
                    conditions: vec![runtime, network],
                }),
                info,
                runtime_handlers: handlers,
                features: Some(cri::RuntimeFeatures {
                    supplemental_groups_policy: true,
                }),
            })
        })
        .await?;
        Ok(Response::new(resp))
    }

    async fn checkpoint_container(
        &self,
        _r: Request<cri::CheckpointContainerRequest>,
    ) -> Result<Response<cri::CheckpointContainerResponse>, Status> {
        Err(Status::unimplemented(
            "checkpointing needs CRIU, which this runtime does not use (as CRI-O without CRIU)",
        ))
    }

    type GetContainerEventsStream =
        Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

    async fn get_container_events(
        &self,
        _r: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        let rx = self.0.events.subscribe();
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|e| match e {
            Ok(ev) => Some(Ok(ev)),
            // A slow subscriber missed events: tell it, as the kubelet then relists.
            Err(e) => Some(Err(Status::data_loss(format!("events were dropped: {e}")))),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Result<Response<cri::ListMetricDescriptorsResponse>, Status> {
        // No cAdvisor-style metrics beyond the stats RPCs (CRI-O without its
        // `included_pod_metrics`): UNIMPLEMENTED tells the kubelet to use cAdvisor's.
        Err(Status::unimplemented(
            "no metric descriptors: pod and container stats come from the stats RPCs",
        ))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<cri::ListPodSandboxMetricsResponse>, Status> {
        let cri = self.0.clone();
        let pod_metrics = blocking("ListPodSandboxMetrics", false, move || {
            Ok(crate::records::all(&cri.root)
                .into_iter()
                .map(|s| cri::PodSandboxMetrics {
                    pod_sandbox_id: s.id,
                    metrics: Vec::new(),
                    container_metrics: Vec::new(),
                })
                .collect())
        })
        .await?;
        Ok(Response::new(cri::ListPodSandboxMetricsResponse {
            pod_metrics,
        }))
    }

    async fn runtime_config(
        &self,
        _r: Request<cri::RuntimeConfigRequest>,
    ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        let driver = if self.0.config.cgroup_driver == "systemd" {
            cri::CgroupDriver::Systemd
        } else {
            cri::CgroupDriver::Cgroupfs
        };
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        }))
    }
}
