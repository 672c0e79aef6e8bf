//! The CRI image service over the shared store: what the kubelet pulls is what `strata
//! images` lists, and the other way round. Pulls go through the same copy engine as `strata
//! pull` (registries.conf, mirrors, TLS, streaming into the layer pipeline); concurrent pulls
//! of one image wait for one download. An image is stored under the name it was asked for
//! even when its bytes came from a mirror.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use strata_graph_registry::Credentials;
use strata_plugin_api::store::{ImageInfo, ImageSummary};
use strata_plugin_api::ErrorKind;
use strata_plugin_transfer::images::{self, RegistryArgs};
use tonic::{Request, Response, Status};

use crate::rpc::{blocking, kinded};
use crate::server::Cri;

/// The image service.
#[derive(Debug)]
pub struct Images(pub Arc<Cri>);

/// The CRI's image reference for a store image ID (`sha256:<hex>`).
pub fn image_ref(id: &str) -> String {
    if id.contains(':') {
        id.to_owned()
    } else {
        format!("sha256:{id}")
    }
}

/// The store's image for a CRI image spec: a name (short names as podman resolves them), an
/// ID (`sha256:<hex>` or hex, or a unique prefix) or a repo digest (`name@sha256:...`).
pub fn lookup(cri: &Cri, name: &str) -> Result<Option<ImageInfo>> {
    if name.is_empty() {
        return Err(crate::rpc::missing("image"));
    }
    let store = cri.host.store();
    let bare = name.strip_prefix("sha256:").unwrap_or(name);
    if bare.len() >= 12 && bare.chars().all(|c| c.is_ascii_hexdigit()) {
        match store.image(bare) {
            Ok(i) => return Ok(Some(i)),
            Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::InvalidArgument => {}
            Err(e) => return Err(strata_plugin_transfer::errors::call(e)),
        }
    }
    if name.contains('@') {
        if let Some(s) = summaries(cri)?
            .into_iter()
            .find(|s| s.repo_digests.iter().any(|d| d == name))
        {
            return Ok(Some(
                store
                    .image(&s.id)
                    .map_err(strata_plugin_transfer::errors::call)?,
            ));
        }
    }
    images::find_local(&cri.host, name).map_err(strata_plugin_transfer::errors::call)
}

fn summaries(cri: &Cri) -> Result<Vec<ImageSummary>> {
    cri.host
        .store()
        .images()
        .map_err(strata_plugin_transfer::errors::call)
}

/// The summary (size, repo digests) of one image, by ID.
fn one_summary(cri: &Cri, id: &str) -> Result<Option<ImageSummary>> {
    let filter = strata_plugin_api::store::ImageFilter {
        ids: vec![id.to_owned()],
        ..Default::default()
    };
    Ok(cri
        .host
        .store()
        .images_where(&filter)
        .map_err(strata_plugin_transfer::errors::call)?
        .into_iter()
        .find(|s| s.id == id))
}

/// The user an image's config runs as: a numeric UID, or a name.
fn image_user(config: &str) -> (Option<cri::Int64Value>, String) {
    let v: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    let user = v["config"]["User"].as_str().unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default();
    match user.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) if user.is_empty() => (Some(cri::Int64Value { value: 0 }), String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

fn to_cri(info: &ImageInfo, summary: Option<&ImageSummary>) -> cri::Image {
    let (uid, username) = image_user(&info.config);
    from_parts(
        &info.id,
        &info.names,
        summary.map(|s| s.repo_digests.clone()).unwrap_or_default(),
        summary
            .map(|s| s.size)
            .filter(|s| *s > 0)
            .unwrap_or_else(|| info.layers.iter().map(|l| l.size).sum()),
        uid,
        username,
    )
}

fn from_parts(
    id: &str,
    names: &[String],
    repo_digests: Vec<String>,
    size: u64,
    uid: Option<cri::Int64Value>,
    username: String,
) -> cri::Image {
    let id = image_ref(id);
    cri::Image {
        id: id.clone(),
        repo_tags: names.iter().filter(|n| !n.contains('@')).cloned().collect(),
        repo_digests,
        size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: id,
            annotations: HashMap::new(),
            user_specified_image: String::new(),
            runtime_handler: String::new(),
        }),
        pinned: false,
    }
}

