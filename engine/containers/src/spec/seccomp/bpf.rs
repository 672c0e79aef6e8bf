//! A container's seccomp filter compiled to BPF once and kept, instead of at every start.
//!
//! An OCI runtime turns the spec's `linux.seccomp` into a BPF program with libseccomp each time
//! it creates a container: for podman's profile, some 400 rules over three architectures,
//! about 20 ms of crun's time per start on this project's machines (more than the rest of
//! `crun run`). The engine compiles the same rules with the same library, in the same order
//! and with the same calls as crun (`seccomp_init` with the default action, one
//! `seccomp_arch_add` per architecture, one rule per syscall name, rules whose action is the
//! default skipped, arguments compared as crun does), so the program is byte for byte the one
//! crun would build (a test compares them), and keeps it under the runroot keyed by the
//! filter, the libseccomp version and the kernel:
//!
//! ```text
//! <runroot>/seccomp/            format 1
//! └── <sha256 hex>.bpf          raw BPF (struct sock_filter[]); written aside and renamed in
//! ```
//!
//! crun takes a ready program through its `run.oci.seccomp_bpf_data` annotation (base64; the
//! spec's `linux.seccomp` is then ignored), so only the first start of a profile pays. runc has
//! no such door and compiles from the spec as before. A filter this module cannot compile
//! (a notify action, flags, an unknown architecture) is left to the runtime.
//!
//! What it deliberately does not do: load filters (the runtime does, in the container), or
//! keep more than a bounded number of programs (the directory is emptied past
//! [`MAX_ENTRIES`]; the runroot is volatile anyway).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;
use strata_types::Digest;

use crate::error::{Context, Error, Result};

/// The annotation crun reads a ready BPF program from (base64).
pub const CRUN_BPF_ANNOTATION: &str = "run.oci.seccomp_bpf_data";

/// Programs kept at most before the cache directory is emptied.
pub const MAX_ENTRIES: usize = 64;

/// The BPF program of `filter`, from the cache in `dir` or compiled (and kept there).
pub fn cached(dir: &Path, filter: &LinuxSeccomp) -> Result<Vec<u8>> {
    let spec = serde_json::to_value(filter)?;
    let version = ScmpVersion::current().map_err(|e| Error::unsupported(e.to_string()))?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let key = Digest::of(
        format!(
            "strata-seccomp-bpf 1\n{}.{}.{}\n{}\n{}",
            version.major,
            version.minor,
            version.micro,
            kernel.trim(),
            spec
        )
        .as_bytes(),
    );
    let path = dir.join(format!("{}.bpf", key.hex()));
    match std::fs::read(&path) {
        Ok(bpf) if !bpf.is_empty() && bpf.len() % 8 == 0 => return Ok(bpf),
        Ok(_) => {
            tracing::warn!(file = %path.display(), "ignoring a damaged cached seccomp program")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    }
    let bpf = compile(&spec)?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    evict(dir);
    let tmp = dir.join(format!(".{}.{}.tmp", key.hex(), std::process::id()));
    std::fs::write(&tmp, &bpf).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("rename {}", path.display()))?;
    Ok(bpf)
}

/// Empties the cache directory when it holds more than [`MAX_ENTRIES`] programs.
fn evict(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    if files.len() > MAX_ENTRIES {
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn action(name: &str, errno: Option<u64>) -> Result<ScmpAction> {
    // crun's default errno for ERRNO and TRACE rules without one is EPERM (1).
    let errno = errno.unwrap_or(1);
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno as i32),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno as u16),
        "SCMP_ACT_LOG" => ScmpAction::Log,
        other => {
            return Err(Error::unsupported(format!(
                "seccomp action {other} is left to the runtime"
            )))
        }
    })
}

fn compare(op: &str, value: u64, value_two: u64, index: u32) -> Result<ScmpArgCompare> {
    let (op, datum) = match op {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, value),
        // crun passes value as datum_a (the mask) and valueTwo as datum_b.
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(value), value_two),
        other => return Err(Error::invalid(format!("unknown seccomp operator {other}"))),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// Compiles a spec's `linux.seccomp` (as JSON) the way crun does; returns the raw program.
pub fn compile(spec: &Value) -> Result<Vec<u8>> {
    let scmp = |e: libseccomp::error::SeccompError| Error::msg(format!("libseccomp: {e}"));
    if spec
        .get("flags")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
        || spec.get("listenerPath").is_some()
    {
        return Err(Error::unsupported(
            "seccomp flags and listeners are left to the runtime",
        ));
    }
    let default = action(
        spec["defaultAction"].as_str().unwrap_or_default(),
        spec["defaultErrnoRet"].as_u64(),
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(scmp)?;
    for arch in spec["architectures"].as_array().into_iter().flatten() {
        let name = arch.as_str().unwrap_or_default();
        let arch = ScmpArch::from_str(name).map_err(scmp)?;
        ctx.add_arch(arch).map_err(scmp)?;
    }
    for rule in spec["syscalls"].as_array().into_iter().flatten() {
        let act = action(
            rule["action"].as_str().unwrap_or_default(),
            rule["errnoRet"].as_u64(),
        )?;
        if act == default {
            continue;
        }
        let mut cmps = Vec::new();
        let mut seen = [0u32; 6];
        let mut repeated = false;
        for a in rule["args"].as_array().into_iter().flatten().take(6) {
            let index = a["index"].as_u64().unwrap_or(u64::MAX);
            if index >= 6 {
                return Err(Error::invalid(format!("seccomp argument index {index}")));
            }
            seen[index as usize] += 1;
            repeated |= seen[index as usize] > 1;
            cmps.push(compare(
                a["op"].as_str().unwrap_or_default(),
                a["value"].as_u64().unwrap_or(0),
                a["valueTwo"].as_u64().unwrap_or(0),
                index as u32,
            )?);
        }
        for name in rule["names"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                // As crun: a name this libseccomp does not know is ignored.
                tracing::debug!(syscall = name, "unknown seccomp syscall ignored");
                continue;
            };
            if cmps.is_empty() {
                ctx.add_rule(act, syscall).map_err(scmp)?;
            } else if !repeated {
                ctx.add_rule_conditional(act, syscall, &cmps)
                    .map_err(scmp)?;
            } else {
                // One comparison per rule when an argument repeats (crun's way).
                for c in &cmps {
                    ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))
                        .map_err(scmp)?;
                }
            }
        }
    }
    let mut out = tempfile::tempfile().context("a file for the seccomp program")?;
    ctx.export_bpf(&out).map_err(scmp)?;
    out.seek(SeekFrom::Start(0))
        .context("read the seccomp program")?;
    let mut bpf = Vec::new();
    out.read_to_end(&mut bpf)
        .context("read the seccomp program")?;
    Ok(bpf)
}
