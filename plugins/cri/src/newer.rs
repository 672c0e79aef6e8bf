//! The CRI v1 RPCs newer than the `k8s-cri` crate's proto (cri-api v0.32), served beside
//! the generated services under the same service names:
//!
//! - the server-streaming lists (the CRI list streaming KEP's `StreamPodSandboxes`, `StreamContainers`,
//!   `StreamContainerStats`, `StreamPodSandboxStats`, `StreamPodSandboxMetrics`,
//!   `StreamImages`): the request carries the unary list request's fields (so the unary
//!   request types decode it), and the server sends one message per item, the item in the
//!   message's first field. A client that reads that field as a repeated batch (containerd
//!   2's reading) gets batches of one. A kubelet that finds them UNIMPLEMENTED falls back to
//!   the unary lists, so this is about lists past the 16 MiB message limit, not correctness.
//! - `UpdatePodSandboxResources` (KEP-1287, in-place pod resize): the kubelet has already
//!   resized the pod's cgroup when it calls; the call is best effort, for runtimes that pass
//!   it on (to NRI plugins). Strata has no such plugins: it checks the sandbox and records
//!   the new resources in the log.
//!
//! The messages are declared here with prost's derive (the wire format is the field numbers
//! and types of cri-api's proto) rather than by regenerating the whole API from a copy of
//! its proto file.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::{ImageService, ImageServiceServer};
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::NamedService;
use tonic::Status;