fn list(cri: &Cri, filter: Option<cri::ImageFilter>) -> Result<Vec<cri::Image>> {
    let wanted = filter
        .and_then(|f| f.image)
        .map(|s| s.image)
        .filter(|s| !s.is_empty());
    let mut out = Vec::new();
    if let Some(name) = wanted {
        if let Some(i) = lookup(cri, &name)? {
            let s = one_summary(cri, &i.id)?;
            out.push(to_cri(&i, s.as_ref()));
        }
        return Ok(out);
    }
    for s in summaries(cri)? {
        // None: removed between the listing and the read, not there any more.
        let Some((uid, username)) = user_of(cri, &s.id)? else {
            continue;
        };
        out.push(from_parts(
            &s.id,
            &s.names,
            s.repo_digests.clone(),
            s.size,
            uid.map(|value| cri::Int64Value { value }),
            username,
        ));
    }
    Ok(out)
}

/// The user of image `id`, from the cache or (once) its config.
fn user_of(cri: &Cri, id: &str) -> Result<Option<(Option<i64>, String)>> {
    if let Some(u) = cri
        .image_users
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
    {
        return Ok(Some(u.clone()));
    }
    match cri.host.store().image(id) {
        Ok(i) => {
            let (uid, name) = image_user(&i.config);
            let u = (uid.map(|v| v.value), name);
            cri.image_users
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_owned(), u.clone());
            Ok(Some(u))
        }
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(strata_plugin_transfer::errors::call(e)),
    }
}

/// ImageStatus without `verbose`: one indexed query by ID or by the name's candidates, and
/// the user from the cache.
fn quick_status(cri: &Cri, name: &str) -> Result<Option<cri::Image>> {
    let bare = name.strip_prefix("sha256:").unwrap_or(name);
    let filter = if bare.len() >= 12 && bare.chars().all(|c| c.is_ascii_hexdigit()) {
        strata_plugin_api::store::ImageFilter {
            ids: vec![bare.to_owned()],
            ..Default::default()
        }
    } else {
        strata_plugin_api::store::ImageFilter {
            names: images::local_candidates(name),
            ..Default::default()
        }
    };
    let found = match cri.host.store().images_where(&filter) {
        Ok(f) => f,
        // A name the store cannot parse: answer as the full lookup does.
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            return Ok(lookup(cri, name)?.map(|i| to_cri(&i, None)));
        }
        Err(e) => return Err(strata_plugin_transfer::errors::call(e)),
    };
    // The most specific candidate wins, as `lookup` picks.
    let pick = if filter.ids.is_empty() {
        filter
            .names
            .iter()
            .find_map(|n| found.iter().find(|s| s.names.iter().any(|x| x == n)))
            .or(found.first())
    } else {
        found.first()
    };
    let Some(s) = pick else { return Ok(None) };
    let Some((uid, username)) = user_of(cri, &s.id)? else {
        return Ok(None);
    };
    Ok(Some(from_parts(
        &s.id,
        &s.names,
        s.repo_digests.clone(),
        s.size,
        uid.map(|value| cri::Int64Value { value }),
        username,
    )))
}

fn status(cri: &Cri, req: cri::ImageStatusRequest) -> Result<cri::ImageStatusResponse> {
    let name = req.image.map(|i| i.image).unwrap_or_default();
    if !req.verbose && !name.is_empty() && !name.contains('@') {
        return Ok(cri::ImageStatusResponse {
            image: quick_status(cri, &name)?,
            info: HashMap::new(),
        });
    }
    let Some(info) = lookup(cri, &name)? else {
        return Ok(cri::ImageStatusResponse::default());
    };
    let summary = one_summary(cri, &info.id)?;
    let mut extra = HashMap::new();
    if req.verbose {
        let config: serde_json::Value = serde_json::from_str(&info.config).unwrap_or_default();
        extra.insert(
            "info".to_owned(),
            serde_json::json!({
                "imageSpec": config,
                "chainIDs": info.layers.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
                "created": info.created,
            })
            .to_string(),
        );
    }
    Ok(cri::ImageStatusResponse {
        image: Some(to_cri(&info, summary.as_ref())),
        info: extra,
    })
}

/// Registry credentials from the request's auth config, in containerd's order: username
/// and password, an identity token (an OAuth2 refresh token, traded for bearer tokens), `auth`
/// (base64 of `USER:PASSWORD`), a registry token (a bearer token used as it is). With a
/// `server_address` they go to that registry only.
fn credentials(auth: Option<&cri::AuthConfig>) -> Result<Option<Credentials>> {
    let Some(a) = auth else { return Ok(None) };
    let creds = if !a.username.is_empty() {
        Credentials::new(&a.username, &a.password)
    } else if !a.identity_token.is_empty() {
        Credentials::with_identity_token("", &a.identity_token)
    } else if !a.auth.is_empty() {
        Credentials::decode(&a.auth).ok_or_else(|| {
            kinded(
                ErrorKind::InvalidArgument,
                "auth is not base64 of USER:PASSWORD",
            )
        })?
    } else if !a.registry_token.is_empty() {
        Credentials::with_registry_token(&a.registry_token)
    } else {
        return Ok(None);
    };
    Ok(Some(if a.server_address.is_empty() {
        creds
    } else {
        creds.for_registry(&a.server_address)
    }))
}

