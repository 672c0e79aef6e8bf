//! Progress for copies: indicatif bars per blob on a terminal; one line per blob otherwise
//! (as skopeo prints), nothing with `--quiet`. Fed by the copy engine's progress events.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_graph_image::copy::{ProgressEvent, ProgressFn};

/// Builds the progress callback for a copy (`None` when quiet).
pub fn reporter(quiet: bool) -> Option<ProgressFn> {
    if quiet {
        return None;
    }
    if std::io::stderr().is_terminal() {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
        let style = ProgressStyle::with_template(
            "Copying blob {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Some(Arc::new(move |ev| {
            let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
            match ev {
                ProgressEvent::BlobStarted { descriptor } => {
                    let b = multi.add(ProgressBar::new(descriptor.size));
                    b.set_style(style.clone());
                    b.set_prefix(short(descriptor.digest.as_str()));
                    bars.insert(descriptor.digest.to_string(), b);
                }
                ProgressEvent::BlobProgress { digest, bytes } => {
                    if let Some(b) = bars.get(digest.as_str()) {
                        b.inc(bytes);
                    }
                }
                ProgressEvent::BlobDone { digest } => {
                    if let Some(b) = bars.remove(digest.as_str()) {
                        b.finish();
                    }
                }
                ProgressEvent::BlobSkipped { descriptor } => {
                    let _ = multi.println(format!(
                        "Copying blob {} skipped: already exists",
                        short(descriptor.digest.as_str())
                    ));
                }
            }
        }))
    } else {
        Some(Arc::new(|ev| match ev {
            ProgressEvent::BlobDone { digest } => {
                eprintln!("Copying blob {} done", short(digest.as_str()))
            }
            ProgressEvent::BlobSkipped { descriptor } => eprintln!(
                "Copying blob {} skipped: already exists",
                short(descriptor.digest.as_str())
            ),
            _ => {}
        }))
    }
}

fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}
