//! `harden` and `--undo` on a fixture state directory with the real OpenClaw layout, in a
//! tempdir home. Every "changes nothing" claim is checked by hashing the whole tree, file
//! modification times included.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;

const SECRETS: &str = "# provider keys\nANTHROPIC_API_KEY=sk-ant-fixture-0123456789\n";

/// `openclaw.json` as a fresh install writes it: the default whole-directory bind, and
/// unrelated sections in an order that is not alphabetical.
const CONFIG: &str = r#"{
  "meta": {
    "lastTouchedVersion": "2026.1.29"
  },
  "gateway": {
    "port": 18789,
    "bind": "loopback",
    "auth": {
      "mode": "token",
      "token": "gw-fixture-token"
    }
  },
  "channels": {
    "telegram": {
      "enabled": true,
      "botToken": "123456:fixture"
    }
  },
  "agents": {
    "defaults": {
      "workspace": "~/.openclaw/workspace",
      "sandbox": {
        "mode": "all",
        "docker": {
          "image": "openclaw-sandbox:bookworm-slim",
          "binds": [
            "~/.openclaw:/home/node/.openclaw:rw"
          ]
        }
      }
    }
  },
  "cron": {
    "enabled": true
  }
}
"#;

struct Fx {
    dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let fx = Fx { dir };
        let oc = fx.state();
        for d in [
            "credentials",
            "matrix",
            "workspace",
            "agents",
            "memory",
            "cron",
            "logs",
            "extensions",
            "skills",
        ] {
            fs::create_dir_all(oc.join(d)).unwrap();
        }
        fs::write(oc.join("credentials/telegram.json"), "{}\n").unwrap();
        fs::write(oc.join("memory/main.sqlite"), "sqlite").unwrap();
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(oc.join("secrets.env"))
            .unwrap();
        f.write_all(SECRETS.as_bytes()).unwrap();
        fs::set_permissions(oc.join("secrets.env"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(oc.join("openclaw.json"), CONFIG).unwrap();
        fx
    }

    fn home(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).unwrap()
    }

    fn state(&self) -> PathBuf {
        self.home().join(".openclaw")
    }

    fn secrets_dst(&self) -> PathBuf {
        self.home().join(".config/openclaw-secrets/secrets.env")
    }

    fn dropin(&self) -> PathBuf {
        self.home()
            .join(".config/systemd/user/openclaw-gateway.service.d/secrets.conf")
    }

    fn opts(&self) -> HardenOptions {
        HardenOptions {
            home: self.home(),
            uid: nix::unistd::getuid().as_raw(),
            env: BTreeMap::new(),
            state_dir: self.state(),
            secrets_dir: self.home().join(".config/openclaw-secrets"),
            bind_set: Path::new(env!("CARGO_MANIFEST_DIR")).join("binds/openclaw.yaml"),
            limits: Limits {
                memory: 8 << 30,
                cpus: 4.0,
                pids: 512,
            },
            manifest: None,
        }
    }

    fn harden(&self) -> Plan {
        let plan = plan_harden(&self.opts()).unwrap();
        execute(&plan).unwrap();
        plan
    }

