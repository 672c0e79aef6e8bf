#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// Where Debian's podman (containers-common) keeps its default profile.
const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

fn caps(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|c| format!("CAP_{c}")).collect()
}

fn podman_default_caps() -> BTreeSet<String> {
    caps(crate::spec::DEFAULT_CAPS)
}

fn amd64() -> Host {
    Host {
        arch: "amd64".into(),
        scmp_arch: "SCMP_ARCH_X86_64".into(),
        kernel: (6, 1, 0),
    }
}

/// Per syscall, the set of (action, errno, args) rules that name it: what decides a call's
/// fate, whatever the order and grouping of the rules.
type Effect = (
    String,
    Option<u32>,
    BTreeMap<String, BTreeSet<String>>,
    Vec<String>,
);

fn effect(f: &LinuxSeccomp) -> Effect {
    let v = serde_json::to_value(f).unwrap();
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in v["syscalls"].as_array().unwrap() {
        let rule = format!(
            "{} errno={} args={}",
            s["action"],
            s.get("errnoRet").cloned().unwrap_or(Value::Null),
            s.get("args").cloned().unwrap_or(json!([]))
        );
        for n in s["names"].as_array().unwrap() {
            by_name
                .entry(n.as_str().unwrap().to_owned())
                .or_default()
                .insert(rule.clone());
        }
    }
    let arches = v["architectures"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (
        v["defaultAction"].as_str().unwrap().to_owned(),
        v.get("defaultErrnoRet")
            .and_then(Value::as_u64)
            .map(|e| e as u32),
        by_name,
        arches,
    )
}

fn allowed(f: &LinuxSeccomp, name: &str) -> Option<String> {
    let (_, _, by_name, _) = effect(f);
    by_name
        .get(name)
        .map(|r| r.iter().cloned().collect::<Vec<_>>().join("; "))
}

#[test]
fn the_default_profile_blocks_what_podman_blocks_and_allows_the_rest() {
    let f = SeccompPolicy::Default
        .filter(&podman_default_caps(), &amd64())
        .unwrap()
        .unwrap();
    let (default, errno, _, arches) = effect(&f);
    assert_eq!(default, "SCMP_ACT_ERRNO");
    assert_eq!(errno, Some(38), "unknown calls fail with ENOSYS");
    assert_eq!(
        arches,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    assert!(allowed(&f, "read").unwrap().contains("SCMP_ACT_ALLOW"));
    assert!(allowed(&f, "arch_prctl").is_some(), "an amd64-only call");
    assert!(allowed(&f, "s390_runtime_instr").is_none());
    assert!(allowed(&f, "add_key").is_none(), "absent: ENOSYS");
    assert!(allowed(&f, "kexec_load").unwrap().contains("errno=1"));
    assert!(allowed(&f, "bpf").unwrap().contains("errno=1"));
    assert!(
        allowed(&f, "chroot").unwrap().contains("ALLOW"),
        "the default set has SYS_CHROOT"
    );
    let admin = SeccompPolicy::Default
        .filter(&caps(&["SYS_ADMIN"]), &amd64())
        .unwrap()
        .unwrap();
    assert!(allowed(&admin, "bpf").unwrap().contains("ALLOW"));
    assert!(allowed(&admin, "chroot").unwrap().contains("errno=1"));
    assert_eq!(
        SeccompPolicy::Unconfined
            .filter(&podman_default_caps(), &amd64())
            .unwrap(),
        None
    );
}

#[test]
fn the_default_profile_is_equal_in_effect_to_podmans() {
    let text = std::fs::read(PODMAN_PROFILE).unwrap_or_else(|e| {
        panic!(
            "{PODMAN_PROFILE}: {e}; this test compares with podman's default profile: install \
             podman (golang-github-containers-common), as `cargo xtask setup` does"
        )
    });
    let podman = SeccompPolicy::Profile(serde_json::from_slice(&text).unwrap());
    let all: Vec<&str> = crate::spec::ALL_CAPS.to_vec();
    let sets = [
        podman_default_caps(),
        BTreeSet::new(),
        caps(&all),
        caps(&["SYS_ADMIN", "SYS_PTRACE"]),
        caps(&["AUDIT_WRITE", "DAC_READ_SEARCH", "SYS_TIME"]),
    ];
    for arch in ["amd64", "arm64", "s390x"] {
        let host = Host {
            arch: arch.into(),
            scmp_arch: match arch {
                "amd64" => "SCMP_ARCH_X86_64",
                "arm64" => "SCMP_ARCH_AARCH64",
                _ => "SCMP_ARCH_S390X",
            }
            .into(),
            kernel: (6, 1, 0),
        };
        for set in &sets {
            let ours = SeccompPolicy::Default.filter(set, &host).unwrap().unwrap();
            let theirs = podman.filter(set, &host).unwrap().unwrap();
            let (a, b) = (effect(&ours), effect(&theirs));
            assert_eq!(a.0, b.0, "default action ({arch}, {set:?})");
            assert_eq!(a.1, b.1, "default errno ({arch}, {set:?})");
            assert_eq!(a.3, b.3, "architectures ({arch}, {set:?})");
            let names: BTreeSet<&String> = a.2.keys().chain(b.2.keys()).collect();
            for n in names {
                assert_eq!(
                    a.2.get(n),
                    b.2.get(n),
                    "syscall {n} differs from podman's ({arch}, caps {set:?})"
                );
            }
        }
    }
}

#[test]
fn conditions_follow_caps_arches_and_kernel() {
    let p = Profile::from_value(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            { "names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": { "caps": ["CAP_X", "CAP_Y"] } },
            { "names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": { "caps": ["CAP_X"] } },
            { "names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["arm64"] } },
            { "names": ["d"], "action": "SCMP_ACT_ALLOW", "excludes": { "arches": ["amd64"] } },
            { "names": ["e"], "action": "SCMP_ACT_ALLOW", "includes": { "minKernel": "6.2" } },
            { "names": ["g"], "action": "SCMP_ACT_ALLOW", "excludes": { "minKernel": "6.2" } },
            { "name": "f", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
              "args": [{ "index": 1, "value": 2, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 3 }] },
        ],
        "comment": "unknown fields are ignored",
    }))
    .unwrap();
    let names = |caps: &BTreeSet<String>, host: &Host| -> Vec<String> {
        let v = serde_json::to_value(resolve(&p, caps, host).unwrap()).unwrap();
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    let host = amd64();
    assert_eq!(names(&caps(&["X"]), &host), ["g", "f"]);
    assert_eq!(names(&caps(&["X", "Y"]), &host), ["a", "g", "f"]);
    assert_eq!(names(&BTreeSet::new(), &host), ["b", "g", "f"]);
    let newer = Host {
        kernel: (6, 18, 0),
        ..amd64()
    };
    assert_eq!(names(&BTreeSet::new(), &newer), ["b", "e", "f"]);
    let v = serde_json::to_value(resolve(&p, &BTreeSet::new(), &host).unwrap()).unwrap();
    assert_eq!(
        v["syscalls"][2],
        json!({ "names": ["f"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [{ "index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ" }] })
    );
}

#[test]
fn profiles_crun_and_runc_would_refuse_are_refused_at_create() {
    for (bad, why) in [
        (
            json!({ "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1 }),
            "errno to action SCMP_ACT_ALLOW",
        ),
        (
            json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                { "names": ["x"], "action": "SCMP_ACT_KILL", "errnoRet": 1 } ] }),
            "errno to action SCMP_ACT_KILL",
        ),
        (
            json!({ "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                    "archMap": [{ "architecture": "SCMP_ARCH_X86_64" }] }),
            "both architectures and archMap",
        ),
    ] {
        let e = SeccompPolicy::Profile(bad)
            .filter(&BTreeSet::new(), &amd64())
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn broken_profiles_are_refused_with_the_reason() {
    let bad_action = SeccompPolicy::Profile(json!({
        "defaultAction": "SCMP_ACT_MAYBE", "syscalls": []
    }));
    let e = bad_action
        .filter(&BTreeSet::new(), &amd64())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown action"), "{e}");
    let not_a_profile = SeccompPolicy::Profile(json!({ "syscalls": 3 }));
    let e = not_a_profile
        .filter(&BTreeSet::new(), &amd64())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a seccomp profile"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    std::fs::write(&file, "{ nope").unwrap();
    let e = SeccompPolicy::from_option(file.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a JSON seccomp profile"), "{e}");
    let e = SeccompPolicy::from_option("/no/such/profile.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read it"), "{e}");
    assert_eq!(
        SeccompPolicy::from_option("unconfined").unwrap(),
        SeccompPolicy::Unconfined
    );
}

#[test]
fn kernel_versions_are_read_from_uname_releases() {
    assert_eq!(kernel_version("6.1.0-13-amd64"), Some((6, 1, 0)));
    assert_eq!(kernel_version("6.18"), Some((6, 18, 0)));
    assert_eq!(kernel_version("5.10.123"), Some((5, 10, 123)));
    assert_eq!(kernel_version("x"), None);
}
