//! `strata bench` as a plugin (issue 16): the container-storage benchmark's front end.
//!
//! - `strata bench run`: every workload on every driver this host can run, beside the
//!   installed reference tools, interleaved; writes `results.json` (schema `strata-bench/1`),
//!   `report.html`, `summary.md` and `plots/*.svg`, with a live view on the terminal;
//! - `strata bench report RESULT.json -o DIR`: the report of a result file;
//! - `strata bench images --synthetic SPEC -o DIR`: a deterministic synthetic image (an OCI
//!   layout), the same digests for the same spec on any machine;
//! - `strata bench compare BEFORE.json AFTER.json`: the measurements two result files share,
//!   with the changes that are statistically significant marked.
//!
//! The workloads, statistics, result schema, report and generator live in
//! `strata-plugin-benchkit`; this crate parses arguments, shows progress and prints.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use strata_plugin_api::{export_plugin, Command, ErrorKind, Host, Outcome};
use strata_plugin_benchkit::results::{self, Measurement, ResultFile, ResultsError};
use strata_plugin_benchkit::stats::Verdict;
use strata_plugin_benchkit::synth::{self, Spec, SynthError};
use strata_plugin_benchkit::{report, run};

#[derive(Debug, Parser)]
#[command(
    name = "strata bench",
    about = "Benchmark container storage: run workloads on every driver beside podman, skopeo, buildah, containers-storage and containerd; report; compare; synthetic images"
)]
struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Write a deterministic synthetic image as an OCI layout (load it with
    /// `strata storage load oci:DIR:REF` or `strata copy`)
    Images {
        /// The image's shape: layers=N,files=N,dirs=N,size=MIN..MAX,dup=SHARE,whiteouts=SHARE,seed=N
        /// (sizes in bytes or with k, m, g; missing keys take their defaults)
        #[arg(long, default_value = "")]
        synthetic: String,
        /// The layout directory to create (new, or empty)
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// The reference the layout's index gives the image
        #[arg(long, default_value = "latest")]
        reference: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Measure: every workload on every driver, and the same work through each installed
    /// reference tool, interleaved; writes results.json, report.html, summary.md and plots/
    Run(Box<RunArgs>),
    /// Write the report of a result file: report.html (self-contained), summary.md, plots/*.svg
    Report {
        result: PathBuf,
        /// The directory to write into
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Compare two result files: the measurements both have, with significant regressions and
    /// improvements marked (Mann-Whitney U test, and a minimum effect)
    Compare {
        before: PathBuf,
        after: PathBuf,
        /// Significance level
        #[arg(long, default_value_t = 0.01)]
        alpha: f64,
        /// Smallest relative change of the median that counts (0.02 = 2%)
        #[arg(long, default_value_t = 0.02)]
        min_effect: f64,
        /// Exit with 1 when a measurement regressed
        #[arg(long)]
        fail_on_regression: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `strata bench run`'s arguments.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Drivers to measure (those this host cannot run are skipped, with why)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "overlay,fuse-overlay,vfs,btrfs,devicemapper"
    )]
    drivers: Vec<String>,
    /// Workloads: empty, pull, apply, create+mount, start, io, depth, concurrency, build, cri,
    /// space, rmi, gc [default: all]
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// The image: an OCI layout, oci:DIR[:REF] (used as it is; starts, builds and the CRI
    /// need its /bin/sh, /bin/true and /bin/sleep)
    #[arg(long, conflicts_with = "synthetic")]
    image: Option<String>,
    /// A synthetic image of this shape (see `strata bench images`) [default: the profile's]
    #[arg(long)]
    synthetic: Option<String>,
    /// Reference tools to run beside Strata (those not installed are skipped), or none
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "podman,skopeo,buildah,containers-storage,fuse-overlayfs,containerd"
    )]
    against: Vec<String>,
    /// quick (about a minute), standard, or full (depth 128, 64 at once, 1 GiB of I/O)
    #[arg(long, default_value = "standard", value_parser = ["quick", "standard", "full"])]
    profile: String,
    /// Exact samples per side, instead of adapting the count to the noise
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,
    /// Warm-up samples per side, not recorded [default: the profile's]
    #[arg(long)]
    warmup: Option<u64>,
    /// Drop the page cache before every sample (root)
    #[arg(long)]
    cold: bool,
    /// Where to work (a new directory inside it, removed at the end, also after Ctrl-C)
    #[arg(long, default_value = "/var/tmp")]
    scratch: PathBuf,
    /// Work on a loop-mounted filesystem of this type inside the scratch: ext4, xfs, btrfs (root)
    #[arg(long)]
    scratch_fs: Option<String>,
    /// Pull from this registry (HOST:PORT, plain HTTP) instead of a local docker-registry
    #[arg(long)]
    registry: Option<String>,
    /// The directory to write the results and the report into (new, or empty)
    #[arg(short = 'o', long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn run(_host: &Host, command: &str, args: &[String]) -> Outcome {
    dispatch(command, args)
}

