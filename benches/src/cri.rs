//! `--only cri`: the CRI server (`strata cri serve`, crun) against containerd 1.6's CRI plugin
//! (runc, its default), side by side in one run, through the same gRPC client, with the same
//! CNI configuration list (bridge, host-local, portmap), the same busybox image and the same
//! locally made pause image, both stores on the scratch filesystem:
//!
//! - the pod lifecycle, one pod at a time: RunPodSandbox, CreateContainer, StartContainer,
//!   StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox, each call timed (the
//!   two servers take turns in a freshly shuffled order every round);
//! - ListImages and ImageStatus with 200 images in each store;
//! - ListContainers with 500 containers in each.
//!
//! Medians and p90 of the calls as a client sees them (gRPC included). It reports; it asserts
//! nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use strata_tests::cri::{self, api, Client};

use crate::run::{latency, Shuffler};
use crate::storage::{fresh, Measurement};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

pub const OPS: &[&str] = &[
    "cri: RunPodSandbox",
    "cri: CreateContainer",
    "cri: StartContainer",
    "cri: StopContainer",
    "cri: RemoveContainer",
    "cri: StopPodSandbox",
    "cri: RemovePodSandbox",
];
pub const LIST_IMAGES: &str = "cri: ListImages, 200 images";
pub const IMAGE_STATUS: &str = "cri: ImageStatus, 200 images";
pub const LIST_CONTAINERS: &str = "cri: ListContainers, 500 containers";

#[derive(Debug)]
pub struct CriOptions {
    /// Pods run through the lifecycle by each server.
    pub pods: usize,
    pub layout: PathBuf,
    pub images: usize,
    pub containers: usize,
}

/// Ratios of Strata's medians to containerd's.
#[derive(Debug, Clone, Serialize)]
pub struct CriSummary {
    pub containerd_version: String,
    /// (operation, strata median ms, containerd median ms, ratio)
    pub ratios: Vec<(String, f64, f64, f64)>,
}

struct StrataServer {
    child: Child,
    socket: PathBuf,
}

impl Drop for StrataServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strata(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--driver")
        .arg("overlay");
    c
}

/// One tiny image per index, distinct layers (a file naming it), as OCI layouts.
fn make_images(dir: &Path, n: usize) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut tar = strata_tests::TarBuilder::new();
        tar.file(format!("etc/image-{i}"), format!("{i}\n"));
        let layout_dir = dir.join(format!("img-{i}"));
        strata_tests::LayoutBuilder::new()
            .layer(strata_tests::LayerSpec::tar(tar.finish()))
            .write(&layout_dir)
            .with_context(|| format!("write {}", layout_dir.display()))?;
        out.push((layout_dir, format!("docker.io/library/bench-{i}:latest")));
    }
    Ok(out)
}

fn pod_config(i: usize, logs: &Path) -> api::PodSandboxConfig {
    cri::pod_config(&format!("bench-{i}"), &format!("uid-bench-{i}"), logs)
}

/// Times one pod through its lifecycle; adds each call's time to `times[op]`.
fn lifecycle(c: &Client, i: usize, logs: &Path, handler: &str, times: &mut [Vec<Duration>]) {
    let pc = pod_config(i, logs);
    let t = Instant::now();
    let pod = c.run_pod(&pc, handler);
    times[0].push(t.elapsed());
    let t = Instant::now();
    let id = c.create(
        &pod,
        &pc,
        cri::container_config("main", BUSYBOX, &["sleep", "3600"]),
    );
    times[1].push(t.elapsed());
    let t = Instant::now();
    c.start(&id);
    times[2].push(t.elapsed());
    let t = Instant::now();
    c.ok(
        "StopContainer",
        c.runtime().stop_container(api::StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        }),
    );
    times[3].push(t.elapsed());
    let t = Instant::now();
    c.ok(
        "RemoveContainer",
        c.runtime()
            .remove_container(api::RemoveContainerRequest { container_id: id }),
    );
    times[4].push(t.elapsed());
    let t = Instant::now();
    c.ok(
        "StopPodSandbox",
        c.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }),
    );
    times[5].push(t.elapsed());
    let t = Instant::now();
    c.ok(
        "RemovePodSandbox",
        c.runtime()
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            }),
    );
    times[6].push(t.elapsed());
}

fn timed<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

