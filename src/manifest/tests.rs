//! Loader tests on fixture trees: a tempdir stands in for the home directory, so no test reads
//! the real home, environment or engine.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const SECRET_VALUE: &str = "sk-ant-test-0123456789";

/// A home directory with the OpenClaw layout and a safe secrets file, plus the repo's bind set.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    ctx: LoadContext,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        let oc = home.join(".openclaw");
        for d in [
            "workspace",
            "agents",
            "memory",
            "cron",
            "logs",
            "extensions",
            "skills",
            "credentials",
            "matrix",
            "identity",
            "devices",
        ] {
            std::fs::create_dir_all(oc.join(d)).unwrap();
        }
        // The sandbox's user (1000) writes its rw binds, as on a real host.
        for d in ["workspace", "memory"] {
            std::os::unix::fs::chown(oc.join(d), Some(1000), Some(1000)).ok();
        }
        std::fs::write(oc.join("openclaw.json"), "{}").unwrap();
        let secrets_dir = home.join(".config/openclaw-secrets");
        std::fs::create_dir_all(&secrets_dir).unwrap();
        let secrets = secrets_dir.join("secrets.env");
        std::fs::write(
            &secrets,
            format!("# keys\nANTHROPIC_API_KEY={SECRET_VALUE}\nOTHER_KEY='x$y'\n"),
        )
        .unwrap();
        chmod(&secrets, 0o600);
        chmod(&secrets_dir, 0o700);
        std::fs::create_dir_all(root.join("binds")).unwrap();
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        std::fs::copy(
            repo_file("binds/openclaw.yaml"),
            root.join("binds/openclaw.yaml"),
        )
        .unwrap();
        let ctx = LoadContext {
            home: home.clone(),
            env: BTreeMap::new(),
            uid: nix::unistd::getuid().as_raw(),
            host_cpus: 4,
        };
        Fixture {
            _tmp: tmp,
            root,
            home,
            ctx,
        }
    }

    fn manifest_path(&self) -> PathBuf {
        self.root.join("manifests/test.yaml")
    }

    fn bind_set_path(&self) -> PathBuf {
        self.root.join("binds/openclaw.yaml")
    }

    fn secrets_path(&self) -> PathBuf {
        self.home.join(".config/openclaw-secrets/secrets.env")
    }

    fn load(&self, text: &str) -> Result<Fortress, ManifestError> {
        std::fs::write(self.manifest_path(), text).unwrap();
        load(&self.manifest_path(), &self.ctx)
    }

    /// The problems of a manifest that must fail.
    fn problems(&self, text: &str) -> Vec<Problem> {
        match self.load(text) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(ManifestError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    /// A fortress that must load.
    fn fortress(&self, text: &str) -> Fortress {
        match self.load(text) {
            Ok(f) => f,
            Err(ManifestError::Invalid { problems, .. }) => {
                let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                panic!("unexpected problems:\n{}", list.join("\n"))
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A manifest with the repo's bind set, the fixture's secrets file, and `sandbox` appended to
/// the one sandbox's fields (each line indented by four spaces), then `top` at the top level.
fn manifest(sandbox: &str, top: &str) -> String {
    format!(
        "apiVersion: clw-fortress/v1
kind: Fortress
metadata: {{name: test}}
secrets: {{file: ~/.config/openclaw-secrets/secrets.env}}
bindSets: [../binds/openclaw.yaml]
defaults: {{image: openclaw-sandbox:bookworm-slim}}
sandboxes:
  - name: sbx
    bindSets: [openclaw]
{sandbox}
{top}
"
    )
}

/// Asserts that exactly one problem has this code, file and field, and returns it.
fn find<'a>(problems: &'a [Problem], code: ErrorCode, file: &Path, field: &str) -> &'a Problem {
    let hits: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.code == code && p.file == file && p.field == field)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "want one {code} at {}:{field}, got {problems:#?}",
        file.display()
    );
    hits[0]
}

#[test]
fn the_repo_manifest_and_bind_set_load_against_an_openclaw_home() {
    let fx = Fixture::new();
    let text = std::fs::read_to_string(repo_file("manifests/openclaw.yaml")).unwrap();
    let f = fx.fortress(&text);
    assert_eq!(f.name, "openclaw");
    assert_eq!(f.secrets_file, Some(fx.secrets_path()));
    assert_eq!(
        f.state_path,
        fx.home.join(".local/state/clw-fortress/state.db")
    );
    let sbx = &f.sandboxes[0];
    assert_eq!(sbx.name, "openclaw-sbx-main");
    assert_eq!(sbx.network, Network::None);
    assert_eq!(sbx.limits.memory, Some(8 << 30));
    assert_eq!(sbx.secret_env, vec!["ANTHROPIC_API_KEY".to_string()]);
    let oc = fx.home.join(".openclaw");
    assert_eq!(
        sbx.binds[0],
        Bind {
            source: oc.join("workspace"),
            target: PathBuf::from("/agent-workspace"),
            mode: Mode::Rw,
            create: false,
        }
    );
    // No target: the resolved source path.
    assert_eq!(sbx.binds[1].target, oc.join("media"));
    assert_eq!(sbx.binds.len(), 3);
    for secret in ["credentials", "agents", "state", "openclaw.json", ".env"] {
        assert!(
            sbx.binds
                .iter()
                .all(|b| !b.source.starts_with(oc.join(secret))),
            "{secret}"
        );
    }
    assert_eq!(f.bind_sets[0].deny.len(), 8);
    assert_eq!(f.openclaw_state_dir, Some(oc.clone()));
    assert_eq!(
        f.health[0].schedule,
        Schedule::Every(Duration::from_secs(180))
    );
    assert_eq!(
        f.health[0].restart,
        Some(RestartTarget::SystemdUnit {
            unit: "openclaw-gateway.service".into(),
            user: true
        })
    );
    assert_eq!(
        f.backups[0].keep,
        Keep {
            last: 7,
            daily: 7,
            weekly: 4
        }
    );
    assert_eq!(f.metrics.unwrap().listen.port(), 9477);
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
}

#[test]
fn built_in_defaults_fill_what_the_manifest_omits() {
    let fx = Fixture::new();
    let f = fx.fortress(&manifest("", ""));
    let s = &f.sandboxes[0];
    assert_eq!(s.user, "1000:1000");
    assert_eq!(s.network, Network::None);
    assert!(s.read_only_root && s.no_new_privileges && !s.allow_root);
    assert!(
        s.init,
        "the engine's init reaps orphans and passes SIGTERM on"
    );
    assert_eq!(
        s.tmpfs,
        BTreeMap::from([
            ("/run".to_string(), 16 << 20),
            ("/tmp".to_string(), 64 << 20)
        ])
    );
    assert_eq!(s.cap_drop, vec!["ALL".to_string()]);
    assert!(s.cap_add.is_empty());
    assert_eq!(
        s.seccomp,
        SeccompSource::Policy {
            policy: SeccompPolicy::Default,
            allow: vec![],
            deny: vec![]
        }
    );
    assert_eq!(
        s.limits,
        Limits {
            memory: Some(8 << 30),
            memory_swap: Some(8 << 30),
            cpus: Some(4.0),
            pids: Some(512)
        }
    );
}

#[test]
fn the_default_cpu_count_never_exceeds_the_host() {
    let mut fx = Fixture::new();
    fx.ctx.host_cpus = 2;
    let f = fx.fortress(&manifest("", ""));
    assert_eq!(f.sandboxes[0].limits.cpus, Some(2.0));
    assert!(f.warnings.is_empty());
}

#[test]
fn root_gets_the_system_state_path() {
    let mut fx = Fixture::new();
    fx.ctx.uid = 0;
    // The secrets file is owned by the test user, not by uid 0: drop it for this test.
    let text = manifest("", "").replace(
        "secrets: {file: ~/.config/openclaw-secrets/secrets.env}\n",
        "",
    );
    let f = fx.fortress(&text);
    assert_eq!(
        f.state_path,
        PathBuf::from("/var/lib/clw-fortress/state.db")
    );
}

#[test]
fn sandbox_settings_override_defaults_and_limits_merge_per_key() {
    let fx = Fixture::new();
    let text = manifest(
        "    image: other:1\n    network: bridge\n    limits: {cpus: 0.5}",
        "",
    )
    .replace(
        "defaults: {image: openclaw-sandbox:bookworm-slim}",
        "defaults: {image: base:1, limits: {memory: 1Gi, pids: 64}}",
    );
    let s = &fx.fortress(&text).sandboxes[0];
    assert_eq!(s.image, "other:1");
    assert!(s.init);
    let s = &fx
        .fortress(&text.replace(
            "    network: bridge\n",
            "    network: bridge\n    init: false\n",
        ))
        .sandboxes[0];
    assert!(!s.init, "a sandbox may run its image's own init");
    assert_eq!(s.network, Network::Bridge);
    assert_eq!(
        s.limits,
        Limits {
            memory: Some(1 << 30),
            memory_swap: Some(1 << 30),
            cpus: Some(0.5),
            pids: Some(64)
        }
    );
}

#[test]
fn a_sandbox_without_any_image_is_rejected() {
    let fx = Fixture::new();
    let text = manifest("", "").replace("defaults: {image: openclaw-sandbox:bookworm-slim}\n", "");
    let problems = fx.problems(&text);
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].image",
    );
}

