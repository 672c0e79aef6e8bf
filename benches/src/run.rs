//! `--only run`: the run front end against podman and a bare `crun run`, side by side in one
//! run, on the same busybox image, the same scratch filesystem and the same runtime (crun):
//!
//! - `run --rm busybox true` with network `none` for both tools (networking setup is not
//!   compared), and a bare `crun run` of a prepared bundle; then both on their default bridge
//!   (Strata: the CNI plugins; podman: whichever backend `podman info` names, netavark here);
//! - `create busybox true` (each container removed after its timing, untimed);
//! - `ps -a` with no containers and with N created ones, and `ps` (none running), plus the
//!   processes each `ps -a` starts (counted with strace), to show that listing created
//!   containers asks no runtime;
//! - a process timeline of one `strata run --rm` (see `timeline`), to show where its time goes;
//! - with `--baseline-strata`, another strata (an earlier build) in the same rounds, as
//!   `strata (before)`, for before/after numbers of a change; and strata with
//!   `--security-opt seccomp=unconfined`, for what the default seccomp profile costs a start.
//!
//! The cases of one table run interleaved, round by round in a freshly shuffled order, so
//! that background load on the 2-core machine, and what one command leaves for the next, hits
//! every tool alike; each case gets warm-ups
//! first. Whole commands are timed, process start included, as users run them. A case that
//! fails is reported and dropped while the others go on. It reports; it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engines::{Bundle, Podman, Strata};
use crate::layer::sh;
use crate::storage::Measurement;
use crate::timeline;

/// `cases`, with the baseline's case when there is one.
fn with_before<'a>(mut cases: Vec<Case<'a>>, before: Option<Case<'a>>) -> Vec<Case<'a>> {
    cases.extend(before);
    cases
}

/// Untimed runs of every case before the measured ones.
pub const WARMUPS: usize = 3;

pub const RUN_NONE: &str = "run --rm, network none";
pub const RUN_BRIDGE: &str = "run --rm, default bridge";
pub const CREATE: &str = "create";
pub const PS_EMPTY: &str = "ps -a, no containers";
pub const PS_ALL: &str = "ps -a, created containers";
pub const PS_RUNNING: &str = "ps, created containers, none running";
pub const BARE_CRUN: &str = "crun run (bare bundle)";

#[derive(Debug)]
pub struct RunOptions {
    /// Measured runs of each case.
    pub runs: usize,
    /// Containers created for the `ps` cases.
    pub ps_containers: usize,
    /// The busybox OCI layout (tag `latest`).
    pub layout: PathBuf,
    /// Another strata binary measured beside this one (`strata (before)`).
    pub baseline: Option<PathBuf>,
}

/// The tool name of the baseline strata.
pub const BEFORE: &str = "strata (before)";
/// Strata without a seccomp filter, to show what the default profile costs a start.
pub const UNCONFINED: &str = "strata, seccomp=unconfined";

/// What the run section found besides the latencies (which are [`Measurement`]s).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub runs: usize,
    pub warmups: usize,
    pub ps_containers: usize,
    pub podman_version: String,
    pub podman_network_backend: String,
    pub crun_version: String,
    pub load_average_before: String,
    pub load_average_after: String,
    pub comparisons: Vec<Comparison>,
    pub ps_execs: Vec<PsExecs>,
    pub failures: Vec<Failure>,
    /// One `strata run --rm --network none`, process by process (empty without perf).
    pub timeline: Vec<timeline::Step>,
}

/// A ratio or difference of medians, with the target when it sets one.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub what: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    /// The target: `value` at most this.
    pub limit: Option<f64>,
    pub met: Option<bool>,
}

/// The processes one `ps -a` started (besides itself), with N created containers.
#[derive(Debug, Clone, Serialize)]
pub struct PsExecs {
    pub tool: String,
    pub containers: usize,
    pub execs: usize,
    pub programs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub group: String,
    pub tool: String,
    pub error: String,
}

/// The command for round `i` of a case.
type MakeCommand<'a> = Box<dyn FnMut(usize) -> Command + 'a>;
/// Work after a run, given its stdout.
type AfterRun<'a> = Box<dyn FnMut(&str) -> Result<()> + 'a>;

