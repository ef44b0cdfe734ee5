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

/// OpenClaw's own env file, as its docs recommend for provider keys.
const DOTENV: &str = "OPENAI_API_KEY=sk-openai-fixture-98765\nOPENCLAW_LOG_LEVEL=info\n";

/// `openclaw.json` in the shape `openclaw onboard` of 2026.9.6 writes it (plaintext gateway
/// token and provider key), plus what users add by hand: a channel token, a broad bind in the
/// defaults and a per-agent override with the whole state directory bound read-write and a
/// looser pids limit.
const CONFIG: &str = r#"{
  "meta": {
    "lastTouchedVersion": "2026.9.6"
  },
  "gateway": {
    "port": 18789,
    "bind": "loopback",
    "auth": {
      "mode": "token",
      "token": "gw-fixture-token-0123456789"
    }
  },
  "models": {
    "mode": "merge",
    "providers": {
      "custom-local": {
        "baseUrl": "http://127.0.0.1:18999/v1",
        "api": "openai-completions",
        "apiKey": "sk-fixture-provider-key-42"
      }
    }
  },
  "channels": {
    "telegram": {
      "enabled": true,
      "botToken": "123456:fixture-telegram-token"
    }
  },
  "hooks": {
    "token": "hooks-fixture-token-777"
  },
  "agents": {
    "defaults": {
      "workspace": "~/.openclaw/workspace",
      "sandbox": {
        "mode": "all",
        "docker": {
          "image": "openclaw-sandbox:bookworm-slim",
          "binds": [
            "~/.openclaw:/home/node/.openclaw:rw",
            "/srv/data:/data:ro"
          ]
        }
      }
    },
    "entries": {
      "main": {
        "name": "main",
        "sandbox": {
          "docker": {
            "binds": [
              "~/.openclaw:/state:rw"
            ],
            "pidsLimit": 4096
          }
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
        // A freshly onboarded 2026.9 home: no memory/, cron/, logs/, extensions/, skills/.
        for d in ["agents/main/agent", "state", "workspace", "credentials"] {
            fs::create_dir_all(oc.join(d)).unwrap();
        }
        // The sandbox's user (1000) writes the workspace, as on a real host.
        std::os::unix::fs::chown(oc.join("workspace"), Some(1000), Some(1000)).ok();
        fs::write(oc.join("credentials/telegram.json"), "{}\n").unwrap();
        fs::write(oc.join("state/openclaw.sqlite"), "sqlite").unwrap();
        fs::write(oc.join(".env"), DOTENV).unwrap();
        fs::set_permissions(oc.join(".env"), fs::Permissions::from_mode(0o600)).unwrap();
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

fn config_value(fx: &Fx) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(fx.state().join("openclaw.json")).unwrap()).unwrap()
}

#[test]
fn harden_moves_every_credential_it_can_reference_and_hardens_every_sandbox_section() {
    let fx = Fx::new();
    let plan = fx.harden();
    assert!(plan.next[0].contains("daemon-reload"));

    // The env files left the state directory, 0600 in a 0700 directory.
    let dst = fx.secrets_dst();
    assert_eq!(fs::read_to_string(&dst).unwrap(), SECRETS);
    assert_eq!(mode(&dst), 0o600);
    assert_eq!(mode(dst.parent().unwrap()), 0o700);
    assert!(!fx.state().join("secrets.env").exists());
    let env_dst = fx.home().join(".config/openclaw-secrets/openclaw.env");
    assert_eq!(fs::read_to_string(&env_dst).unwrap(), DOTENV);
    assert_eq!(mode(&env_dst), 0o600);
    assert!(!fx.state().join(".env").exists());
    assert_eq!(
        fs::read_to_string(fx.dropin()).unwrap(),
        "[Service]\nEnvironmentFile=-%h/.config/openclaw-secrets/secrets.env\n\
         EnvironmentFile=-%h/.config/openclaw-secrets/openclaw.env\n"
    );

    // Credentials on OpenClaw's SecretRef surface became file references.
    let v = config_value(&fx);
    let store_path = fx
        .home()
        .join(".config/openclaw-secrets/openclaw-secrets.json");
    assert_eq!(mode(&store_path), 0o600);
    let store: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&store_path).unwrap()).unwrap();
    for (pointer, secret) in [
        ("/gateway/auth/token", "gw-fixture-token-0123456789"),
        (
            "/models/providers/custom-local/apiKey",
            "sk-fixture-provider-key-42",
        ),
        (
            "/channels/telegram/botToken",
            "123456:fixture-telegram-token",
        ),
    ] {
        assert_eq!(
            v.pointer(pointer).unwrap(),
            &serde_json::json!({"source": "file", "provider": "clw-fortress", "id": pointer})
        );
        assert_eq!(store.pointer(pointer).unwrap(), secret);
    }
    assert_eq!(
        v["secrets"]["providers"]["clw-fortress"],
        serde_json::json!({"source": "file", "path": store_path.display().to_string(), "mode": "json"})
    );
    // `hooks.token` cannot be referenced (OpenClaw mints it): kept, and said so.
    assert_eq!(v["hooks"]["token"], "hooks-fixture-token-777");
    assert!(plan.notes.iter().any(|n| n.starts_with("kept hooks.token")));
    let left = inventory::config_secrets(&v);
    assert_eq!(
        left.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["hooks.token"]
    );

    // The defaults: no bind exposing the state directory, every setting ours.
    let d = &v["agents"]["defaults"]["sandbox"]["docker"];
    let oc = fx.state();
    assert_eq!(d["binds"], serde_json::json!(["/srv/data:/data:ro"]));
    assert_eq!(d["pidsLimit"], 512);
    assert_eq!(d["memory"], "8g");
    assert_eq!(d["memorySwap"], "8g");
    assert_eq!(d["cpus"], 4);
    assert_eq!(d["readOnlyRoot"], true);
    assert_eq!(d["capDrop"], serde_json::json!(["ALL"]));
    assert_eq!(d["network"], "none");
    assert_eq!(
        d["seccompProfile"],
        oc.join("seccomp/clw-default.json").display().to_string()
    );
    assert!(d.get("dangerouslyAllowExternalBindSources").is_none());
    // The per-agent override: its broad bind removed, its looser limit tightened.
    let a = &v["agents"]["entries"]["main"]["sandbox"]["docker"];
    assert_eq!(a["binds"], serde_json::json!([]));
    assert_eq!(a["pidsLimit"], 512);
    assert!(a.get("dangerouslyAllowExternalBindSources").is_none());
    assert!(plan
        .notes
        .iter()
        .any(|n| n.starts_with("removed bind ~/.openclaw:/state:rw from agents.entries.main")));

    let profile = fx.state().join("seccomp/clw-default.json");
    assert_eq!(mode(&profile), 0o644);
    crate::seccomp::load_file(&profile).expect("the written profile validates");

    // harden's own copy holds the originals; OpenClaw's `.bak` is not touched.
    let copy = fx.home().join(".config/openclaw-secrets/pre-harden");
    assert_eq!(mode(&copy), 0o700);
    assert!(!fx.state().join("openclaw.json.bak").exists());
}

