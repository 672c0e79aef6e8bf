//! The bench report in a real browser: Debian's headless Chromium opens `report.html` from
//! `file://` and must render every plot with nothing on its console.
//!
//! Two runs of Chromium: `--dump-dom` gives the page after its load event, where the
//! report's own script has marked each rendered plot (`data-rendered`) and counted plots,
//! errors and blocked loads on `<body>`; `--screenshot` then keeps a full-page PNG as a test
//! artifact (`target/test-artifacts/bench-report.png`, the report beside it in
//! `bench-report/`). Chromium logs every console message
//! (log, error, uncaught exception, content-security-policy refusal) to stderr as a
//! `CONSOLE` line, at one level whatever the message was, so any such line fails the test:
//! the report writes none.
//!
//! Chromium is a test package (`cargo xtask setup`); without it the test fails, it never
//! skips.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_plugin_benchkit::report;
use strata_plugin_benchkit::results::{
    Filesystem, Machine, Measurement, ResultFile, Skipped, SCHEMA,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const TIMEOUT: Duration = Duration::from_secs(60);

/// `n` samples around `center`: a fixed, skewed spread and one slow outlier in twenty.
fn samples(center: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let wobble = ((i * 37) % 17) as f64 / 17.0 - 0.4;
            let outlier = if i % 20 == 19 { 1.6 } else { 1.0 };
            center * (1.0 + 0.08 * wobble * wobble.abs() * 4.0) * outlier
        })
        .collect()
}

fn measurement(
    workload: &str,
    tool: &str,
    driver: Option<&str>,
    params: &[(&str, String)],
    unit: &str,
    samples: Vec<f64>,
) -> Measurement {
    let mut m = Measurement::new(workload, tool, unit, samples)
        .unwrap_or_else(|| panic!("samples of {workload} are finite"));
    m.driver = driver.map(str::to_owned);
    m.params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    m
}

/// A run like `strata bench run` makes: every plot kind, reference tools, the harness,
/// single-sample space measurements and one hostile workload name.
fn representative() -> ResultFile {
    let mut all = vec![
        measurement(
            "empty",
            "harness",
            None,
            &[("what", "sample".into())],
            "s",
            samples(1.8e-6, 40),
        ),
        measurement(
            "empty",
            "harness",
            None,
            &[("what", "/bin/true".into())],
            "s",
            samples(9e-4, 40),
        ),
    ];
    for (workload, base) in [
        ("pull", 0.8),
        ("apply", 0.35),
        ("create+mount", 0.012),
        ("start", 0.09),
        ("rmi", 0.02),
        ("gc", 0.004),
    ] {
        for (tool, driver, factor) in [
            ("strata", "overlay", 1.0),
            ("podman", "overlay", 1.7),
            ("strata", "vfs", 2.6),
            ("containers-storage", "vfs", 3.1),
            ("strata", "fuse-overlay", 1.9),
        ] {
            all.push(measurement(
                workload,
                tool,
                Some(driver),
                &[],
                "s",
                samples(base * factor, 30),
            ));
        }
    }
    for (workload, rate) in [
        ("io-seq-write", 900e6),
        ("io-seq-read", 2.4e9),
        ("io-small-files", 45e6),
        ("copy-up-large", 600e6),
    ] {
        for (tool, driver, factor) in [
            ("strata", "overlay", 1.0),
            ("fuse-overlayfs", "fuse-overlay", 0.45),
            ("strata", "fuse-overlay", 0.6),
        ] {
            all.push(measurement(
                workload,
                tool,
                Some(driver),
                &[],
                "bytes/s",
                samples(rate * factor, 12),
            ));
        }
    }
    for (workload, size) in [("space-image", 82.0), ("space-container", 0.25)] {
        for (tool, driver, factor) in [
            ("strata", "overlay", 1.0),
            ("podman", "overlay", 1.05),
            ("strata", "vfs", 3.5),
        ] {
            all.push(measurement(
                workload,
                tool,
                Some(driver),
                &[],
                "bytes",
                vec![size * factor * 1048576.0],
            ));
        }
    }
    for depth in (0..8).map(|k| 1u32 << k) {
        let d = f64::from(depth);
        for (tool, cost) in [("strata", 0.0004), ("podman", 0.0011)] {
            let params = [("depth", depth.to_string())];
            all.push(measurement(
                "depth",
                tool,
                Some("overlay"),
                &params,
                "s",
                samples(0.01 + cost * d, 15),
            ));
        }
    }
    for n in (0..7).map(|k| 1u32 << k) {
        let n_f = f64::from(n);
        for (tool, driver, cost) in [
            ("strata", "overlay", 0.004),
            ("podman", "overlay", 0.011),
            ("strata", "vfs", 0.02),
        ] {
            let params = [("n", n.to_string())];
            all.push(measurement(
                "concurrency",
                tool,
                Some(driver),
                &params,
                "s",
                samples(0.05 + cost * n_f, 10),
            ));
        }
    }
    all.push(measurement(
        "<img src=x onerror=alert(1)>",
        "strata",
        Some("overlay"),
        &[("<b>", "\"'&".into())],
        "s",
        samples(0.5, 5),
    ));
    ResultFile {
        schema: SCHEMA.into(),
        started: "2026-12-07T16:00:00Z".into(),
        machine: Machine {
            kernel: "6.1.0-28-amd64".into(),
            cpu: "AMD EPYC 7B13".into(),
            cpus: 8,
            memory_bytes: 32 << 30,
            filesystem: Some(Filesystem {
                path: "/var/tmp/strata-bench.x1/scratch".into(),
                mount_point: "/var/tmp/strata-bench.x1".into(),
                fstype: "ext4".into(),
                options: "rw,relatime,rw".into(),
                source: "/dev/loop3".into(),
                backing_file: Some("/var/tmp/strata-bench.x1.img".into()),
            }),
        },
        settings: BTreeMap::from([
            ("runs".into(), "10..100".into()),
            ("warmup".into(), "2".into()),
            ("image".into(), "layers=5,files=200".into()),
        ]),
        measurements: all,
        skipped: vec![
            Skipped {
                what: "driver devicemapper".into(),
                why: "no thin-pool support in this kernel".into(),
            },
            Skipped {
                what: "tool containerd".into(),
                why: "<script>not installed</script>".into(),
            },
        ],
    }
}

