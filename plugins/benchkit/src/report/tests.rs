//! Tests of the whole report: the files written, the page, escaping and ratios end to end.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::html::SCRIPT;
use super::numbers::MIB;
use super::sections::ratio;
use super::*;
use crate::results::{Filesystem, Machine, Skipped, SCHEMA};

pub(super) fn m(
    workload: &str,
    tool: &str,
    driver: Option<&str>,
    unit: &str,
    samples: Vec<f64>,
) -> Measurement {
    let mut m = Measurement::new(workload, tool, unit, samples)
        .unwrap_or_else(|| panic!("samples of {workload}"));
    m.driver = driver.map(str::to_owned);
    m
}

fn with(mut m: Measurement, key: &str, value: &str) -> Measurement {
    m.params.insert(key.into(), value.into());
    m
}

/// `n` samples around `center`, spread by a fixed formula.
fn around(center: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| center * (1.0 + 0.04 * (((i * 7) % 11) as f64 / 10.0 - 0.5)))
        .collect()
}

fn file(measurements: Vec<Measurement>) -> ResultFile {
    ResultFile {
        schema: SCHEMA.into(),
        started: "2026-12-07T16:00:00Z".into(),
        machine: Machine {
            kernel: "6.1.0".into(),
            cpu: "Test CPU".into(),
            cpus: 4,
            memory_bytes: 8 << 30,
            filesystem: Some(Filesystem {
                path: "/scratch/bench".into(),
                mount_point: "/scratch".into(),
                fstype: "ext4".into(),
                options: "rw,relatime".into(),
                source: "/dev/loop3".into(),
                backing_file: Some("/var/tmp/bench.img".into()),
            }),
        },
        settings: BTreeMap::from([("runs".into(), "30".into())]),
        measurements,
        skipped: vec![Skipped {
            what: "driver devicemapper".into(),
            why: "no thin-pool support".into(),
        }],
    }
}