fn dispatch(command: &str, args: &[String]) -> Outcome {
    if command != "bench" {
        return error(
            ErrorKind::InvalidArgument,
            format!("the bench plugin has no command {command}"),
        );
    }
    let argv = std::iter::once("strata bench".to_owned()).chain(args.iter().cloned());
    let parsed = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return Outcome::Exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match parsed.cmd {
        Sub::Images {
            synthetic,
            output,
            reference,
            format,
        } => images(&synthetic, &output, &reference, format),
        Sub::Run(r) => {
            let RunArgs {
                drivers,
                workloads,
                image,
                synthetic,
                against,
                profile,
                runs,
                warmup,
                cold,
                scratch,
                scratch_fs,
                registry,
                output,
                format,
            } = *r;
            let mut settings = std::collections::BTreeMap::new();
            let argv = args.join(" ");
            settings.insert("command".to_owned(), format!("strata bench {argv}"));
            let opts = (|| -> Result<run::Options, run::RunError> {
                let workloads = if workloads.is_empty() {
                    run::Workload::ALL.to_vec()
                } else {
                    workloads
                        .iter()
                        .map(|w| run::Workload::parse(w))
                        .collect::<Result<_, _>>()?
                };
                let image = match (image, synthetic) {
                    (Some(i), _) => Some(layout_source(&i)?),
                    (None, Some(s)) => Some(run::ImageSource::Synthetic(
                        s.parse()
                            .map_err(|e: SynthError| run::RunError::Usage(e.to_string()))?,
                    )),
                    (None, None) => None,
                };
                Ok(run::Options {
                    strata: std::env::current_exe()
                        .map_err(run::RunError::io("find the strata binary"))?,
                    drivers,
                    workloads,
                    image,
                    against: against.into_iter().filter(|t| t != "none").collect(),
                    profile: run::Profile::named(&profile)?,
                    runs: runs.map(|n| n as usize),
                    warmup: warmup.map(|n| n as usize),
                    cold,
                    scratch,
                    scratch_fs: scratch_fs
                        .as_deref()
                        .map(run::ScratchFs::parse)
                        .transpose()?,
                    registry,
                    settings,
                })
            })();
            match opts {
                Ok(o) => bench_run(&o, &output, format),
                Err(e) => run_error(e),
            }
        }
        Sub::Report { result, output } => match read(&result) {
            Ok(file) => write_report(&file, &output),
            Err(o) => o,
        },
        Sub::Compare {
            before,
            after,
            alpha,
            min_effect,
            fail_on_regression,
            format,
        } => compare(
            &before,
            &after,
            alpha,
            min_effect,
            fail_on_regression,
            format,
        ),
    }
}

fn error(kind: ErrorKind, message: String) -> Outcome {
    Outcome::Error { kind, message }
}

fn synth_error(e: SynthError) -> Outcome {
    let kind = match &e {
        SynthError::Spec { .. } => ErrorKind::InvalidArgument,
        SynthError::NotEmpty(_) => ErrorKind::AlreadyExists,
        SynthError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            ErrorKind::Unavailable
        }
        SynthError::Io { .. } => ErrorKind::Internal,
    };
    error(kind, e.to_string())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn images(spec: &str, output: &std::path::Path, reference: &str, format: Format) -> Outcome {
    let spec: Spec = match spec.parse() {
        Ok(s) => s,
        Err(e) => return synth_error(e),
    };
    let img = match synth::generate(&spec, output, reference) {
        Ok(i) => i,
        Err(e) => return synth_error(e),
    };
    let name = format!("oci:{}:{reference}", output.display());
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&img).unwrap_or_default();
            v["image"] = name.into();
            println!("{v:#}");
        }
        Format::Table => {
            println!("image:    {name}");
            println!("spec:     {}", img.spec);
            println!("manifest: {}", img.manifest);
            println!("config:   {}", img.config);
            for (i, l) in img.layers.iter().enumerate() {
                println!(
                    "layer {}:  {} ({} compressed, {} as tar; {} files, {} of content, {} whiteouts)",
                    i + 1,
                    l.digest,
                    human(l.size),
                    human(l.tar_size),
                    l.files,
                    human(l.content_bytes),
                    l.whiteouts
                );
            }
        }
    }
    Outcome::Ok
}

fn read(path: &std::path::Path) -> Result<ResultFile, Outcome> {
    ResultFile::read(path).map_err(|e| {
        let kind = match &e {
            ResultsError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            ResultsError::Read { .. } => ErrorKind::Internal,
            ResultsError::Invalid { .. } => ErrorKind::InvalidArgument,
        };
        error(kind, e.to_string())
    })
}