/// What a Chromium run printed.
struct Run {
    stdout: String,
    stderr: String,
    /// The page's console messages: every log line Chromium marks `CONSOLE`.
    console: Vec<String>,
    took: Duration,
}

/// Runs Chromium headless on `page` with `args`; kills it (its whole process group) after
/// [`TIMEOUT`].
fn chromium(scratch: &Path, page: &Path, args: &[String]) -> Run {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the bench report's browser test needs Debian's chromium \
         (`apt-get install -y chromium`, or `cargo xtask setup`)"
    );
    let (out, err) = (scratch.join("chromium.out"), scratch.join("chromium.err"));
    let file = |p: &Path| {
        std::fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
    };
    let started = Instant::now();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(file(&out))
        .stderr(file(&err))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {CHROMIUM}: {e}"));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                // The browser, its renderer and GPU processes: the group started above.
                let group = format!("-{}", child.id());
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                let _ = child.wait();
                panic!(
                    "chromium hung for {TIMEOUT:?} and was killed; its stderr:\n{}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("wait for chromium: {e}"),
        }
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    };
    let stderr = read(&err);
    assert!(
        status.success(),
        "chromium failed ({status}); stderr:\n{stderr}"
    );
    // `[pid:tid:time:INFO:CONSOLE:12] "message", source: file:///... (12)` (older
    // Chromium: `INFO:CONSOLE(12)`), whatever the message's level was.
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    Run {
        stdout: read(&out),
        stderr,
        console,
        took: started.elapsed(),
    }
}

fn no_console(run: &Run) {
    assert!(
        run.console.is_empty(),
        "the page wrote to the console:\n{}",
        run.console.join("\n")
    );
}

/// The value of `name="..."` in the first tag of `html` that starts with `tag_start`.
fn attribute<'h>(html: &'h str, tag_start: &str, name: &str) -> Option<&'h str> {
    let tag = &html[html.find(tag_start)?..];
    let tag = &tag[..tag.find('>')?];
    let needle = format!(" {name}=\"");
    let value = &tag[tag.find(&needle)? + needle.len()..];
    Some(&value[..value.find('"')?])
}

fn artifacts() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().and_then(Path::parent).unwrap_or(manifest);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace.join(t))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("test-artifacts")
}