// Rule 1.
#[test]
fn a_source_with_parent_components_is_rejected() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        "    binds:\n      - {source: ~/.openclaw/workspace/../credentials, target: /c, mode: ro}",
        "",
    ));
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    assert_eq!(p.value, "~/.openclaw/workspace/../credentials");
    assert!(p.message.contains(".."), "{}", p.message);
}

// Rule 1 + 3: the real path is what is checked.
#[test]
fn a_symlink_to_a_denied_dir_is_caught() {
    let fx = Fixture::new();
    let oc = fx.home.join(".openclaw");
    std::os::unix::fs::symlink(oc.join("credentials"), oc.join("workspace/creds")).unwrap();
    let problems = fx.problems(&manifest(
        "    binds:\n      - {source: ~/.openclaw/workspace/creds, target: /creds, mode: ro}",
        "",
    ));
    let p = find(
        &problems,
        ErrorCode::BindForbidden,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    assert!(p.message.contains("really"), "{}", p.message);
}

// Rule 2.
#[test]
fn a_missing_source_is_rejected_unless_create_is_set() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        "    binds:\n      - {source: ~/nope, target: /nope, mode: rw}",
        "",
    ));
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    let f = fx.fortress(&manifest(
        "    binds:\n      - {source: ~/nope/deeper, target: /nope, mode: rw, create: true}",
        "",
    ));
    let b = f.sandboxes[0].binds.last().unwrap();
    assert_eq!(b.source, fx.home.join("nope/deeper"));
    assert!(b.create);
}

