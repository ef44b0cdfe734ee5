//! Bad input through the real binary: each manifest rule yields its `error[clw-…]` code with
//! the file and field path, exit status 2, and not a single connection to the engine. The
//! "engine" here is a listening socket that counts connections, so the proof is direct.
//!
//! Hostile input (devices, FIFOs, huge, deeply nested or enormous-list files) is refused with
//! exit status 2 and its code, under a kill timeout and a memory bound that only a hang or an
//! unbounded read would reach.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Case {
    name: &'static str,
    /// Edits the fixture (manifest text, files) into the bad state.
    edit: fn(&Fixture),
    code: &'static str,
    field: &'static str,
}

fn add_sandbox_bind(fx: &Fixture, bind: &str) {
    let text = fx.manifest_text().replace(
        "    bindSets: [test]\n",
        &format!("    bindSets: [test]\n    binds:\n      - {bind}\n"),
    );
    fx.write_manifest(&text);
}

fn set_in_sandbox(fx: &Fixture, line: &str) {
    let text = fx.manifest_text().replace(
        "    bindSets: [test]\n",
        &format!("    bindSets: [test]\n    {line}\n"),
    );
    fx.write_manifest(&text);
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "rule 1: a source with .. is rejected",
            edit: |fx| {
                let p = fx.openclaw_dir().join("workspace/../logs");
                add_sandbox_bind(fx, &format!("{{source: {:?}, target: /x, mode: ro}}", p));
            },
            code: "clw-config-invalid",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 2: a missing source without create is rejected",
            edit: |fx| {
                let p = fx.home().join("nope");
                add_sandbox_bind(fx, &format!("{{source: {:?}, target: /x, mode: ro}}", p));
            },
            code: "clw-config-invalid",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: a hard link to the secrets file inside a bound directory",
            edit: |fx| {
                let d = fx.home().join("shared/deep");
                std::fs::create_dir_all(&d).unwrap();
                std::fs::hard_link(fx.secrets_file(), d.join("notes.txt")).unwrap();
                let src = fx.home().join("shared");
                add_sandbox_bind(fx, &format!("{{source: {:?}, target: /x, mode: ro}}", src));
            },
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: a unix socket inside a bound directory (it could relay the engine)",
            edit: |fx| {
                let d = fx.home().join("shared");
                std::fs::create_dir_all(&d).unwrap();
                drop(std::os::unix::net::UnixListener::bind(d.join("relay")).unwrap());
                add_sandbox_bind(fx, &format!("{{source: {:?}, target: /x, mode: ro}}", d));
            },
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: the generated profiles beside the state database are forbidden",
            edit: |fx| {
                let p = fx.state_path().parent().unwrap().join("profiles");
                std::fs::create_dir_all(&p).unwrap();
                add_sandbox_bind(fx, &format!("{{source: {:?}, target: /x, mode: ro}}", p));
            },
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: /etc is a forbidden source",
            edit: |fx| add_sandbox_bind(fx, "{source: /etc, target: /host-etc, mode: ro}"),
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: a parent bind exposing the denied credentials is forbidden",
            edit: |fx| {
                let p = fx.openclaw_dir();
                add_sandbox_bind(
                    fx,
                    &format!("{{source: {:?}, target: /state, mode: ro}}", p),
                );
            },
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: the engine socket is a forbidden source",
            edit: |fx| {
                add_sandbox_bind(
                    fx,
                    "{source: /var/run/docker.sock, target: /var/run/docker.sock, mode: ro}",
                )
            },
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 3: a symlink to a denied directory is caught on its real path",
            edit: |fx| {
                let link = fx.openclaw_dir().join("workspace/innocent");
                std::os::unix::fs::symlink(fx.openclaw_dir().join("credentials"), &link).unwrap();
                add_sandbox_bind(
                    fx,
                    &format!("{{source: {:?}, target: /innocent, mode: ro}}", link),
                );
            },
            code: "clw-bind-forbidden",
            field: "sandboxes[0].binds[0].source",
        },
        Case {
            name: "rule 4: a target under /proc is rejected",
            edit: |fx| {
                let p = fx.openclaw_dir().join("skills");
                add_sandbox_bind(
                    fx,
                    &format!("{{source: {:?}, target: /proc/x, mode: ro}}", p),
                );
            },
            code: "clw-config-invalid",
            field: "sandboxes[0].binds[0].target",
        },
        Case {
            name: "rule 5: a secrets file readable by others is insecure",
            edit: |fx| {
                std::fs::set_permissions(fx.secrets_file(), std::fs::Permissions::from_mode(0o644))
                    .unwrap()
            },
            code: "clw-secrets-insecure",
            field: "secrets.file",
        },
        Case {
            name: "rule 6: a secretEnv name missing from the secrets file is rejected",
            edit: |fx| {
                let t = fx
                    .manifest_text()
                    .replace("secretEnv: [ANTHROPIC_API_KEY]", "secretEnv: [NOT_THERE]");
                fx.write_manifest(&t);
            },
            code: "clw-config-invalid",
            field: "sandboxes[0].secretEnv",
        },
        Case {
            name: "rule 7: host networking is rejected",
            edit: |fx| set_in_sandbox(fx, "network: host"),
            code: "clw-config-invalid",
            field: "sandboxes[0].network",
        },
        Case {
            name: "rule 8: root is rejected without allowRoot",
            edit: |fx| set_in_sandbox(fx, "user: root"),
            code: "clw-config-invalid",
            field: "sandboxes[0].user",
        },
        Case {
            name: "rule 9: a pids limit below 8 is rejected",
            edit: |fx| set_in_sandbox(fx, "limits: {pids: 2}"),
            code: "clw-config-invalid",
            field: "sandboxes[0].limits.pids",
        },
        Case {
            name: "rule 10: duplicate sandbox names are rejected",
            edit: |fx| {
                let dup = format!("  - name: {}\n    command: [sleep, \"1\"]\n", fx.sandbox());
                let t = format!("{}{dup}", fx.manifest_text());
                fx.write_manifest(&t);
            },
            code: "clw-config-invalid",
            field: "sandboxes[1].name",
        },
        Case {
            name: "unknown fields are rejected",
            edit: |fx| set_in_sandbox(fx, "privileged: true"),
            code: "clw-config-invalid",
            field: "privileged",
        },
    ]
}

