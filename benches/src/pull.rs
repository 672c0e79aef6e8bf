//! Pull benchmarks: the same images served by one local `docker-registry` (distribution v2,
//! plain HTTP on 127.0.0.1), pulled by `strata copy docker://... store:...` vs `podman pull`,
//! and copied to an OCI layout by `strata copy` vs `skopeo copy`. Wall time and peak memory
//! (max RSS, from GNU time) of whole commands, median of a few runs, each into a fresh
//! destination.
//!
//! Images are built from host files (no network): a ~100 MB distro-like image of three layers
//! and a ~1 GiB image of four layers, pushed once with skopeo.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::layer::{sh, sha256_file};
use crate::storage::Measurement;

/// A running `docker-registry`, killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
}

impl Registry {
    pub fn start(dir: &Path) -> Result<Registry> {
        if !Path::new("/usr/bin/docker-registry").exists() {
            bail!("docker-registry is not installed (apt-get install docker-registry)");
        }
        let port = free_port()?;
        let storage = dir.join("registry-storage");
        std::fs::create_dir_all(&storage)?;
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )?;
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start docker-registry")?;
        let r = Registry {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&r.addr).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {} within 20 s", r.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// An image to pull: its name in the registry, layer count and total compressed size.
pub struct BenchImage {
    pub name: String,
    pub layers: usize,
    pub bytes: u64,
}

/// Builds an OCI layout whose layers are host files chosen by `slices` (each: directories and
/// a byte budget), gzip-compressed, and pushes it to the registry as `bench/<name>:1`.
pub fn build_and_push(
    dir: &Path,
    registry: &Registry,
    name: &str,
    slices: &[(&[&str], u64)],
) -> Result<BenchImage> {
    let layout = dir.join(format!("layout-{name}"));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    let mut total = 0;
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (i, (sources, budget)) in slices.iter().enumerate() {
        let list = pick_files(sources, *budget, &mut taken)?;
        let list_file = dir.join(format!("{name}-{i}.txt"));
        std::fs::write(&list_file, list)?;
        let tar = dir.join(format!("{name}-{i}.tar"));
        sh(Command::new("tar")
            .args(["--format=pax", "--no-recursion", "--numeric-owner", "-cf"])
            .arg(&tar)
            .arg("-T")
            .arg(&list_file)
            .current_dir("/"))?;
        let gz = dir.join(format!("{name}-{i}.tar.gz"));
        let st = Command::new("gzip")
            .arg("-c")
            .arg(&tar)
            .stdout(std::fs::File::create(&gz)?)
            .status()?;
        if !st.success() {
            bail!("gzip failed");
        }
        let diff = sha256_file(&tar)?;
        let blob = sha256_file(&gz)?;
        let size = std::fs::metadata(&gz)?.len();
        std::fs::rename(&gz, blobs.join(&blob))?;
        std::fs::remove_file(&tar)?;
        total += size;
        diff_ids.push(format!("sha256:{diff}"));
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{blob}"), "size": size,
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let config_hex = hex::encode(Sha256::digest(&config));
    std::fs::write(blobs.join(&config_hex), &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{config_hex}"), "size": config.len()},
        "layers": descs,
    }))?;
    let m_hex = hex::encode(Sha256::digest(&manifest));
    std::fs::write(blobs.join(&m_hex), &manifest)?;
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": format!("sha256:{m_hex}"), "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": "1"}}],
        }))?,
    )?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    sh(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{}/bench/{name}:1", registry.addr)))?;
    std::fs::remove_dir_all(&layout)?;
    Ok(BenchImage {
        name: name.to_owned(),
        layers: slices.len(),
        bytes: total,
    })
}