// Rule 3.
#[test]
fn forbidden_sources_are_rejected_in_any_mode() {
    let fx = Fixture::new();
    let cases = [
        "/",
        "/etc",
        "/etc/ssl",
        "/proc",
        "/sys/fs/cgroup",
        "/dev",
        "/boot",
        "/root",
        "/run",
        "/var/run",
        "/var/run/docker.sock",
        "/run/podman/podman.sock",
        "/var/lib/docker",
        "/var/lib/containers/storage",
        "/var",
        "~/.openclaw",
        "~/.openclaw/credentials",
        "~/.openclaw/agents",
        "~/.openclaw/state",
        "~/.openclaw/.env",
        "~/.openclaw/openclaw.json",
        "~/.openclaw/secrets.env",
        "~/.config/openclaw-secrets",
        "~/.config/openclaw-secrets/secrets.env",
        "~",
    ];
    for source in cases {
        for mode in ["ro", "rw"] {
            let text = manifest(
                &format!(
                    "    binds:\n      - {{source: \"{source}\", target: /x, mode: {mode}, create: true}}"
                ),
                "",
            );
            let problems = fx.problems(&text);
            let p = find(
                &problems,
                ErrorCode::BindForbidden,
                &fx.manifest_path(),
                "sandboxes[0].binds[0].source",
            );
            assert_eq!(p.value, source);
        }
    }
}

#[test]
fn an_engine_socket_anywhere_is_rejected() {
    let fx = Fixture::new();
    let sock = fx.home.join("podman.sock");
    std::fs::write(&sock, "").unwrap();
    let mut fx = fx;
    fx.ctx.env.insert(
        "XDG_RUNTIME_DIR".into(),
        fx.home.join("rt").display().to_string(),
    );
    std::fs::create_dir_all(fx.home.join("rt/podman")).unwrap();
    for source in ["~/podman.sock", "~/rt", "~/rt/podman"] {
        let problems = fx.problems(&manifest(
            &format!("    binds:\n      - {{source: {source}, target: /s, mode: ro}}"),
            "",
        ));
        find(
            &problems,
            ErrorCode::BindForbidden,
            &fx.manifest_path(),
            "sandboxes[0].binds[0].source",
        );
    }
}

#[test]
fn parent_bind_exposing_secrets_is_rejected() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        "    binds:\n      - {source: ~/.config, target: /cfg, mode: ro}",
        "",
    ));
    let p = find(
        &problems,
        ErrorCode::BindForbidden,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    assert!(
        p.message.contains("a parent bind would expose it"),
        "{}",
        p.message
    );
    // Rule 5 as well: the file is inside a bind source, so it is not read.
    find(
        &problems,
        ErrorCode::SecretsInsecure,
        &fx.manifest_path(),
        "secrets.file",
    );
}

#[test]
fn a_forbidden_bind_in_a_bind_set_names_the_bind_set_file() {
    let fx = Fixture::new();
    let text = std::fs::read_to_string(fx.bind_set_path())
        .unwrap()
        .replace(
            "{source: media, mode: rw, create: true}",
            "{source: ., target: /all, mode: ro}",
        );
    std::fs::write(fx.bind_set_path(), text).unwrap();
    let problems = fx.problems(&manifest("", ""));
    let p = find(
        &problems,
        ErrorCode::BindForbidden,
        &fx.bind_set_path(),
        "binds[1].source",
    );
    assert_eq!(p.value, ".");
}

// Rule 4.
#[test]
fn bad_or_duplicate_targets_are_rejected() {
    let fx = Fixture::new();
    let cases = [
        "relative/path",
        "/",
        "/proc/self",
        "/sys",
        "/dev/shm",
        "/agent-workspace",
        "/tmp",
    ];
    for target in cases {
        let problems = fx.problems(&manifest(
            &format!("    binds:\n      - {{source: ~/.openclaw/workspace, target: \"{target}\", mode: ro}}"),
            "",
        ));
        find(
            &problems,
            ErrorCode::ConfigInvalid,
            &fx.manifest_path(),
            "sandboxes[0].binds[0].target",
        );
    }
}