#[test]
fn the_external_bind_flag_goes_unless_a_remaining_bind_needs_it() {
    let fx = Fx::new();
    let config = CONFIG
        .replace(
            "\"image\": \"openclaw-sandbox:bookworm-slim\",",
            "\"image\": \"openclaw-sandbox:bookworm-slim\",\n          \"dangerouslyAllowExternalBindSources\": true,",
        )
        .replace(
            "\"pidsLimit\": 4096",
            "\"pidsLimit\": 4096,\n            \"dangerouslyAllowExternalBindSources\": true",
        );
    fs::write(fx.state().join("openclaw.json"), &config).unwrap();
    let plan = fx.harden();
    let v = config_value(&fx);
    // The defaults keep `/srv/data`, outside the workspace: the flag stays, and harden says so.
    assert_eq!(
        v["agents"]["defaults"]["sandbox"]["docker"]["dangerouslyAllowExternalBindSources"],
        true
    );
    assert!(plan.notes.iter().any(|n| n.starts_with(
        "kept agents.defaults.sandbox.docker.dangerouslyAllowExternalBindSources for /srv/data"
    )));
    // The agent's only bind exposed the state directory and is gone: so is its flag.
    assert!(v["agents"]["entries"]["main"]["sandbox"]["docker"]
        .get("dangerouslyAllowExternalBindSources")
        .is_none());
    assert!(plan.next.iter().any(|n| n == RECREATE_SANDBOXES));
}

#[test]
fn a_fifo_or_a_huge_config_is_refused_at_once_and_nothing_changes() {
    let fx = Fx::new();
    let config = fx.state().join("openclaw.json");
    fs::remove_file(&config).unwrap();
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // (The tree listing would itself block on the FIFO: the config is checked by hand below.)
    let err = plan_harden(&fx.opts()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalid, "{err}");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(!fx.secrets_dst().exists() && fx.state().join(".env").exists());
    fs::remove_file(&config).unwrap();
    fs::File::create(&config)
        .unwrap()
        .set_len(crate::input::MAX_INPUT_BYTES + 1)
        .unwrap();
    let before = fx.tree();
    let err = plan_harden(&fx.opts()).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(err.code().exit_status(), 2);
    assert_eq!(fx.tree(), before);
}

#[test]
fn a_json5_config_is_read_and_the_lost_comments_are_named() {
    let fx = Fx::new();
    let json5 = "// my gateway\n{\n  gateway: {auth: {mode: 'token', token: 'gw-json5-token-0123',},},\n}\n";
    fs::write(fx.state().join("openclaw.json"), json5).unwrap();
    let plan = fx.harden();
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("JSON5") && n.contains("comments")),
        "{:?}",
        plan.notes
    );
    let v = config_value(&fx);
    assert_eq!(v["gateway"]["auth"]["token"]["provider"], "clw-fortress");
    execute(&plan_undo(&fx.opts()).unwrap()).unwrap();
    assert_eq!(
        fs::read_to_string(fx.state().join("openclaw.json")).unwrap(),
        json5
    );
}

