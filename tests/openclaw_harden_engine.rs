//! `openclaw harden` through the real binary, then the manifest it wrote applied on the real
//! engine: the sandbox runs with exactly the binds of the bind set, and no secret of the
//! OpenClaw home (config, env files, channel credentials) is visible inside it; `verify`,
//! searching for the home's whole inventory, passes.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const SECRETS: &str = "ANTHROPIC_API_KEY=sk-ant-e2e-0123456789abcdef\n";

const DOTENV: &str = "OPENAI_API_KEY=sk-openai-e2e-0123456789\n";

const CONFIG: &str = r#"{
  "gateway": {
    "port": 18789,
    "auth": {
      "token": "gw-e2e-token-0123456789"
    }
  },
  "channels": {
    "telegram": {
      "botToken": "123:e2e-telegram-token"
    }
  },
  "agents": {
    "defaults": {
      "sandbox": {
        "mode": "all",
        "docker": {
          "binds": [
            "~/.openclaw:/home/node/.openclaw:rw"
          ]
        }
      }
    }
  }
}
"#;

/// A home with an OpenClaw state directory in the real layout, owned by the running user.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("clw-oc-harden-")
            .tempdir()
            .unwrap();
        let host = Host { dir };
        let oc = host.state();
        for d in OPENCLAW_DIRS {
            fs::create_dir_all(oc.join(d)).unwrap();
        }
        fs::write(oc.join("credentials/telegram.json"), "{\"token\":\"x\"}\n").unwrap();
        fs::write(oc.join("matrix/crypto.db"), "keys").unwrap();
        fs::write(oc.join("logs/gateway.log"), "started\n").unwrap();
        fs::write(oc.join("secrets.env"), SECRETS).unwrap();
        fs::write(oc.join(".env"), DOTENV).unwrap();
        fs::write(oc.join("openclaw.json"), CONFIG).unwrap();
        host
    }

    fn home(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).unwrap()
    }

    fn state(&self) -> PathBuf {
        self.home().join(".openclaw")
    }

    fn secrets_file(&self) -> PathBuf {
        self.home().join(".config/openclaw-secrets/secrets.env")
    }

    /// `clw-fortress <args>` with `HOME` at this host's home and the state database in it (not
    /// the machine's: run as root, the written manifest's default is /var/lib/clw-fortress).
    fn run(&self, args: &[&str]) -> Output {
        bin()
            .env("HOME", self.home())
            .arg("--state")
            .arg(self.home().join("state.db"))
            .args(args)
            .output()
            .expect("run clw-fortress")
    }

    fn harden(&self, extra: &[&str]) -> Output {
        let bind_set = Path::new(env!("CARGO_MANIFEST_DIR")).join("binds/openclaw.yaml");
        let mut args = vec![
            "openclaw",
            "harden",
            "--bind-set",
            bind_set.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Paths, modes and contents of files with their mtimes.
    fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.home()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap().flatten() {
                let m = fs::symlink_metadata(e.path()).unwrap();
                let mut line = format!(
                    "{} {:o}",
                    e.path().display(),
                    m.permissions().mode() & 0o7777
                );
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    line.push_str(&format!(
                        " {}.{} {:?}",
                        m.mtime(),
                        m.mtime_nsec(),
                        fs::read(e.path()).unwrap()
                    ));
                }
                out.push(line);
            }
        }
        out.sort();
        out
    }
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

fn exec(container: &str, script: &str) -> Output {
    docker(&["exec", container, "sh", "-c", script])
}

