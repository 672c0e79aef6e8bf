//! The registry side of the copy plugin: opening `docker://` ends with the user's TLS and
//! credential options, and the commands that only make sense on registries (`list-tags`,
//! `delete`, `sync`, `login`, `logout`, the name and tags of `inspect-remote`).

use std::io::Read;

use strata_graph_image::{
    copy_image, CopyOptions, Descriptor, ImageError, ImageName, ImageSource, Result,
};
use strata_graph_registry::{
    delete_image, list_tags, AuthStore, Client, ClientOptions, Credentials, Reference,
    RegistriesConf,
};
use strata_plugin_api::Host;

use crate::commands::{LoginArgs, LogoutArgs, SyncArgs};
pub use strata_plugin_transfer::ends::mount_sources;
use strata_plugin_transfer::ends::{docker_options, err, parse, RemoteOptions};

/// The config blob of the image `src` holds (the host platform's, for an index).
pub fn config_bytes(src: &dyn ImageSource) -> Result<Vec<u8>> {
    use strata_graph_image::manifest::{classify, parse_index, parse_manifest, ManifestKind};
    let mut raw = src.manifest()?;
    if classify(&raw)? == ManifestKind::Index {
        let index = parse_index(&raw.bytes)?;
        let entry = strata_graph_image::platform::select(
            &index.manifests,
            &strata_graph_image::Platform::host(),
        )?;
        raw = src.manifest_by_digest(&entry.digest)?;
    }
    let m = parse_manifest(&raw.bytes)?;
    let desc: &Descriptor = &m.config;
    let mut out = Vec::with_capacity(desc.size as usize);
    src.blob(desc)?
        .take(desc.size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(ImageError::io("read the config of", src.describe()))?;
    let got = strata_types::Digest::of(&out);
    if got != desc.digest {
        return Err(ImageError::DigestMismatch {
            what: "config".into(),
            expected: desc.digest.to_string(),
            actual: got.to_string(),
        });
    }
    Ok(out)
}

/// The canonical name of `reference` and (if `with_tags`) its repository's tags.
pub fn name_and_tags(
    reference: &str,
    o: &RemoteOptions,
    with_tags: bool,
) -> Result<(String, Vec<String>)> {
    let r = Reference::parse_name_or_ref(reference).map_err(err)?;
    let tags = if with_tags {
        list_tags(&r, &docker_options(o)?).map_err(err)?
    } else {
        Vec::new()
    };
    Ok((format!("{}/{}", r.registry(), r.repository()), tags))
}

pub fn delete(reference: &str, o: &RemoteOptions) -> Result<()> {
    let r = parse(reference)?;
    let d = delete_image(&r, &docker_options(o)?).map_err(err)?;
    tracing::info!(image = %r, digest = %d, "deleted");
    Ok(())
}

/// `sync SRC DST`: every tag of a repository (or the one tag named) to a registry
/// namespace, an OCI layout (tags become references) or `dir:` directories.
pub fn sync(host: &Host, a: &SyncArgs) -> Result<()> {
    let src_o = RemoteOptions {
        side: crate::commands::SideArgs {
            tls_verify: a.src.tls_verify,
            creds: a.src.creds.clone(),
            cert_dir: a.src.cert_dir.clone(),
        },
        authfile: a.authfile.clone(),
        registries_conf: a.registries_conf.clone(),
        mount_from: Vec::new(),
        credentials: None,
    };
    let dst_o = RemoteOptions {
        side: crate::commands::SideArgs {
            tls_verify: a.dest.tls_verify,
            creds: a.dest.creds.clone(),
            cert_dir: a.dest.cert_dir.clone(),
        },
        ..src_o.clone()
    };
    let ImageName::Docker { reference } = strata_graph_image::parse_transport(&a.source)? else {
        return Err(ImageError::Invalid(format!(
            "sync copies from a registry: write the source as docker://REGISTRY/REPO[:TAG], not {}",
            a.source
        )));
    };
    let repo = Reference::parse_name_or_ref(&reference).map_err(err)?;
    let tags = match repo.tag() {
        Some(t) if reference.contains(':') && !reference.ends_with(repo.repository()) => {
            vec![t.to_owned()]
        }
        _ => list_tags(&repo, &docker_options(&src_o)?).map_err(err)?,
    };
    let base = repo
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or("image")
        .to_owned();
    let dst = strata_graph_image::parse_transport(&a.destination)?;
    for tag in &tags {
        let src_name = format!("docker://{}/{}:{tag}", repo.registry(), repo.repository());
        let dst_name = match &dst {
            ImageName::Docker { reference } => {
                format!("docker://{}/{base}:{tag}", reference.trim_end_matches('/'))
            }
            ImageName::Oci { dir, .. } => format!("oci:{}:{tag}", dir.display()),
            ImageName::Dir { dir } => {
                format!("dir:{}", dir.join(format!("{base}:{tag}")).display())
            }
            other => {
                return Err(ImageError::Unsupported(format!(
                    "sync writes to docker://, oci: or dir:, not {other}"
                )))
            }
        };
        if !a.quiet {
            eprintln!("Copying {src_name} to {dst_name}");
        }
        let src = crate::ends::open_source(host, &src_name, &src_o)?;
        let (dst_end, dst_parsed) = crate::ends::open_destination(host, &dst_name, &dst_o)?;
        let opts = CopyOptions {
            all: a.all,
            format: dst_parsed.required_format(),
            progress: crate::progress::reporter(a.quiet),
            ..CopyOptions::default()
        };
        copy_image(src.as_ref(), dst_end.as_ref(), &opts)?;
    }
    if !a.quiet {
        eprintln!("{} images synced", tags.len());
    }
    Ok(())
}

pub fn login(a: &LoginArgs) -> Result<()> {
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            return Err(ImageError::Invalid(
                "give the username with --username (-u)".into(),
            ))
        }
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(ImageError::io("read the password from", "stdin"))?;
            s.trim_end_matches(['\n', '\r']).to_owned()
        }
        (Some(_), true) => {
            return Err(ImageError::Invalid(
                "--password and --password-stdin exclude each other".into(),
            ))
        }
        (None, false) => {
            return Err(ImageError::Invalid(
                "give the password with --password-stdin (or --password)".into(),
            ))
        }
    };
    let creds = Credentials::new(username, password);
    let auth = AuthStore::new(
        strata_graph_registry::AuthEnv::from_process(),
        a.authfile.clone(),
    );
    let registry = a
        .registry
        .trim_start_matches("docker://")
        .trim_end_matches('/');
    let opts = ClientOptions {
        tls_verify: a.tls_verify,
        cert_dir: a.cert_dir.clone(),
        credentials: Some(creds.clone()),
        auth: auth.clone(),
        insecure: RegistriesConf::load_default()
            .map(|c| c.is_insecure(registry))
            .unwrap_or(false),
        ..ClientOptions::default()
    };
    let client = Client::new(registry, &opts).map_err(err)?;
    client.check_login().map_err(err)?;
    let path = auth.login(registry, &creds).map_err(err)?;
    tracing::info!(registry, file = %path.display(), "credentials stored");
    println!("Login Succeeded!");
    Ok(())
}

pub fn logout(a: &LogoutArgs) -> Result<()> {
    let auth = AuthStore::new(
        strata_graph_registry::AuthEnv::from_process(),
        a.authfile.clone(),
    );
    match (&a.registry, a.all) {
        (_, true) => {
            auth.logout_all().map_err(err)?;
            println!("Removed login credentials for all registries");
        }
        (Some(r), false) => {
            let r = r.trim_start_matches("docker://").trim_end_matches('/');
            auth.logout(r).map_err(err)?;
            println!("Removed login credentials for {r}");
        }
        (None, false) => {
            return Err(ImageError::Invalid(
                "name the registry to log out of, or give --all".into(),
            ))
        }
    }
    Ok(())
}
