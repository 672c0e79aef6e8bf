//! `strata build`'s command line (podman build's flags) and what it resolves to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Parser};
use strata_engine_containers::NetworkMode;
use strata_plugin_api::ErrorKind;
use strata_plugin_transfer::errors::kinded;
use strata_plugin_transfer::images::{PullPolicy, RegistryArgs};

use crate::config::Format;

/// `strata build [OPTIONS] [CONTEXT]`: podman build's flags.
#[derive(Debug, Parser)]
#[command(name = "strata build", about = "Build an image from a Containerfile")]
pub struct BuildCmd {
    /// The Containerfile (repeatable: concatenated; `-` reads standard input). Default:
    /// CONTEXT/Containerfile, else CONTEXT/Dockerfile
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Vec<String>,
    /// Name the image (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tag: Vec<String>,
    /// A build argument, NAME=VALUE (NAME alone takes the environment's value)
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_arg: Vec<String>,
    /// A file of NAME=VALUE lines (comments and blank lines skipped)
    #[arg(long = "build-arg-file", value_name = "FILE")]
    pub build_arg_file: Vec<PathBuf>,
    /// Build up to this stage
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Keep an image per step and use the cache (default true)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub layers: bool,
    /// Do not use the cache (steps are still recorded for later builds)
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images: missing (default), always, never, newer
    #[arg(long, value_enum, num_args = 0..=1, default_value = "missing", default_missing_value = "always")]
    pub pull: PullPolicy,
    /// Image format: oci (default) or docker
    #[arg(long, value_enum, default_value = "oci")]
    pub format: Format,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Squash the build's new layers into one (the base image's layers stay)
    #[arg(long)]
    pub squash: bool,
    /// Squash every layer, the base image's too, into one
    #[arg(long = "squash-all")]
    pub squash_all: bool,
    /// Add a label to the image, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Add an annotation to the image's manifest, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Set every created time to these unix seconds (reproducible builds)
    #[arg(long, value_name = "SECONDS")]
    pub timestamp: Option<i64>,
    /// Like --timestamp (also from SOURCE_DATE_EPOCH)
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<i64>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR
    #[arg(long, value_name = "id=ID,src=FILE")]
    pub secret: Vec<String>,
    /// An extra named context for COPY --from: NAME=DIR
    #[arg(long = "build-context", value_name = "NAME=DIR")]
    pub build_context: Vec<String>,
    /// The network of RUN steps: default, none or host
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// How RUN steps are isolated: oci (default) or chroot (the same OCI containers here)
    #[arg(long, value_name = "TYPE", default_value = "oci")]
    pub isolation: String,
    /// The ignore file (default: CONTEXT/.containerignore, else CONTEXT/.dockerignore)
    #[arg(long, value_name = "FILE")]
    pub ignorefile: Option<PathBuf>,
    /// Build this many independent stages at once
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// The platform to build for (only this host's own)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the image ID
    #[arg(short, long)]
    pub quiet: bool,
    /// The OCI runtime of RUN steps (crun, runc)
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The build context directory (default: the current directory)
    #[arg(value_name = "CONTEXT")]
    pub context: Option<PathBuf>,
}

/// What the build runs with, resolved from the command line.
#[derive(Debug)]
pub struct Options {
    pub file_name: String,
    pub format: Format,
    pub layers: bool,
    pub no_cache: bool,
    pub pull: PullPolicy,
    pub registry: RegistryArgs,
    pub quiet: bool,
    pub timestamp: Option<i64>,
    pub build_args: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, PathBuf>,
    pub network: Option<String>,
    pub runtime: Option<String>,
    pub rootless: bool,
    /// `<store root>/build`: cache mounts, stat caches, secrets from the environment.
    pub build_dir: PathBuf,
}

impl Options {
    pub fn use_cache(&self) -> bool {
        self.layers && !self.no_cache
    }

    /// The network of a RUN step when none is asked for: podman's (a bridge as root,
    /// slirp4netns rootless).
    pub fn default_network(&self) -> NetworkMode {
        if self.rootless {
            strata_engine_containers::rootless::default_network()
        } else {
            NetworkMode::Bridge
        }
    }
}

