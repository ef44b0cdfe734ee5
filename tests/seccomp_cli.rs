//! `seccomp generate | check | explain` through the binary: output formats, exit statuses and
//! error wording (cli.md, seccomp.md). No engine is involved in these commands; one test
//! proves it with a counting socket.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn run(args: &[&str]) -> std::process::Output {
    bin()
        .args(args)
        .output()
        .expect("run the clw-fortress binary")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_string()
}

#[test]
fn generate_prints_the_default_policy_as_pretty_json_that_check_accepts() {
    let out = run(&["seccomp", "generate"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\""),
        "{text:.200}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["defaultErrnoRet"], 1);

    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "default.json", &text);
    let out = run(&["seccomp", "check", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains("ok: ") && stdout(&out).contains("0 warning(s)"));
}

#[test]
fn generate_out_writes_a_world_readable_file_equal_to_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strict.json");
    let f = file.to_str().unwrap();
    let args = [
        "seccomp", "generate", "--policy", "strict", "--allow", "flock",
    ];
    let out = run(&[&args[..], &["--out", f]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("wrote {f}: policy strict")),
        "{}",
        stdout(&out)
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let printed = run(&args);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout(&printed));
}

#[test]
fn generate_takes_repeated_and_comma_separated_overrides() {
    let out = run(&[
        "seccomp",
        "generate",
        "--allow",
        "ptrace,kcmp",
        "--allow",
        "chroot",
        "--deny",
        "flock",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = v["syscalls"].as_array().unwrap();
    let allow = rules
        .iter()
        .find(|r| r["comment"] == "allowed by manifest override")
        .expect("the allow override rule");
    assert_eq!(
        allow["names"],
        serde_json::json!(["ptrace", "kcmp", "chroot"])
    );
    let deny = rules
        .iter()
        .find(|r| r["comment"] == "denied by manifest override")
        .expect("the deny override rule");
    assert_eq!(deny["names"], serde_json::json!(["flock"]));
}

#[test]
fn generate_rejects_an_unknown_name_and_a_start_critical_denial_with_exit_2() {
    let out = run(&["seccomp", "generate", "--deny", "exceve"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("error[clw-seccomp-invalid]"), "{err}");
    assert!(err.contains("did you mean `execve`"), "{err}");

    let out = run(&["seccomp", "generate", "--deny", "execve"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("the profile denies `execve`"), "{err}");
    assert!(stdout(&out).is_empty(), "nothing is printed on failure");
}

#[test]
fn check_names_the_file_the_syscall_and_why() {
    let dir = tempfile::tempdir().unwrap();
    // A profile that allows a handful of calls but not `futex`.
    let file = write(
        dir.path(),
        "tiny.json",
        r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write", "execve"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let out = run(&["seccomp", "check", &file]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error[clw-seccomp-invalid]: "), "{err}");
    assert!(err.contains(&file), "{err}");
    assert!(
        err.contains("`futex`") || err.contains("`exit_group`"),
        "{err}"
    );

    let typo = write(
        dir.path(),
        "typo.json",
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["ptrase"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let out = run(&["seccomp", "check", &typo]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&typo) && err.contains("did you mean `ptrace`"),
        "{err}"
    );

    // Several problems: a short headline, then one per line, each said once.
    let two = write(
        dir.path(),
        "two.json",
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["ptrase", "execve"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let out = run(&["seccomp", "check", &two]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error[clw-seccomp-invalid]: seccomp profile {two}: 2 problems\n"
        )),
        "{err}"
    );
    assert!(
        err.contains("\n  unknown syscall `ptrase`, did you mean `ptrace`?\n"),
        "{err}"
    );
    assert!(err.contains("\n  the profile denies `execve`: "), "{err}");
    assert_eq!(err.matches("ptrase").count(), 1, "{err}");

    let kill = write(
        dir.path(),
        "kill.json",
        r#"{"defaultAction": "SCMP_ACT_KILL_EVERYTHING"}"#,
    );
    let out = run(&["seccomp", "check", &kill]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("does not parse"), "{}", stderr(&out));

    let out = run(&["seccomp", "check", "/nonexistent/profile.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("/nonexistent/profile.json"));
}

#[test]
fn check_prints_warnings_and_exits_0_also_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut p: serde_json::Value =
        serde_json::from_slice(&run(&["seccomp", "generate"]).stdout).unwrap();
    // A rule whose action equals the default action: harmless, so a warning.
    p["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"names": ["acct"], "action": "SCMP_ACT_ERRNO"}));
    let file = write(dir.path(), "warn.json", &p.to_string());
    let out = run(&["seccomp", "check", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains("warning: "), "{}", stdout(&out));

    let out = run(&["-o", "json", "seccomp", "check", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(!v["warnings"].as_array().unwrap().is_empty(), "{v}");

    let bad = write(dir.path(), "bad.json", "{");
    let out = run(&["-o", "json", "seccomp", "check", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "clw-seccomp-invalid");
}

#[test]
fn explain_accepts_a_file_or_a_policy_and_says_the_same_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "default.json",
        &stdout(&run(&["seccomp", "generate"])),
    );
    let by_file = run(&["seccomp", "explain", &file]);
    let by_policy = run(&["seccomp", "explain", "--policy", "default"]);
    assert!(by_file.status.success() && by_policy.status.success());
    let (f, p) = (stdout(&by_file), stdout(&by_policy));
    assert!(f.starts_with(&format!("{file}\n")), "{f:.200}");
    assert!(p.starts_with("policy default\n"), "{p:.200}");
    // Same summary after the origin line.
    assert_eq!(f.split_once('\n').unwrap().1, p.split_once('\n').unwrap().1);
    assert!(
        p.contains("denied explicitly:") && p.contains("io_uring_setup"),
        "{p}"
    );

    let neither = run(&["seccomp", "explain"]);
    assert_eq!(neither.status.code(), Some(2));
    let both = run(&["seccomp", "explain", &file, "--policy", "strict"]);
    assert_eq!(both.status.code(), Some(2));
}

fn denied(policy: &str) -> BTreeSet<String> {
    let out = run(&["-o", "json", "seccomp", "explain", "--policy", policy]);
    assert!(out.status.success(), "{}", describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(v["deniedX86_64"].clone()).unwrap()
}

#[test]
fn strict_denies_strictly_more_than_default_which_denies_strictly_more_than_permissive() {
    let (p, d, s) = (denied("permissive"), denied("default"), denied("strict"));
    assert!(
        p.is_subset(&d) && p.len() < d.len(),
        "{:?}",
        p.difference(&d)
    );
    assert!(
        d.is_subset(&s) && d.len() < s.len(),
        "{:?}",
        d.difference(&s)
    );
    for name in ["ptrace", "io_uring_setup", "name_to_handle_at"] {
        assert!(d.contains(name) && !p.contains(name), "{name}");
    }
    for name in ["mknodat", "setuid", "setresuid"] {
        assert!(s.contains(name) && !d.contains(name), "{name}");
    }
}

#[test]
fn the_seccomp_commands_never_contact_an_engine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = CountingSocket::new(dir.path());
    let file = dir.path().join("p.json");
    let f = file.to_str().unwrap();
    for args in [
        vec!["seccomp", "generate", "--out", f],
        vec!["seccomp", "check", f],
        vec!["seccomp", "explain", f],
    ] {
        let out = bin()
            .args(["--engine", &engine.url])
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
    }
    assert_eq!(engine.connections(), 0);
}

#[test]
fn an_unwritable_out_path_is_a_permission_problem_not_an_invalid_profile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing-dir/profile.json");
    let run = bin()
        .args(["seccomp", "generate", "--policy", "default", "--out"])
        .arg(&out)
        .output()
        .expect("run the binary");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.starts_with("error[clw-permission-denied]: cannot write seccomp profile"),
        "{err}"
    );
    assert_eq!(run.status.code(), Some(3), "{err}");
    assert!(!out.exists());
}