#[test]
fn every_rule_exits_2_with_code_and_field_and_never_contacts_the_engine() {
    let mut failures = Vec::new();
    for case in cases() {
        let fx = Fixture::new("bad");
        let engine = CountingSocket::new(fx.dir());
        (case.edit)(&fx);
        for cmd in ["validate", "plan", "apply"] {
            let out = fx.run(&["--engine", &engine.url, cmd]);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            let mut problems = Vec::new();
            if out.status.code() != Some(2) {
                problems.push(format!("exit {:?}", out.status.code()));
            }
            if !err.contains(&format!("error[{}]", case.code))
                && !err.contains(&format!("[{}]", case.code))
            {
                problems.push(format!("no {}", case.code));
            }
            if !err.contains(case.field) {
                problems.push(format!("no field {}", case.field));
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} / {cmd}: {}\n{}",
                    case.name,
                    problems.join(", "),
                    describe(&out)
                ));
            }
        }
        assert_eq!(
            engine.connections(),
            0,
            "{}: the engine was contacted",
            case.name
        );
        assert!(
            !fx.state_path().exists(),
            "{}: the state database was created",
            case.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_problems_are_reported_at_once_with_the_file() {
    let fx = Fixture::new("many");
    set_in_sandbox(&fx, "user: root");
    set_in_sandbox(&fx, "network: host");
    let out = fx.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sandboxes[0].user"), "{err}");
    assert!(err.contains("sandboxes[0].network"), "{err}");
    assert!(err.contains(fx.manifest_path().to_str().unwrap()), "{err}");
}

#[test]
fn json_errors_carry_code_message_causes_and_hint() {
    let fx = Fixture::new("json");
    set_in_sandbox(&fx, "user: root");
    let out = fx.run(&["-o", "json", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error object");
    assert_eq!(v["code"], "clw-config-invalid");
    assert!(v["message"].is_string());
    assert!(v["causes"].is_array());
    assert!(v["hint"].is_string());
}

#[test]
fn a_secret_value_never_appears_in_an_error() {
    let fx = Fixture::new("leak");
    let secret = fx.secret_value("BOT_TOKEN");
    // A plain env value equal to a secret is refused, and the refusal names only the key.
    set_in_sandbox(&fx, &format!("env: {{LEAKED: {secret:?}}}"));
    let t = fx.manifest_text().replace("    env: {LANG: C.UTF-8}\n", "");
    fx.write_manifest(&t);
    std::fs::set_permissions(fx.secrets_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = fx.run(&["validate"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        !all.contains(&secret),
        "the secret leaked into the error: {all}"
    );
}

#[test]
fn explain_serves_a_long_description_for_every_code() {
    for code in [
        "clw-config-invalid",
        "clw-bind-forbidden",
        "clw-secrets-insecure",
        "clw-engine-unreachable",
        "clw-engine-unsupported",
        "clw-sandbox-failure",
        "clw-seccomp-invalid",
        "clw-sandbox-limit-exceeded",
        "clw-isolation-breach",
        "clw-health-failed",
        "clw-quarantined",
        "clw-backup-failed",
        "clw-state-corrupt",
        "clw-permission-denied",
    ] {
        let out = bin().args(["explain", code]).output().unwrap();
        assert!(out.status.success(), "{code}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().count() > 10, "{code} is too short");
        assert!(text.contains("## How to fix"), "{code}");
    }
    let out = bin().args(["explain", "clw-nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn stopping_an_undeclared_sandbox_exits_2_naming_it_and_never_contacts_the_engine() {
    let fx = Fixture::new("stop");
    let engine = CountingSocket::new(fx.dir());
    let out = fx.run(&["--engine", &engine.url, "stop", "no-such-sandbox"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[clw-config-invalid]"), "{err}");
    assert!(err.contains("\"no-such-sandbox\""), "{err}");
    assert!(err.contains(fx.name()), "{err}");
    assert_eq!(engine.connections(), 0, "the engine was contacted");
    assert!(!fx.state_path().exists(), "the state database was created");
}

/// Past this the binary is killed and the case fails: a bound for hangs (a FIFO read waits
/// forever), not a timing assertion.
const KILL_AFTER: Duration = Duration::from_secs(10);

/// The peak resident memory a refusal may take; an unbounded read of `/dev/zero` or of a
/// 1 GiB file crosses it at once.
const MAX_RSS_KIB: u64 = 100 * 1024;

/// One run of the binary, bounded in time, with its peak memory.
struct Bounded {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// The highest `VmHWM` sampled while it ran (0 when it ended before the first sample).
    max_rss_kib: u64,
}

impl Bounded {
    fn describe(&self) -> String {
        format!(
            "status: {:?} after {:.2?}, peak RSS {} KiB\n--- stdout\n{}\n--- stderr\n{}",
            self.status.map(|s| s.into_raw()),
            self.elapsed,
            self.max_rss_kib,
            self.stdout,
            self.stderr
        )
    }
}

/// The peak resident set of a running process, from `/proc/<pid>/status`.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd`, kills it after [`KILL_AFTER`], and samples its peak RSS until it ends. The
/// kernel's own accounting (wait4's `ru_maxrss`) is no use here: it counts the test process's
/// memory, which the spawned child shared until its exec. `VmHWM` belongs to the exec'd image
/// alone, and an unbounded read grows it for as long as it runs, so sampling catches it.
fn run_bounded(mut cmd: Command) -> Bounded {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the clw-fortress binary");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut max_rss_kib = 0;
    let mut killed = false;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            max_rss_kib = max_rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status;
        }
        if start.elapsed() > KILL_AFTER {
            let _ = child.kill();
            killed = true;
            break child.wait().expect("reap the killed binary");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Bounded {
        status: (!killed).then_some(status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed: start.elapsed(),
        max_rss_kib,
    }
}

/// What a refusal must look like: exit 2, the code, and the words naming the cause.
fn expect_refused(case: &str, run: &Bounded, code: &str, words: &[&str]) -> Vec<String> {
    // Figures for the record (`--nocapture`), never asserted beyond the bounds.
    eprintln!(
        "{case}: {:.3} s, peak RSS {} KiB",
        run.elapsed.as_secs_f64(),
        run.max_rss_kib
    );
    let mut problems = Vec::new();
    if run.status.is_none() {
        problems.push(format!("killed after {KILL_AFTER:?}"));
    } else if run.status.and_then(|s| s.code()) != Some(2) {
        problems.push("exit status is not 2".to_string());
    }
    if !run.stderr.contains(&format!("error[{code}]")) {
        problems.push(format!("no error[{code}]"));
    }
    for w in words {
        if !run.stderr.contains(w) {
            problems.push(format!("no {w:?}"));
        }
    }
    if run.max_rss_kib > MAX_RSS_KIB {
        problems.push(format!("peak RSS over {MAX_RSS_KIB} KiB"));
    }
    if problems.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{case}: {}\n{}",
            problems.join(", "),
            run.describe()
        )]
    }
}

fn fifo_in(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("make a FIFO");
    path
}

/// `depth` nested flow sequences under the fortress header: 100,000 of them are 200 KB.
fn deeply_nested(kind: &str, depth: usize) -> String {
    format!(
        "apiVersion: clw-fortress/v1\nkind: {kind}\nmetadata: {{name: deep}}\nbinds: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// A profile allowing `names` (each quoted, comma-separated), as compact JSON.
fn profile_naming(names: impl Iterator<Item = String>) -> String {
    let list: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    format!(
        "{{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{{\"action\":\"SCMP_ACT_ALLOW\",\"names\":[{}]}}]}}",
        list.join(",")
    )
}

#[test]
fn devices_and_fifos_as_manifest_or_profile_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo_in(dir.path(), "fortress.yaml");
    let profile = fifo_in(dir.path(), "profile.json");
    let code = "clw-config-invalid";
    let mut failures = Vec::new();
    let cmd = |args: &[&str]| {
        let mut c = bin();
        c.args(args);
        c
    };
    for (case, args, words) in [
        (
            "/dev/zero as the manifest",
            vec!["-f", "/dev/zero", "validate"],
            vec!["/dev/zero is a character device, not a regular file"],
        ),
        (
            "/dev/zero to seccomp check",
            vec!["seccomp", "check", "/dev/zero"],
            vec!["/dev/zero is a character device"],
        ),
        (
            "/dev/zero to seccomp explain",
            vec!["seccomp", "explain", "/dev/zero"],
            vec!["/dev/zero is a character device"],
        ),
        (
            "a FIFO as the manifest",
            vec!["-f", fifo.to_str().unwrap(), "plan"],
            vec!["is a FIFO, not a regular file"],
        ),
        (
            "a FIFO to seccomp check",
            vec!["seccomp", "check", profile.to_str().unwrap()],
            vec!["is a FIFO"],
        ),
        (
            "a FIFO to seccomp explain",
            vec!["seccomp", "explain", profile.to_str().unwrap()],
            vec!["is a FIFO"],
        ),
    ] {
        let run = run_bounded(cmd(&args));
        failures.extend(expect_refused(case, &run, code, &words));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_fifo_or_deeply_nested_file_named_by_the_manifest_is_refused_at_once() {
    let mut failures = Vec::new();

    // The manifest's own seccomp profile is a FIFO.
    let fx = Fixture::new("fifo-profile");
    let profile = fifo_in(fx.dir(), "profile.json");
    let text = fx.manifest_text().replace(
        "  seccomp:\n    policy: default\n",
        &format!("  seccomp:\n    profile: {profile:?}\n"),
    );
    assert!(text.contains("profile.json"), "the manifest edit applied");
    fx.write_manifest(&text);
    let run = run_bounded(fx.command(&["validate"]));
    failures.extend(expect_refused(
        "a FIFO as seccomp.profile",
        &run,
        "clw-config-invalid",
        &["defaults.seccomp.profile", "is not a regular file"],
    ));

    // The bind set is a FIFO.
    let fx = Fixture::new("fifo-bindset");
    std::fs::remove_file(fx.bind_set_path()).unwrap();
    fifo_in(fx.dir(), "binds/test.yaml");
    let run = run_bounded(fx.command(&["validate"]));
    failures.extend(expect_refused(
        "a FIFO as a bind set",
        &run,
        "clw-config-invalid",
        &["bindSets[0]", "is a FIFO"],
    ));

    // The bind set is nested 100,000 deep.
    let fx = Fixture::new("deep-bindset");
    std::fs::write(fx.bind_set_path(), deeply_nested("BindSet", 100_000)).unwrap();
    let run = run_bounded(fx.command(&["validate"]));
    failures.extend(expect_refused(
        "a bind set nested 100,000 deep",
        &run,
        "clw-config-invalid",
        &["test.yaml:4:", "nested more than 64 levels deep"],
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_manifest_nested_100000_deep_in_200_kb_is_refused_at_once_naming_file_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fortress.yaml");
    let text = deeply_nested("Fortress", 100_000);
    assert!(text.len() < 210_000);
    std::fs::write(&path, text).unwrap();
    let mut cmd = bin();
    cmd.arg("-f").arg(&path).arg("validate");
    let run = run_bounded(cmd);
    let failures = expect_refused(
        "a manifest nested 100,000 deep",
        &run,
        "clw-config-invalid",
        &[
            &format!("{}:4:", path.display()),
            "nested more than 64 levels deep; a Fortress needs far fewer",
        ],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_manifest_of_60000_sandboxes_is_refused_by_its_value_count() {
    let fx = Fixture::new("wide");
    let mut text = fx.manifest_text();
    for i in 0..60_000 {
        text.push_str(&format!("  - {{name: s{i}, user: root, command: [x]}}\n"));
    }
    assert!(text.len() < 4 << 20, "under the byte limit");
    fx.write_manifest(&text);
    let run = run_bounded(fx.command(&["validate"]));
    let failures = expect_refused(
        "60,000 sandboxes",
        &run,
        "clw-config-invalid",
        &["more than 10000 values in one document"],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn profiles_of_a_million_names_or_over_4_mib_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();

    // A million one-letter unknown names fit in 4 MB: refused by the name limit.
    let million = dir.path().join("million.json");
    let letters = "abcdefghij";
    std::fs::write(
        &million,
        profile_naming((0..1_000_000).map(|i| letters[i % 10..i % 10 + 1].to_string())),
    )
    .unwrap();
    assert!(std::fs::metadata(&million).unwrap().len() < 4 << 20);
    let mut cmd = bin();
    cmd.args(["seccomp", "check"]).arg(&million);
    failures.extend(expect_refused(
        "a million unknown names",
        &run_bounded(cmd),
        "clw-seccomp-invalid",
        &["1000000 syscall names, more than the 4096 accepted"],
    ));

    // A million long names are 20 MB: refused by the size limit before parsing.
    let huge = dir.path().join("huge.json");
    std::fs::write(
        &huge,
        profile_naming((0..1_000_000).map(|i| format!("no_such_call_{i:07}"))),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["seccomp", "check"]).arg(&huge);
    failures.extend(expect_refused(
        "a 20 MB profile",
        &run_bounded(cmd),
        "clw-config-invalid",
        &["is larger than 4 MiB, the limit for input files"],
    ));

    // 4,000 unknown names (under the limit): 20 listed with suggestions, the rest counted.
    let many = dir.path().join("many.json");
    std::fs::write(
        &many,
        profile_naming((0..4000).map(|i| format!("no_such_call_{i}"))),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["seccomp", "check"]).arg(&many);
    failures.extend(expect_refused(
        "4,000 unknown names",
        &run_bounded(cmd),
        "clw-seccomp-invalid",
        &[
            "unknown syscall `no_such_call_0`",
            "and 3980 more unknown syscall names",
        ],
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_1_gib_secrets_file_is_refused_without_being_read() {
    let fx = Fixture::new("bigsecrets");
    // Sparse: a gibibyte by its size, nothing written.
    std::fs::OpenOptions::new()
        .write(true)
        .open(fx.secrets_file())
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut failures = Vec::new();
    for cmd in ["validate", "plan"] {
        let run = run_bounded(fx.command(&[cmd]));
        failures.extend(expect_refused(
            &format!("a 1 GiB secrets file ({cmd})"),
            &run,
            "clw-config-invalid",
            &[
                "secrets.file",
                "is larger than 4 MiB, the limit for input files",
            ],
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn thousands_of_missing_secret_names_against_a_huge_secrets_file_are_refused_at_once() {
    let fx = Fixture::new("manykeys");
    // 180,000 keys in just under 4 MiB, and 9,000 secretEnv names none of them matches: a
    // "did you mean" for each would compare every name with every key.
    let mut secrets = String::new();
    for i in 0..180_000 {
        secrets.push_str(&format!("KEY_{i:06}=value{i:06}\n"));
    }
    std::fs::write(fx.secrets_file(), secrets).unwrap();
    let names: Vec<String> = (0..9000).map(|i| format!("MISSING_{i:06}")).collect();
    let text = fx.manifest_text().replace(
        "secretEnv: [ANTHROPIC_API_KEY]",
        &format!("secretEnv: [{}]", names.join(", ")),
    );
    fx.write_manifest(&text);
    let run = run_bounded(fx.command(&["validate"]));
    let failures = expect_refused(
        "9,000 missing secretEnv names",
        &run,
        "clw-config-invalid",
        &["sandboxes[0].secretEnv[8999]", "not in the secrets file"],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_usage_error_is_a_coded_error_in_text_and_in_json() {
    let out = bin().args(["plna"]).output().expect("run the binary");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error[clw-config-invalid]: command line: ") && err.contains("plna"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");

    let out = bin()
        .args(["-o", "json", "apply", "--no-such-flag"])
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(&out)));
    assert_eq!(doc["code"], "clw-config-invalid", "{doc}");
    assert!(
        doc["message"].as_str().unwrap().contains("--no-such-flag"),
        "{doc}"
    );

    // --help is not an error.
    let out = bin().args(["--help"]).output().expect("run the binary");
    assert_eq!(out.status.code(), Some(0));
}