#[test]
fn the_report_renders_in_chromium_with_every_plot_and_no_console_errors() {
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = representative();
    let written = report::write(&file, &scratch.path().join("report"))
        .unwrap_or_else(|e| panic!("write the report: {e}"));
    let plots: Vec<String> = written
        .plots
        .iter()
        .filter_map(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    for expected in [
        "pull",
        "depth",
        "concurrency",
        "throughput",
        "space",
        "empty",
    ] {
        assert!(
            plots.iter().any(|p| p == expected),
            "no plot {expected} in {plots:?}"
        );
    }
    let page = std::fs::canonicalize(&written.html).unwrap_or_else(|e| panic!("{e}"));

    let dom = chromium(
        scratch.path(),
        &page,
        &["--dump-dom".into(), "--window-size=1280,1000".into()],
    );
    no_console(&dom);
    let body = |name: &str| {
        attribute(&dom.stdout, "<body", name).unwrap_or_else(|| {
            panic!(
                "no {name} on <body> after load:\n{}",
                &dom.stdout[..dom.stdout.len().min(2000)]
            )
        })
    };
    assert_eq!(
        body("data-errors"),
        "0",
        "errors or blocked loads on the page"
    );
    assert_eq!(body("data-plots"), plots.len().to_string());
    assert_eq!(
        body("data-plots-rendered"),
        plots.len().to_string(),
        "plots that rendered"
    );
    for name in &plots {
        let figure = format!("<figure class=\"plot\" id=\"plot-{name}\"");
        assert_eq!(
            attribute(&dom.stdout, &figure, "data-rendered"),
            Some("yes"),
            "plot {name}"
        );
    }
    assert!(
        !dom.stdout.contains("<img src=x"),
        "a hostile name became markup"
    );

    let height: u32 = body("data-page-height")
        .parse()
        .unwrap_or_else(|e| panic!("page height: {e}"));
    let height = height.clamp(800, 16_000);
    let dir = artifacts();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // The report itself is kept beside its screenshot, to open by hand.
    report::write(&file, &dir.join("bench-report"))
        .unwrap_or_else(|e| panic!("write the report's copy: {e}"));
    let png = dir.join("bench-report.png");
    let _ = std::fs::remove_file(&png);
    let shot = chromium(
        scratch.path(),
        &page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size=1280,{height}"),
        ],
    );
    no_console(&shot);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("read {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    let dimension = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    assert_eq!(
        (dimension(16), dimension(20)),
        (Some(1280), Some(height)),
        "screenshot size"
    );
    assert!(
        bytes.len() > 100_000,
        "a {height} px high page in {} bytes is nearly blank",
        bytes.len()
    );
    eprintln!(
        "rendered {} plots (dom {:?}, screenshot {:?}); screenshot: {}",
        plots.len(),
        dom.took,
        shot.took,
        png.display()
    );
}

/// The checks above can fail: a page that tries to fetch something or runs a script of its
/// own is refused by the report's content security policy, and both the console and the
/// page's error count say so.
#[test]
fn a_report_page_that_fetches_or_runs_foreign_script_is_caught() {
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut file = representative();
    file.measurements.truncate(3);
    let written = report::write(&file, &scratch.path().join("report"))
        .unwrap_or_else(|e| panic!("write the report: {e}"));
    let html = std::fs::read_to_string(&written.html).unwrap_or_else(|e| panic!("{e}"));
    let tampered = html.replacen(
        "</body>",
        "<img src=\"https://example.invalid/x.png\"><script>document.title = 'x';</script></body>",
        1,
    );
    assert_ne!(tampered, html);
    std::fs::write(&written.html, tampered).unwrap_or_else(|e| panic!("{e}"));
    let page = std::fs::canonicalize(&written.html).unwrap_or_else(|e| panic!("{e}"));
    let run = chromium(scratch.path(), &page, &["--dump-dom".into()]);
    let refused = run
        .console
        .iter()
        .filter(|l| l.contains("Content Security Policy"))
        .count();
    assert_eq!(
        refused,
        2,
        "console:\n{}\n{}",
        run.console.join("\n"),
        run.stderr
    );
    // Both refusals, and the image's own error event when it fires before the count.
    let errors: u32 = attribute(&run.stdout, "<body", "data-errors")
        .and_then(|e| e.parse().ok())
        .unwrap_or_default();
    assert!(errors >= 2, "the page counted {errors} of its 2 refusals");
}
