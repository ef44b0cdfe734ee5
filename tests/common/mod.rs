//! Harness shared by the integration tests that talk to a real engine (`mod common;`).
//!
//! It owns: finding and checking the engine, unique names, cleanup guards, and throwaway
//! fortresses (`Fixture`) in a temporary directory with a fake OpenClaw home. It must not use
//! the library's own engine code: it drives the `docker` CLI, so a bug in the code under test
//! cannot hide itself from the tests. Tests run in parallel threads, so nothing here is global
//! except an atomic counter and the cached engine check.
//!
//! Every name it hands out starts with the caller's prefix; `Fixture` fortresses start with
//! `clwt-`, which `make clean-containers` relies on to find leftovers.

#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The image every fixture sandbox runs (built by `scripts/build-fixtures.sh`).
pub const FIXTURE_IMAGE: &str = "clw-fixture:busybox";

/// Which engine answers at [`engine_socket`]: the test matrix runs the same tests on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Docker,
    Podman,
}

/// Asked of the engine's `/version` (a component named "Podman Engine"), like the product does.
pub fn engine_flavor() -> Flavor {
    static FLAVOR: OnceLock<Flavor> = OnceLock::new();
    *FLAVOR.get_or_init(|| {
        let out = docker(&["version", "--format", "{{json .Server.Components}}"]);
        if String::from_utf8_lossy(&out.stdout).contains("Podman") {
            Flavor::Podman
        } else {
            Flavor::Docker
        }
    })
}

/// Loosens a container's pids limit behind clw-fortress's back, the way an operator or an
/// attacker with socket access would: `docker update` on Docker; on Podman 4.3, whose compat
/// API has no update endpoint and whose CLI has no `--pids-limit`, libpod's update endpoint.
pub fn loosen_pids_limit(name: &str, limit: i64) {
    loosen_limits(name, None, limit);
}

