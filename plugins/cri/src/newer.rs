//! The CRI v1 RPCs newer than the `k8s-cri` crate's proto (cri-api v0.32), served beside
//! the generated services under the same service names:
//!
//! - the server-streaming lists (`StreamPodSandboxes`, `StreamContainers`,
//!   `StreamContainerStats`, `StreamPodSandboxStats`, `StreamPodSandboxMetrics`,
//!   `StreamImages`, KEP-5825): the request carries the unary list request's fields (so the
//!   unary request types decode it), and the server answers the list in messages of up to
//!   [`BATCH`] items (field 1, repeated), then ends the stream. A kubelet that finds them
//!   UNIMPLEMENTED falls back to the unary lists, so this is about lists past the 16 MiB
//!   message limit, not correctness.
//! - `UpdatePodSandboxResources` (KEP-1287, in-place pod resize): the kubelet has already
//!   resized the pod's cgroup when it calls; the call is best effort, for runtimes that pass
//!   it on (to NRI plugins). Strata has no such plugins: it checks the sandbox and records
//!   the new resources in the log.
//!
//! - `CreateContainer` itself, to read the mounts' `image_sub_path` (an image volume's sub
//!   path), which the crate's types drop: the request's bytes are decoded twice, once as the
//!   crate's request and once as a shadow message holding only that field; and
//!   `ContainerStatus`, to add the image volumes' `ImageSpec.image_ref` to the reply's bytes.
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
    #[prost(message, repeated, tag = "1")]
    pub pod_sandboxes: Vec<cri::PodSandbox>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<cri::Container>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamContainerStatsResponse {
    #[prost(message, repeated, tag = "1")]
    pub container_stats: Vec<cri::ContainerStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPodSandboxStatsResponse {
    #[prost(message, repeated, tag = "1")]
    pub pod_sandbox_stats: Vec<cri::PodSandboxStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPodSandboxMetricsResponse {
    #[prost(message, repeated, tag = "1")]
    pub pod_sandbox_metrics: Vec<cri::PodSandboxMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamImagesResponse {
    #[prost(message, repeated, tag = "1")]
    pub images: Vec<cri::Image>,
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
                    "CreateContainer",
                    "ContainerStatus",
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
                        |p| StreamPodSandboxesResponse { pod_sandboxes: p },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/StreamContainers" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListContainersRequest>| async move {
                    Ok(items(
                        rt.list_containers(r).await?.into_inner().containers,
                        |c| StreamContainersResponse { containers: c },
                    ))
                },
            ),
            "/runtime.v1.RuntimeService/StreamContainerStats" => stream(
                req,
                limit,
                move |r: tonic::Request<cri::ListContainerStatsRequest>| async move {
                    Ok(items(
                        rt.list_container_stats(r).await?.into_inner().stats,
                        |s| StreamContainerStatsResponse { container_stats: s },
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
                            pod_sandbox_stats: s,
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
                            pod_sandbox_metrics: m,
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
            "/runtime.v1.RuntimeService/CreateContainer" => {
                let cri = cri.clone();
                Box::pin(async move {
                    let mut grpc = tonic::server::Grpc::new(CreateCodec)
                        .apply_max_message_size_config(Some(limit), Some(limit));
                    Ok(grpc.unary(CreateCall(cri), req).await)
                })
            }
            "/runtime.v1.RuntimeService/ContainerStatus" => {
                let cri = cri.clone();
                Box::pin(async move {
                    let mut grpc = tonic::server::Grpc::new(StatusCodec)
                        .apply_max_message_size_config(Some(limit), Some(limit));
                    Ok(grpc.unary(StatusCall(cri), req).await)
                })
            }
            _ => unimplemented_reply(),
        }
    }
}

/// ContainerStatus, served here to add each image volume's `ImageSpec.image_ref` (field 20,
/// newer than the `k8s-cri` proto): the image's ID as PullImage answered it, which a newer
/// kubelet reports as the volume's digest. The reply is encoded around the crate's messages.
struct StatusCodec;

/// The reply and, by mount, the image reference of each image volume (empty for others).
struct StatusReply {
    reply: cri::ContainerStatusResponse,
    image_refs: Vec<String>,
}

impl tonic::codec::Codec for StatusCodec {
    type Encode = StatusReply;
    type Decode = cri::ContainerStatusRequest;
    type Encoder = StatusEncoder;
    type Decoder = tonic_prost::ProstDecoder<cri::ContainerStatusRequest>;

    fn encoder(&mut self) -> StatusEncoder {
        StatusEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        Default::default()
    }
}

struct StatusEncoder;

impl tonic::codec::Encoder for StatusEncoder {
    type Item = StatusReply;
    type Error = Status;

    fn encode(
        &mut self,
        item: StatusReply,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        prost::bytes::BufMut::put_slice(buf, &encode_status(item));
        Ok(())
    }
}

/// The reply's bytes: the crate's encoding, with `image_ref` added to the mounts' images
/// (`ContainerStatusResponse.status` 1 → `ContainerStatus.mounts` 14 → `Mount.image` 9 →
/// `ImageSpec.image_ref` 20). Fields may come in any order on the wire.
fn encode_status(item: StatusReply) -> Vec<u8> {
    use prost::Message;
    let StatusReply {
        mut reply,
        image_refs,
    } = item;
    let Some(mut status) = reply.status.take() else {
        return reply.encode_to_vec();
    };
    let mounts = std::mem::take(&mut status.mounts);
    let mut st = status.encode_to_vec();
    for (i, mut m) in mounts.into_iter().enumerate() {
        let image = m.image.take();
        let mut mb = m.encode_to_vec();
        if let Some(img) = image {
            let mut ib = img.encode_to_vec();
            if let Some(r) = image_refs.get(i).filter(|r| !r.is_empty()) {
                prost::encoding::string::encode(20, r, &mut ib);
            }
            prost::encoding::bytes::encode(9, &ib, &mut mb);
        }
        prost::encoding::bytes::encode(14, &mb, &mut st);
    }
    let mut out = reply.encode_to_vec();
    prost::encoding::bytes::encode(1, &st, &mut out);
    out
}

struct StatusCall(Arc<Cri>);

impl tonic::server::UnaryService<cri::ContainerStatusRequest> for StatusCall {
    type Response = StatusReply;
    type Future = BoxFuture<tonic::Response<StatusReply>, Status>;

    fn call(&mut self, request: tonic::Request<cri::ContainerStatusRequest>) -> Self::Future {
        let cri = self.0.clone();
        Box::pin(async move {
            let req = request.into_inner();
            let reply = blocking("ContainerStatus", false, move || {
                let reply = crate::container::status(&cri, &req.container_id, req.verbose)?;
                let image_refs = reply
                    .status
                    .iter()
                    .flat_map(|s| &s.mounts)
                    .map(|m| {
                        m.image
                            .as_ref()
                            .and_then(|i| crate::image::lookup(&cri, &i.image).ok().flatten())
                            .map(|info| crate::image::image_ref(&info.id))
                            .unwrap_or_default()
                    })
                    .collect();
                Ok(StatusReply { reply, image_refs })
            })
            .await?;
            Ok(tonic::Response::new(reply))
        })
    }
}

/// CreateContainer, served here to read the mounts' `image_sub_path` (field 10 of `Mount`,
/// newer than the `k8s-cri` proto, whose types drop it): the request's bytes are decoded
/// twice, as the crate's request and as [`CreateShadow`], which has only that field.
struct CreateCodec;

/// The request and its mounts' image sub paths, by index.
type CreateRequest = (cri::CreateContainerRequest, Vec<String>);

impl tonic::codec::Codec for CreateCodec {
    type Encode = cri::CreateContainerResponse;
    type Decode = CreateRequest;
    type Encoder = tonic_prost::ProstEncoder<cri::CreateContainerResponse>;
    type Decoder = CreateDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        Default::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CreateDecoder
    }
}

struct CreateDecoder;

impl tonic::codec::Decoder for CreateDecoder {
    type Item = CreateRequest;
    type Error = Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<CreateRequest>, Status> {
        use prost::bytes::Buf;
        use prost::Message;
        let raw = buf.copy_to_bytes(buf.remaining());
        let bad = |e: prost::DecodeError| {
            Status::invalid_argument(format!("CreateContainerRequest: {e}"))
        };
        let req = cri::CreateContainerRequest::decode(raw.clone()).map_err(bad)?;
        let shadow = CreateShadow::decode(raw).map_err(bad)?;
        let sub_paths = shadow
            .config
            .map(|c| c.mounts.into_iter().map(|m| m.image_sub_path).collect())
            .unwrap_or_default();
        Ok(Some((req, sub_paths)))
    }
}

/// `CreateContainerRequest` as far as `config.mounts[].image_sub_path`.
#[derive(Clone, PartialEq, prost::Message)]
struct CreateShadow {
    #[prost(message, optional, tag = "2")]
    config: Option<ConfigShadow>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ConfigShadow {
    #[prost(message, repeated, tag = "7")]
    mounts: Vec<MountShadow>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MountShadow {
    #[prost(string, tag = "10")]
    image_sub_path: String,
}

struct CreateCall(Arc<Cri>);

impl tonic::server::UnaryService<CreateRequest> for CreateCall {
    type Response = cri::CreateContainerResponse;
    type Future = BoxFuture<tonic::Response<cri::CreateContainerResponse>, Status>;

    fn call(&mut self, request: tonic::Request<CreateRequest>) -> Self::Future {
        let cri = self.0.clone();
        Box::pin(async move {
            let (req, sub_paths) = request.into_inner();
            let id = blocking("CreateContainer", true, move || {
                crate::container::create(&cri, req, &sub_paths)
            })
            .await?;
            Ok(tonic::Response::new(cri::CreateContainerResponse {
                container_id: id,
            }))
        })
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
                        |i| StreamImagesResponse { images: i },
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

/// How many items one streamed message carries (the protocol's "lists of at least one
/// item"): well under the message limit for any item the CRI has.
const BATCH: usize = 100;

/// A list cut into the messages of a stream.
fn items<T, R>(list: Vec<T>, wrap: impl Fn(Vec<T>) -> R) -> Vec<R> {
    let mut out = Vec::with_capacity(list.len().div_ceil(BATCH));
    let mut it = list.into_iter().peekable();
    while it.peek().is_some() {
        out.push(wrap(it.by_ref().take(BATCH).collect()));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Refs {
        #[prost(message, optional, tag = "1")]
        status: Option<Mounts>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Mounts {
        #[prost(message, repeated, tag = "14")]
        mounts: Vec<MountRef>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct MountRef {
        #[prost(message, optional, tag = "9")]
        image: Option<SpecRef>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct SpecRef {
        #[prost(string, tag = "20")]
        image_ref: String,
    }

    #[test]
    fn status_replies_are_the_crates_bytes_plus_image_refs() {
        let reply = cri::ContainerStatusResponse {
            status: Some(cri::ContainerStatus {
                id: "c1".into(),
                log_path: "/var/log/c1.log".into(),
                mounts: vec![
                    cri::Mount {
                        container_path: "/data".into(),
                        host_path: "/srv".into(),
                        ..Default::default()
                    },
                    cri::Mount {
                        container_path: "/vol".into(),
                        readonly: true,
                        image: Some(cri::ImageSpec {
                            image: "sha256:abc".into(),
                            user_specified_image: "busybox".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            info: [("info".to_owned(), "{}".to_owned())].into(),
        };
        let bytes = encode_status(StatusReply {
            reply: reply.clone(),
            image_refs: vec![String::new(), "sha256:abc".into()],
        });
        let decoded = cri::ContainerStatusResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(
            decoded, reply,
            "the crate's reader sees the reply unchanged"
        );
        let refs = Refs::decode(&bytes[..]).expect("decodes");
        let got: Vec<String> = refs
            .status
            .expect("status")
            .mounts
            .into_iter()
            .map(|m| m.image.map(|i| i.image_ref).unwrap_or_default())
            .collect();
        assert_eq!(got, ["", "sha256:abc"]);
        let empty = encode_status(StatusReply {
            reply: cri::ContainerStatusResponse::default(),
            image_refs: Vec::new(),
        });
        assert!(cri::ContainerStatusResponse::decode(&empty[..])
            .expect("decodes")
            .status
            .is_none());
    }

    #[test]
    fn lists_are_cut_into_batches() {
        let batches = items((0..250).collect(), |b: Vec<i32>| b.len());
        assert_eq!(batches, [100, 100, 50]);
        assert!(items(Vec::<i32>::new(), |b| b.len()).is_empty());
    }
}
