//! `strata-fuse-overlay`: serves Strata's FUSE overlay filesystem.
//!
//! ```text
//! strata-fuse-overlay -o OPTIONS MOUNTPOINT        mount, then serve in the background
//! strata-fuse-overlay -f -o OPTIONS MOUNTPOINT     mount and serve in the foreground
//! strata-fuse-overlay --fd N --ready-fd M -o OPTIONS MOUNTPOINT
//!                                                  serve /dev/fuse descriptor N, already
//!                                                  mounted (how the mount crate starts it)
//! ```
//!
//! OPTIONS are described in `strata_fuse_overlay::options` (`lowerdir=`, `upperdir=`,
//! `workdir=`, `userxattr`, `uidmapping=`, `gidmapping=`, `squash_to_root`, ...). Unmount with
//! `umount MOUNTPOINT` (or `fusermount3 -u`); the server then exits.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;

use strata_fuse_overlay::{Fs, Options};

struct Args {
    options: String,
    target: PathBuf,
    foreground: bool,
    fd: Option<RawFd>,
    ready_fd: Option<RawFd>,
}

const USAGE: &str =
    "usage: strata-fuse-overlay [-f] -o lowerdir=A:B[,upperdir=U,workdir=W][,OPTION...] MOUNTPOINT";

fn parse() -> Result<Args, String> {
    let mut it = std::env::args_os().skip(1);
    let mut options = None;
    let mut target = None;
    let mut foreground = false;
    let mut fd = None;
    let mut ready_fd = None;
    let num = |v: Option<std::ffi::OsString>, what: &str| -> Result<RawFd, String> {
        v.and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
            .ok_or(format!("{what} needs a descriptor number"))
    };
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => {
                let o = it.next().ok_or("-o needs an option string")?;
                let o = o.into_string().map_err(|_| "options must be UTF-8")?;
                options = Some(match options {
                    Some(prev) => format!("{prev},{o}"),
                    None => o,
                });
            }
            Some("-f") => foreground = true,
            Some("--fd") => fd = Some(num(it.next(), "--fd")?),
            Some("--ready-fd") => ready_fd = Some(num(it.next(), "--ready-fd")?),
            Some("-h" | "--help") => return Err(USAGE.into()),
            Some(s) if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}")),
            _ => {
                if target.replace(PathBuf::from(a)).is_some() {
                    return Err(format!("one mount point only\n{USAGE}"));
                }
            }
        }
    }
    Ok(Args {
        options: options.ok_or(USAGE)?,
        target: target.ok_or(USAGE)?,
        foreground,
        fd,
        ready_fd,
    })
}

/// Takes ownership of an inherited descriptor named on the command line.
#[allow(unsafe_code)]
fn inherited(fd: RawFd) -> Result<OwnedFd, String> {
    if rustix::io::fcntl_getfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).is_err() {
        return Err(format!("descriptor {fd} is not open"));
    }
    // SAFETY: the descriptor was checked to be open above; it was passed to this process
    // for it alone to own (the mount crate closes its copy after spawning us), and it is
    // turned into an `OwnedFd` exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let flags = rustix::io::fcntl_getfd(&owned).map_err(|e| e.to_string())?;
    rustix::io::fcntl_setfd(&owned, flags | rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| e.to_string())?;
    Ok(owned)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("strata-fuse-overlay: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-fuse-overlay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let opts = Options::parse(&args.options)?;
    match args.fd {
        Some(fd) => {
            let dev = inherited(fd)?;
            let mut ready = args
                .ready_fd
                .map(inherited)
                .transpose()?
                .map(std::fs::File::from);
            // Our own session: the caller's terminal and its signals are not ours.
            let _ = rustix::process::setsid();
            match prepare(&opts) {
                Ok(fs) => {
                    if let Some(r) = ready.as_mut() {
                        let _ = r.write_all(b"ok\n");
                    }
                    drop(ready);
                    strata_fuse_overlay::serve::serve(fs, &opts, dev)
                        .map_err(|e| format!("serving: {e}"))
                }
                Err(e) => {
                    if let Some(r) = ready.as_mut() {
                        let _ = writeln!(r, "{}", e.replace('\n', " "));
                    }
                    Err(e)
                }
            }
        }
        None if args.foreground => {
            let fs = prepare(&opts)?;
            let dev = strata_mount::fuse::mount_fuse_device(&args.target, opts.upper.is_none())
                .map_err(|e| e.to_string())?;
            strata_fuse_overlay::serve::serve(fs, &opts, dev).map_err(|e| format!("serving: {e}"))
        }
        None => {
            let pid = strata_mount::fuse::mount_fuse_overlay(
                &args.options,
                opts.upper.is_none(),
                &args.target,
            )
            .map_err(|e| e.to_string())?;
            tracing::debug!(pid, "serving in the background");
            Ok(())
        }
    }
}

/// Everything before serving: umask, descriptor limit, the layers.
fn prepare(opts: &Options) -> Result<Fs, String> {
    // Modes come from the kernel already masked; ours must not mask them again.
    rustix::process::umask(rustix::fs::Mode::empty());
    if let Ok(lim) = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .ok_or(())
    {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(lim),
                maximum: Some(lim),
            },
        );
    }
    Fs::new(opts)
}