#[test]
fn the_hardened_host_manifest_applies_and_its_sandbox_sees_only_the_granular_binds() {
    require_engine();
    let host = Host::new();
    let name = unique("clwt-oc");
    let _guard = LabelGuard(name.clone());
    let manifest = host.home().join("fortress.yaml");
    let out = host.harden(&[
        "--write-manifest",
        manifest.to_str().unwrap(),
        "--name",
        &name,
        "--image",
        FIXTURE_IMAGE,
        "--memory",
        "64Mi",
        "--cpus",
        "0.5",
        "--pids",
        "64",
    ]);
    assert!(out.status.success(), "harden failed: {}", describe(&out));
    let text = fs::read_to_string(&manifest).unwrap();
    assert!(
        !text.contains("socket:"),
        "engine.socket is not needed:\n{text}"
    );

    // The sandboxes run as uid 1000: hand the state directory over as an install would.
    chown_tree(&host.state(), SANDBOX_UID);

    let out = host.run(&["-f", manifest.to_str().unwrap(), "validate"]);
    assert!(out.status.success(), "validate: {}", describe(&out));
    let out = host.run(&["-f", manifest.to_str().unwrap(), "apply"]);
    assert!(out.status.success(), "apply: {}", describe(&out));

    let sandbox = format!("{name}-sbx-main");
    let c = inspect(&sandbox);
    assert_eq!(c["State"]["Running"], true);
    // Podman reports a short local name fully qualified (`localhost/<name>:<tag>`).
    let image = c["Config"]["Image"].as_str().unwrap();
    assert!(
        image == FIXTURE_IMAGE
            || (engine_flavor() == Flavor::Podman && image == format!("localhost/{FIXTURE_IMAGE}")),
        "{image}"
    );
    let hc = &c["HostConfig"];
    assert_eq!(hc["Memory"], 64 << 20);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["PidsLimit"], 64);
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["NetworkMode"], "none");

    // openclaw.json: the broad bind gone, the limits set, no credential left in plaintext.
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(host.state().join("openclaw.json")).unwrap())
            .unwrap();
    let docker_cfg = &config["agents"]["defaults"]["sandbox"]["docker"];
    assert_eq!(docker_cfg["binds"], serde_json::json!([]));
    assert_eq!(docker_cfg["pidsLimit"], 64);
    assert_eq!(docker_cfg["memory"], "64m");
    assert_eq!(docker_cfg["cpus"], 0.5);
    assert!(docker_cfg
        .get("dangerouslyAllowExternalBindSources")
        .is_none());
    let text = fs::read_to_string(host.state().join("openclaw.json")).unwrap();
    for secret in ["gw-e2e-token", "e2e-telegram-token"] {
        assert!(!text.contains(secret), "{secret} still in openclaw.json");
    }

    // The sandbox's mounts are exactly the binds of the bind set.
    let oc = host.state();
    let want: BTreeSet<String> = [
        format!("{}:/agent-workspace:rw", oc.join("workspace").display()),
        format!("{0}:{0}:rw", oc.join("media").display()),
    ]
    .into();
    let got: BTreeSet<String> = c["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Type"] == "bind")
        .map(|m| {
            format!(
                "{}:{}:{}",
                m["Source"].as_str().unwrap(),
                m["Destination"].as_str().unwrap(),
                if m["RW"] == true { "rw" } else { "ro" }
            )
        })
        .collect();
    assert_eq!(got, want);

    // Isolation, probed from inside.
    let oc = oc.display();
    for hidden in [
        format!("{oc}/credentials/telegram.json"),
        format!("{oc}/openclaw.json"),
        format!("{oc}/.env"),
        format!("{oc}/secrets.env"),
        host.secrets_file().display().to_string(),
    ] {
        let out = exec(&sandbox, &format!("cat '{hidden}'"));
        assert!(
            !out.status.success(),
            "{hidden} is readable in the sandbox: {}",
            describe(&out)
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-ant-e2e"));
    }
    let out = exec(&sandbox, "touch /agent-workspace/made-inside");
    assert!(
        out.status.success(),
        "workspace is writable: {}",
        describe(&out)
    );
    assert!(oc_path(&host, "workspace/made-inside").exists());

    // And the isolation suite proves it all on the applied sandbox: every probe passes.
    let out = host.run(&["-f", manifest.to_str().unwrap(), "-o", "json", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "verify: {}", describe(&out));
    let report: serde_json::Value = serde_json::from_str(&text).expect("a JSON report");
    assert_eq!(report["version"], 1, "{text}");
    let results = report["results"].as_array().expect("results").clone();
    assert!(results.len() >= 20, "the whole suite ran: {text}");
    for r in &results {
        assert_eq!(r["outcome"], "pass", "{r}");
    }
    for secret in [
        "sk-ant-e2e",
        "gw-e2e-token",
        "e2e-telegram-token",
        "sk-openai-e2e",
    ] {
        assert!(!text.contains(secret), "a secret value in the report");
    }
}

fn oc_path(host: &Host, rel: &str) -> PathBuf {
    host.state().join(rel)
}

#[test]
fn dry_run_through_the_binary_prints_the_moves_and_diff_and_changes_nothing() {
    require_engine();
    let host = Host::new();
    let before = host.tree();
    let out = host.harden(&["--dry-run"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--- a/openclaw.json"), "{stdout}");
    assert!(stdout.contains("move "), "{stdout}");
    assert!(stdout.contains("dry run: nothing was changed"), "{stdout}");
    for secret in [
        "sk-ant-e2e",
        "gw-e2e-token",
        "e2e-telegram-token",
        "sk-openai-e2e",
    ] {
        assert!(!stdout.contains(secret), "{stdout}");
    }
    assert_eq!(host.tree(), before);
}

#[test]
fn a_second_run_reports_already_hardened_and_changes_nothing() {
    require_engine();
    let host = Host::new();
    let out = host.harden(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let before = host.tree();
    let out = host.harden(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already hardened"),
        "{}",
        describe(&out)
    );
    assert_eq!(host.tree(), before);
}

#[test]
fn invalid_json_exits_two_with_its_location_and_nothing_changes() {
    require_engine();
    let host = Host::new();
    // JSON5 (what OpenClaw reads) allows a trailing comma, not a bracket that closes nothing.
    fs::write(
        host.state().join("openclaw.json"),
        "{\n  \"a\": 1,\n  ]\n}\n",
    )
    .unwrap();
    let before = host.tree();
    let out = host.harden(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error[clw-config-invalid]: {}:3:3: not valid JSON5",
            host.state().join("openclaw.json").display()
        )),
        "{stderr}"
    );
    assert_eq!(host.tree(), before);
}

#[test]
fn undo_through_the_binary_restores_the_original_bytes() {
    require_engine();
    let host = Host::new();
    assert!(host.harden(&[]).status.success());
    let out = host.harden(&["--undo"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        fs::read_to_string(host.state().join("openclaw.json")).unwrap(),
        CONFIG
    );
    assert_eq!(
        fs::read_to_string(host.state().join("secrets.env")).unwrap(),
        SECRETS
    );
    assert_eq!(
        fs::read_to_string(host.state().join(".env")).unwrap(),
        DOTENV
    );
    assert!(!host.secrets_file().exists());
    assert!(!host.secrets_file().parent().unwrap().exists());
}

#[test]
fn a_bad_bind_set_lists_every_problem_and_nothing_changes() {
    require_engine();
    let host = Host::new();
    let set = host.home().join("bad.yaml");
    fs::write(
        &set,
        "apiVersion: clw-fortress/v1\nkind: BindSet\nmetadata: {name: x}\n\
         binds:\n  - {source: nope, mode: rw}\n  - {source: /etc, mode: ro}\n",
    )
    .unwrap();
    let manifest = host.home().join("fortress.yaml");
    let before = host.tree();
    let out = host.run(&[
        "openclaw",
        "harden",
        "--bind-set",
        set.to_str().unwrap(),
        "--write-manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(stderr.contains("binds[0].source = \"nope\""), "{stderr}");
    assert!(
        stderr.contains("[clw-bind-forbidden]") && stderr.contains("binds[1].source = \"/etc\""),
        "{stderr}"
    );
    assert_eq!(host.tree(), before);
}