fn pull(cri: &Cri, req: cri::PullImageRequest) -> Result<cri::PullImageResponse> {
    let name = req.image.map(|i| i.image).unwrap_or_default();
    if name.is_empty() {
        return Err(crate::rpc::missing("image"));
    }
    let creds = credentials(req.auth.as_ref())?;
    // Requests for one image that arrive while it is being pulled wait for that pull and
    // share its result; a request after it finished pulls again (the tag may have moved).
    let slot = {
        let mut pulls = cri.pulls.lock().unwrap_or_else(|p| p.into_inner());
        pulls.entry(name.clone()).or_default().clone()
    };
    let started = Instant::now();
    let pulled = {
        let mut done = slot.lock().unwrap_or_else(|p| p.into_inner());
        match done.clone() {
            Some(id) => Ok(id),
            None => {
                let reg = RegistryArgs {
                    credentials: creds,
                    ..RegistryArgs::default()
                };
                let r = images::pull(&cri.host, &name, &reg, true)
                    .map(|i| i.id)
                    .map_err(strata_plugin_transfer::errors::call);
                if let Ok(id) = &r {
                    *done = Some(id.clone());
                }
                r
            }
        }
    };
    {
        let mut pulls = cri.pulls.lock().unwrap_or_else(|p| p.into_inner());
        if pulls.get(&name).is_some_and(|l| Arc::strong_count(l) <= 2) {
            pulls.remove(&name);
        }
    }
    let id = pulled?;
    let info = cri
        .host
        .store()
        .image(&id)
        .map_err(strata_plugin_transfer::errors::call)?;
    crate::log::info(format_args!(
        "pulled {name} as {} in {:.1?}",
        image_ref(&info.id),
        started.elapsed()
    ));
    Ok(cri::PullImageResponse {
        image_ref: image_ref(&info.id),
    })
}

fn remove(cri: &Cri, req: cri::RemoveImageRequest) -> Result<()> {
    let name = req.image.map(|i| i.image).unwrap_or_default();
    let Some(info) = lookup(cri, &name)? else {
        return Ok(());
    };
    match cri.host.store().remove_image(&info.id) {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(strata_plugin_transfer::errors::call(e)),
    }
}

/// Bytes and inodes used below `dir` (not following links, staying on its filesystem).
fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    let dev = std::fs::metadata(dir).map(|m| m.dev()).unwrap_or(0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

fn fs_info(cri: &Cri) -> cri::ImageFsInfoResponse {
    static CACHE: Mutex<Option<(Instant, (u64, u64))>> = Mutex::new(None);
    let (bytes, inodes) = {
        let mut c = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        match *c {
            Some((at, v)) if at.elapsed() < Duration::from_secs(10) => v,
            _ => {
                let v = usage(&cri.root);
                *c = Some((Instant::now(), v));
                v
            }
        }
    };
    let now = crate::records::now_nanos();
    let fs = cri::FilesystemUsage {
        timestamp: now,
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: cri.root.display().to_string(),
        }),
        used_bytes: Some(cri::UInt64Value { value: bytes }),
        inodes_used: Some(cri::UInt64Value { value: inodes }),
    };
    cri::ImageFsInfoResponse {
        image_filesystems: vec![fs.clone()],
        container_filesystems: vec![fs],
    }
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        r: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let cri = self.0.clone();
        let f = r.into_inner().filter;
        let images = blocking("ListImages", false, move || list(&cri, f)).await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        r: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        Ok(Response::new(
            blocking("ImageStatus", false, move || status(&cri, req)).await?,
        ))
    }

    async fn pull_image(
        &self,
        r: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        Ok(Response::new(
            blocking("PullImage", true, move || pull(&cri, req)).await?,
        ))
    }

    async fn remove_image(
        &self,
        r: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let cri = self.0.clone();
        let req = r.into_inner();
        blocking("RemoveImage", true, move || remove(&cri, req)).await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _r: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let cri = self.0.clone();
        Ok(Response::new(
            blocking("ImageFsInfo", false, move || Ok(fs_info(&cri))).await?,
        ))
    }
}