// Rule 5.
#[test]
fn an_open_or_misowned_secrets_file_is_insecure_and_not_read() {
    let cases: [(u32, u32, u32); 3] = [(0o640, 0o700, 0), (0o600, 0o755, 0), (0o600, 0o700, 1)];
    for (file_mode, dir_mode, uid_offset) in cases {
        let mut fx = Fixture::new();
        fx.ctx.uid += uid_offset;
        chmod(&fx.secrets_path(), file_mode);
        chmod(fx.secrets_path().parent().unwrap(), dir_mode);
        // A secretEnv name missing from the file would be a problem if the file were read.
        let problems = fx.problems(&manifest("    secretEnv: [NOT_IN_FILE]", ""));
        let p = find(
            &problems,
            ErrorCode::SecretsInsecure,
            &fx.manifest_path(),
            "secrets.file",
        );
        assert_eq!(p.value, "~/.config/openclaw-secrets/secrets.env");
        assert!(
            !problems
                .iter()
                .any(|p| p.field.starts_with("sandboxes[0].secretEnv")),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
    }
}

#[test]
fn a_secrets_file_inside_a_bind_source_is_insecure() {
    let fx = Fixture::new();
    let inside = fx.home.join(".openclaw/workspace/keys");
    std::fs::create_dir(&inside).unwrap();
    chmod(&inside, 0o700);
    std::fs::copy(fx.secrets_path(), inside.join("secrets.env")).unwrap();
    chmod(&inside.join("secrets.env"), 0o600);
    let text = manifest("", "").replace(
        "~/.config/openclaw-secrets/secrets.env",
        "~/.openclaw/workspace/keys/secrets.env",
    );
    let problems = fx.problems(&text);
    find(
        &problems,
        ErrorCode::SecretsInsecure,
        &fx.manifest_path(),
        "secrets.file",
    );
}

// Rule 6.
#[test]
fn a_secret_env_name_missing_from_the_secrets_file_is_rejected() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        "    secretEnv: [ANTHROPIC_API_KEY, ANTHROPIC_APIKEY]",
        "",
    ));
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].secretEnv[1]",
    );
    assert!(
        p.message.contains("did you mean `ANTHROPIC_API_KEY`"),
        "{}",
        p.message
    );
}

#[test]
fn a_plain_env_value_equal_to_a_secret_is_rejected_without_showing_it() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        &format!("    env: {{TOKEN: {SECRET_VALUE}}}"),
        "",
    ));
    find(
        &problems,
        ErrorCode::SecretsInsecure,
        &fx.manifest_path(),
        "sandboxes[0].env.TOKEN",
    );
    let shown = format!(
        "{problems:?} {}",
        problems.iter().map(|p| p.to_string()).collect::<String>()
    );
    assert!(!shown.contains(SECRET_VALUE), "{shown}");
}

// Rule 7.
#[test]
fn host_networking_and_unconfined_seccomp_are_rejected() {
    let fx = Fixture::new();
    let cases = [
        ("    network: host", "sandboxes[0].network"),
        ("    network: container:gateway", "sandboxes[0].network"),
        ("    seccomp: unconfined", "sandboxes[0].seccomp.policy"),
        (
            "    seccomp: {policy: unconfined}",
            "sandboxes[0].seccomp.policy",
        ),
        (
            "    seccomp: {profile: unconfined}",
            "sandboxes[0].seccomp.profile",
        ),
    ];
    for (lines, field) in cases {
        let problems = fx.problems(&manifest(lines, ""));
        find(
            &problems,
            ErrorCode::ConfigInvalid,
            &fx.manifest_path(),
            field,
        );
    }
}

#[test]
fn a_seccomp_profile_resolves_against_the_manifest_and_excludes_a_policy() {
    let fx = Fixture::new();
    std::fs::write(fx.root.join("manifests/custom.json"), "{}").unwrap();
    let f = fx.fortress(&manifest("    seccomp: {profile: ./custom.json}", ""));
    assert_eq!(
        f.sandboxes[0].seccomp,
        SeccompSource::Profile(fx.root.join("manifests/custom.json"))
    );
    let problems = fx.problems(&manifest(
        "    seccomp: {profile: ./custom.json, policy: strict}",
        "",
    ));
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].seccomp",
    );
}

// Rule 8.
#[test]
fn root_users_are_rejected_unless_allow_root_is_set() {
    let fx = Fixture::new();
    for user in ["0", "\"0:0\"", "root", "root:root", "\"0:1000\""] {
        let problems = fx.problems(&manifest(&format!("    user: {user}"), ""));
        find(
            &problems,
            ErrorCode::ConfigInvalid,
            &fx.manifest_path(),
            "sandboxes[0].user",
        );
        // Root without DAC_OVERRIDE (capDrop: ALL) could not write the uid-1000 workspace:
        // the rw rule holds root to the mode bits too; granting it makes the bind writable.
        fx.fortress(&manifest(
            &format!("    user: {user}\n    allowRoot: true\n    capAdd: [DAC_OVERRIDE]"),
            "",
        ));
    }
    let text = manifest("", "").replace(
        "defaults: {image: openclaw-sandbox:bookworm-slim}",
        "defaults: {image: i, user: root}",
    );
    find(
        &fx.problems(&text),
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "defaults.user",
    );
}

#[test]
fn an_rw_bind_the_sandbox_user_cannot_write_is_refused_naming_owner_and_mode() {
    let fx = Fixture::new();
    let ws = fx.home.join(".openclaw/workspace");
    std::os::unix::fs::chown(&ws, Some(0), Some(0)).unwrap();
    chmod(&ws, 0o755);
    // A problem of the host, not of the manifest: refused by the commands that mount
    // (validate, plan, apply), so verify and the agent still act on the running sandbox.
    let f = fx.fortress(&manifest("", ""));
    let p = find(
        &f.tree_problems,
        ErrorCode::ConfigInvalid,
        &fx.root.join("binds/openclaw.yaml"),
        "binds[0].mode",
    );
    assert!(p.message.contains("runs as 1000:1000"), "{}", p.message);
    assert!(
        p.message.contains("owned by 0:0 with mode 0755"),
        "{}",
        p.message
    );
    // Group-writable for the sandbox's group is enough.
    std::os::unix::fs::chown(&ws, Some(0), Some(1000)).unwrap();
    chmod(&ws, 0o775);
    assert!(fx.fortress(&manifest("", "")).tree_problems.is_empty());
}

