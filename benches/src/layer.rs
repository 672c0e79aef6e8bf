//! Builds the benchmark's realistic rootfs layer from host files (no network needed): a pax
//! tar of system directories, as image builders write layers, plus its gzip form and a
//! one-layer OCI layout for `strata storage load`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Host directories a distro rootfs is made of, in the order they are taken.
const SOURCES: &[&str] = &[
    "usr/bin",
    "usr/lib",
    "usr/share",
    "usr/sbin",
    "etc",
    "usr/include",
    "usr/libexec",
];

#[derive(Debug)]
pub struct Layer {
    pub tar: PathBuf,
    pub gz: PathBuf,
    pub layout: PathBuf,
    pub tar_size: u64,
    pub gz_size: u64,
    pub entries: u64,
}

pub fn sha256_file(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Layer {
    pub fn build(dir: &Path, mib: u64) -> Result<Layer> {
        let tar = dir.join("rootfs.tar");
        let gz = dir.join("rootfs.tar.gz");
        // Pick whole files from the sources until the budget is reached, in a stable order.
        let list = dir.join("files.txt");
        let mut budget = mib << 20;
        let mut picked = String::new();
        for src in SOURCES {
            if budget == 0 {
                break;
            }
            let out = sh(Command::new("find")
                .args([src, "-xdev", "-printf", "%s %p\\n"])
                .current_dir("/"))?;
            let mut lines: Vec<&str> = out.lines().collect();
            // Stable order by path, so the layer is a realistic mix of small and large files.
            lines.sort_unstable_by_key(|l| l.split_once(' ').map(|(_, p)| p).unwrap_or(l));
            for l in lines {
                let Some((size, path)) = l.split_once(' ') else {
                    continue;
                };
                let size: u64 = size.parse().unwrap_or(0);
                if size > budget {
                    continue;
                }
                budget -= size;
                picked.push_str(path);
                picked.push('\n');
            }
        }
        std::fs::write(&list, picked)?;
        sh(Command::new("tar")
            .args(["--format=pax", "--no-recursion", "--numeric-owner", "-cf"])
            .arg(&tar)
            .arg("-T")
            .arg(&list)
            .current_dir("/"))?;
        let gzf = std::fs::File::create(&gz)?;
        let st = Command::new("gzip")
            .arg("-c")
            .arg(&tar)
            .stdout(gzf)
            .status()?;
        if !st.success() {
            bail!("gzip failed");
        }
        let entries = sh(Command::new("tar").arg("-tf").arg(&tar))?
            .lines()
            .count() as u64;
        let tar_size = std::fs::metadata(&tar)?.len();
        let gz_size = std::fs::metadata(&gz)?.len();
        let layout = dir.join("layout");
        write_layout(
            &layout,
            &gz,
            &sha256_file(&tar)?,
            &sha256_file(&gz)?,
            gz_size,
        )?;
        Ok(Layer {
            tar,
            gz,
            layout,
            tar_size,
            gz_size,
            entries,
        })
    }
}

/// A one-layer OCI image layout around the gzip layer.
fn write_layout(dir: &Path, gz: &Path, diff_hex: &str, gz_hex: &str, gz_size: u64) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::copy(gz, blobs.join(gz_hex))?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_hex}")]},
    }))?;
    let config_hex = hex::encode(Sha256::digest(&config));
    std::fs::write(blobs.join(&config_hex), &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{gz_hex}"), "size": gz_size}],
    }))?;
    let manifest_hex = hex::encode(Sha256::digest(&manifest));
    std::fs::write(blobs.join(&manifest_hex), &manifest)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{manifest_hex}"), "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
        }))?,
    )?;
    Ok(())
}