    /// Every entry's path, type and mode; files also their content and mtime. Directory mtimes
    /// are left out: a rolled-back create/remove pair changes them without changing anything.
    fn tree(&self) -> String {
        fn walk(root: &Path, dir: &Path, listing: &mut Vec<String>) {
            let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let m = fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let mode = m.permissions().mode() & 0o7777;
                if m.is_dir() {
                    listing.push(format!("{rel}/ {mode:o}"));
                    walk(root, &p, listing);
                } else {
                    listing.push(format!(
                        "{rel} {mode:o} {}.{} {:x}",
                        m.mtime(),
                        m.mtime_nsec(),
                        Sha256::digest(fs::read(&p).unwrap())
                    ));
                }
            }
        }
        let mut listing = Vec::new();
        walk(&self.home(), &self.home(), &mut listing);
        listing.join("\n")
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn expected_config(home: &Path) -> String {
    let oc = home.join(".openclaw");
    let oc = oc.display();
    format!(
        r#"{{
  "meta": {{
    "lastTouchedVersion": "2026.1.29"
  }},
  "gateway": {{
    "port": 18789,
    "bind": "loopback",
    "auth": {{
      "mode": "token",
      "token": "gw-fixture-token"
    }}
  }},
  "channels": {{
    "telegram": {{
      "enabled": true,
      "botToken": "123456:fixture"
    }}
  }},
  "agents": {{
    "defaults": {{
      "workspace": "~/.openclaw/workspace",
      "sandbox": {{
        "mode": "all",
        "docker": {{
          "image": "openclaw-sandbox:bookworm-slim",
          "binds": [
            "{oc}/workspace:/agent-workspace:rw",
            "{oc}/agents:{oc}/agents:rw",
            "{oc}/memory:{oc}/memory:rw",
            "{oc}/cron:{oc}/cron:rw",
            "{oc}/logs:{oc}/logs:ro",
            "{oc}/openclaw.json:{oc}/openclaw.json:ro",
            "{oc}/extensions:{oc}/extensions:ro",
            "{oc}/skills:{oc}/skills:ro",
            "{oc}/media:{oc}/media:rw"
          ],
          "pidsLimit": 512,
          "memory": "8g",
          "memorySwap": "8g",
          "cpus": 4,
          "readOnlyRoot": true,
          "capDrop": [
            "ALL"
          ],
          "network": "none",
          "seccompProfile": "{oc}/seccomp/clw-default.json",
          "dangerouslyAllowExternalBindSources": true
        }}
      }}
    }}
  }},
  "cron": {{
    "enabled": true
  }}
}}
"#
    )
}

#[test]
fn harden_moves_the_secrets_writes_the_drop_in_and_patches_the_config() {
    let fx = Fx::new();
    let plan = fx.harden();
    assert!(plan.next[0].contains("daemon-reload"));

    let dst = fx.secrets_dst();
    assert_eq!(fs::read_to_string(&dst).unwrap(), SECRETS);
    assert_eq!(mode(&dst), 0o600);
    assert_eq!(mode(dst.parent().unwrap()), 0o700);
    assert!(!fx.state().join("secrets.env").exists());

    assert_eq!(
        fs::read_to_string(fx.dropin()).unwrap(),
        "[Service]\nEnvironmentFile=%h/.config/openclaw-secrets/secrets.env\n"
    );

    let config = fs::read_to_string(fx.state().join("openclaw.json")).unwrap();
    assert_eq!(config, expected_config(&fx.home()));
    assert_eq!(
        fs::read_to_string(fx.state().join("openclaw.json.bak")).unwrap(),
        CONFIG
    );

    let profile = fx.state().join("seccomp/clw-default.json");
    assert_eq!(mode(&profile), 0o644);
    crate::seccomp::load_file(&profile).expect("the written profile validates");
    assert_eq!(mode(&fx.state().join("media")), 0o700);
    // Denied paths never appear in the binds.
    for denied in [
        "credentials",
        "secrets.env",
        "matrix",
        "identity",
        "devices",
    ] {
        assert!(!config.contains(&format!(".openclaw/{denied}")), "{denied}");
    }
}

#[test]
fn a_second_run_changes_nothing_not_even_an_mtime() {
    let fx = Fx::new();
    fx.harden();
    let before = fx.tree();
    let plan = plan_harden(&fx.opts()).unwrap();
    assert!(plan.is_empty(), "{:?}", plan.steps);
    execute(&plan).unwrap();
    assert_eq!(fx.tree(), before);
}

#[test]
fn planning_alone_changes_nothing_and_shows_the_diff_with_credentials_masked() {
    let fx = Fx::new();
    let before = fx.tree();
    let plan = plan_harden(&fx.opts()).unwrap();
    assert_eq!(fx.tree(), before);
    let diff = plan.diff.expect("a diff of openclaw.json");
    assert!(
        diff.starts_with("--- a/openclaw.json\n+++ b/openclaw.json\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-            \"~/.openclaw:/home/node/.openclaw:rw\""),
        "{diff}"
    );
    assert!(
        diff.contains("+          \"readOnlyRoot\": true,"),
        "{diff}"
    );
    let described: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    assert!(
        described
            .iter()
            .any(|d| d.starts_with("move ") && d.ends_with("secrets.env (0600)")),
        "{described:?}"
    );
    for text in described.iter().chain([&diff]) {
        assert!(!text.contains("sk-ant-fixture"), "{text}");
        assert!(!text.contains("gw-fixture-token"), "{text}");
    }
}