fn compare(
    before: &std::path::Path,
    after: &std::path::Path,
    alpha: f64,
    min_effect: f64,
    fail_on_regression: bool,
    format: Format,
) -> Outcome {
    let valid = alpha > 0.0 && alpha < 1.0 && min_effect >= 0.0;
    if !valid {
        return error(
            ErrorKind::InvalidArgument,
            "--alpha must be between 0 and 1 and --min-effect at least 0".into(),
        );
    }
    let (a, b) = match (read(before), read(after)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(o), _) | (_, Err(o)) => return o,
    };
    let (rows, only) = results::compare(&a, &b, alpha, min_effect);
    match format {
        Format::Json => {
            let v = serde_json::json!({"rows": rows, "unmatched": only});
            println!("{v:#}");
        }
        Format::Table => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(11).max(11);
            println!(
                "{:<width$}  {:>12}  {:>12}  {:>6}  {:>8}  verdict",
                "measurement", "before", "after", "ratio", "p-value"
            );
            for r in &rows {
                let p = if r.comparison.p_value < 0.001 {
                    "<0.001".to_owned()
                } else {
                    format!("{:.3}", r.comparison.p_value)
                };
                let verdict = match r.comparison.verdict {
                    Verdict::Improvement => "improvement",
                    Verdict::Regression => "REGRESSION",
                    Verdict::NoChange => "no change",
                };
                println!(
                    "{:<width$}  {:>12}  {:>12}  {:>6.2}  {:>8}  {verdict}",
                    r.key,
                    format!("{:.4} {}", r.before, r.unit),
                    format!("{:.4} {}", r.after, r.unit),
                    r.comparison.ratio,
                    p
                );
            }
            for k in &only {
                println!("{k}: in one file only");
            }
        }
    }
    let regressed = rows
        .iter()
        .any(|r| r.comparison.verdict == Verdict::Regression);
    if fail_on_regression && regressed {
        Outcome::Exit(1)
    } else {
        Outcome::Ok
    }
}

/// `oci:DIR[:REF]` as a run's image.
fn layout_source(s: &str) -> Result<run::ImageSource, run::RunError> {
    let rest = s.strip_prefix("oci:").ok_or_else(|| {
        run::RunError::Usage(format!("--image {s:?}: give an OCI layout, oci:DIR[:REF]"))
    })?;
    let (dir, reference) = match rest.rsplit_once(':') {
        Some((d, r)) if !r.contains('/') => (d, r),
        _ => (rest, "latest"),
    };
    let dir = std::path::absolute(dir).map_err(run::RunError::io(format!("--image {s}")))?;
    if !dir.join("index.json").is_file() {
        return Err(run::RunError::Usage(format!(
            "--image {s}: {} is not an OCI layout (no index.json)",
            dir.display()
        )));
    }
    Ok(run::ImageSource::Layout {
        dir,
        reference: reference.to_owned(),
    })
}

fn run_error(e: run::RunError) -> Outcome {
    match e {
        run::RunError::Interrupted => {
            eprintln!("strata bench: {e}");
            Outcome::Exit(130)
        }
        run::RunError::Usage(m) => error(ErrorKind::InvalidArgument, m),
        run::RunError::Io { ref source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull =>
        {
            error(ErrorKind::Unavailable, e.to_string())
        }
        other => error(ErrorKind::Internal, other.to_string()),
    }
}

/// The live view: on a terminal, a bar for the whole run (workloads done and the time so far;
/// no estimate of what is left, as workloads differ in length by orders of magnitude) above a
/// bar for the current step (its samples; the count is the most it may take, as the policy
/// may stop early); a line per result either way.
struct Live {
    multi: indicatif::MultiProgress,
    run: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    terminal: bool,
    /// When the current step began.
    began: std::sync::Mutex<std::time::Instant>,
}

impl Live {
    fn line(&self, s: &str) {
        if self.terminal {
            let _ = self.multi.println(s);
        } else {
            eprintln!("{s}");
        }
    }
}

fn seconds(v: f64) -> String {
    if v < 1e-6 {
        format!("{:.0} ns", v * 1e9)
    } else if v < 1e-3 {
        format!("{:.1} µs", v * 1e6)
    } else if v < 1.0 {
        format!("{:.2} ms", v * 1e3)
    } else {
        format!("{v:.2} s")
    }
}

fn value(v: f64, unit: &str) -> String {
    match unit {
        "s" => seconds(v),
        "bytes" => human(v as u64),
        "bytes/s" => format!("{:.1} MB/s", v / 1e6),
        _ => format!("{v} {unit}"),
    }
}

impl run::Observer for Live {
    fn workload(&self, index: usize, total: usize, name: &str) {
        if !self.terminal {
            eprintln!("[{index}/{total}] {name}");
            return;
        }
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        let b = run.get_or_insert_with(|| {
            let b = self.multi.add(indicatif::ProgressBar::new(total as u64));
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {pos}/{len} workloads, {elapsed} so far: {wide_msg}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix("run");
            b.enable_steady_tick(std::time::Duration::from_millis(500));
            b
        });
        b.set_position(index.saturating_sub(1) as u64);
        b.set_message(name.to_owned());
    }

    fn begin(&self, workload: &str, samples: usize) {
        *self.began.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if !self.terminal {
            eprintln!("{workload}:");
            return;
        }
        let b = self.multi.add(indicatif::ProgressBar::new(samples as u64));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:.bold} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_prefix(workload.to_owned());
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        *bar = Some(b);
    }

    fn sample(&self, side: &str) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(1);
            b.set_message(side.to_owned());
        }
    }

    fn measured(&self, m: &Measurement) {
        let s = &m.summary;
        self.line(&format!(
            "  {}: median {} (95% CI {} to {}, p95 {}, n={}{})",
            m.key(),
            value(s.median, &m.unit),
            value(s.median_ci.0, &m.unit),
            value(s.median_ci.1, &m.unit),
            value(s.p95, &m.unit),
            s.n,
            if s.outliers > 0 {
                format!(", {} outliers", s.outliers)
            } else {
                String::new()
            }
        ));
    }

    fn note(&self, message: &str) {
        self.line(&format!("  {message}"));
    }

    fn end(&self) {
        let took = self
            .began
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        self.line(&format!("  ({:.1} s)", took.as_secs_f64()));
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A step bar is left when the run was interrupted inside a step.
        for bar in [&self.bar, &self.run] {
            if let Some(b) = bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
                b.finish_and_clear();
            }
        }
    }
}