/// Measurements of every kind: latency (with a single-sample one), scaling, throughput,
/// space, an unknown unit and the harness.
fn every_kind() -> ResultFile {
    let mut all = vec![
        m("empty", "harness", None, "s", around(2e-6, 30)),
        m("pull", "strata", Some("overlay"), "s", around(0.5, 20)),
        m("pull", "podman", Some("overlay"), "s", around(1.0, 20)),
        m("pull", "strata", Some("vfs"), "s", around(2.0, 20)),
        m("start", "strata", Some("overlay"), "s", vec![0.25]),
        m(
            "gc",
            "strata",
            Some("overlay"),
            "s",
            around(1e-3, 10).into_iter().chain([0.2]).collect(),
        ),
        m(
            "io-seq-write",
            "strata",
            Some("overlay"),
            "bytes/s",
            around(400e6, 10),
        ),
        m(
            "io-seq-write",
            "podman",
            Some("overlay"),
            "bytes/s",
            around(200e6, 10),
        ),
        m(
            "io-seq-read",
            "strata",
            Some("overlay"),
            "bytes/s",
            around(1.5e9, 10),
        ),
        m(
            "space-image",
            "strata",
            Some("overlay"),
            "bytes",
            vec![50.0 * MIB],
        ),
        m(
            "space-image",
            "podman",
            Some("overlay"),
            "bytes",
            vec![75.0 * MIB],
        ),
        m("odd", "strata", None, "ops", vec![3.0, 4.0]),
    ];
    for (tool, slope) in [("strata", 0.01), ("podman", 0.03)] {
        for depth in [1, 2, 4, 8, 16, 32, 64, 128] {
            let t = 0.05 + slope * f64::from(depth);
            all.push(with(
                m("depth", tool, Some("overlay"), "s", around(t, 8)),
                "depth",
                &depth.to_string(),
            ));
        }
    }
    for n in [1, 2, 4, 8] {
        all.push(with(
            m(
                "concurrency",
                "strata",
                Some("vfs"),
                "s",
                around(0.1 * f64::from(n), 5),
            ),
            "n",
            &n.to_string(),
        ));
    }
    file(all)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn names(w: &Written) -> Vec<String> {
    w.plots
        .iter()
        .filter_map(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_file_of_every_kind_writes_every_file_and_plot() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = t.path().join("new/report");
    let w = write(&every_kind(), &dir).unwrap_or_else(|e| panic!("{e}"));
    let mut got = names(&w);
    got.sort();
    assert_eq!(
        got,
        [
            "concurrency",
            "depth",
            "empty",
            "gc",
            "pull",
            "space",
            "start",
            "throughput"
        ]
    );
    for p in w.paths() {
        assert!(p.starts_with(&dir) && p.is_file(), "{}", p.display());
    }
    for p in &w.plots {
        let svg = read(p);
        assert!(
            svg.starts_with("<svg"),
            "{}: {}",
            p.display(),
            &svg[..svg.len().min(80)]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{}", p.display());
    }
    let md = read(&w.summary);
    for name in names(&w) {
        assert!(
            md.contains(&format!("(plots/{name}.svg)")),
            "{name} not linked"
        );
    }
    assert!(
        md.contains("no thin-pool support") && md.contains("| kernel | 6.1.0 |"),
        "{md}"
    );
    assert!(!md.contains("<svg"), "the summary embeds no plot");
}

#[test]
fn the_page_inlines_every_plot_and_names_no_url() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let w = write(&every_kind(), t.path()).unwrap_or_else(|e| panic!("{e}"));
    let html = read(&w.html);
    assert_eq!(
        html.matches("<figure class=\"plot\"").count(),
        w.plots.len()
    );
    assert_eq!(html.matches("<svg ").count(), w.plots.len());
    for name in names(&w) {
        assert!(
            html.contains(&format!("id=\"plot-{name}\"")),
            "{name} not inline"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains(&format!("data-plots=\"{}\"", w.plots.len())));
    for fact in [
        "6.1.0",
        "Test CPU",
        "8.00 GiB",
        "ext4",
        "/dev/loop3",
        "/var/tmp/bench.img",
        "rw,relatime",
        "runs",
    ] {
        assert!(html.contains(fact), "{fact} missing");
    }
    assert!(
        html.contains("Harness overhead:</strong> 2.00 µs per sample"),
        "overhead"
    );
    assert!(html.contains("<strong>driver devicemapper</strong>: no thin-pool support"));
    // The policy allows exactly the page's script.
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    assert!(html.contains(&format!("script-src 'sha256-{hash}'")));
    assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
}

#[test]
fn hostile_strings_are_escaped_everywhere() {
    let evil = "<script>alert(1)</script>";
    let mut f = file(vec![
        with(m(evil, evil, Some(evil), "s", around(1.0, 6)), evil, evil),
        with(
            m("bars\"'&", evil, None, "bytes/s", around(1e6, 6)),
            "k",
            evil,
        ),
    ]);
    f.settings.insert(evil.into(), evil.into());
    f.skipped.push(Skipped {
        what: evil.into(),
        why: evil.into(),
    });
    f.started = evil.into();
    f.machine.cpu = evil.into();
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let w = write(&f, t.path()).unwrap_or_else(|e| panic!("{e}"));
    let html = read(&w.html);
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("\"'&<") && html.contains("bars&quot;&#39;&amp;"));
    for p in &w.plots {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert!(!read(p).contains("<script"), "{}", p.display());
    }
    let md = read(&w.summary);
    assert!(!md.contains("<script"), "{md}");
    assert!(
        md.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
        "{md}"
    );
}

#[test]
fn ratios_favour_strata_above_one_for_time_throughput_and_space() {
    let f = file(vec![
        m("pull", "strata", Some("overlay"), "s", vec![1.0, 1.0, 1.0]),
        m("pull", "podman", Some("overlay"), "s", vec![2.5, 2.5, 2.5]),
        m("pull", "podman", Some("vfs"), "s", vec![2.0]),
        m("pull", "harness", Some("overlay"), "s", vec![0.1]),
        m("io", "strata", None, "bytes/s", vec![300e6]),
        m("io", "podman", None, "bytes/s", vec![100e6]),
        m("space", "strata", None, "bytes", vec![10.0]),
        m("space", "podman", None, "bytes", vec![40.0]),
        with(m("depth", "strata", None, "s", vec![1.0]), "depth", "4"),
        with(m("depth", "podman", None, "s", vec![3.0]), "depth", "4"),
        with(m("depth", "podman", None, "s", vec![3.0]), "depth", "8"),
    ]);
    let all = &f.measurements;
    let r: Vec<Option<f64>> = all.iter().map(|x| ratio(x, all)).collect();
    assert_eq!(
        r,
        [
            None,
            Some(2.5),
            None,
            None,
            None,
            Some(3.0),
            None,
            Some(4.0),
            None,
            Some(3.0),
            None
        ]
    );
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let w = write(&f, t.path()).unwrap_or_else(|e| panic!("{e}"));
    let html = read(&w.html);
    assert!(
        html.contains("<td class=\"num better\">2.50×</td>"),
        "{html}"
    );
    assert!(html.contains("ref ÷ strata<small>&gt;1: strata faster</small>"));
    assert!(html.contains("strata ÷ ref<small>&gt;1: strata faster</small>"));
    assert!(html.contains("ref ÷ strata<small>&gt;1: strata smaller</small>"));
}

#[test]
fn an_empty_file_and_single_samples_work() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let w = write(&file(Vec::new()), &t.path().join("empty")).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.plots.is_empty());
    let html = read(&w.html);
    assert!(html.contains("No measurements in this file.") && html.contains("data-plots=\"0\""));
    assert!(html.contains("not measured"));
    assert!(read(&w.summary).contains("No measurements in this file."));

    let mut one = file(vec![
        m("start", "strata", None, "s", vec![0.0]),
        m("io", "strata", None, "bytes/s", vec![0.0]),
        m("space", "strata", None, "bytes", vec![0.0]),
        with(m("depth", "strata", None, "s", vec![0.0]), "depth", "0"),
    ]);
    one.machine = Machine::default();
    let w = write(&one, &t.path().join("one")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.plots.len(), 4);
    assert!(read(&w.html).contains("unknown"));
}