#[test]
fn undo_never_removes_a_profile_the_restored_config_names() {
    let fx = Fx::new();
    let ours = fx.state().join("seccomp/clw-default.json");
    let config = CONFIG.replace(
        "\"image\": \"openclaw-sandbox:bookworm-slim\",",
        &format!(
            "\"image\": \"openclaw-sandbox:bookworm-slim\",\n          \"seccompProfile\": \"{}\",",
            ours.display()
        ),
    );
    fs::write(fx.state().join("openclaw.json"), &config).unwrap();
    fx.harden();
    assert!(ours.exists());
    let plan = plan_undo(&fx.opts()).unwrap();
    execute(&plan).unwrap();
    assert_eq!(
        fs::read_to_string(fx.state().join("openclaw.json")).unwrap(),
        config
    );
    assert!(ours.exists(), "the restored config still names it");
    assert!(plan.notes.iter().any(|n| n.contains("still names it")));
}

#[test]
fn undo_ignores_openclaws_rotating_backup() {
    let fx = Fx::new();
    fx.harden();
    // OpenClaw rotates its own backups on every write: by now `.bak` is a hardened copy.
    let hardened = fs::read(fx.state().join("openclaw.json")).unwrap();
    fs::write(fx.state().join("openclaw.json.bak"), &hardened).unwrap();
    execute(&plan_undo(&fx.opts()).unwrap()).unwrap();
    assert_eq!(
        fs::read(fx.state().join("openclaw.json")).unwrap(),
        CONFIG.as_bytes()
    );
    assert_eq!(
        fs::read(fx.state().join("openclaw.json.bak")).unwrap(),
        hardened
    );
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
        diff.contains("-            \"~/.openclaw:/home/node/.openclaw:rw\","),
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
        for secret in [
            "sk-ant-fixture",
            "gw-fixture-token",
            "sk-fixture-provider-key",
            "fixture-telegram-token",
            "hooks-fixture-token",
            "sk-openai-fixture",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn invalid_json_is_refused_with_its_location_and_never_rewritten() {
    let fx = Fx::new();
    // JSON5 allows comments and trailing commas, not a bracket that closes nothing.
    let bad = "{\n  \"gateway\": {\n    \"port\": 18789,\n  ]\n}\n";
    fs::write(fx.state().join("openclaw.json"), bad).unwrap();
    let before = fx.tree();
    let err = plan_harden(&fx.opts()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalid);
    assert_eq!(err.code().exit_status(), 2);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:4:3: not valid JSON5",
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
    assert_eq!(fs::read_to_string(fx.state().join(".env")).unwrap(), DOTENV);
    assert_eq!(mode(&fx.state().join(".env")), 0o600);
    assert_eq!(mode(&fx.state().join("secrets.env")), 0o644);
    assert!(!fx.dropin().exists());
    assert!(!fx.state().join("seccomp").exists());
    assert!(!fx.secrets_dst().parent().unwrap().exists());
    assert!(plan_undo(&fx.opts()).unwrap().is_empty());
}

#[test]
fn undo_keeps_a_file_changed_since_harden_and_says_so() {
    let fx = Fx::new();
    fx.harden();
    fs::write(fx.secrets_dst(), "ROTATED=1\n").unwrap();
    let plan = plan_undo(&fx.opts()).unwrap();
    execute(&plan).unwrap();
    assert_eq!(fs::read_to_string(fx.secrets_dst()).unwrap(), "ROTATED=1\n");
    assert_eq!(
        fs::read_to_string(fx.state().join("secrets.env")).unwrap(),
        SECRETS
    );
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("changed since harden")));
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
fn the_pre_harden_copy_is_kept_from_the_first_run() {
    let fx = Fx::new();
    fx.harden();
    // A credential added by hand later is moved by the next run; undo still restores the
    // files as they were before the first harden.
    let mut v = config_value(&fx);
    v["gateway"]["remote"] = serde_json::json!({"token": "remote-token-added-later"});
    fs::write(fx.state().join("openclaw.json"), v.to_string()).unwrap();
    fx.harden();
    assert_eq!(
        config_value(&fx)["gateway"]["remote"]["token"]["provider"],
        "clw-fortress"
    );
    execute(&plan_undo(&fx.opts()).unwrap()).unwrap();
    assert_eq!(
        fs::read(fx.state().join("openclaw.json")).unwrap(),
        CONFIG.as_bytes()
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
    assert_eq!(f.openclaw_state_dir, Some(fx.state()));
    assert_eq!(f.backups[0].sources.len(), 2);
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
    opts.manifest = Some(ManifestOptions {
        path: fx.home().join("fortress.yaml"),
        name: "openclaw".into(),
        image: None,
        socket: None,
    });
    let before = fx.tree();
    let err = plan_harden(&opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BindForbidden, "{err}");
    assert_eq!(err.code().exit_status(), 2);
    assert_eq!(fx.tree(), before);
}
