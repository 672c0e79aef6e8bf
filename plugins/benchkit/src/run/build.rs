//! The `build` workload: `strata build` beside `buildah bud` and `podman build`, from the
//! run's image in each tool's store on the same driver, every RUN step with the host's
//! network (buildah's fastest isolation, `chroot`, allows no other). All three keep an
//! image per step (`--layers`), so the cached cases measure each tool's cache:
//!
//! - `build-cold`: a five-step Containerfile with `--no-cache` (the base image present);
//! - `build-cached`: fully cached rebuilds of it and of a file of the profile's
//!   `build_steps` steps (param `steps`), so the cost per cached step is the difference;
//! - `build-context`: `COPY . /ctx/` of a context of the profile's size and file count
//!   (param `cache`: `cold` with `--no-cache`, also as `build-context-rate`, or `cached`,
//!   where what is measured is how fast each tool finds that nothing changed).
//!
//! What a cold sample made (the image and its step images) is removed after it, untimed, so
//! vfs copies do not pile up and every sample finds the store as the first did; cold and
//! cached cases are therefore measured apart (the clean-up removes the cache). Before the
//! cached cases every tool builds their contexts once, untimed, whatever `--warmup` and
//! `--cold` say, so their first sample has its cache.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use super::env::{output, timed, Env, Store};
use super::measure::{measure, Ctx, Side};
use super::workloads::{loaded_stores, remove_all, CS_NAME, NAME};
use super::{Outcome, RunError};

/// The tag every build gives its image.
const BUILT: &str = "bench-built";

/// The five steps of the cold and cached cases (`FROM` is written per tool).
const FIVE: &str = "ENV APP=/app
COPY app.txt /app/app.txt
RUN echo built > /app/built.txt
WORKDIR /app
CMD [\"cat\", \"/app/built.txt\"]
";

/// `n` steps after `FROM`: RUN, ENV and COPY in turn.
fn many_steps(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        match i % 3 {
            0 => s.push_str(&format!("RUN echo {i} > /f{i}\n")),
            1 => s.push_str(&format!("ENV V{i}={i}\n")),
            _ => s.push_str(&format!("COPY app.txt /c/{i}.txt\n")),
        }
    }
    s
}

/// A build context: `Containerfile` for strata (`FROM bench`), `Containerfile.cs` for the
/// containers/storage tools (`FROM localhost/bench:latest`), the same steps in both.
struct Context {
    dir: PathBuf,
}

impl Context {
    fn make(dir: PathBuf, steps: &str) -> Result<Context, RunError> {
        std::fs::create_dir_all(&dir).map_err(RunError::io(dir.display().to_string()))?;
        for (file, from) in [("Containerfile", NAME), ("Containerfile.cs", CS_NAME)] {
            let p = dir.join(file);
            std::fs::write(&p, format!("FROM {from}\n{steps}"))
                .map_err(RunError::io(p.display().to_string()))?;
        }
        let app = dir.join("app.txt");
        std::fs::write(&app, "app\n").map_err(RunError::io(app.display().to_string()))?;
        Ok(Context { dir })
    }

    /// Adds `files` files of pseudo-random bytes (xorshift: incompressible enough, fast to
    /// make, the same on every machine) totalling about `bytes`, in 100-file directories.
    fn fill(&self, bytes: u64, files: usize) -> Result<(), RunError> {
        let per = (bytes / files.max(1) as u64) as usize;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; per];
        for i in 0..files {
            let d = self.dir.join(format!("d{:03}", i / 100));
            let p = d.join(format!("f{i}"));
            let mut write = || -> std::io::Result<()> {
                if i % 100 == 0 {
                    std::fs::create_dir_all(&d)?;
                }
                for chunk in buf.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                }
                std::fs::File::create(&p)?.write_all(&buf)
            };
            write().map_err(RunError::io(format!("write {}", p.display())))?;
        }
        Ok(())
    }
}

/// The build command of `tool` on `s` for `ctx`.
fn command(tool: &str, s: &Store, ctx: &Context, no_cache: bool) -> Command {
    let (mut c, file) = match tool {
        "strata" => (s.strata(), "Containerfile"),
        "buildah" => {
            let mut c = s.buildah();
            c.args(["bud", "--isolation", "chroot"]);
            (c, "Containerfile.cs")
        }
        _ => {
            let mut c = s.podman();
            c.arg("build");
            (c, "Containerfile.cs")
        }
    };
    if tool == "strata" {
        c.arg("build");
    }
    c.args(["--layers", "-q", "--network", "host", "-t", BUILT, "-f"])
        .arg(ctx.dir.join(file));
    if no_cache {
        c.arg("--no-cache");
    }
    c.arg(&ctx.dir);
    c
}

/// Removes what a build made: its image, then the step images nothing names any more.
fn clean(tool: &str, s: &Store) -> Result<(), RunError> {
    match tool {
        "strata" => {
            output(s.strata().args(["rmi", BUILT]))?;
            output(s.strata().args(["system", "prune", "-f"])).map(drop)
        }
        "buildah" => {
            output(s.buildah().args(["rmi", BUILT]))?;
            output(s.buildah().args(["rmi", "--prune"])).map(drop)
        }
        _ => {
            output(s.podman().args(["rmi", BUILT]))?;
            output(s.podman().args(["image", "prune", "-f"])).map(drop)
        }
    }
}

