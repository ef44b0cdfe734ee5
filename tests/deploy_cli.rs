//! Deploying for a user's OpenClaw from a root agent: `metadata.owner` makes `~` the owner's
//! home whoever runs the command (the system unit runs as root with HOME unset), accepts the
//! owner's secrets file and runs sandboxes as the owner by default.

mod common;

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;

const OWNER: &str = "clw-owner-t";

/// The test user, created once (the tests run as root, as CI does); its home.
fn owner_home() -> (u32, u32, PathBuf) {
    system_user(
        OWNER,
        "the deploy tests create a user and run as the system unit does",
    )
}

fn own(path: &Path, uid: u32, gid: u32, mode: u32) {
    chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_root_run_without_home_validates_a_manifest_for_the_owners_home() {
    let (uid, gid, home) = owner_home();
    let tag = unique("oc");
    // The owner's OpenClaw home and secrets, as the user's own `openclaw onboard` and
    // `openclaw harden` leave them.
    let oc = home.join(format!(".openclaw-{tag}"));
    let ws = oc.join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    own(&oc, uid, gid, 0o700);
    own(&ws, uid, gid, 0o700);
    let sdir = home.join(format!(".config/secrets-{tag}"));
    std::fs::create_dir_all(&sdir).unwrap();
    own(&home.join(".config"), uid, gid, 0o700);
    own(&sdir, uid, gid, 0o700);
    let secrets = sdir.join("secrets.env");
    std::fs::write(&secrets, "ANTHROPIC_API_KEY=sk-owner-test\n").unwrap();
    own(&secrets, uid, gid, 0o600);

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("fortress.yaml");
    let write = |owner_line: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: clw-fortress/v1\nkind: Fortress\n\
                 metadata: {{name: deploy-t{owner_line}}}\n\
                 state: {{path: {state}}}\n\
                 secrets: {{file: ~/.config/secrets-{tag}/secrets.env}}\n\
                 defaults: {{image: clw-fixture:busybox}}\n\
                 sandboxes:\n  - name: deploy-t-main\n    secretEnv: [ANTHROPIC_API_KEY]\n    \
                 binds:\n      - {{source: ~/.openclaw-{tag}/workspace, target: /ws, mode: rw}}\n",
                state = dir.path().join("state.db").display(),
            ),
        )
        .unwrap();
    };
    let run = || {
        bin()
            .env_remove("HOME")
            .args(["-o", "json", "-f"])
            .arg(&manifest)
            .arg("validate")
            .output()
            .unwrap()
    };

    // Without an owner, `~` of a root run without HOME means nothing safe: refused.
    write("");
    let refused = run();
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));

    write(&format!(", owner: {OWNER}"));
    let ok = run();
    assert_eq!(ok.status.code(), Some(0), "{}", describe(&ok));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["owner"]["name"], OWNER);
    assert_eq!(v["owner"]["uid"], uid);
    assert_eq!(v["owner"]["home"], home.display().to_string());

    // A numeric owner is the same user.
    write(&format!(", owner: \"{uid}\""));
    let ok = run();
    assert_eq!(ok.status.code(), Some(0), "{}", describe(&ok));

    // An unknown owner is named as the problem.
    write(", owner: no-such-user-clw");
    let bad = run();
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("metadata.owner"),
        "{}",
        describe(&bad)
    );
    let _ = std::fs::remove_dir_all(&oc);
    let _ = std::fs::remove_dir_all(&sdir);
}

/// `openclaw harden` outside the repository: the built-in bind set is used (a dry run leaves
/// nothing behind; a real run keeps it in the user's config, where the written manifest
/// points).
#[test]
fn openclaw_harden_finds_its_bind_set_without_the_repository() {
    let home = tempfile::tempdir().unwrap();
    let oc = home.path().join(".openclaw");
    std::fs::create_dir_all(oc.join("workspace")).unwrap();
    std::fs::write(oc.join("openclaw.json"), "{}\n").unwrap();
    std::fs::set_permissions(&oc, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        bin()
            .current_dir(cwd.path())
            .env("HOME", home.path())
            .args(["openclaw", "harden"])
            .args(extra)
            .output()
            .unwrap()
    };
    let user_copy = home.path().join(".config/clw-fortress/binds/openclaw.yaml");
    let dry = run(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", describe(&dry));
    assert!(!user_copy.exists(), "a dry run wrote the bind set");

    let manifest = home.path().join("fortress.yaml");
    let real = run(&["--write-manifest", manifest.to_str().unwrap()]);
    assert_eq!(real.status.code(), Some(0), "{}", describe(&real));
    assert_eq!(
        std::fs::read_to_string(&user_copy).unwrap(),
        include_str!("../binds/openclaw.yaml")
    );
    assert!(manifest.is_file(), "the manifest was written");
}

/// Logs under systemd carry their priority for the journal; `--log-format json` is one JSON
/// object per line; `validate` prints a warning once (its report), not also as a log line.
#[test]
fn log_lines_carry_journald_priorities_or_are_json() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("f.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: clw-fortress/v1\nkind: Fortress\nmetadata: {{name: lf}}\n\
             state: {{path: {}}}\ndefaults: {{image: clw-fixture:busybox}}\n\
             sandboxes:\n  - name: lf-main\n    limits: {{cpus: 4096}}\n",
            dir.path().join("state.db").display()
        ),
    )
    .unwrap();
    let stderr_to = |name: &str, args: &[&str], journal: bool| {
        let path = dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = bin();
        cmd.arg("-f").arg(&manifest).args(args).stderr(file);
        if journal {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        } else {
            cmd.env_remove("JOURNAL_STREAM");
        }
        let _ = cmd.output().unwrap();
        std::fs::read_to_string(&path).unwrap()
    };
    let offline = ["--engine", "unix:///nonexistent/clw.sock", "status"];

    let journal = stderr_to("journal.log", &offline, true);
    let warn = journal
        .lines()
        .find(|l| l.contains("above the host"))
        .unwrap_or_else(|| panic!("no warning logged: {journal}"));
    assert!(warn.starts_with("<4>"), "{journal}");

    let plain = stderr_to("plain.log", &offline, false);
    assert!(!plain.starts_with('<'), "{plain}");

    let json = stderr_to(
        "json.log",
        &["--log-format", "json", offline[0], offline[1], offline[2]],
        false,
    );
    let line = json
        .lines()
        .find(|l| l.contains("above the host"))
        .unwrap_or_else(|| panic!("no warning logged: {json}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(v["level"], "WARN");

    let out = bin()
        .arg("-f")
        .arg(&manifest)
        .arg("validate")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all.matches("above the host").count(), 1, "{all}");
}