/// Whole files under `sources` (relative to /), in path order, up to `budget` bytes, skipping
/// files already taken by an earlier layer.
fn pick_files(
    sources: &[&str],
    budget: u64,
    taken: &mut std::collections::HashSet<String>,
) -> Result<String> {
    let mut left = budget;
    let mut out = String::new();
    for src in sources {
        let listing = sh(Command::new("find")
            .args([
                *src, "-xdev", "(", "-type", "f", "-o", "-type", "l", ")", "-printf", "%s %p\\n",
            ])
            .current_dir("/"))?;
        let mut lines: Vec<&str> = listing.lines().collect();
        lines.sort_unstable_by_key(|l| l.split_once(' ').map(|(_, p)| p).unwrap_or(l));
        for l in lines {
            let Some((size, path)) = l.split_once(' ') else {
                continue;
            };
            let size: u64 = size.parse().unwrap_or(0);
            if size > left || taken.contains(path) {
                continue;
            }
            left -= size;
            taken.insert(path.to_owned());
            out.push_str(path);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Runs `cmd` under GNU time; returns wall time and peak RSS in KiB.
fn timed(cmd: &[String]) -> Result<(Duration, u64)> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "STRATA-BENCH %e %M"])
        .args(cmd)
        .stdout(Stdio::null())
        .output()
        .context("cannot run /usr/bin/time (apt-get install time)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{} failed: {err}", cmd.join(" "));
    }
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("STRATA-BENCH "))
        .context("GNU time printed nothing")?;
    let mut it = line.split_whitespace().skip(1);
    let secs: f64 = it.next().unwrap_or("0").parse().unwrap_or(0.0);
    let kib: u64 = it.next().unwrap_or("0").parse().unwrap_or(0);
    Ok((Duration::from_secs_f64(secs), kib))
}

use crate::storage::fresh;

/// Runs the pull and copy comparisons for `images`.
pub fn pull_benchmarks(
    scratch: &Path,
    strata: &Path,
    registry: &Registry,
    images: &[BenchImage],
    runs: usize,
) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let s = |v: &str| v.to_owned();
    for img in images {
        let remote = format!("{}/bench/{}:1", registry.addr, img.name);
        let store = scratch.join("pull-store");
        let oci = scratch.join("pull-oci");
        let tools: Vec<(String, &str, Vec<String>)> = vec![
            (
                format!("strata copy docker:// store: ({})", img.name),
                "pull",
                vec![
                    strata.display().to_string(),
                    s("--root"),
                    store.join("root").display().to_string(),
                    s("--runroot"),
                    store.join("run").display().to_string(),
                    s("--driver"),
                    s("overlay"),
                    s("copy"),
                    s("--quiet"),
                    s("--src-tls-verify=false"),
                    format!("docker://{remote}"),
                    s("store:bench"),
                ],
            ),
            (
                format!("podman pull ({})", img.name),
                "pull",
                vec![
                    s("podman"),
                    s("--root"),
                    store.join("root").display().to_string(),
                    s("--runroot"),
                    store.join("run").display().to_string(),
                    s("--storage-driver"),
                    s("overlay"),
                    s("pull"),
                    s("--quiet"),
                    s("--tls-verify=false"),
                    remote.clone(),
                ],
            ),
            (
                format!("strata copy docker:// oci: ({})", img.name),
                "to-oci",
                vec![
                    strata.display().to_string(),
                    s("copy"),
                    s("--quiet"),
                    s("--src-tls-verify=false"),
                    format!("docker://{remote}"),
                    format!("oci:{}:1", oci.join("layout").display()),
                ],
            ),
            (
                format!("skopeo copy docker:// oci: ({})", img.name),
                "to-oci",
                vec![
                    s("skopeo"),
                    s("copy"),
                    s("--quiet"),
                    s("--src-tls-verify=false"),
                    format!("docker://{remote}"),
                    format!("oci:{}:1", oci.join("layout").display()),
                ],
            ),
        ];
        for (tool, group, cmd) in &tools {
            let mut times = Vec::new();
            let mut peak = 0;
            for _ in 0..runs {
                fresh(&store)?;
                fresh(&oci)?;
                let (t, kib) = timed(cmd)?;
                times.push(t);
                peak = peak.max(kib);
            }
            times.sort();
            let m = times[times.len() / 2];
            eprintln!(
                "{group}: {tool}: {:.2} s, peak RSS {:.0} MiB",
                m.as_secs_f64(),
                peak as f64 / 1024.0
            );
            out.push(Measurement {
                group,
                tool: tool.clone(),
                median_ms: m.as_secs_f64() * 1e3,
                p90_ms: None,
                mb_per_s: Some(img.bytes as f64 / 1e6 / m.as_secs_f64()),
                files_per_s: None,
                peak_rss_mib: Some(peak as f64 / 1024.0),
            });
        }
        fresh(&store)?;
        fresh(&oci)?;
    }
    Ok(out)
}