/// A side building `ctx` with `tool` on `s`: cold (`--no-cache`, cleaned up after) or
/// cached (its cache made by [`prime`] first).
fn side<'a>(
    workload: &str,
    tool: &'a str,
    driver: &'a str,
    s: &'a Store,
    ctx: &'a Context,
    cold: bool,
) -> Side<'a> {
    Side::new(workload, tool, Some(driver), move || {
        let secs = timed(&mut command(tool, s, ctx, cold))?;
        if cold {
            clean(tool, s)?;
        }
        Ok(secs)
    })
}

/// Builds `contexts` once with every tool, untimed, before the cached cases are measured
/// (whatever `--warmup` and `--cold` say, their first sample then finds its cache). A tool
/// that cannot is left out and said so.
fn prime<'a>(
    stores: &'a [(&'a str, String, Store)],
    contexts: &[&Context],
    what: &str,
    out: &mut Outcome,
) -> Vec<&'a (&'a str, String, Store)> {
    stores
        .iter()
        .filter(|(t, d, s)| {
            let r = contexts
                .iter()
                .try_for_each(|c| output(&mut command(t, s, c, false)).map(drop));
            match r {
                Ok(()) => true,
                Err(e) => {
                    out.skip(format!("{what} [{t} on {d}]"), format!("setup failed: {e}"));
                    false
                }
            }
        })
        .collect()
}

pub(super) fn build(env: &Env, ctx: &Ctx<'_>, out: &mut Outcome) -> Result<(), RunError> {
    if !env.image.runnable {
        // Said once, at setup: RUN steps need the image's /bin/sh.
        return Ok(());
    }
    let dir = env.work().join("build");
    let contexts = (|| -> Result<[Context; 3], RunError> {
        let five = Context::make(dir.join("five"), FIVE)?;
        let many = Context::make(dir.join("many"), &many_steps(env.profile.build_steps))?;
        let big = Context::make(dir.join("context"), "COPY . /ctx/\n")?;
        big.fill(env.profile.build_context, env.profile.build_files)?;
        Ok([five, many, big])
    })();
    let [five, many, big] = match contexts {
        Ok(c) => c,
        Err(e) => {
            out.skip(
                "workload build",
                format!("making the build contexts failed: {e}"),
            );
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
    };
    let steps = env.profile.build_steps;
    let stores = loaded_stores(env, out, "build", &["buildah", "podman"], &env.image.source);
    let cold = || env.drop_caches();
    let r = (|| -> Result<(), RunError> {
        let sides = stores
            .iter()
            .map(|(t, d, s)| side("build-cold", t, d, s, &five, true).param("steps", 5))
            .collect();
        measure(ctx, &cold, "build: 5 steps, --no-cache", sides, out)?;
        let mut sides = Vec::new();
        for (t, d, s) in prime(&stores, &[&five, &many], "build-cached", out) {
            sides.push(side("build-cached", t, d, s, &five, false).param("steps", 5));
            sides.push(side("build-cached", t, d, s, &many, false).param("steps", steps));
        }
        measure(ctx, &cold, "build: fully cached", sides, out)?;
        // Cold, then cached, apart: a cold sample's clean-up removes the cache.
        let files = env.profile.build_files;
        let sides = stores
            .iter()
            .map(|(t, d, s)| {
                side("build-context", t, d, s, &big, true)
                    .param("cache", "cold")
                    .param("files", files)
                    .rate("build-context-rate", env.profile.build_context)
            })
            .collect();
        measure(ctx, &cold, "build: COPY of a context, cold", sides, out)?;
        let sides = prime(&stores, &[&big], "build-context", out)
            .into_iter()
            .map(|(t, d, s)| {
                side("build-context", t, d, s, &big, false)
                    .param("cache", "cached")
                    .param("files", files)
            })
            .collect();
        measure(ctx, &cold, "build: COPY of a context, cached", sides, out)
    })();
    remove_all(stores);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn entries(d: &Path) -> usize {
        std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0)
    }

    #[test]
    fn contexts_hold_both_containerfiles_and_the_files_asked_for() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let steps = many_steps(50);
        assert_eq!(
            [
                steps.matches("RUN ").count(),
                steps.matches("ENV ").count(),
                steps.matches("COPY ").count()
            ],
            [17, 17, 16]
        );
        let c = Context::make(t.path().join("c"), &steps).unwrap_or_else(|e| panic!("{e}"));
        let strata = std::fs::read_to_string(t.path().join("c/Containerfile")).unwrap_or_default();
        let cs = std::fs::read_to_string(t.path().join("c/Containerfile.cs")).unwrap_or_default();
        assert!(strata.starts_with("FROM bench\n"), "{strata}");
        assert!(cs.starts_with("FROM localhost/bench:latest\n"), "{cs}");
        assert_eq!(strata.lines().count(), 51);
        assert!(strata.lines().skip(1).eq(cs.lines().skip(1)));
        c.fill(250 * 1000, 250).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries(&t.path().join("c/d002")), 50);
        let a = std::fs::read(t.path().join("c/d000/f0")).unwrap_or_default();
        let b = std::fs::read(t.path().join("c/d000/f1")).unwrap_or_default();
        assert_eq!((a.len(), b.len()), (1000, 1000));
        assert_ne!(a, b, "every file has bytes of its own");
        // The same bytes on every run (and machine).
        let again = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c2 = Context::make(again.path().join("c"), "").unwrap_or_else(|e| panic!("{e}"));
        c2.fill(250 * 1000, 250).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(again.path().join("c/d000/f1")).ok(), Some(b));
    }
}
