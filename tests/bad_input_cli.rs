//! Bad input through the real binary: each manifest rule yields its `error[clw-…]` code with
//! the file and field path, exit status 2, and not a single connection to the engine. The
//! "engine" here is a listening socket that counts connections, so the proof is direct.

mod common;

use std::os::unix::fs::PermissionsExt;

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
