//! `strata bench` as a plugin (issue 16, in progress): the container-storage benchmark's front
//! end. What it has so far:
//!
//! - `strata bench images --synthetic SPEC -o DIR`: a deterministic synthetic image (an OCI
//!   layout), the same digests for the same spec on any machine;
//! - `strata bench compare BEFORE.json AFTER.json`: the measurements two result files share,
//!   with the changes that are statistically significant marked.
//!
//! The statistics, the result schema and the generator live in `strata-plugin-benchkit`; this
//! crate parses arguments and prints.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use strata_plugin_api::{export_plugin, Command, ErrorKind, Host, Outcome};
use strata_plugin_benchkit::results::{self, ResultFile, ResultsError};
use strata_plugin_benchkit::stats::Verdict;
use strata_plugin_benchkit::synth::{self, Spec, SynthError};

#[derive(Debug, Parser)]
#[command(
    name = "strata bench",
    about = "Benchmark container storage (in progress: synthetic images and result comparisons)"
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

fn run(_host: &Host, command: &str, args: &[String]) -> Outcome {
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

export_plugin! {
    name: "bench",
    version: env!("CARGO_PKG_VERSION"),
    commands: [
        Command { name: "bench", about: "Benchmark container storage (in progress: synthetic images, result comparisons)" },
    ],
    run: run,
}
