//! Opening image ends by name for front-end plugins: every transport `strata-graph-image`
//! knows, `docker://` with the user's TLS and credential options, and `store:` through the
//! host. Shared by the copy and run front ends so a pull is one code path.

use std::path::PathBuf;

use clap::Args;
use strata_graph_image::{
    parse_transport, ImageDestination, ImageError, ImageName, ImageSource, Result,
};
use strata_graph_registry::{
    image_error, AuthStore, ClientOptions, Credentials, DockerDestination, DockerOptions,
    DockerSource, Reference, RegistriesConf, RegistryError,
};
use strata_plugin_api::Host;

use crate::store::{StoreDest, StoreSource};

/// TLS and credential options for one side of a copy (skopeo's `--src-*` / `--dest-*`).
#[derive(Debug, Clone, Args, Default)]
pub struct SideArgs {
    /// Verify TLS for this side's registry (default true; false also allows plain HTTP)
    #[arg(long, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Credentials as USER[:PASSWORD] for this side's registry
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Directory with CA certificates (*.crt) and client certificates (*.cert, *.key)
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

/// Registry options for one end.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    pub side: SideArgs,
    pub authfile: Option<PathBuf>,
    pub registries_conf: Option<PathBuf>,
    /// Repositories of the destination registry to mount blobs from (copies within one
    /// registry mount instead of uploading).
    pub mount_from: Vec<String>,
    /// Credentials a front end was handed (the CRI's auth config, which may be an identity
    /// or registry token): used instead of `side.creds` and the auth files.
    pub credentials: Option<Credentials>,
}

pub fn open_source(host: &Host, name: &str, o: &RemoteOptions) -> Result<Box<dyn ImageSource>> {
    match parse_transport(name)? {
        ImageName::Docker { reference } => source(&reference, o),
        ImageName::Store { reference } => Ok(Box::new(StoreSource::open(host, &reference)?)),
        local => local.open_source(),
    }
}

pub fn open_destination(
    host: &Host,
    name: &str,
    o: &RemoteOptions,
) -> Result<(Box<dyn ImageDestination>, ImageName)> {
    let parsed = parse_transport(name)?;
    let dst: Box<dyn ImageDestination> = match &parsed {
        ImageName::Docker { reference } => destination(reference, o)?,
        ImageName::Store { reference } => Box::new(StoreDest::new(host, vec![reference.clone()])),
        local => local.open_destination()?,
    };
    Ok((dst, parsed))
}

pub fn err(e: RegistryError) -> ImageError {
    image_error(&e)
}

/// Registry options from the command line: credentials (`--creds` beats auth files), TLS,
/// certificates, and registries.conf (`--registries-conf` or the system one).
pub fn docker_options(o: &RemoteOptions) -> Result<DockerOptions> {
    let credentials = match &o.credentials {
        Some(c) => Some(c.clone()),
        None => o
            .side
            .creds
            .as_deref()
            .map(Credentials::parse)
            .transpose()
            .map_err(err)?,
    };
    let mut client = ClientOptions {
        tls_verify: o.side.tls_verify,
        cert_dir: o.side.cert_dir.clone(),
        credentials,
        ..ClientOptions::default()
    };
    if let Some(f) = &o.authfile {
        client.auth = AuthStore::new(
            strata_graph_registry::AuthEnv::from_process(),
            Some(f.clone()),
        );
    }
    let registries = match &o.registries_conf {
        Some(p) => Some(RegistriesConf::load(p, None).map_err(err)?),
        None => Some(RegistriesConf::load_default().map_err(err)?),
    };
    Ok(DockerOptions {
        client,
        registries,
        mount_from: o.mount_from.clone(),
        ..DockerOptions::default()
    })
}

/// For a copy between two repositories of one registry: the source repository, whose blobs
/// the destination can mount instead of receiving them again.
pub fn mount_sources(source: &str, destination: &str) -> Vec<String> {
    let docker = |n: &str| match strata_graph_image::parse_transport(n) {
        Ok(ImageName::Docker { reference }) => Reference::parse(&reference).ok(),
        _ => None,
    };
    match (docker(source), docker(destination)) {
        (Some(s), Some(d)) if s.registry() == d.registry() && s.repository() != d.repository() => {
            vec![s.repository().to_owned()]
        }
        _ => Vec::new(),
    }
}

pub fn parse(reference: &str) -> Result<Reference> {
    Reference::parse(reference).map_err(err)
}

pub fn source(reference: &str, o: &RemoteOptions) -> Result<Box<dyn ImageSource>> {
    let r = parse(reference)?;
    Ok(Box::new(
        DockerSource::open(&r, &docker_options(o)?).map_err(err)?,
    ))
}

pub fn destination(reference: &str, o: &RemoteOptions) -> Result<Box<dyn ImageDestination>> {
    let r = parse(reference)?;
    Ok(Box::new(
        DockerDestination::open(&r, &docker_options(o)?).map_err(err)?,
    ))
}
