//! What the guest runs: the init script baked into the initramfs ([`INIT_SCRIPT`], from
//! `init.sh`), and the two per-run files the host writes into the run directory, which init
//! reads over the 9p host root: `run.conf` (timeouts, where the module tree is, read-write
//! shares) and `cmd.sh` (the command, its working directory and its whole environment).
//!
//! Everything crosses as POSIX shell with single-quoted words, so any byte but NUL survives.
//! It does not interpret the command: `cmd.sh` ends in `exec` of exactly the given argv.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The guest's `/init`.
pub const INIT_SCRIPT: &str = include_str!("init.sh");

/// The per-run settings init reads.
#[derive(Debug)]
pub struct RunConf<'a> {
    /// Seconds after which the guest powers itself off (a backstop for the host's timeout).
    pub watchdog_secs: u64,
    /// The full module tree (`lib/modules/<release>`) as a canonical host path.
    pub modules_tree: &'a Path,
    /// Read-write 9p shares: mount tag and canonical host path (mounted at the same path).
    pub shares: &'a [(String, PathBuf)],
}

/// The command: argv, working directory and the complete environment.
#[derive(Debug)]
pub struct CmdScript<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
}

/// Writes `run.conf` and `cmd.sh` into `dir`.
pub fn write_run_files(dir: &Path, conf: &RunConf<'_>, cmd: &CmdScript<'_>) -> Result<()> {
    let conf_path = dir.join("run.conf");
    fs::write(&conf_path, render_conf(conf)?)
        .with_context(|| format!("cannot write {}", conf_path.display()))?;
    let cmd_path = dir.join("cmd.sh");
    fs::write(&cmd_path, render_cmd(cmd)?)
        .with_context(|| format!("cannot write {}", cmd_path.display()))
}

fn render_conf(conf: &RunConf<'_>) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "TIMEOUT={}", conf.watchdog_secs)?;
    writeln!(out, "MODULES_TREE={}", quote(&path_str(conf.modules_tree)?))?;
    let tags: Vec<&str> = conf.shares.iter().map(|(t, _)| t.as_str()).collect();
    writeln!(out, "SHARE_TAGS={}", quote(&tags.join(" ")))?;
    for (tag, path) in conf.shares {
        if !is_name(tag) {
            bail!("share tag {tag:?} is not a shell name");
        }
        writeln!(out, "SHARE_{tag}={}", quote(&path_str(path)?))?;
    }
    Ok(out)
}

fn render_cmd(cmd: &CmdScript<'_>) -> Result<String> {
    if cmd.argv.is_empty() {
        bail!("no command to run in the guest");
    }
    let mut out =
        String::from("# Written by cargo xtask vm: the command, run in the guest's root.\n");
    for (name, value) in cmd.env {
        if !is_name(name) {
            bail!("environment variable name {name:?} is not valid in a shell");
        }
        if value.contains('\0') {
            bail!("environment variable {name} contains a NUL byte");
        }
        writeln!(out, "export {}", quote(&format!("{name}={value}")))?;
    }
    writeln!(out, "cd {} || exit 125", quote(&path_str(cmd.cwd)?))?;
    let argv: Vec<String> = cmd.argv.iter().map(|a| quote(a)).collect();
    writeln!(out, "exec {}", argv.join(" "))?;
    Ok(out)
}

/// `s` as one single-quoted shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether `s` is a portable shell variable name.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path_str(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    if !path.is_absolute() {
        bail!("{s} is not an absolute path");
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quoted_words_survive_the_shell() {
        let tricky = "it's $HOME `x` \"y\" \\ *";
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(tricky)))
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), tricky);
    }

    #[test]
    fn cmd_script_runs_the_argv_with_only_the_given_environment() {
        let dir = std::env::temp_dir();
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            "printf '%s|%s|%s|%s' \"$PWD\" \"$GREETING\" \"${HOME-unset}\" \"$1\"".to_owned(),
            "x".to_owned(),
            "arg with 'quotes'".to_owned(),
        ];
        let env = [
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("GREETING".to_owned(), "a b'c".to_owned()),
        ];
        let script = render_cmd(&CmdScript {
            argv: &argv,
            cwd: &dir,
            env: &env,
        })
        .expect("renders");
        let out = Command::new("env")
            .args(["-i", "sh", "-c", &script])
            .output()
            .expect("sh runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}|a b'c|unset|arg with 'quotes'", dir.display())
        );
    }

    #[test]
    fn bad_names_and_relative_paths_are_refused() {
        let argv = ["true".to_owned()];
        let bad_env = [("A-B".to_owned(), "1".to_owned())];
        let err = render_cmd(&CmdScript {
            argv: &argv,
            cwd: Path::new("/"),
            env: &bad_env,
        })
        .expect_err("A-B is no shell name");
        assert!(err.to_string().contains("A-B"), "{err}");
        let err = render_cmd(&CmdScript {
            argv: &argv,
            cwd: Path::new("relative"),
            env: &[],
        })
        .expect_err("relative cwd");
        assert!(err.to_string().contains("not an absolute path"), "{err}");
    }

    #[test]
    fn run_conf_names_each_share() {
        let shares = [("rw0".to_owned(), PathBuf::from("/work/out dir"))];
        let conf = render_conf(&RunConf {
            watchdog_secs: 930,
            modules_tree: Path::new("/cache/lib/modules/6.1.0-56-amd64"),
            shares: &shares,
        })
        .expect("renders");
        assert_eq!(
            conf,
            "TIMEOUT=930\nMODULES_TREE='/cache/lib/modules/6.1.0-56-amd64'\n\
             SHARE_TAGS='rw0'\nSHARE_rw0='/work/out dir'\n"
        );
    }
}
