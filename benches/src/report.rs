//! Prints the results as Markdown tables with ratios against the reference tools.

use crate::layer::Layer;
use crate::run::Measurement;

pub fn print(layer: &Layer, results: &[Measurement]) {
    println!(
        "\n## Layer apply ({} entries, {:.0} MB tar, {:.0} MB gzip)\n",
        layer.entries,
        layer.tar_size as f64 / 1e6,
        layer.gz_size as f64 / 1e6
    );
    println!("| tool | median ms | MB/s | files/s |");
    println!("|---|---:|---:|---:|");
    for m in results.iter().filter(|m| m.group == "apply") {
        println!(
            "| {} | {:.0} | {:.1} | {:.0} |",
            m.tool,
            m.median_ms,
            m.mb_per_s.unwrap_or(0.0),
            m.files_per_s.unwrap_or(0.0)
        );
    }
    let find = |tool: &str, group: &str| {
        results
            .iter()
            .find(|m| m.tool == tool && m.group == group)
            .map(|m| m.median_ms)
    };
    println!();
    for d in ["overlay", "vfs"] {
        if let (Some(s), Some(c)) = (
            find(&format!("strata storage load, {d} (gzip)"), "apply"),
            find(
                &format!("containers-storage import-layer, {d} (gzip)"),
                "apply",
            ),
        ) {
            println!(
                "apply speed-up over containers-storage ({d}): {:.2}x",
                c / s
            );
        }
    }
    if let (Some(s), Some(t)) = (
        find("strata storage load, overlay (gzip)", "apply"),
        find("GNU tar -xz (gzip)", "apply"),
    ) {
        println!("apply speed-up over GNU tar -xz: {:.2}x", t / s);
    }
    println!(
        "\n## Container create + mount latency (median; whole commands, and `strata library` \
         in one process that opened the store once)\n"
    );
    println!("| tool | create ms | mount ms | create+mount ms |");
    println!("|---|---:|---:|---:|");
    let tools: Vec<&str> = {
        let mut t: Vec<&str> = results
            .iter()
            .filter(|m| m.group == "create")
            .map(|m| m.tool.as_str())
            .collect();
        t.dedup();
        t
    };
    for t in &tools {
        println!(
            "| {t} | {:.1} | {:.1} | {:.1} |",
            find(t, "create").unwrap_or(0.0),
            find(t, "mount").unwrap_or(0.0),
            find(t, "create+mount").unwrap_or(0.0)
        );
    }
    for d in ["overlay", "vfs"] {
        if let (Some(s), Some(c)) = (
            find(&format!("strata, {d}"), "create+mount"),
            find(&format!("containers-storage, {d}"), "create+mount"),
        ) {
            println!(
                "create+mount speed-up over containers-storage ({d}): {:.2}x",
                c / s
            );
        }
    }
}

/// Prints the pull benchmarks with ratios against podman and skopeo.
pub fn print_pulls(images: &[crate::pull::BenchImage], results: &[Measurement]) {
    println!("\n## Pulls from a local registry (median wall time, peak RSS)\n");
    println!("| tool | median s | MB/s (compressed) | peak RSS MiB |");
    println!("|---|---:|---:|---:|");
    for m in results {
        println!(
            "| {} | {:.2} | {:.1} | {:.0} |",
            m.tool,
            m.median_ms / 1e3,
            m.mb_per_s.unwrap_or(0.0),
            m.peak_rss_mib.unwrap_or(0.0)
        );
    }
    let find = |tool: &str| results.iter().find(|m| m.tool == tool).map(|m| m.median_ms);
    println!();
    for i in images {
        let n = &i.name;
        if let (Some(s), Some(p)) = (
            find(&format!("strata copy docker:// store: ({n})")),
            find(&format!("podman pull ({n})")),
        ) {
            println!(
                "{n}: pull into the store, speed-up over podman pull: {:.2}x",
                p / s
            );
        }
        if let (Some(s), Some(k)) = (
            find(&format!("strata copy docker:// oci: ({n})")),
            find(&format!("skopeo copy docker:// oci: ({n})")),
        ) {
            println!(
                "{n}: copy to an OCI layout, speed-up over skopeo: {:.2}x",
                k / s
            );
        }
    }
}