use crate::image::Images;
use crate::rpc::blocking;
use crate::runtime::Runtime;
use crate::server::Cri;

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPodSandboxesResponse {
    #[prost(message, optional, tag = "1")]
    pub pod_sandbox: Option<cri::PodSandbox>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamContainersResponse {
    #[prost(message, optional, tag = "1")]
    pub container: Option<cri::Container>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamContainerStatsResponse {
    #[prost(message, optional, tag = "1")]
    pub container_stats: Option<cri::ContainerStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPodSandboxStatsResponse {
    #[prost(message, optional, tag = "1")]
    pub pod_sandbox_stats: Option<cri::PodSandboxStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPodSandboxMetricsResponse {
    #[prost(message, optional, tag = "1")]
    pub pod_sandbox_metrics: Option<cri::PodSandboxMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamImagesResponse {
    #[prost(message, optional, tag = "1")]
    pub image: Option<cri::Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdatePodSandboxResourcesRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    pub overhead: Option<cri::LinuxContainerResources>,
    #[prost(message, optional, tag = "3")]
    pub resources: Option<cri::LinuxContainerResources>,
    #[prost(map = "string, string", tag = "4")]
    pub annotations: std::collections::HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdatePodSandboxResourcesResponse {}

type Reply = http::Response<tonic::body::Body>;

/// A generated service with the RPCs newer than its proto: calls to those are answered
/// here, the rest go to the generated service.
#[derive(Clone)]
pub struct Extended<S> {
    inner: S,
    cri: Arc<Cri>,
}

/// The newer RPCs of one service.
pub trait Newer {
    /// Whether `path` names one of them.
    fn handles(path: &str) -> bool;

    /// Answers a call [`Newer::handles`].
    fn answer<B>(cri: &Arc<Cri>, req: http::Request<B>) -> BoxFuture<Reply, Infallible>
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static;
}

impl<S, B> Service<http::Request<B>> for Extended<S>
where
    S: Newer
        + Service<
            http::Request<B>,
            Response = Reply,
            Error = Infallible,
            Future = BoxFuture<Reply, Infallible>,
        >,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = BoxFuture<Reply, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if S::handles(req.uri().path()) {
            S::answer(&self.cri, req)
        } else {
            self.inner.call(req)
        }
    }
}

/// The runtime service: the generated one plus the newer RPCs.
pub type RuntimeV1 = Extended<RuntimeServiceServer<Runtime>>;

impl RuntimeV1 {
    pub fn new(cri: Arc<Cri>) -> RuntimeV1 {
        let limit = cri.config.max_message_size;
        Extended {
            inner: RuntimeServiceServer::new(Runtime(cri.clone()))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            cri,
        }
    }
}

impl NamedService for RuntimeV1 {
    const NAME: &'static str = "runtime.v1.RuntimeService";
}

impl Newer for RuntimeServiceServer<Runtime> {
    fn handles(path: &str) -> bool {
        path.strip_prefix("/runtime.v1.RuntimeService/")
            .is_some_and(|m| {
                [
                    "StreamPodSandboxes",
                    "StreamContainers",
                    "StreamContainerStats",
                    "StreamPodSandboxStats",
                    "StreamPodSandboxMetrics",
                    "UpdatePodSandboxResources",
                ]
                .contains(&m)
            })
    }

    fn answer<B>(cri: &Arc<Cri>, req: http::Request<B>) -> BoxFuture<Reply, Infallible>
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let limit = cri.config.max_message_size;
        let rt = Runtime(cri.clone());
        match req.uri().path() {
            "/runtime.v1.RuntimeService/StreamPodSandboxes" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListPodSandboxRequest>| async move {
                    Ok(items(
                        rt.list_pod_sandbox(r).await?.into_inner().items,
                        |p| StreamPodSandboxesResponse {
                            pod_sandbox: Some(p),
                        },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/StreamContainers" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListContainersRequest>| async move {
                    Ok(items(
                        rt.list_containers(r).await?.into_inner().containers,
                        |c| StreamContainersResponse { container: Some(c) },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/StreamContainerStats" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListContainerStatsRequest>| async move {
                    Ok(items(
                        rt.list_container_stats(r).await?.into_inner().stats,
                        |s| StreamContainerStatsResponse {
                            container_stats: Some(s),
                        },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/StreamPodSandboxStats" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListPodSandboxStatsRequest>| async move {
                    Ok(items(
                        rt.list_pod_sandbox_stats(r).await?.into_inner().stats,
                        |s| StreamPodSandboxStatsResponse {
                            pod_sandbox_stats: Some(s),
                        },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/StreamPodSandboxMetrics" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListPodSandboxMetricsRequest>| async move {
                    Ok(items(
                        rt.list_pod_sandbox_metrics(r)
                            .await?
                            .into_inner()
                            .pod_metrics,
                        |m| StreamPodSandboxMetricsResponse {
                            pod_sandbox_metrics: Some(m),
                        },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/UpdatePodSandboxResources" => {
                let cri = cri.clone();
                unary(
                    req,
                    limit,
                    move |r: tonic::Request<UpdatePodSandboxResourcesRequest>| async move {
                        let r = r.into_inner();
                        blocking("UpdatePodSandboxResources", true, move || {
                            update_pod_sandbox_resources(&cri, &r)
                        })
                        .await
                    },
                )
            }
            _ => unimplemented_reply(),
        }
    }
}

fn update_pod_sandbox_resources(
    cri: &Cri,
    r: &UpdatePodSandboxResourcesRequest,
) -> anyhow::Result<UpdatePodSandboxResourcesResponse> {
    if r.pod_sandbox_id.is_empty() {
        return Err(crate::rpc::missing("pod_sandbox_id"));
    }
    let Some(s) = crate::records::find(&cri.root, &r.pod_sandbox_id)? else {
        return Err(crate::rpc::kinded(
            strata_plugin_api::ErrorKind::NotFound,
            format!("pod sandbox {} not found", r.pod_sandbox_id),
        ));
    };
    let summary = |x: &Option<cri::LinuxContainerResources>| {
        x.as_ref().map(|x| {
            format!(
                "cpu shares {} quota {} period {}, memory {}",
                x.cpu_shares, x.cpu_quota, x.cpu_period, x.memory_limit_in_bytes
            )
        })
    };
    crate::log::info(format_args!(
        "pod sandbox {} resized by the kubelet: resources {:?}, overhead {:?}",
        s.id,
        summary(&r.resources),
        summary(&r.overhead)
    ));
    Ok(UpdatePodSandboxResourcesResponse {})
}

/// The image service: the generated one plus `StreamImages`.
pub type ImageV1 = Extended<ImageServiceServer<Images>>;

impl ImageV1 {
    pub fn new(cri: Arc<Cri>) -> ImageV1 {
        let limit = cri.config.max_message_size;
        Extended {
            inner: ImageServiceServer::new(Images(cri.clone()))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            cri,
        }
    }
}

impl NamedService for ImageV1 {
    const NAME: &'static str = "runtime.v1.ImageService";
}

impl Newer for ImageServiceServer<Images> {
    fn handles(path: &str) -> bool {
        path == "/runtime.v1.ImageService/StreamImages"
    }

    fn answer<B>(cri: &Arc<Cri>, req: http::Request<B>) -> BoxFuture<Reply, Infallible>
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let limit = cri.config.max_message_size;
        let images = Images(cri.clone());
        match req.uri().path() {
            "/runtime.v1.ImageService/StreamImages" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListImagesRequest>| async move {
                    Ok(items(
                        images.list_images(r).await?.into_inner().images,
                        |i| StreamImagesResponse { image: Some(i) },
                    ))
                },
            ),
            _ => unimplemented_reply(),
        }
    }
}

/// The gRPC answer to a method nobody serves.
fn unimplemented_reply() -> BoxFuture<Reply, Infallible> {
    Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) })
}

fn items<T, R>(list: Vec<T>, wrap: impl Fn(T) -> R) -> Vec<R> {
    list.into_iter().map(wrap).collect()
}

/// A server-streaming call answered from a list computed once.
struct ListCall<Req, F>(Option<F>, PhantomData<fn(Req)>);

type ItemStream<R> = tokio_stream::Iter<std::vec::IntoIter<Result<R, Status>>>;

impl<Req, Resp, F, Fut> tonic::server::ServerStreamingService<Req> for ListCall<Req, F>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Resp>, Status>> + Send + 'static,
{
    type Response = Resp;
    type ResponseStream = ItemStream<Resp>;
    type Future = BoxFuture<tonic::Response<ItemStream<Resp>>, Status>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let f = self.0.take();
        Box::pin(async move {
            let f = f.ok_or_else(|| Status::internal("a list call was made twice"))?;
            let list = f(request).await?;
            let list: Vec<Result<Resp, Status>> = list.into_iter().map(Ok).collect();
            Ok(tonic::Response::new(tokio_stream::iter(list)))
        })
    }
}

fn stream<B, Req, Resp, F, Fut>(
    req: http::Request<B>,
    limit: usize,
    f: F,
) -> BoxFuture<Reply, Infallible>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Resp>, Status>> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default())
            .apply_max_message_size_config(Some(limit), Some(limit));
        Ok(grpc
            .server_streaming(ListCall(Some(f), PhantomData), req)
            .await)
    })
}

/// A unary call.
struct UnaryCall<Req, F>(Option<F>, PhantomData<fn(Req)>);

impl<Req, Resp, F, Fut> tonic::server::UnaryService<Req> for UnaryCall<Req, F>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<tonic::Response<Resp>, Status>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let f = self.0.take();
        Box::pin(async move {
            let f = f.ok_or_else(|| Status::internal("a call was made twice"))?;
            f(request).await.map(tonic::Response::new)
        })
    }
}

fn unary<B, Req, Resp, F, Fut>(
    req: http::Request<B>,
    limit: usize,
    f: F,
) -> BoxFuture<Reply, Infallible>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default())
            .apply_max_message_size_config(Some(limit), Some(limit));
        Ok(grpc.unary(UnaryCall(Some(f), PhantomData), req).await)
    })
}