#[test]
fn the_owner_sets_the_default_sandbox_user_and_an_unknown_owner_is_named() {
    let fx = Fixture::new();
    // root's uid:gid is 0:0: the default user becomes root, which rule 8 then refuses, naming
    // the default it came from.
    let text = manifest("", "").replace(
        "metadata: {name: test}",
        "metadata: {name: test, owner: root}",
    );
    let problems = fx.problems(&text);
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "defaults.user",
    );
    assert_eq!(p.value, "0:0");
    let text = manifest("", "").replace(
        "metadata: {name: test}",
        "metadata: {name: test, owner: no-such-user-clw}",
    );
    let problems = fx.problems(&text);
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "metadata.owner",
    );
    assert_eq!(p.value, "no-such-user-clw");
}

// Rule 9.
#[test]
fn limits_below_their_minimum_are_rejected() {
    let fx = Fixture::new();
    let cases = [
        ("{memory: 5Mi}", "sandboxes[0].limits.memory"),
        ("{memory: 8g}", "sandboxes[0].limits.memory"),
        ("{pids: 7}", "sandboxes[0].limits.pids"),
        ("{cpus: 0}", "sandboxes[0].limits.cpus"),
        ("{cpus: -1}", "sandboxes[0].limits.cpus"),
        (
            "{memory: 1Gi, memorySwap: 512Mi}",
            "sandboxes[0].limits.memorySwap",
        ),
    ];
    for (limits, field) in cases {
        let problems = fx.problems(&manifest(&format!("    limits: {limits}"), ""));
        find(
            &problems,
            ErrorCode::ConfigInvalid,
            &fx.manifest_path(),
            field,
        );
    }
    let text = manifest("", "").replace(
        "defaults: {image: openclaw-sandbox:bookworm-slim}",
        "defaults: {image: i, limits: {memory: 1Mi}}",
    );
    find(
        &fx.problems(&text),
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "defaults.limits.memory",
    );
}

#[test]
fn cpus_above_the_host_count_are_a_warning_not_a_problem() {
    let fx = Fixture::new();
    let f = fx.fortress(&manifest("    limits: {cpus: 64}", ""));
    assert_eq!(f.sandboxes[0].limits.cpus, Some(64.0));
    assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    assert!(f.warnings[0].contains("sandboxes[0].limits.cpus"));
}

// Rule 10.
#[test]
fn duplicate_or_invalid_names_and_ambiguous_selectors_are_rejected() {
    let fx = Fixture::new();
    let dup = manifest("", "").replace("sandboxes:\n", "sandboxes:\n  - name: sbx\n");
    find(
        &fx.problems(&dup),
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[1].name",
    );

    let bad_name = manifest("", "").replace("- name: sbx", "- name: -bad/name");
    find(
        &fx.problems(&bad_name),
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].name",
    );

    let bad_meta = manifest("", "").replace("{name: test}", "{name: Test_Fortress}");
    find(
        &fx.problems(&bad_meta),
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "metadata.name",
    );

    for selector in ["{label: a=1, namePrefix: b-}", "{}"] {
        let text = manifest("", &format!("adopt:\n  - selector: {selector}"));
        find(
            &fx.problems(&text),
            ErrorCode::ConfigInvalid,
            &fx.manifest_path(),
            "adopt[0].selector",
        );
    }
    let f = fx.fortress(&manifest(
        "",
        "adopt:\n  - selector: {namePrefix: openclaw-sbx-}\n    limits: {memory: 1Gi}",
    ));
    assert_eq!(
        f.adopt[0].selector,
        Selector::NamePrefix("openclaw-sbx-".into())
    );
    assert_eq!(f.adopt[0].limits.memory_swap, Some(1 << 30));
    assert_eq!(f.adopt[0].limits.pids, None);
}

#[test]
fn every_problem_is_reported_at_once() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        "    user: root
    network: host
    limits: {memory: 1Mi, pids: 2}
    binds:
      - {source: /etc, target: /etc-host, mode: ro}
      - {source: ~/.openclaw/workspace, target: /proc/x, mode: ro}",
        "adopt:\n  - selector: {}",
    ));
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for want in [
        "sandboxes[0].user",
        "sandboxes[0].network",
        "sandboxes[0].limits.memory",
        "sandboxes[0].limits.pids",
        "sandboxes[0].binds[0].source",
        "sandboxes[0].binds[1].target",
        "adopt[0].selector",
    ] {
        assert!(fields.contains(&want), "{want} missing from {fields:?}");
    }
}

#[test]
fn unknown_fields_report_line_and_column() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest("    readOnlyRooot: true", ""));
    assert_eq!(problems.len(), 1);
    let p = &problems[0];
    assert_eq!(p.code, ErrorCode::ConfigInvalid);
    assert_eq!(p.file, fx.manifest_path());
    assert_eq!(p.field, "sandboxes[0].readOnlyRooot");
    assert_eq!(p.location, Some((10, 5)));
    assert!(p.message.contains("unknown field"), "{}", p.message);
}

