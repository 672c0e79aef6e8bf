//! Prints the results as Markdown tables with ratios against the reference tools.

use crate::layer::Layer;
use crate::storage::Measurement;

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

/// Prints the run benchmarks: latencies per case, the comparisons with the targets,
/// what `ps -a` started, failures, and the timeline of one `strata run --rm`.
pub fn print_run(results: &[Measurement], s: &crate::run::RunSummary) {
    println!(
        "\n## Containers: run, create, ps (median and p90 of {} runs after {} warm-ups; \
         podman {} with crun, {} network backend; {})\n",
        s.runs, s.warmups, s.podman_version, s.podman_network_backend, s.crun_version
    );
    println!(
        "load average before {}, after {}\n",
        s.load_average_before, s.load_average_after
    );
    println!("| case | tool | median ms | p90 ms |");
    println!("|---|---|---:|---:|");
    for m in results {
        let case = m
            .group
            .replace("created", &format!("{} created", s.ps_containers));
        println!(
            "| {case} | {} | {:.1} | {:.1} |",
            m.tool,
            m.median_ms,
            m.p90_ms.unwrap_or(0.0)
        );
    }
    println!("\n| comparison (medians) | value | target | met |");
    println!("|---|---:|---:|---|");
    for c in &s.comparisons {
        let value = c
            .value
            .map_or("n/a".to_owned(), |v| format!("{v:.2} {}", c.unit));
        let limit = c
            .limit
            .map_or(String::new(), |l| format!("<= {l} {}", c.unit));
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None if c.limit.is_some() => "n/a",
            None => "",
        };
        println!("| {} | {value} | {limit} | {met} |", c.what);
    }
    for e in &s.ps_execs {
        println!(
            "\n`{} ps -a` with {} created containers started {} processes{}",
            e.tool,
            e.containers,
            e.execs,
            if e.programs.is_empty() {
                String::new()
            } else {
                format!(": {}", e.programs.join(", "))
            }
        );
    }
    for f in &s.failures {
        println!("\nFAILED: {} / {}: {}", f.group, f.tool, f.error);
    }
    if !s.timeline.is_empty() {
        println!(
            "\n### One `strata run --rm --network none busybox true`, process by process \
             (perf sched events; the median of 5 traced runs: {:.1} ms)\n",
            crate::timeline::total(&s.timeline)
        );
        println!("| forked at ms | exec at ms | ended at ms | lived ms | process | parent |");
        println!("|---:|---:|---:|---:|---|---|");
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
        for t in &s.timeline {
            println!(
                "| {:.1} | {} | {} | {} | {} | {} |",
                t.start_ms,
                opt(t.exec_ms),
                opt(t.end_ms),
                opt(t.end_ms.map(|e| e - t.start_ms)),
                t.program,
                t.parent
            );
        }
    }
}