fn bench_run(opts: &run::Options, output: &std::path::Path, format: Format) -> Outcome {
    use std::io::IsTerminal;
    let occupied = std::fs::read_dir(output).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        return error(
            ErrorKind::AlreadyExists,
            format!(
                "{} is not empty; give a new or empty directory",
                output.display()
            ),
        );
    }
    // Ctrl-C sets the flag (the run stops at its next sample and cleans up) instead of
    // killing this process with mounts and loop devices left behind.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            return error(
                ErrorKind::Internal,
                format!("cannot handle signal {sig}: {e}"),
            );
        }
    }
    let live = Live {
        multi: indicatif::MultiProgress::new(),
        run: std::sync::Mutex::new(None),
        bar: std::sync::Mutex::new(None),
        terminal: std::io::stderr().is_terminal(),
        began: std::sync::Mutex::new(std::time::Instant::now()),
    };
    let file = match run::run(opts, &live, &stop) {
        Ok(f) => f,
        Err(e) => return run_error(e),
    };
    // The bars go before the summary is printed.
    drop(live);
    if let Err(e) = std::fs::create_dir_all(output) {
        return error(
            ErrorKind::Internal,
            format!("create {}: {e}", output.display()),
        );
    }
    let results = output.join("results.json");
    let json = match serde_json::to_vec_pretty(&file) {
        Ok(j) => j,
        Err(e) => return error(ErrorKind::Internal, e.to_string()),
    };
    if let Err(e) = std::fs::write(&results, json) {
        return error(
            ErrorKind::Internal,
            format!("write {}: {e}", results.display()),
        );
    }
    let written = write_report(&file, output);
    if !matches!(written, Outcome::Ok) {
        return written;
    }
    match format {
        Format::Json => match serde_json::to_string_pretty(&file) {
            Ok(j) => println!("{j}"),
            Err(e) => return error(ErrorKind::Internal, e.to_string()),
        },
        Format::Table => {
            println!(
                "{:<60}  {:>12}  {:>25}  {:>4}",
                "measurement", "median", "95% CI", "n"
            );
            for m in &file.measurements {
                let s = &m.summary;
                println!(
                    "{:<60}  {:>12}  {:>25}  {:>4}",
                    m.key(),
                    value(s.median, &m.unit),
                    format!(
                        "{} to {}",
                        value(s.median_ci.0, &m.unit),
                        value(s.median_ci.1, &m.unit)
                    ),
                    s.n
                );
            }
            for s in &file.skipped {
                println!("skipped {}: {}", s.what, s.why);
            }
            println!(
                "results: {}; report: {}",
                results.display(),
                output.join("report.html").display()
            );
        }
    }
    Outcome::Ok
}

fn write_report(file: &ResultFile, output: &std::path::Path) -> Outcome {
    match report::write(file, output) {
        Ok(_) => Outcome::Ok,
        Err(e) => error(ErrorKind::Internal, e.to_string()),
    }
}

export_plugin! {
    name: "bench",
    version: env!("CARGO_PKG_VERSION"),
    commands: [
        Command { name: "bench", about: "Benchmark container storage: run, report, compare, synthetic images" },
    ],
    run: run,
}