pub fn cri_benchmarks(
    scratch: &Path,
    bin: &Path,
    opts: &CriOptions,
) -> Result<(Vec<Measurement>, CriSummary)> {
    let dir = scratch.join("cri");
    fresh(&dir)?;
    let logs = dir.join("logs");
    let version = Command::new("containerd")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if version.is_empty() {
        bail!("containerd is not installed (apt-get install containerd)");
    }

    // Strata: a store with busybox, and the server.
    let sdir = dir.join("strata");
    std::fs::create_dir_all(&sdir)?;
    let st = strata(bin, &sdir)
        .args(["storage", "load"])
        .arg(format!("oci:{}:latest", opts.layout.display()))
        .args(["--name", BUSYBOX])
        .output()?;
    if !st.status.success() {
        bail!("load busybox: {}", String::from_utf8_lossy(&st.stderr));
    }
    let scni = dir.join("cni-strata");
    cri::write_bridge_conflist(&scni, "benchnet", "cri-bench0", "10.95.0.0/22");
    let socket = sdir.join("cri.sock");
    let child = strata(bin, &sdir)
        .args(["cri", "serve", "--log-level", "warn", "--listen"])
        .arg(format!("unix://{}", socket.display()))
        .arg("--cni-config-dir")
        .arg(&scni)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start strata cri serve")?;
    let server = StrataServer { child, socket };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&server.socket).is_err() {
        if Instant::now() > deadline {
            bail!("strata cri serve did not listen");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = Client::connect(&server.socket);

    // containerd: its own root on the same filesystem, busybox imported.
    let ccni = dir.join("cni-containerd");
    cri::write_bridge_conflist(&ccni, "benchnet", "cri-bench1", "10.95.4.0/22");
    let ctrd =
        strata_tests::containerd::Containerd::start(strata_tests::containerd::ContainerdOptions {
            cni_conf_dir: ccni,
            parent_dir: Some(dir.clone()),
            ..Default::default()
        });
    ctrd.import_layout(&opts.layout, BUSYBOX);
    let k = Client::connect(ctrd.socket());

    let clients = [("strata", &s, "crun"), ("containerd", &k, "")];
    // One warm-up pod each (first-use costs: the pause image, the bridge).
    for (_, c, h) in &clients {
        let mut scrap = vec![Vec::new(); OPS.len()];
        lifecycle(c, 1_000_000, &logs, h, &mut scrap);
    }
    let mut times = [vec![Vec::new(); OPS.len()], vec![Vec::new(); OPS.len()]];
    let mut shuffler = Shuffler::new("cri");
    for i in 0..opts.pods {
        let mut order = [0usize, 1];
        shuffler.shuffle(&mut order);
        for t in order {
            let (_, c, h) = clients[t];
            lifecycle(c, i, &logs, h, &mut times[t]);
        }
    }
    let mut out = Vec::new();
    for (t, (name, _, _)) in clients.iter().enumerate() {
        for (op, ts) in OPS.iter().zip(std::mem::take(&mut times[t])) {
            out.push(latency(op, name, ts));
        }
    }

    // 200 images in each store.
    let images = make_images(&dir.join("images"), opts.images.saturating_sub(1))?;
    for (layout, name) in &images {
        let st = strata(bin, &sdir)
            .args(["storage", "load"])
            .arg(format!("oci:{}:latest", layout.display()))
            .args(["--name", name])
            .output()?;
        if !st.status.success() {
            bail!("load {name}: {}", String::from_utf8_lossy(&st.stderr));
        }
        ctrd.import_layout(layout, name);
    }
    let status_of = |c: &Client, i: usize| {
        c.ok(
            "ImageStatus",
            c.images().image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: format!("docker.io/library/bench-{}:latest", i % images.len().max(1)),
                    ..Default::default()
                }),
                verbose: false,
            }),
        )
    };
    for (name, c, _) in &clients {
        let n = c
            .ok(
                "ListImages",
                c.images()
                    .list_images(api::ListImagesRequest { filter: None }),
            )
            .images
            .len();
        eprintln!("cri: {name} lists {n} images");
        out.push(latency(
            LIST_IMAGES,
            name,
            timed(30, || {
                c.ok(
                    "ListImages",
                    c.images()
                        .list_images(api::ListImagesRequest { filter: None }),
                )
            }),
        ));
        let mut i = 0;
        out.push(latency(
            IMAGE_STATUS,
            name,
            timed(100, || {
                i += 1;
                status_of(c, i)
            }),
        ));
    }

    // 500 containers in one pod each.
    for (name, c, h) in &clients {
        let pc = pod_config(2_000_000, &logs);
        let pod = c.run_pod(&pc, h);
        for j in 0..opts.containers {
            c.create(
                &pod,
                &pc,
                cri::container_config(&format!("c{j}"), BUSYBOX, &["true"]),
            );
        }
        let n = c
            .ok(
                "ListContainers",
                c.runtime()
                    .list_containers(api::ListContainersRequest { filter: None }),
            )
            .containers
            .len();
        eprintln!("cri: {name} lists {n} containers");
        out.push(latency(
            LIST_CONTAINERS,
            name,
            timed(20, || {
                c.ok(
                    "ListContainers",
                    c.runtime()
                        .list_containers(api::ListContainersRequest { filter: None }),
                )
            }),
        ));
        c.remove_pod(&pod);
    }
    drop(s);
    drop(k);
    drop(server);
    drop(ctrd);

    let mut ratios = Vec::new();
    for op in OPS
        .iter()
        .chain([LIST_IMAGES, IMAGE_STATUS, LIST_CONTAINERS].iter())
    {
        let m = |tool: &str| {
            out.iter()
                .find(|x| x.group == *op && x.tool == tool)
                .map(|x| x.median_ms)
        };
        if let (Some(a), Some(b)) = (m("strata"), m("containerd")) {
            ratios.push((op.to_string(), a, b, a / b));
        }
    }
    Ok((
        out,
        CriSummary {
            containerd_version: version,
            ratios,
        },
    ))
}

pub fn print(s: &CriSummary) {
    println!(
        "\nCRI: strata cri serve (crun) vs {} (runc), median ms",
        s.containerd_version
    );
    println!(
        "{:<40} {:>10} {:>12} {:>8}",
        "call", "strata", "containerd", "ratio"
    );
    for (op, a, b, r) in &s.ratios {
        println!("{op:<40} {a:>10.2} {b:>12.2} {r:>8.2}");
    }
}
