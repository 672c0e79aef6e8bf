//! Running the external programs the driver needs: `losetup` (loop devices for its own pool)
//! and `mkfs.ext4`/`mkfs.xfs` (once, for the base device). A failure carries the command line
//! and the program's own message.
//!
//! What it does not do: retry, or parse more than the output its callers ask for.

use std::process::Command;

use crate::error::{Error, Result};

/// Runs `program args...` and returns its standard output.
pub fn run(program: &'static str, args: &[&str]) -> Result<String> {
    let fail = |detail: String| Error::Command {
        program,
        args: args.join(" "),
        detail,
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| fail(format!("cannot run it ({e}); is it installed?")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{}: {}", out.status, stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_failures_are_reported_with_the_command() {
        assert_eq!(run("echo", &["hi"]).unwrap(), "hi\n");
        let e = run("ls", &["/nonexistent-strata-path"]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("ls /nonexistent-strata-path: exit status: 2"),
            "{msg}"
        );
        assert!(msg.contains("No such file"), "{msg}");
        let e = run("strata-no-such-program", &[]).unwrap_err();
        assert!(e.to_string().contains("is it installed?"), "{e}");
    }
}