/// [`loosen_pids_limit`], and the memory limit (with swap equal to it) when `memory` is given.
pub fn loosen_limits(name: &str, memory: Option<i64>, pids: i64) {
    match engine_flavor() {
        Flavor::Docker => {
            let mut args = vec!["update".to_string()];
            if let Some(m) = memory {
                args.extend(["--memory".into(), m.to_string()]);
                args.extend(["--memory-swap".into(), m.to_string()]);
            }
            args.extend(["--pids-limit".into(), pids.to_string(), name.to_string()]);
            docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        Flavor::Podman => {
            let memory = memory
                .map(|m| format!("\"memory\":{{\"limit\":{m},\"swap\":{m}}},"))
                .unwrap_or_default();
            let body = format!("{{{memory}\"pids\":{{\"limit\":{pids}}}}}");
            let (status, reply) = unix_http(
                "POST",
                &format!("/v4.0.0/libpod/containers/{name}/update"),
                &body,
            );
            assert!(
                status < 300,
                "libpod update of {name} answered {status}: {reply}"
            );
        }
    }
}

/// One HTTP/1.0 request over the engine's unix socket, with nothing but std: the harness
/// stays independent of the product's own engine code.
pub fn unix_http(method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let sock = engine_socket();
    let sock = sock.strip_prefix("unix://").expect("a unix engine socket");
    let mut s =
        std::os::unix::net::UnixStream::connect(sock).expect("connect to the engine socket");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: engine\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write the request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read the reply");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

/// The limits the kernel enforces for a container, read from its own cgroup inside it
/// (v1 or v2): `(memory bytes, cpu quota/period as nano-cpus, pids)`. Unlimited reads as -1.
pub fn cgroup_limits(name: &str) -> (i64, i64, i64) {
    let script = r#"
        if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
          echo "$(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max) $(cat /sys/fs/cgroup/pids.max)"
        else
          echo "$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) $(cat /sys/fs/cgroup/pids/pids.max)"
        fi"#;
    let out = docker_ok(&["exec", name, "sh", "-c", script]);
    let f: Vec<&str> = out.split_whitespace().collect();
    let num = |s: &str| -> i64 { s.parse().unwrap_or(-1) };
    let (mem, quota, period, pids) = (num(f[0]), num(f[1]), num(f[2]), num(f[3]));
    let mem = if mem >= 1 << 62 { -1 } else { mem };
    let nano = if quota > 0 && period > 0 {
        quota * 1_000_000_000 / period
    } else {
        -1
    };
    (mem, nano, pids)
}

/// The label put on containers a test creates directly (not through `clw-fortress`).
pub const TEST_LABEL: &str = "clw-test=1";

/// The engine socket the tests use: `$DOCKER_HOST`, else the Docker default.
pub fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Panics unless an engine answers at [`engine_socket`]. Real-engine tests call this first:
/// a missing engine is a failure, never a silent skip.
pub fn require_engine() {
    static CHECK: OnceLock<Result<String, String>> = OnceLock::new();
    let result = CHECK.get_or_init(|| {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", engine_socket())
            .output();
        match out {
            Ok(o) if o.status.success() && !o.stdout.trim_ascii().is_empty() => {
                Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(format!("cannot run the docker CLI: {e}")),
        }
    });
    if let Err(why) = result {
        panic!(
            "no container engine answers at {} ({why}).\n\
             These are real-engine tests and do not skip: run `scripts/engine-up.sh` \
             and `scripts/build-fixtures.sh` (or `make engine`), then run the tests again.",
            engine_socket()
        );
    }
}

/// The server version of the engine (after [`require_engine`]).
pub fn engine_version() -> String {
    require_engine();
    docker_ok(&["version", "--format", "{{.Server.Version}}"])
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random-enough 64-bit value: std's `RandomState` is seeded per process from the OS, mixed
/// with the clock and a counter so two calls never agree. Not for cryptography; for names and
/// test secrets that must not collide or be guessable from the test source.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A unique name valid for a container and a fortress (`[a-z0-9-]`, at most 40 chars, starting
/// with a letter or digit): the cleaned prefix, then pid, counter and a random suffix.
pub fn unique(prefix: &str) -> String {
    let mut clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean = clean.trim_matches('-').to_string();
    if clean.is_empty() {
        clean.push('t');
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!(
        "-{}-{}-{:06x}",
        std::process::id(),
        n,
        random_u64() & 0xff_ffff
    );
    let room = 40usize.saturating_sub(suffix.len()).max(1);
    clean.truncate(room);
    let clean = clean.trim_end_matches('-');
    format!("{clean}{suffix}")
}

/// Runs `docker <args>` against [`engine_socket`] and returns whatever happened.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", engine_socket())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker {}`: {e}", args.join(" ")))
}

/// Runs `docker <args>`, panics with its stderr unless it succeeded, returns trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker run <args>` (detached or not, as `args` say), panicking unless it succeeded;
/// returns trimmed stdout. On Podman it runs `podman --remote run` against the same socket
/// instead: the docker CLI reads `--security-opt seccomp=<path>` itself and sends the profile
/// inline, which Podman 4.3's compat API refuses ("opening seccomp profile failed": it reads
/// the value as a path), while Podman's own client passes the path through.
pub fn run_ok(args: &[&str]) -> String {
    let out = run_cmd(args);
    assert!(
        out.status.success(),
        "`run {}` failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// [`run_ok`] without the check: whatever `docker run` (or, on Podman, `podman --remote run`)
/// did.
pub fn run_cmd(args: &[&str]) -> Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    match engine_flavor() {
        Flavor::Docker => docker(&all),
        Flavor::Podman => Command::new("podman")
            .args(["--remote", "--url", &engine_socket()])
            .args(&all)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `podman --remote`: {e}")),
    }
}

/// `docker inspect <name>`, first element.
pub fn inspect(name: &str) -> serde_json::Value {
    let text = docker_ok(&["inspect", name]);
    let mut all: Vec<serde_json::Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`docker inspect {name}` is not a JSON array: {e}"));
    assert!(!all.is_empty(), "`docker inspect {name}` returned nothing");
    all.swap_remove(0)
}

/// Replaces container `copy_of` by one named `name` that carries its labels, made by someone
/// with engine access, with `extra` `docker run` arguments.
pub fn forge(copy_of: &str, name: &str, extra: &[&str]) {
    let labels = inspect(copy_of)["Config"]["Labels"].clone();
    docker_ok(&["rm", "-f", copy_of]);
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    for (k, v) in labels.as_object().unwrap() {
        args.push("--label".into());
        args.push(format!("{k}={}", v.as_str().unwrap()));
    }
    args.extend([FIXTURE_IMAGE.to_string(), "sleep".into(), "3600".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
}

/// True when a container of that name or id exists (running or not).
pub fn container_exists(name: &str) -> bool {
    docker(&["container", "inspect", "--format", "{{.Id}}", name])
        .status
        .success()
}

/// The ids of all containers (running or not) carrying `label` (`key=value`).
pub fn containers_with_label(label: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn remove_containers(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["rm", "-f", "-v"];
    args.extend(ids.iter().map(String::as_str));
    // Cleanup must not turn a passing test into a failing one, nor mask the real panic.
    let _ = docker(&args);
}

/// The binary under test, with colours off.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clw-fortress"));
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Removes the containers it tracks when dropped, also when the test panics.
#[derive(Debug, Default)]
pub struct ContainerGuard {
    names: Vec<String>,
}

impl ContainerGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tracks a container name; returns it for convenience.
    pub fn track(&mut self, name: &str) -> String {
        self.names.push(name.to_string());
        name.to_string()
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        remove_containers(&self.names);
    }
}

/// Removes, when dropped, every container labelled `clw-fortress.fortress=<name>`.
#[derive(Debug)]
pub struct LabelGuard(pub String);

impl Drop for LabelGuard {
    fn drop(&mut self) {
        remove_containers(&containers_with_label(&format!(
            "clw-fortress.fortress={}",
            self.0
        )));
    }
}

/// The directories of a fake OpenClaw state directory (`~/.openclaw`).
pub const OPENCLAW_DIRS: [&str; 11] = [
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
];

/// A throwaway fortress: a fake home with the OpenClaw layout, a secrets file with random
/// values, a bind set and a manifest, all under one temporary directory. Dropping it removes the
/// fortress's containers and the directory.
///
/// Layout (all paths in the YAML are absolute, nothing depends on the real home):
///
/// ```text
/// <tmp>/fortress.yaml
/// <tmp>/binds/test.yaml
/// <tmp>/state.db                                  (not created)
/// <tmp>/home/.openclaw/{workspace,agents,...}, openclaw.json
/// <tmp>/home/.config/openclaw-secrets/secrets.env (dir 0700, file 0600)
/// ```
pub struct Fixture {
    // Field order matters: containers go before the directory their binds point into.
    _containers: LabelGuard,
    name: String,
    secrets: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Creates the fixture; the fortress is named `unique("clwt-<prefix>")`.
    pub fn new(prefix: &str) -> Self {
        let name = unique(&format!("clwt-{prefix}"));
        let dir = tempfile::Builder::new()
            .prefix("clw-fixture-")
            .tempdir()
            .expect("create the fixture's temporary directory");
        let root = dir.path();
        let home = root.join("home");
        let oc = home.join(".openclaw");
        for d in OPENCLAW_DIRS {
            fs::create_dir_all(oc.join(d)).expect("create the openclaw layout");
        }
        fs::write(oc.join("openclaw.json"), "{}\n").expect("write openclaw.json");
        // Something worth stealing in a denied directory, for probes that look for it.
        fs::write(oc.join("credentials/channel-token.json"), "{}\n").expect("write credentials");
        // On a real host the state directory belongs to the user the sandbox runs as
        // (`user: "1000:1000"`); tests run as root, so hand it over like an install would.
        chown_tree(&oc, SANDBOX_UID);

        let secrets = vec![
            (
                "ANTHROPIC_API_KEY".to_string(),
                format!("sk-ant-test-{:016x}{:016x}", random_u64(), random_u64()),
            ),
            (
                "BOT_TOKEN".to_string(),
                format!("bot-test-{:016x}{:016x}", random_u64(), random_u64()),
            ),
        ];
        let secrets_dir = home.join(".config/openclaw-secrets");
        fs::create_dir_all(&secrets_dir).expect("create the secrets directory");
        // Explicit modes, not the umask's: the manifest rules check them.
        fs::set_permissions(&secrets_dir, fs::Permissions::from_mode(0o700))
            .expect("chmod 0700 the secrets directory");
        let secrets_file = secrets_dir.join("secrets.env");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secrets_file)
            .expect("create secrets.env");
        writeln!(f, "# test secrets, random per fixture").unwrap();
        for (k, v) in &secrets {
            writeln!(f, "{k}={v}").unwrap();
        }
        drop(f);
        fs::set_permissions(&secrets_file, fs::Permissions::from_mode(0o600))
            .expect("chmod 0600 secrets.env");

        fs::create_dir_all(root.join("binds")).expect("create binds/");
        fs::write(root.join("binds/test.yaml"), bind_set_yaml(&oc)).expect("write the bind set");

        let fixture = Fixture {
            _containers: LabelGuard(name.clone()),
            name,
            secrets,
            dir,
        };
        fixture.write_manifest(&fixture.default_manifest());
        fixture
    }

    /// The fortress name (`metadata.name`), also the value of `clw-fortress.fortress`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The one sandbox of the default manifest: `<name>-main`.
    pub fn sandbox(&self) -> String {
        format!("{}-main", self.name)
    }

    /// The temporary directory holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir().join("fortress.yaml")
    }

    pub fn bind_set_path(&self) -> PathBuf {
        self.dir().join("binds/test.yaml")
    }

    /// The fake home directory.
    pub fn home(&self) -> PathBuf {
        self.dir().join("home")
    }

    /// The fake `~/.openclaw`.
    pub fn openclaw_dir(&self) -> PathBuf {
        self.home().join(".openclaw")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.home().join(".config/openclaw-secrets")
    }

    pub fn secrets_file(&self) -> PathBuf {
        self.secrets_dir().join("secrets.env")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir().join("state.db")
    }

    /// The value of a secret in the fixture's secrets file; panics for an unknown key.
    pub fn secret_value(&self, key: &str) -> String {
        self.secrets
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("the fixture has no secret {key}"))
    }

    /// All secrets as `(key, value)`.
    pub fn secrets(&self) -> &[(String, String)] {
        &self.secrets
    }

    /// The manifest `new` writes (see the struct docs).
    pub fn default_manifest(&self) -> String {
        format!(
            r#"apiVersion: clw-fortress/v1
kind: Fortress
metadata:
  name: {name}
engine:
  socket: {socket}
state:
  path: {state}
secrets:
  file: {secrets}
bindSets: [binds/test.yaml]
defaults:
  image: {FIXTURE_IMAGE}
  user: "1000:1000"
  seccomp:
    policy: default
  limits: {{memory: 64Mi, memorySwap: 64Mi, cpus: 0.5, pids: 64}}
sandboxes:
  - name: {sandbox}
    bindSets: [test]
    secretEnv: [ANTHROPIC_API_KEY]
    env: {{LANG: C.UTF-8}}
    command: [sleep, "3600"]
"#,
            name = self.name,
            socket = yaml_str(&engine_socket()),
            state = yaml_path(&self.state_path()),
            secrets = yaml_path(&self.secrets_file()),
            sandbox = self.sandbox(),
        )
    }

    /// Replaces the manifest.
    pub fn write_manifest(&self, yaml: &str) {
        fs::write(self.manifest_path(), yaml).expect("write fortress.yaml");
    }

    pub fn manifest_text(&self) -> String {
        fs::read_to_string(self.manifest_path()).expect("read fortress.yaml")
    }

    /// Runs `clw-fortress -f <manifest> <args>` with `HOME` pointing at the fake home.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.env("HOME", self.home())
            .arg("-f")
            .arg(self.manifest_path())
            .args(args);
        cmd
    }

    /// Runs `clw-fortress -f <manifest> <args>` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("run the clw-fortress binary")
    }
}

fn bind_set_yaml(openclaw: &Path) -> String {
    format!(
        r#"apiVersion: clw-fortress/v1
kind: BindSet
metadata: {{name: test}}
root: {root}
binds:
  - {{source: workspace, target: /agent-workspace, mode: rw}}
  - {{source: memory, mode: rw}}
  - {{source: logs, mode: ro}}
  - {{source: openclaw.json, mode: ro}}
deny: [credentials, secrets.env, matrix, identity, devices]
"#,
        root = yaml_path(openclaw)
    )
}

/// The uid (and gid) fixture sandboxes run as.
pub const SANDBOX_UID: u32 = 1000;

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown the fixture tree");
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).expect("read the fixture tree") {
            chown_tree(&entry.expect("a directory entry").path(), uid);
        }
    }
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn yaml_path(p: &Path) -> String {
    yaml_str(p.to_str().expect("temporary paths are UTF-8"))
}