#[test]
fn type_errors_in_a_bind_set_name_its_file_and_position() {
    let fx = Fixture::new();
    let text = std::fs::read_to_string(fx.bind_set_path())
        .unwrap()
        .replace(
            "{source: media, mode: rw, create: true}",
            "{source: media, mode: readonly}",
        );
    std::fs::write(fx.bind_set_path(), text).unwrap();
    let problems = fx.problems(&manifest("", ""));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].file, fx.bind_set_path());
    assert_eq!(problems[0].field, "binds[1].mode");
    assert!(problems[0].location.is_some());
}

#[test]
fn a_file_of_the_wrong_kind_or_version_is_rejected() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest("", "").replace("kind: Fortress", "kind: BindSet"));
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "kind",
    );
    let problems = fx.problems(&manifest("", "").replace("clw-fortress/v1", "clw-fortress/v2"));
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "apiVersion",
    );
}

#[test]
fn an_unknown_bind_set_name_is_rejected_with_a_suggestion() {
    let fx = Fixture::new();
    let problems =
        fx.problems(&manifest("", "").replace("bindSets: [openclaw]", "bindSets: [openclow]"));
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].bindSets[0]",
    );
    assert!(
        p.message.contains("did you mean `openclaw`"),
        "{}",
        p.message
    );
}

#[test]
fn five_field_cron_and_remote_insecure_tls_are_rejected() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        "",
        "schedules: {limits: \"*/5 * * * *\"}