#[test]
fn invalid_json_is_refused_with_its_location_and_never_rewritten() {
    let fx = Fx::new();
    let bad = "{\n  \"gateway\": {\n    \"port\": 18789,\n  }\n}\n";
    fs::write(fx.state().join("openclaw.json"), bad).unwrap();
    let before = fx.tree();
    let err = plan_harden(&fx.opts()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalid);
    assert_eq!(err.code().exit_status(), 2);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:4:3: not valid JSON",
            fx.state().join("openclaw.json").display()
        )),
        "{text}"
    );
    assert_eq!(fx.tree(), before);
}

#[test]
fn a_failure_after_the_move_puts_every_file_back() {
    let fx = Fx::new();
    // A file where the drop-in's directory must go: creating it fails after the secrets moved.
    fs::create_dir_all(fx.home().join(".config/systemd")).unwrap();
    fs::write(fx.home().join(".config/systemd/user"), "in the way").unwrap();
    let before = fx.tree();
    let plan = plan_harden(&fx.opts()).unwrap();
    let err = execute(&plan).unwrap_err();
    match &err {
        OpenclawError::Failed { step, rollback, .. } => {
            assert!(step.contains("openclaw-gateway.service.d"), "{step}");
            assert!(rollback.is_empty(), "{rollback:?}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        fs::read(fx.state().join("openclaw.json")).unwrap(),
        CONFIG.as_bytes()
    );
    assert_eq!(
        fs::read_to_string(fx.state().join("secrets.env")).unwrap(),
        SECRETS
    );
    assert!(!fx.secrets_dst().exists());
    assert_eq!(fx.tree(), before);
}

#[test]
fn undo_restores_the_original_config_and_secrets_bytes() {
    let fx = Fx::new();
    fx.harden();
    let plan = plan_undo(&fx.opts()).unwrap();
    execute(&plan).unwrap();
    assert_eq!(
        fs::read(fx.state().join("openclaw.json")).unwrap(),
        CONFIG.as_bytes()
    );
    assert_eq!(
        fs::read_to_string(fx.state().join("secrets.env")).unwrap(),
        SECRETS
    );
    assert!(!fx.state().join("openclaw.json.bak").exists());
    assert!(!fx.dropin().exists());
    assert!(!fx.state().join("seccomp").exists());
    assert!(!fx.secrets_dst().parent().unwrap().exists());
    assert!(plan_undo(&fx.opts()).unwrap().is_empty());
}

#[test]
fn undo_refuses_when_both_secrets_files_differ() {
    let fx = Fx::new();
    fx.harden();
    fs::write(fx.state().join("secrets.env"), "RECREATED=1\n").unwrap();
    let before = fx.tree();
    let err = plan_undo(&fx.opts()).unwrap_err();
    assert!(matches!(err, OpenclawError::Conflict { .. }), "{err}");
    assert_eq!(err.code().exit_status(), 2);
    assert_eq!(fx.tree(), before);
}

#[test]
fn a_different_secrets_file_at_the_target_is_never_overwritten() {
    let fx = Fx::new();
    fs::create_dir_all(fx.secrets_dst().parent().unwrap()).unwrap();
    fs::write(fx.secrets_dst(), "OTHER=1\n").unwrap();
    let before = fx.tree();
    let err = plan_harden(&fx.opts()).unwrap_err();
    assert!(matches!(err, OpenclawError::Conflict { .. }), "{err}");
    assert_eq!(err.code().exit_status(), 2);
    assert_eq!(fx.tree(), before);
}

#[test]
fn an_identical_secrets_file_at_the_target_only_removes_the_source() {
    let fx = Fx::new();
    let dir = fx.secrets_dst().parent().unwrap().to_path_buf();
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(fx.secrets_dst(), SECRETS).unwrap();
    fs::set_permissions(fx.secrets_dst(), fs::Permissions::from_mode(0o600)).unwrap();
    fx.harden();
    assert!(!fx.state().join("secrets.env").exists());
    assert_eq!(fs::read_to_string(fx.secrets_dst()).unwrap(), SECRETS);
}

#[test]
fn a_state_directory_of_another_user_is_refused() {
    let fx = Fx::new();
    let mut opts = fx.opts();
    opts.uid += 1;
    let err = plan_harden(&opts).unwrap_err();
    assert!(matches!(err, OpenclawError::NotOwner { .. }), "{err}");
    assert_eq!(err.code().exit_status(), 2);
    let mut opts = fx.opts();
    opts.state_dir = fx.home().join("missing");
    assert!(matches!(
        plan_harden(&opts).unwrap_err(),
        OpenclawError::StateDir { .. }
    ));
}

#[test]
fn the_pristine_backup_is_never_replaced() {
    let fx = Fx::new();
    fs::write(fx.state().join("openclaw.json.bak"), "pristine").unwrap();
    fx.harden();
    assert_eq!(
        fs::read_to_string(fx.state().join("openclaw.json.bak")).unwrap(),
        "pristine"
    );
}

#[test]
fn the_written_manifest_validates_and_points_at_this_host() {
    let fx = Fx::new();
    let mut opts = fx.opts();
    let path = fx.home().join("fortress.yaml");
    opts.manifest = Some(ManifestOptions {
        path: path.clone(),
        name: "openclaw".into(),
        image: None,
        socket: None,
    });
    let plan = plan_harden(&opts).unwrap();
    execute(&plan).unwrap();
    let ctx = LoadContext {
        home: fx.home(),
        env: BTreeMap::new(),
        uid: opts.uid,
        host_cpus: 4,
    };
    let f = manifest::load(&path, &ctx).expect("the written manifest validates");
    assert_eq!(f.secrets_file, Some(fx.secrets_dst()));
    assert_eq!(f.sandboxes[0].name, "openclaw-sbx-main");
    assert_eq!(f.sandboxes[0].image, "openclaw-sandbox:bookworm-slim");
    assert_eq!(f.sandboxes[0].binds[0].source, fx.state().join("workspace"));
    assert_eq!(f.adopt.len(), 1);
    assert_eq!(f.adopt[0].limits.pids, Some(512));
    assert!(f.engine.socket.is_none());
    // The home-relative bind set was used as is: no copy beside the manifest.
    assert!(!fx.home().join("fortress.binds.yaml").exists());
}

#[test]
fn a_state_directory_elsewhere_gets_a_bind_set_copy_rooted_there() {
    let fx = Fx::new();
    let elsewhere = fx.home().join("srv-openclaw");
    fs::rename(fx.state(), &elsewhere).unwrap();
    let mut opts = fx.opts();
    opts.state_dir = elsewhere.clone();
    let path = fx.home().join("out/fortress.yaml");
    opts.manifest = Some(ManifestOptions {
        path: path.clone(),
        name: "oc".into(),
        image: Some("clw-fixture:busybox".into()),
        socket: Some("unix:///var/run/docker.sock".into()),
    });
    execute(&plan_harden(&opts).unwrap()).unwrap();
    let ctx = LoadContext {
        home: fx.home(),
        env: BTreeMap::new(),
        uid: opts.uid,
        host_cpus: 4,
    };
    let f = manifest::load(&path, &ctx).expect("the written manifest validates");
    assert_eq!(f.sandboxes[0].binds[0].source, elsewhere.join("workspace"));
    assert_eq!(
        f.engine.socket.as_deref(),
        Some("unix:///var/run/docker.sock")
    );
    assert!(fx.home().join("out/fortress.binds.yaml").exists());
}

#[test]
fn a_bind_set_exposing_a_denied_path_is_refused_before_anything_moves() {
    let fx = Fx::new();
    let set = fx.home().join("wide.yaml");
    fs::write(
        &set,
        "apiVersion: clw-fortress/v1\nkind: BindSet\nmetadata: {name: wide}\n\
         binds:\n  - {source: ., target: /oc, mode: rw}\ndeny: [credentials]\n",
    )
    .unwrap();
    let mut opts = fx.opts();
    opts.bind_set = set;
    let before = fx.tree();
    let err = plan_harden(&opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BindForbidden, "{err}");
    assert_eq!(err.code().exit_status(), 2);
    assert_eq!(fx.tree(), before);
}