/// Output as text, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A unix socket that accepts and counts connections (and answers nothing): passed as
/// `--engine`, it proves a command never contacted the engine.
pub struct CountingSocket {
    /// `unix://<path>`, for `--engine`.
    pub url: String,
    count: Arc<AtomicUsize>,
}

impl CountingSocket {
    /// Binds `<dir>/engine.sock` and counts every connection on a background thread.
    pub fn new(dir: &std::path::Path) -> Self {
        let path = dir.join("engine.sock");
        let listener = UnixListener::bind(&path).expect("bind the counting socket");
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                c.fetch_add(1, Ordering::SeqCst);
                drop(s);
            }
        });
        CountingSocket {
            url: format!("unix://{}", path.display()),
            count,
        }
    }
    pub fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// A local user for the tests that run as a root agent protecting a user's home: created with
/// `useradd` the first time (idempotent; a parallel test may be creating it at the same moment),
/// returned as `(uid, gid, home)`. Needs root, as CI runs: `why` says what for.
pub fn system_user(name: &str, why: &str) -> (u32, u32, PathBuf) {
    assert!(nix::unistd::getuid().is_root(), "{why}: run them as root");
    if nix::unistd::User::from_name(name).unwrap().is_none() {
        let out = Command::new("useradd")
            .args(["--create-home", "--user-group", "--shell", "/bin/sh", name])
            .output()
            .expect("useradd (Debian's passwd package)");
        assert!(
            out.status.success() || nix::unistd::User::from_name(name).unwrap().is_some(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw(), u.dir)
}