/// The predefined platform args (BuildKit's TARGET* and BUILD*), all this host.
pub fn predefined_args() -> Vec<(String, String)> {
    let (arch, variant) = strata_types::arch::go_platform();
    let platform = match variant {
        Some(v) => format!("linux/{arch}/{v}"),
        None => format!("linux/{arch}"),
    };
    let mut out = Vec::new();
    for prefix in ["TARGET", "BUILD"] {
        out.push((format!("{prefix}PLATFORM"), platform.clone()));
        out.push((format!("{prefix}OS"), "linux".to_owned()));
        out.push((format!("{prefix}ARCH"), arch.to_owned()));
        out.push((format!("{prefix}VARIANT"), variant.unwrap_or("").to_owned()));
    }
    out
}

/// `--platform`: only this host's platform can be built (RUN steps run here).
pub fn check_platform(p: &str) -> Result<()> {
    let (arch, variant) = strata_types::arch::go_platform();
    let parts: Vec<&str> = p.split('/').collect();
    let ok = match parts.as_slice() {
        ["linux", a] => *a == arch,
        ["linux", a, v] => *a == arch && Some(*v) == variant,
        _ => false,
    };
    if !ok {
        bail!(kinded(
            ErrorKind::Unsupported,
            format!(
                "--platform {p}: only this host's platform (linux/{arch}) can be built here; \
                 RUN steps of another architecture would need emulation"
            )
        ));
    }
    Ok(())
}

/// `--build-arg-file` lines then `--build-arg`s (a later one wins).
pub fn build_args(cmd: &BuildCmd) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut add = |a: &str| {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.to_owned(), v);
                }
            }
        };
    };
    for f in &cmd.build_arg_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("read --build-arg-file {}", f.display()))?;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            add(line);
        }
    }
    for a in &cmd.build_arg {
        add(a);
    }
    Ok(out)
}

/// `--secret id=ID,src=FILE|env=VAR`: a secret from the environment is written to a 0600
/// file under the build directory for the step's bind mount, and removed after the build.
pub fn secrets(cmd: &BuildCmd, dir: &std::path::Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for s in &cmd.secret {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for kv in s.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_owned()),
                Some(("type", "file" | "env")) => {}
                _ => bail!(kinded(
                    ErrorKind::InvalidArgument,
                    format!("invalid --secret {s:?}: id=ID,src=FILE or id=ID,env=VAR")
                )),
            }
        }
        let id = id.ok_or_else(|| {
            kinded(
                ErrorKind::InvalidArgument,
                format!("--secret {s:?} needs id="),
            )
        })?;
        let path = match (src, env) {
            (Some(p), _) => {
                if !p.is_file() {
                    bail!(kinded(
                        ErrorKind::InvalidArgument,
                        format!("--secret {id}: {} is not a file", p.display())
                    ));
                }
                p.canonicalize()?
            }
            (None, Some(var)) => {
                let value = std::env::var(&var).map_err(|_| {
                    kinded(
                        ErrorKind::InvalidArgument,
                        format!("--secret {id}: environment variable {var} is not set"),
                    )
                })?;
                std::fs::create_dir_all(dir)?;
                let p = dir.join(format!("secret-{}-{id}", std::process::id()));
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&p)?;
                f.write_all(value.as_bytes())?;
                p
            }
            (None, None) => bail!(kinded(
                ErrorKind::InvalidArgument,
                format!("--secret {id} needs src=FILE or env=VAR")
            )),
        };
        out.insert(id, path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_flags_parse() {
        let c = BuildCmd::try_parse_from([
            "strata build",
            "-t",
            "a",
            "--tag",
            "b",
            "--layers=false",
            "--pull",
            "-f",
            "x",
            "--build-arg",
            "A=1",
            "ctx",
        ])
        .unwrap();
        assert_eq!(c.tag, vec!["a", "b"]);
        assert!(!c.layers);
        assert_eq!(c.pull, PullPolicy::Always);
        assert_eq!(c.context, Some(PathBuf::from("ctx")));
        assert_eq!(build_args(&c).unwrap()["A"], "1");
        let d = BuildCmd::try_parse_from(["strata build"]).unwrap();
        assert!(d.layers);
        assert_eq!(d.pull, PullPolicy::Missing);
    }

    #[test]
    fn only_this_platform_builds() {
        let (arch, _) = strata_types::arch::go_platform();
        assert!(check_platform(&format!("linux/{arch}")).is_ok());
        assert!(check_platform("windows/amd64").is_err());
        assert!(check_platform("linux/s390x").is_err() || arch == "s390x");
    }
}