health:
  - name: remote
    http: {url: https://example.com/health, insecureTls: true}
    cron: \"0 */3 * * * *\"",
    ));
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "schedules.limits",
    );
    assert!(p.message.contains("0 */5 * * * *"), "{}", p.message);
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "health[0].http.insecureTls",
    );
    let f = fx.fortress(&manifest(
        "",
        "schedules: {verify: \"@daily\"}
health:
  - name: local
    http: {url: \"https://[::1]:18789/health\", insecureTls: true}
    every: 30s
  - name: box
    exec: {container: sbx, command: [\"true\"]}
    cron: \"0 */3 * * * *\"",
    ));
    assert_eq!(f.schedules.verify.as_deref(), Some("@daily"));
    let h = &f.health[0];
    assert_eq!((h.failures, h.quarantine_restarts), (3, 5));
    assert_eq!(h.backoff_initial, Duration::from_secs(10));
    assert_eq!(h.backoff_max, Duration::from_secs(300));
    assert_eq!(h.quarantine_within, Duration::from_secs(1800));
    assert!(matches!(h.probe, Probe::Http { timeout, .. } if timeout == Duration::from_secs(5)));
    assert!(
        matches!(f.health[1].probe, Probe::Exec { timeout, .. } if timeout == Duration::from_secs(10))
    );
}

#[test]
fn variables_expand_and_unset_ones_are_problems() {
    let mut fx = Fixture::new();
    fx.ctx
        .env
        .insert("OC".into(), fx.home.join(".openclaw").display().to_string());
    let f = fx.fortress(&manifest(
        "    binds:\n      - {source: \"${OC}/workspace\", target: /w2, mode: ro}",
        "",
    ));
    assert_eq!(
        f.sandboxes[0].binds.last().unwrap().source,
        fx.home.join(".openclaw/workspace")
    );
    let problems = fx.problems(&manifest(
        "    binds:\n      - {source: \"${UNSET_VAR}/x\", target: /w2, mode: ro}",
        "",
    ));
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
}

/// A bind of `source` (rw) appended to the sandbox.
fn with_bind(source: &str, mode: &str, extra: &str) -> String {
    manifest(
        &format!("    binds:\n      - {{source: \"{source}\", target: /x, mode: {mode}{extra}}}"),
        "",
    )
}

#[test]
fn the_fortresss_own_files_are_forbidden_sources() {
    let fx = Fixture::new();
    let own = fx.root.join("own");
    std::fs::create_dir_all(own.join("backups")).unwrap();
    std::fs::write(own.join("state.db"), "db").unwrap();
    let state = format!("state: {{path: \"{}\"}}", own.join("state.db").display());
    let backups = format!(
        "backups:\n  - name: b\n    sources: [\"{}\"]\n    dest: \"{}\"\n    schedule: \"@daily\"\n    keep: {{last: 1}}",
        own.join("state.db").display(),
        own.join("backups").display()
    );
    let cases = [
        (own.join("state.db"), "the state database", state.as_str()),
        (own.clone(), "the state database", state.as_str()),
        (
            own.join("profiles"),
            "the generated seccomp profiles",
            state.as_str(),
        ),
        (
            own.join("backups"),
            "a backup destination",
            backups.as_str(),
        ),
        (fx.root.join("manifests"), "this manifest", ""),
        (fx.root.join("binds/openclaw.yaml"), "a bind set file", ""),
    ];
    for (source, why, top) in cases {
        std::fs::create_dir_all(own.join("profiles")).unwrap();
        let text = manifest(
            &format!(
                "    binds:\n      - {{source: \"{}\", target: /x, mode: ro}}",
                source.display()
            ),
            top,
        );
        let problems = fx.problems(&text);
        let p = find(
            &problems,
            ErrorCode::BindForbidden,
            &fx.manifest_path(),
            "sandboxes[0].binds[0].source",
        );
        assert!(p.message.contains(why), "{source:?}: {}", p.message);
    }
}

#[test]
fn a_source_under_a_read_write_bind_is_refused_naming_both() {
    let fx = Fixture::new();
    let ws = fx.home.join(".openclaw/workspace");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    let text = manifest(
        &format!(
            "    binds:\n      - {{source: \"{}\", target: /sub, mode: ro}}",
            ws.join("sub").display()
        ),
        "",
    );
    let problems = fx.problems(&text);
    let p = find(
        &problems,
        ErrorCode::BindForbidden,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    assert!(
        p.message.contains("mounts read-write") && p.message.contains("binds[0]"),
        "{}",
        p.message
    );
}

#[test]
fn hard_links_to_the_secrets_file_and_sockets_in_a_bound_tree_are_refused() {
    let fx = Fixture::new();
    let dir = fx.root.join("shared");
    std::fs::create_dir_all(dir.join("deep")).unwrap();
    std::fs::hard_link(fx.secrets_path(), dir.join("deep/notes.txt")).unwrap();
    let source = dir.display().to_string();
    // Found, and kept apart from the load's own problems: the mounting commands refuse them.
    let f = fx.fortress(&with_bind(&source, "ro", ""));
    let p = find(
        &f.tree_problems,
        ErrorCode::BindForbidden,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    assert!(
        p.message.contains("hard link to the secrets file"),
        "{}",
        p.message
    );

    std::fs::remove_file(dir.join("deep/notes.txt")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(dir.join("deep/relay")).unwrap();
    let f = fx.fortress(&with_bind(&source, "ro", ""));
    let p = find(
        &f.tree_problems,
        ErrorCode::BindForbidden,
        &fx.manifest_path(),
        "sandboxes[0].binds[0].source",
    );
    assert!(p.message.contains("unix socket"), "{}", p.message);
    // Declared, it is the user's decision.
    let f = fx.fortress(&with_bind(&source, "ro", ", allowSockets: true"));
    assert!(f.tree_problems.is_empty(), "{:?}", f.tree_problems);
}

#[test]
fn egress_on_a_sandbox_and_an_adopt_rule_parses_into_a_typed_policy() {
    use crate::egress::policy::{AllowEntry, DestPattern};
    let fx = Fixture::new();
    let f = fx.fortress(&manifest(
        r#"    egress:
      allow: ["api.anthropic.com:443", "PyPI.org", "*.pythonhosted.org:443", "10.0.0.5:5432", "10.1.0.0/16:443", "[fd00::/8]:443"]
      hosts: {Internal.Example.: 10.0.0.7}"#,
        "adopt:\n  - selector: {namePrefix: openclaw-sbx-}\n    egress: {allow: [pypi.org]}",
    ));
    let egress = f.sandboxes[0].egress.as_ref().expect("egress");
    let shown: Vec<String> = egress.allow.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "api.anthropic.com:443",
            "pypi.org",
            "*.pythonhosted.org:443",
            "10.0.0.5:5432",
            "10.1.0.0/16:443",
            "[fd00::/8]:443"
        ]
    );
    assert_eq!(
        egress.allow[1],
        AllowEntry {
            dest: DestPattern::Name("pypi.org".into()),
            port: None
        }
    );
    assert_eq!(
        egress.hosts.get("internal.example"),
        Some(&"10.0.0.7".parse().unwrap())
    );
    assert_eq!(f.adopt[0].egress.as_ref().unwrap().allow.len(), 1);
}

#[test]
fn a_sandbox_egress_block_replaces_the_defaults_one_as_a_whole() {
    let fx = Fixture::new();
    let f = fx.fortress(
        "apiVersion: clw-fortress/v1
kind: Fortress
metadata: {name: test}
defaults:
  image: img
  egress: {allow: [pypi.org]}
sandboxes:
  - name: inherits
  - name: own
    egress: {allow: ['api.anthropic.com:443']}
  - name: plain
",
    );
    let allow = |i: usize| -> Vec<String> {
        f.sandboxes[i]
            .egress
            .as_ref()
            .unwrap()
            .allow
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    assert_eq!(allow(0), ["pypi.org"]);
    assert_eq!(allow(1), ["api.anthropic.com:443"]);
    assert_eq!(allow(2), ["pypi.org"]);
    assert_eq!(f.sandboxes[0].network, Network::None);
}

#[test]
fn every_bad_egress_entry_is_reported_at_once_with_its_field_and_value() {
    let fx = Fixture::new();
    let bad = [
        ("*", "every destination"),
        ("*.com", "too broad"),
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
        ("pypi.org:99999", "not a port"),
        ("10.1.2.0/33", "prefix length"),
        ("bad_label.example", "label"),
        ("bücher.example", "punycode"),
        ("", "empty"),
    ];
    let list: Vec<String> = bad.iter().map(|(e, _)| format!("{e:?}")).collect();
    let problems = fx.problems(&manifest(
        &format!(
            "    egress:\n      allow: [{}]\n      hosts: {{'*.wild.example': 10.0.0.1, ok.example: not-an-ip}}",
            list.join(", ")
        ),
        "adopt:\n  - selector: {namePrefix: x-}\n    egress: {allow: []}",
    ));
    let file = fx.manifest_path();
    for (i, (entry, says)) in bad.iter().enumerate() {
        let p = find(
            &problems,
            ErrorCode::ConfigInvalid,
            &file,
            &format!("sandboxes[0].egress.allow[{i}]"),
        );
        assert_eq!(p.value, *entry);
        assert!(p.message.contains(says), "{entry}: {}", p.message);
    }
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &file,
        "sandboxes[0].egress.hosts.*.wild.example",
    );
    assert!(p.message.contains("wildcard"), "{}", p.message);
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &file,
        "sandboxes[0].egress.hosts.ok.example",
    );
    assert_eq!(p.value, "not-an-ip");
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &file,
        "adopt[0].egress.allow",
    );
    assert!(p.message.contains("empty"), "{}", p.message);
    assert_eq!(problems.len(), bad.len() + 3, "{problems:#?}");
}

#[test]
fn egress_with_a_bridge_or_host_network_is_rejected() {
    let fx = Fixture::new();
    let file = fx.manifest_path();
    let problems = fx.problems(&manifest(
        "    network: bridge\n    egress: {allow: [pypi.org]}",
        "",
    ));
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &file,
        "sandboxes[0].egress",
    );
    assert!(p.message.contains("bypass the proxy"), "{}", p.message);
    // `host` is refused by rule 7 whatever else is set.
    let problems = fx.problems(&manifest(
        "    network: host\n    egress: {allow: [pypi.org]}",
        "",
    ));
    find(
        &problems,
        ErrorCode::ConfigInvalid,
        &file,
        "sandboxes[0].network",
    );
}