/// One tool's command in a table, with its times.
struct Case<'a> {
    tool: &'static str,
    /// The command for round `i` (bare crun needs a container ID per run).
    make: MakeCommand<'a>,
    /// Untimed, after each run, with its stdout: removes what it created, checks its output.
    after: Option<AfterRun<'a>>,
    times: Vec<Duration>,
    error: Option<String>,
}

impl<'a> Case<'a> {
    fn new(tool: &'static str, make: impl FnMut(usize) -> Command + 'a) -> Case<'a> {
        Case {
            tool,
            make: Box::new(make),
            after: None,
            times: Vec::new(),
            error: None,
        }
    }

    fn after(mut self, f: impl FnMut(&str) -> Result<()> + 'a) -> Case<'a> {
        self.after = Some(Box::new(f));
        self
    }

    fn once(&mut self, round: usize, record: bool) -> Result<()> {
        let mut cmd = (self.make)(round);
        cmd.stdin(Stdio::null());
        let t = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {cmd:?}"))?;
        let elapsed = t.elapsed();
        if !out.status.success() {
            bail!(
                "{cmd:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if record {
            self.times.push(elapsed);
        }
        if let Some(after) = &mut self.after {
            after(&String::from_utf8_lossy(&out.stdout))?;
        }
        Ok(())
    }
}

/// Runs the cases of one table interleaved: warm-ups, then `runs` measured rounds.
fn measure(
    group: &'static str,
    mut cases: Vec<Case<'_>>,
    runs: usize,
    out: &mut Vec<Measurement>,
    summary: &mut RunSummary,
) {
    let mut order: Vec<usize> = (0..cases.len()).collect();
    let mut rng = Shuffler::new(group);
    for round in 0..WARMUPS + runs {
        rng.shuffle(&mut order);
        for &k in &order {
            let c = &mut cases[k];
            if c.error.is_some() {
                continue;
            }
            if let Err(e) = c.once(round, round >= WARMUPS) {
                c.error = Some(format!("{e:#}"));
            }
        }
    }
    for c in cases {
        match c.error {
            Some(error) => {
                eprintln!("{group}: {}: FAILED: {error}", c.tool);
                summary.failures.push(Failure {
                    group: group.to_owned(),
                    tool: c.tool.to_owned(),
                    error,
                });
            }
            None => {
                let m = latency(group, c.tool, c.times);
                eprintln!(
                    "{group}: {}: median {:.1} ms, p90 {:.1} ms",
                    c.tool,
                    m.median_ms,
                    m.p90_ms.unwrap_or_default()
                );
                out.push(m);
            }
        }
    }
}

/// The order of the cases in each round: a fresh permutation every round, from a fixed seed
/// (the group's name), so runs are repeatable. Rotating a fixed order is not enough: each case
/// would always follow the same one, and what a command leaves behind (or warms) lands on its
/// successor. With a rotated order, the same strata binary measured 7 ms faster in the slot
/// after bare crun than in the slot after itself. xorshift64 is plenty for this; no crate.
pub(crate) struct Shuffler(u64);

impl Shuffler {
    pub(crate) fn new(seed: &str) -> Shuffler {
        // FNV-1a of the seed; never 0, which xorshift cannot leave.
        let h = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Shuffler(h | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher-Yates.
    pub(crate) fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap_or(0);
            v.swap(i, j);
        }
    }
}

/// Median and 90th percentile (nearest rank) of `times`, which is not empty.
pub(crate) fn latency(group: &'static str, tool: &str, mut times: Vec<Duration>) -> Measurement {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p90 = times[(times.len() * 9).div_ceil(10).max(1) - 1];
    Measurement {
        group,
        tool: tool.to_owned(),
        median_ms: ms(times[times.len() / 2]),
        p90_ms: Some(ms(p90)),
        mb_per_s: None,
        files_per_s: None,
        peak_rss_mib: None,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs every run benchmark in `scratch/run`; everything it creates is removed on return.
pub fn run_benchmarks(
    scratch: &Path,
    strata_bin: &Path,
    o: &RunOptions,
) -> Result<(Vec<Measurement>, RunSummary)> {
    if !o.layout.join("index.json").is_file() {
        bail!(
            "the busybox OCI layout {} is missing; build it with `cargo xtask fixtures`",
            o.layout.display()
        );
    }
    let dir = scratch.join("run");
    let strata = Strata::setup(strata_bin, dir.join("strata"), &o.layout)?;
    let before = o
        .baseline
        .as_deref()
        .map(|b| Strata::setup(b, dir.join("strata-before"), &o.layout))
        .transpose()
        .context("set up the baseline strata")?;
    let podman = Podman::setup(dir.join("podman"), &o.layout)?;
    let bundle = Bundle::setup(&strata, dir.join("crun"))?;
    let crun_version = sh(Command::new("crun").arg("--version"))?;
    let mut summary = RunSummary {
        runs: o.runs,
        warmups: WARMUPS,
        ps_containers: o.ps_containers,
        podman_version: podman.info("{{.Version.Version}}"),
        podman_network_backend: podman.info("{{.Host.NetworkBackend}}"),
        crun_version: crun_version.lines().next().unwrap_or_default().to_owned(),
        load_average_before: load_average(),
        load_average_after: String::new(),
        comparisons: Vec::new(),
        ps_execs: Vec::new(),
        failures: Vec::new(),
        timeline: Vec::new(),
    };
    let mut out = Vec::new();
    let run_none = ["run", "--rm", "--network", "none", "busybox", "true"];
    let run_unconfined = [
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "true",
    ];
    measure(
        RUN_NONE,
        with_before(
            vec![
                Case::new("strata", |_| strata.cmd(&run_none)),
                Case::new(UNCONFINED, |_| strata.cmd(&run_unconfined)),
                Case::new("podman", |_| podman.cmd(&run_none)),
                Case::new(BARE_CRUN, |i| bundle.run(&format!("strata-bench-{i}"))),
            ],
            before
                .as_ref()
                .map(|b| Case::new(BEFORE, move |_| b.cmd(&run_none))),
        ),
        o.runs,
        &mut out,
        &mut summary,
    );
    let run_bridge = ["run", "--rm", "busybox", "true"];
    measure(
        RUN_BRIDGE,
        with_before(
            vec![
                Case::new("strata", |_| strata.cmd(&run_bridge)),
                Case::new("podman", |_| podman.cmd(&run_bridge)),
            ],
            before
                .as_ref()
                .map(|b| Case::new(BEFORE, move |_| b.cmd(&run_bridge))),
        ),
        o.runs,
        &mut out,
        &mut summary,
    );
    let create = ["create", "busybox", "true"];
    measure(
        CREATE,
        with_before(
            vec![
                Case::new("strata", |_| strata.cmd(&create))
                    .after(|id| sh(&mut strata.cmd(&["rm", id.trim()])).map(drop)),
                Case::new("podman", |_| podman.cmd(&create))
                    .after(|id| sh(&mut podman.cmd(&["rm", id.trim()])).map(drop)),
            ],
            before.as_ref().map(|b| {
                Case::new(BEFORE, move |_| b.cmd(&create))
                    .after(move |id| sh(&mut b.cmd(&["rm", id.trim()])).map(drop))
            }),
        ),
        o.runs,
        &mut out,
        &mut summary,
    );
    ps_benchmarks(&strata, before.as_ref(), &podman, o, &mut out, &mut summary)?;
    if timeline::available() {
        match timeline::record(&dir.join("timeline"), &strata.cmd(&run_none), 5) {
            Ok(t) => summary.timeline = t,
            Err(e) => summary.failures.push(Failure {
                group: "timeline".into(),
                tool: "strata".into(),
                error: format!("{e:#}"),
            }),
        }
    }
    summary.load_average_after = load_average();
    summary.comparisons = compare(&out, o.ps_containers);
    Ok((out, summary))
}

/// `ps -a` empty, then with `ps_containers` created containers in each tool; `ps` too.
fn ps_benchmarks(
    strata: &Strata,
    before: Option<&Strata>,
    podman: &Podman,
    o: &RunOptions,
    out: &mut Vec<Measurement>,
    summary: &mut RunSummary,
) -> Result<()> {
    let n = o.ps_containers;
    // `ps` prints a header line, then one line per container.
    let rows = |want: usize| {
        move |text: &str| {
            let got = text.lines().count().saturating_sub(1);
            if got != want {
                bail!("listed {got} containers, expected {want}");
            }
            Ok(())
        }
    };
    let before_case = |args: &'static [&'static str], want: usize| {
        before.map(|b| Case::new(BEFORE, move |_| b.cmd(args)).after(rows(want)))
    };
    let cases = |args: &'static [&'static str], want: usize| {
        let mut v = vec![
            Case::new("strata", move |_| strata.cmd(args)).after(rows(want)),
            Case::new("podman", move |_| podman.cmd(args)).after(rows(want)),
        ];
        v.extend(before_case(args, want));
        v
    };
    measure(PS_EMPTY, cases(&["ps", "-a"], 0), o.runs, out, summary);
    eprintln!("ps: creating {n} containers in each tool");
    for _ in 0..n {
        sh(&mut strata.cmd(&["create", "busybox", "true"]))?;
        sh(&mut podman.cmd(&["create", "busybox", "true"]))?;
        if let Some(b) = before {
            sh(&mut b.cmd(&["create", "busybox", "true"]))?;
        }
    }
    measure(PS_ALL, cases(&["ps", "-a"], n), o.runs, out, summary);
    measure(PS_RUNNING, cases(&["ps"], 0), o.runs, out, summary);
    for (tool, cmd) in [
        ("strata", strata.cmd(&["ps", "-a"])),
        ("podman", podman.cmd(&["ps", "-a"])),
    ] {
        match execs(&cmd) {
            Ok(programs) => summary.ps_execs.push(PsExecs {
                tool: tool.to_owned(),
                containers: n,
                execs: programs.len(),
                programs: dedup(programs),
            }),
            Err(e) => summary.failures.push(Failure {
                group: "ps -a processes".into(),
                tool: tool.to_owned(),
                error: format!("{e:#}"),
            }),
        }
    }
    sh(&mut strata.cmd(&["rm", "--all"]))?;
    sh(&mut podman.cmd(&["rm", "--all"]))?;
    if let Some(b) = before {
        sh(&mut b.cmd(&["rm", "--all"]))?;
    }
    Ok(())
}

/// The programs `cmd` starts (successful execs after its own), traced with strace.
fn execs(cmd: &Command) -> Result<Vec<String>> {
    let log = std::env::temp_dir().join(format!("strata-bench-execs-{}", std::process::id()));
    let prefix = ["-f", "-qq", "-z", "-e", "trace=execve", "-o"];
    let mut args: Vec<&std::ffi::OsStr> = prefix.iter().map(std::ffi::OsStr::new).collect();
    args.push(log.as_os_str());
    let result = sh(timeline::under("strace", &args, cmd).stdin(Stdio::null()));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    result.context("strace (apt-get install strace)")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once("execve(\"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('"').next())
        .skip(1)
        .map(str::to_owned)
        .collect())
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The ratios and differences of medians the issue asks about, with its targets.
fn compare(out: &[Measurement], n: usize) -> Vec<Comparison> {
    let med = |group: &str, tool: &str| {
        out.iter()
            .find(|m| m.group == group && m.tool == tool)
            .map(|m| m.median_ms)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let per = |a: Option<f64>, b: Option<f64>| Some((a? - b?) / n.max(1) as f64);
    let c = |what: String, value: Option<f64>, unit: &'static str, limit: Option<f64>| Comparison {
        met: limit.and_then(|l| value.map(|v| v <= l)),
        what,
        value,
        unit,
        limit,
    };
    let (s, p, k) = (
        med(RUN_NONE, "strata"),
        med(RUN_NONE, "podman"),
        med(RUN_NONE, BARE_CRUN),
    );
    vec![
        c(
            format!("{RUN_NONE}: strata / podman"),
            ratio(s, p),
            "x",
            Some(0.5),
        ),
        c(
            format!("{RUN_NONE}: strata - bare crun"),
            diff(s, k),
            "ms",
            Some(50.0),
        ),
        c(
            format!("{RUN_NONE}: podman - bare crun"),
            diff(p, k),
            "ms",
            None,
        ),
        c(
            format!("{RUN_BRIDGE}: strata / podman"),
            ratio(med(RUN_BRIDGE, "strata"), med(RUN_BRIDGE, "podman")),
            "x",
            None,
        ),
        c(
            "strata: bridge - network none".into(),
            diff(med(RUN_BRIDGE, "strata"), s),
            "ms",
            None,
        ),
        c(
            "podman: bridge - network none".into(),
            diff(med(RUN_BRIDGE, "podman"), p),
            "ms",
            None,
        ),
        c(
            format!("{CREATE}: strata / podman"),
            ratio(med(CREATE, "strata"), med(CREATE, "podman")),
            "x",
            Some(0.2),
        ),
        c(
            format!("ps -a, {n} created: strata / podman"),
            ratio(med(PS_ALL, "strata"), med(PS_ALL, "podman")),
            "x",
            None,
        ),
        c(
            "ps -a: strata's cost per created container".into(),
            per(med(PS_ALL, "strata"), med(PS_EMPTY, "strata")),
            "ms",
            None,
        ),
        c(
            "ps -a: podman's cost per created container".into(),
            per(med(PS_ALL, "podman"), med(PS_EMPTY, "podman")),
            "ms",
            None,
        ),
    ]
    .into_iter()
    .chain(
        [
            c(
                format!("{RUN_NONE}: strata - strata, seccomp=unconfined"),
                diff(s, med(RUN_NONE, UNCONFINED)),
                "ms",
                None,
            ),
            c(
                format!("{RUN_NONE}: strata, seccomp=unconfined / strata (before)"),
                ratio(med(RUN_NONE, UNCONFINED), med(RUN_NONE, BEFORE)),
                "x",
                None,
            ),
        ]
        .into_iter()
        .filter(|c| c.value.is_some()),
    )
    .chain(
        [RUN_NONE, RUN_BRIDGE, CREATE, PS_EMPTY, PS_ALL, PS_RUNNING]
            .into_iter()
            .filter(|g| med(g, BEFORE).is_some())
            .map(|g| {
                c(
                    format!("{g}: strata / strata (before)"),
                    ratio(med(g, "strata"), med(g, BEFORE)),
                    "x",
                    None,
                )
            }),
    )
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_follows_every_other_in_some_round() {
        let mut order: Vec<usize> = (0..5).collect();
        let mut rng = Shuffler::new(RUN_NONE);
        let mut follows = std::collections::BTreeSet::new();
        for _ in 0..53 {
            rng.shuffle(&mut order);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4], "a permutation");
            follows.extend(order.windows(2).map(|w| (w[0], w[1])));
        }
        assert_eq!(follows.len(), 5 * 4, "pairs seen: {follows:?}");
        let again = {
            let mut o: Vec<usize> = (0..5).collect();
            Shuffler::new(RUN_NONE).shuffle(&mut o);
            o
        };
        let mut first: Vec<usize> = (0..5).collect();
        Shuffler::new(RUN_NONE).shuffle(&mut first);
        assert_eq!(again, first, "the same seed gives the same rounds");
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_and_p90_are_nearest_rank() {
        let m = latency("g", "t", ms(&[10, 1, 9, 2, 8, 3, 7, 4, 6, 5]));
        assert_eq!(m.median_ms, 6.0);
        assert_eq!(m.p90_ms, Some(9.0));
        let one = latency("g", "t", ms(&[4]));
        assert_eq!((one.median_ms, one.p90_ms), (4.0, Some(4.0)));
    }

    #[test]
    fn targets_are_checked_against_medians() {
        let m = |group: &'static str, tool: &str, median: f64| Measurement {
            median_ms: median,
            ..latency(group, tool, ms(&[1]))
        };
        let out = [
            m(RUN_NONE, "strata", 90.0),
            m(RUN_NONE, "podman", 300.0),
            m(RUN_NONE, BARE_CRUN, 15.0),
            m(CREATE, "strata", 30.0),
            m(CREATE, "podman", 100.0),
        ];
        let cmp = compare(&out, 100);
        let get = |prefix: &str| {
            cmp.iter()
                .find(|c| c.what.starts_with(prefix))
                .map(|c| (c.value, c.met))
        };
        assert_eq!(
            get("run --rm, network none: strata / podman"),
            Some((Some(0.3), Some(true)))
        );
        assert_eq!(
            get("run --rm, network none: strata - bare crun"),
            Some((Some(75.0), Some(false)))
        );
        assert_eq!(
            get("create: strata / podman"),
            Some((Some(0.3), Some(false)))
        );
        // No bridge numbers: no value, and no verdict.
        assert_eq!(get("run --rm, default bridge"), Some((None, None)));
    }
}
