//! The mounts of a container's spec: podman's `/proc`, `/dev`, `/sys` and cgroup mounts, the
//! `--read-only` scratch tmpfs, the `/etc` files the engine writes, and the user's binds and
//! tmpfs mounts.

use oci_spec::runtime::{Mount, MountBuilder};

use super::{Ns, SpecInputs};
use crate::error::{bail, Context, Result};

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

pub(super) fn mounts(inp: &SpecInputs<'_>) -> Result<Vec<Mount>> {
    let c = inp.config;
    let sys_opts: &[&str] = if c.privileged {
        &["nosuid", "noexec", "nodev", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ];
    // sysfs belongs to the network namespace that mounts it, and a user namespace may mount it
    // only if it owns that network namespace: otherwise share the host's.
    let own_netns = inp.net == Ns::New;
    if inp.net == Ns::Host || (inp.id_map.is_some() && !own_netns) {
        m.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        m.push(mount("/sys", "sysfs", "sysfs", sys_opts)?);
    }
    // Neither a rootless runtime without a cgroup of its own nor a container's own user
    // namespace may mount cgroup v1.
    if (inp.rootless && inp.cgroups_path.is_none())
        || ((inp.rootless || inp.id_map.is_some()) && !crate::runtime::cgroup_v2_only())
    {
        m.push(mount(
            "/sys/fs/cgroup",
            "bind",
            "/sys/fs/cgroup",
            &["rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        m.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                if c.privileged { "rw" } else { "ro" },
            ],
        )?);
    }
    if c.read_only {
        // podman's --read-only-tmpfs (default true): writable scratch where programs expect it.
        for dest in ["/tmp", "/var/tmp", "/run"] {
            if !c.mounts.iter().any(|u| u.destination == dest) {
                m.push(mount(
                    dest,
                    "tmpfs",
                    "tmpfs",
                    &["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
                )?);
            }
        }
    }
    for (dest, src) in &inp.etc_files {
        if !c.mounts.iter().any(|u| &u.destination == dest) {
            let src = src.to_str().context("non-UTF-8 state path")?;
            m.push(mount(dest, "bind", src, &["rbind", "rprivate", "rw"])?);
        }
    }
    for u in &c.mounts {
        if !u.destination.starts_with('/') {
            bail!(
                "mount destination {:?} must be an absolute path",
                u.destination
            );
        }
        let mut opts: Vec<String> = Vec::new();
        match u.kind.as_str() {
            "bind" => {
                let propagation = [
                    "private", "rprivate", "slave", "rslave", "shared", "rshared",
                ];
                opts.push("rbind".into());
                if !u.options.iter().any(|o| propagation.contains(&o.as_str())) {
                    opts.push("rprivate".into());
                }
                opts.push(if u.read_only { "ro" } else { "rw" }.into());
                opts.extend(u.options.iter().cloned());
                m.push(
                    MountBuilder::default()
                        .destination(&u.destination)
                        .typ("bind")
                        .source(&u.source)
                        .options(opts)
                        .build()?,
                );
            }
            "tmpfs" => {
                opts.extend(["nosuid".into(), "nodev".into()]);
                opts.push(if u.read_only { "ro" } else { "rw" }.into());
                opts.extend(u.options.iter().cloned());
                m.push(
                    MountBuilder::default()
                        .destination(&u.destination)
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(opts)
                        .build()?,
                );
            }
            other => bail!("unsupported mount type {other:?}: use bind or tmpfs"),
        }
    }
    Ok(m)
}