#[test]
fn a_brokered_secret_env_entry_parses_beside_a_plain_name() {
    use crate::broker::Place;
    use crate::egress::Dest;
    let fx = Fixture::new();
    let f = fx.fortress(&manifest(
        r#"    egress: {allow: ["api.anthropic.com:443", "10.0.0.5:8443"]}
    secretEnv:
      - name: ANTHROPIC_API_KEY
        broker: {hosts: ["API.anthropic.com:443", "10.0.0.5:8443"], in: [header, body]}"#,
        "",
    ));
    let sbx = &f.sandboxes[0];
    assert_eq!(sbx.secret_env, ["ANTHROPIC_API_KEY"]);
    let b = &sbx.broker["ANTHROPIC_API_KEY"];
    assert_eq!(
        b.hosts,
        [
            (Dest::Name("api.anthropic.com".into()), 443),
            (Dest::Ip("10.0.0.5".parse().unwrap()), 8443)
        ]
    );
    assert_eq!(
        b.places.iter().copied().collect::<Vec<_>>(),
        [Place::Header, Place::Body]
    );
    let plain = fx.fortress(&manifest("    secretEnv: [ANTHROPIC_API_KEY]", ""));
    assert!(plain.sandboxes[0].broker.is_empty());
}

#[test]
fn every_bad_broker_entry_is_reported_at_once_with_its_field_and_value() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        r#"    egress: {allow: ["api.anthropic.com:443", "*.example.com:443"]}
    secretEnv:
      - name: ANTHROPIC_API_KEY
        broker: {hosts: ["api.anthropic.com:80", "a.example.com:443", "*.example.com:443", "api.anthropic.com"], in: [header, cookie]}
      - name: OTHER_KEY
        broker: {hosts: [], in: []}
      - name: NOT_IN_FILE
        broker: {hosts: ["api.anthropic.com:443"], in: [query]}"#,
        "",
    ));
    let file = fx.manifest_path();
    let b = "sandboxes[0].secretEnv[0].broker";
    for (field, value, words) in [
        (format!("{b}.hosts[0]"), "api.anthropic.com:80", "not on"),
        (format!("{b}.hosts[2]"), "*.example.com:443", "wildcard"),
        (format!("{b}.hosts[3]"), "api.anthropic.com", "port"),
        (format!("{b}.in[1]"), "cookie", "header, query or body"),
        (
            "sandboxes[0].secretEnv[1].broker.hosts".into(),
            "[]",
            "host:port",
        ),
        ("sandboxes[0].secretEnv[1].broker.in".into(), "[]", "header"),
        (
            "sandboxes[0].secretEnv[1].name".into(),
            "OTHER_KEY",
            "too short",
        ),
        (
            "sandboxes[0].secretEnv[2].name".into(),
            "NOT_IN_FILE",
            "not in the secrets file",
        ),
    ] {
        let p = find(&problems, ErrorCode::ConfigInvalid, &file, &field);
        assert_eq!(p.value, value, "{field}");
        assert!(p.message.contains(words), "{field}: {}", p.message);
    }
    // A wildcard entry on the allow-list covers an exact brokered host.
    assert!(!problems.iter().any(|p| p.field == format!("{b}.hosts[1]")));
    // No value of the secrets file is shown.
    assert!(!format!("{problems:?}").contains(SECRET_VALUE));
}

#[test]
fn a_brokered_secret_without_an_egress_allow_list_is_rejected() {
    let fx = Fixture::new();
    let problems = fx.problems(&manifest(
        r#"    secretEnv:
      - {name: ANTHROPIC_API_KEY, broker: {hosts: ["api.anthropic.com:443"], in: [header]}}"#,
        "",
    ));
    let p = find(
        &problems,
        ErrorCode::ConfigInvalid,
        &fx.manifest_path(),
        "sandboxes[0].secretEnv[0].broker",
    );
    assert!(p.message.contains("no egress allow-list"), "{}", p.message);
}
