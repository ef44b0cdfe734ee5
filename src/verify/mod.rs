//! `verify`: the isolation test suite (verify.md). For each sandbox it checks what the engine
//! was asked for (`inspect`), proves what a process inside can actually do (one exec of a
//! POSIX `sh` script, `probes`, which also runs the syscall probe program, `sysprobe`), asks
//! every socket reachable inside whether it is an engine's (`endpoint`), and searches
//! everything reachable inside for secret values on the host (`scan`), then reports
//! (`report`) and records the run in the state database.
//!
//! It owns the probe catalogue and its ids (stable: reports, JUnit names and the state
//! database use them). It must never send a secret value into a sandbox, nor put one in a
//! report, a log line or the database: findings name the key and the place only. It changes
//! nothing in a sandbox except creating and removing its own files: empty probe files, and the
//! syscall probe program for the one run.

pub mod catalogue;
pub mod endpoint;
pub mod inspect;
pub mod probes;
pub mod report;
pub mod scan;
pub mod sysprobe;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Container;
use futures_util::StreamExt;
use serde::Serialize;

use crate::engine::{ContainerSummary, Engine, EngineError, ExecRequest};
use crate::error::{Coded, ErrorCode};
use crate::manifest::{Adopt, Fortress, Limits, Mode, Sandbox, Selector};
use crate::secrets::SecretMap;
use crate::state::{State, StateError};

use self::probes::{Context, ScriptInput};
use self::scan::{Budget, Finding, Needles};

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// One probe's result for one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub sandbox: String,
    pub probe: String,
    pub outcome: Outcome,
    pub detail: String,
}

impl ProbeResult {
    pub fn new(probe: &str, outcome: Outcome, detail: impl Into<String>) -> ProbeResult {
        ProbeResult {
            sandbox: String::new(),
            probe: probe.to_string(),
            outcome,
            detail: detail.into(),
        }
    }
}

/// The in-sandbox probe ids, in report order (verify.md).
pub const SANDBOX_PROBES: [&str; 20] = [
    "secrets.file-absent",
    "secrets.deny-absent",
    "secrets.env-clean",
    "secrets.content-scan",
    "fs.ro-binds",
    "fs.rw-binds",
    "fs.root-readonly",
    "fs.no-extra-mounts",
    "fs.masked-paths",
    "engine.no-socket",
    "proc.caps-empty",
    "proc.no-new-privs",
    "proc.seccomp-filter",
    "proc.non-root",
    "proc.pid-namespace",
    "seccomp.denied",
    "limits.memory",
    "limits.pids",
    "limits.cpu",
    "net.none",
];

/// The engine-side check ids, in report order.
pub const CONFIG_CHECKS: [&str; 11] = [
    "config.not-privileged",
    "config.namespaces",
    "config.seccomp-confined",
    "config.apparmor",
    "config.no-sensitive-mounts",
    "config.limits-set",
    "config.readonly-root",
    "config.no-new-privileges",
    "config.caps",
    "config.no-devices",
    "config.propagation",
];

/// Probes that need the declared binds; not run for adopted containers.
pub const BIND_PROBES: [&str; 3] = ["fs.ro-binds", "fs.rw-binds", "fs.no-extra-mounts"];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindExpect {
    pub target: String,
    pub read_only: bool,
}

/// What a sandbox should look like, from the manifest (or the strict baseline for adopted
/// containers, which declare only limits).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    /// `None` for adopted containers: their binds are not declared.
    pub binds: Option<Vec<BindExpect>>,
    pub tmpfs: Vec<String>,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    pub cap_add: Vec<String>,
    pub cap_drop_all: bool,
    pub allow_root: bool,
    pub network_none: bool,
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    pub cpus: Option<f64>,
    /// Calls the seccomp policy denies that the syscall probe tries (`sysprobe::sample`).
    pub syscalls: Vec<sysprobe::Sampled>,
    /// Calls the policy refuses in a way the probe cannot observe, with the reason.
    pub syscalls_unobservable: Vec<String>,
    /// The profile clw-fortress generated for the sandbox (compact JSON); `None` for adopted
    /// containers, for which nothing was generated.
    pub seccomp_profile: Option<String>,
}

/// The sample of `profile` for a process holding `cap_add` (all else dropped).
fn denied_sample(
    profile: Option<&crate::seccomp::Profile>,
    cap_add: &[String],
) -> (Vec<sysprobe::Sampled>, Vec<String>) {
    match profile {
        Some(p) => sysprobe::sample(p, cap_add),
        None => (Vec::new(), Vec::new()),
    }
}

impl Expect {
    pub fn of_sandbox(s: &Sandbox) -> Expect {
        let json = crate::seccomp::effective_profile_json(&s.seccomp).ok();
        let profile = json
            .as_deref()
            .and_then(|j| crate::seccomp::Profile::from_json(j).ok());
        let (syscalls, syscalls_unobservable) = denied_sample(profile.as_ref(), &s.cap_add);
        Expect {
            binds: Some(
                s.binds
                    .iter()
                    .map(|b| BindExpect {
                        target: b.target.display().to_string(),
                        read_only: b.mode == Mode::Ro,
                    })
                    .collect(),
            ),
            tmpfs: s.tmpfs.keys().cloned().collect(),
            read_only_root: s.read_only_root,
            no_new_privileges: s.no_new_privileges,
            cap_add: s.cap_add.clone(),
            cap_drop_all: s.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")),
            allow_root: s.allow_root,
            network_none: s.network == crate::manifest::Network::None,
            syscalls,
            syscalls_unobservable,
            seccomp_profile: json,
            ..Expect::default()
        }
        .with_limits(&s.limits)
    }

    /// The strict baseline for a container the fortress adopted: hardened as a sandbox
    /// would be by default, with the adopt entry's limits.
    pub fn of_adopted(a: &Adopt) -> Expect {
        // Nothing was generated for an adopted container: it must at least deny what the
        // engine's default profile denies (the `permissive` policy is that profile).
        let engine_default =
            crate::seccomp::generate(crate::manifest::SeccompPolicy::Permissive, &[], &[]).ok();
        let (syscalls, syscalls_unobservable) = denied_sample(engine_default.as_ref(), &[]);
        Expect {
            binds: None,
            read_only_root: true,
            no_new_privileges: true,
            cap_drop_all: true,
            syscalls,
            syscalls_unobservable,
            ..Expect::default()
        }
        .with_limits(&a.limits)
    }

    fn with_limits(mut self, l: &Limits) -> Expect {
        self.memory = l.memory;
        self.pids = l.pids;
        self.cpus = l.cpus;
        self
    }
}

/// One container to verify.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The sandbox name (for adopted containers, the container name).
    pub name: String,
    /// Container name or id on the engine.
    pub container: String,
    pub expect: Expect,
    pub adopted: bool,
}

/// Bounds and switches of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub allow_inconclusive: bool,
    pub scan_max_bytes: u64,
    pub scan_timeout: Duration,
    pub min_secret_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_inconclusive: false,
            scan_max_bytes: 512 << 20,
            scan_timeout: Duration::from_secs(60),
            min_secret_len: scan::MIN_SECRET_LEN,
        }
    }
}

/// What every target of a fortress shares.
pub struct Inputs {
    pub secrets_file: Option<PathBuf>,
    /// The secret values, or why they could not be read (never containing a value).
    pub secrets: Option<Result<SecretMap, String>>,
    /// Every `deny` path of every bind set.
    pub deny: Vec<PathBuf>,
    pub host_cpus: i64,
    pub options: Options,
}

/// The inputs of a run of `fortress`: its secrets (read now, by `uid`), every deny path.
pub fn inputs_for(fortress: &Fortress, host_cpus: i64, uid: u32, options: Options) -> Inputs {
    // A secrets file that cannot be read makes the value scans inconclusive, not the run
    // impossible: the other probes still say something. The error names the file, no value.
    let mut secrets = fortress.secrets_file.as_deref().map(|f| {
        crate::secrets::read(f, uid).map_err(|e| {
            let r = crate::report::ErrorReport::from_error(&e);
            r.headline()
        })
    });
    let mut deny: Vec<PathBuf> = fortress
        .bind_sets
        .iter()
        .flat_map(|b| b.deny.iter().cloned())
        .collect();
    // The OpenClaw home's whole inventory is searched for, not only the secrets file: its
    // config, env file and credential trees hold the gateway token and the provider keys.
    if let Some(home) = &fortress.openclaw_state_dir {
        let extra: Vec<PathBuf> = fortress.secrets_file.iter().cloned().collect();
        let inventory = crate::openclaw::inventory::collect(home, &extra);
        if !inventory.problems.is_empty() {
            tracing::warn!(problems = ?inventory.problems, "parts of the OpenClaw home could not be searched for secrets");
        }
        let found = inventory.to_secret_map(home);
        secrets = Some(match secrets {
            None => Ok(found),
            Some(Ok(file)) => Ok(file.merged(found)),
            Some(Err(e)) => Err(e),
        });
        for p in crate::openclaw::inventory::secret_paths(home) {
            if !deny.contains(&p) {
                deny.push(p);
            }
        }
    }
    Inputs {
        secrets_file: fortress.secrets_file.clone(),
        secrets,
        deny,
        host_cpus,
        options,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no sandbox named {sandbox:?} in fortress {fortress}")]
    UnknownSandbox { sandbox: String, fortress: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl Coded for VerifyError {
    fn code(&self) -> ErrorCode {
        match self {
            VerifyError::UnknownSandbox { .. } => ErrorCode::ConfigInvalid,
            VerifyError::Engine(e) => e.code(),
            VerifyError::State(e) => e.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            VerifyError::UnknownSandbox { .. } => {
                Some("`clw-fortress validate` lists the declared sandboxes".into())
            }
            VerifyError::Engine(e) => e.hint(),
            VerifyError::State(e) => e.hint(),
        }
    }
}

fn selected(c: &ContainerSummary, s: &Selector) -> bool {
    match s {
        Selector::Label { key, value } => match value {
            Some(v) => c.labels.get(key) == Some(v),
            None => c.labels.contains_key(key),
        },
        Selector::NamePrefix(p) => c.name.starts_with(p.as_str()),
    }
}

/// The targets of a run: every declared sandbox (or just `only`), plus, with `adopted`, every
/// running container matching an `adopt` selector that is not one of ours.
pub async fn targets<E: Engine>(
    engine: &E,
    fortress: &Fortress,
    only: Option<&str>,
    adopted: bool,
) -> Result<Vec<Target>, VerifyError> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for s in &fortress.sandboxes {
        names.insert(s.name.clone());
        if only.is_some_and(|o| o != s.name) {
            continue;
        }
        out.push(Target {
            name: s.name.clone(),
            container: s.name.clone(),
            expect: Expect::of_sandbox(s),
            adopted: false,
        });
    }
    if adopted && !fortress.adopt.is_empty() {
        for c in engine.list(&[]).await? {
            if names.contains(&c.name) || c.labels.contains_key(crate::spec::LABEL_MANAGED) {
                continue;
            }
            if only.is_some_and(|o| o != c.name) {
                continue;
            }
            if let Some(a) = fortress.adopt.iter().find(|a| selected(&c, &a.selector)) {
                names.insert(c.name.clone());
                out.push(Target {
                    name: c.name.clone(),
                    container: c.id.clone(),
                    expect: Expect::of_adopted(a),
                    adopted: true,
                });
            }
        }
    }
    if let Some(o) = only {
        if out.is_empty() {
            return Err(VerifyError::UnknownSandbox {
                sandbox: o.to_string(),
                fortress: fortress.name.clone(),
            });
        }
    }
    Ok(out)
}

/// Where `host` appears inside the container, through each bind mount whose source contains
/// it, plus `host` itself (a container could hold the same path).
fn inside_paths(host: &Path, c: &Container) -> Vec<String> {
    let mut out = vec![host.display().to_string()];
    for m in &c.mounts {
        if m.source.is_empty() || m.destination.is_empty() {
            continue;
        }
        if let Ok(rel) = host.strip_prefix(&m.source) {
            let p = Path::new(&m.destination).join(rel);
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn tmpfs_mounts(c: &Container) -> Vec<String> {
    let mut out: BTreeSet<String> = c.tmpfs.keys().cloned().collect();
    for m in c.mounts.iter().filter(|m| m.is_tmpfs()) {
        out.insert(m.destination.clone());
    }
    // The engine's own /dev/shm is a writable tmpfs in every container.
    out.insert("/dev/shm".into());
    out.into_iter().collect()
}

/// The most bytes of deleted-but-open files streamed out of one sandbox.
const DELETED_MAX: u64 = 64 << 20;

/// Places the syscall probe may be written to and run from, in order: the tmpfs mounts
/// (`/dev/shm` last: engines mount it `noexec`), then every writable mount (Docker mounts
/// tmpfs `noexec` by default; a bind usually is not). The probe file is removed after its run.
fn exec_dirs(c: &Container, tmpfs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tmpfs
        .iter()
        .filter(|t| t.as_str() != "/dev/shm")
        .cloned()
        .collect();
    out.push("/dev/shm".into());
    for m in &c.mounts {
        if !m.read_only && !m.is_tmpfs() && !out.contains(&m.destination) {
            out.push(m.destination.clone());
        }
    }
    out
}

/// How many unix sockets are asked per sandbox.
const MAX_SOCKET_ASKS: usize = 32;

/// Asks every unix socket the script found (files and listeners) for the engine API, from
/// the host, all at once.
async fn ask_sockets(c: &Container, facts: &probes::Facts) -> Vec<(String, endpoint::Answer)> {
    let paths = probes::sockets_to_ask(facts);
    if paths.is_empty() {
        return Vec::new();
    }
    let proc_root = Path::new("/proc");
    let mounts = c.mounts.clone();
    let pid = endpoint::container_pid(proc_root, c.state.pid.unwrap_or(0), &c.id);
    let root = pid.map(|p| proc_root.join(p.to_string()).join("root"));
    let asks = paths.iter().take(MAX_SOCKET_ASKS).map(|p| {
        let p = p.clone();
        let mounts = mounts.clone();
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            let answer = match (p.strip_prefix('@'), pid) {
                (Some(name), Some(pid)) => endpoint::ask_abstract(proc_root, pid, name.as_bytes()),
                (Some(_), None) => endpoint::Answer::Unasked(
                    "the container's network namespace is not reachable from here".into(),
                ),
                (None, _) => match endpoint::place(&p, &mounts, root.as_deref()) {
                    Some(place) => endpoint::ask_path(&place),
                    None => endpoint::Answer::Unasked(
                        "not on a bind mount, and the container's root is not reachable from \
                         here (a remote engine?)"
                            .into(),
                    ),
                },
            };
            (p, answer)
        })
    });
    let mut out: Vec<(String, endpoint::Answer)> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    for p in paths.iter().skip(MAX_SOCKET_ASKS) {
        out.push((
            p.clone(),
            endpoint::Answer::Unasked(format!("more than {MAX_SOCKET_ASKS} sockets")),
        ));
    }
    out
}

/// A fresh random hex value (nonces of probe runs, marks of execs).
pub(crate) fn random_nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", h.finish())
}

/// Statistics of one target's run, for benchmarks and the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    pub execs: u32,
    pub scanned_bytes: u64,
    pub scanned_files: u64,
    pub elapsed_ms: u64,
}

fn secret_names(file: Option<&Path>) -> Vec<String> {
    let mut v = vec!["secrets.env".to_string()];
    if let Some(b) = file.and_then(|f| f.file_name()).and_then(|b| b.to_str()) {
        if !v.iter().any(|x| x == b) {
            v.push(b.to_string());
        }
    }
    v
}

fn everything_inconclusive(expect: &Expect, why: &str) -> Vec<ProbeResult> {
    SANDBOX_PROBES
        .iter()
        .filter(|p| expect.binds.is_some() || !BIND_PROBES.contains(p))
        .map(|p| ProbeResult::new(p, Outcome::Inconclusive, why))
        .collect()
}

/// Streams the container's root filesystem (bind mounts included) out of the engine and
/// scans it on a blocking thread, within the budget.
async fn scan_archive<E: Engine>(
    engine: &E,
    id: &str,
    names: Vec<String>,
    needles: Arc<Needles>,
    budget: Budget,
) -> (Result<scan::TarScan, String>, Budget) {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let deadline = budget.deadline;
    let worker = tokio::task::spawn_blocking(move || {
        let mut budget = budget;
        let reader = ChannelReader {
            rx,
            buf: bytes::Bytes::new(),
        };
        let r = scan::scan_tar(reader, "/", &names, &needles, &mut budget);
        (r, budget)
    });
    let mut stream = engine.archive(id, "/");
    let mut stream_error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(Some(Err(e))) => {
                stream_error = Some(crate::report::chain(&e));
                break;
            }
            Ok(None) => break,
            Err(_) => {
                stream_error = Some("the time bound was hit while streaming".into());
                break;
            }
        }
    }
    drop(tx);
    drop(stream);
    let (result, mut budget) = match worker.await {
        Ok(v) => v,
        Err(e) => {
            return (
                Err(format!("the scan thread failed: {e}")),
                Budget::new(0, Duration::ZERO),
            )
        }
    };
    if let Some(e) = stream_error {
        if budget.exhausted.is_none() {
            budget.exhausted = Some(format!("an archive stream error ({e})"));
        }
    }
    (result.map_err(|e| e.to_string()), budget)
}

/// A blocking reader over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    buf: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.buf = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

fn join_findings(f: &[Finding]) -> String {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for x in f {
        by_key.entry(&x.key).or_default().push(&x.place);
    }
    by_key
        .into_iter()
        .map(|(k, places)| {
            let mut shown: Vec<&str> = places.iter().take(3).copied().collect();
            shown.dedup();
            let more = if places.len() > 3 {
                format!(" and {} more", places.len() - 3)
            } else {
                String::new()
            };
            format!("{k}: {}{more}", shown.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs every check and probe against one target.
pub async fn verify_target<E: Engine>(
    engine: &E,
    target: &Target,
    inputs: &Inputs,
) -> (Vec<ProbeResult>, RunStats) {
    let started = Instant::now();
    let mut stats = RunStats::default();
    let results = verify_inner(engine, target, inputs, &mut stats).await;
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    let results = results
        .into_iter()
        .map(|mut r| {
            r.sandbox = target.name.clone();
            r
        })
        .collect();
    (results, stats)
}

async fn verify_inner<E: Engine>(
    engine: &E,
    target: &Target,
    inputs: &Inputs,
    stats: &mut RunStats,
) -> Vec<ProbeResult> {
    let expect = &target.expect;
    let c = match engine.inspect(&target.container).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return vec![ProbeResult::new(
                "sandbox.running",
                Outcome::Fail,
                format!(
                    "no container {} on the engine; run `clw-fortress apply`",
                    target.container
                ),
            )]
        }
        Err(e) => {
            return vec![ProbeResult::new(
                "sandbox.running",
                Outcome::Inconclusive,
                format!("inspect failed: {}", crate::report::chain(&e)),
            )]
        }
    };
    let sensitive = inspect::Sensitive {
        secrets_file: inputs.secrets_file.clone(),
        deny: inputs.deny.clone(),
    };
    let config = inspect::check(&c, expect, &sensitive);
    if !c.is_running() {
        let mut out = vec![ProbeResult::new(
            "sandbox.running",
            Outcome::Fail,
            "the container is not running; in-sandbox probes could not run",
        )];
        out.extend(everything_inconclusive(
            expect,
            "the sandbox is not running",
        ));
        out.extend(config);
        return out;
    }

    let nonce = random_nonce();
    let names = secret_names(inputs.secrets_file.as_deref());
    let binds = expect.binds.clone().unwrap_or_default();
    // The syscall probe program is x86_64 code; the script runs it only on an x86_64 kernel.
    let program = (!expect.syscalls.is_empty()).then(|| sysprobe::program(&expect.syscalls));
    let tmpfs = tmpfs_mounts(&c);
    let input = ScriptInput {
        nonce: nonce.clone(),
        secret_names: names.clone(),
        secret_paths: inputs
            .secrets_file
            .as_deref()
            .map(|f| inside_paths(f, &c))
            .unwrap_or_default(),
        deny_paths: inputs
            .deny
            .iter()
            .flat_map(|d| inside_paths(d, &c))
            .collect(),
        ro_targets: binds
            .iter()
            .filter(|b| b.read_only)
            .map(|b| b.target.clone())
            .collect(),
        rw_targets: binds
            .iter()
            .filter(|b| !b.read_only)
            .map(|b| b.target.clone())
            .collect(),
        root_readonly: expect.read_only_root,
        exec_dirs: exec_dirs(&c, &tmpfs),
        tmpfs,
        sysprobe_size: program.as_ref().map_or(0, Vec::len),
        deleted_max: DELETED_MAX,
    };
    let req = ExecRequest {
        cmd: vec!["sh".into(), "-c".into(), probes::script(&input)],
        stdin: program,
        ..Default::default()
    };
    stats.execs += 1;
    let exec_limit = inputs.options.scan_timeout + Duration::from_secs(60);
    let exec = tokio::time::timeout(exec_limit, engine.exec(&target.container, &req)).await;
    let output = match exec {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            let mut out = everything_inconclusive(
                expect,
                &format!("exec refused: {}", crate::report::chain(&e)),
            );
            out.extend(config);
            return out;
        }
        Err(_) => {
            let mut out = everything_inconclusive(
                expect,
                &format!("the probe exec did not finish within {exec_limit:?}"),
            );
            out.extend(config);
            return out;
        }
    };
    let split = probes::split_output(&output.stdout, &nonce);

    // Host-side content scan.
    let budget = Budget::new(inputs.options.scan_max_bytes, inputs.options.scan_timeout);
    let (secrets, secrets_problem): (Option<&SecretMap>, Option<String>) = match &inputs.secrets {
        None => (None, None),
        Some(Ok(m)) => (Some(m), None),
        Some(Err(e)) => (None, Some(e.clone())),
    };
    let needles = Arc::new(
        secrets
            .map(|m| Needles::new(m, inputs.options.min_secret_len))
            .unwrap_or_else(|| Needles::new(&SecretMap::default(), 1)),
    );
    let (archive, mut budget) = scan_archive(
        engine,
        &target.container,
        names.clone(),
        needles.clone(),
        budget,
    )
    .await;
    let mut findings = Vec::new();
    let mut name_hits = Vec::new();
    let mut incomplete = Vec::new();
    match archive {
        Ok(s) => {
            findings.extend(s.findings);
            name_hits.extend(s.name_hits);
            stats.scanned_files += s.files;
            incomplete.extend(s.incomplete);
        }
        Err(e) => incomplete.push(format!("the filesystem archive could not be read ({e})")),
    }
    if let Some(tar) = &split.tar {
        match scan::scan_tar(&tar[..], "/", &names, &needles, &mut budget) {
            Ok(s) => {
                findings.extend(s.findings);
                name_hits.extend(s.name_hits);
                stats.scanned_files += s.files;
                incomplete.extend(s.incomplete);
            }
            Err(e) => incomplete.push(format!("the tmpfs archive could not be read ({e})")),
        }
        match split.tar_rc.as_deref() {
            Some("0") => {}
            Some("notar") => incomplete.push("`tar` is missing: tmpfs mounts not scanned".into()),
            Some(rc) => incomplete.push(format!(
                "tar of the tmpfs mounts exited {rc} (unreadable files)"
            )),
            None => incomplete.push("the tmpfs stream was cut short".into()),
        }
    }
    // Files deleted but still held open by a process: gone from every listing, not from
    // the process (nor from anyone who reads its fd).
    for (pid, bytes) in &split.deleted {
        let place = format!("a deleted file held open by pid {pid}");
        match scan::scan_stream(&bytes[..], &place, &needles, &mut budget) {
            Ok(s) => {
                findings.extend(s.findings);
                stats.scanned_files += s.files;
                incomplete.extend(s.incomplete);
            }
            Err(e) => incomplete.push(format!("{place} could not be read ({e})")),
        }
    }
    if !split.deleted_cut.is_empty() {
        incomplete.push(format!(
            "deleted files held open by pid(s) {} exceed the {DELETED_MAX} byte bound",
            split.deleted_cut.join(",")
        ));
    }
    if let Some(why) = &budget.exhausted {
        incomplete.push(format!(
            "scan stopped at {why} after {} bytes (--scan-max-bytes {}, --scan-timeout {}s)",
            budget.used,
            inputs.options.scan_max_bytes,
            inputs.options.scan_timeout.as_secs()
        ));
    }
    stats.scanned_bytes = budget.used;
    findings.sort();
    findings.dedup();

    let ctx = Context {
        command: c.command.clone(),
        secret_names: names,
        archive_name_hits: name_hits,
        cpus: expect
            .cpus
            .map(|c| crate::spec::capped_cpus(c, inputs.host_cpus)),
        sockets: ask_sockets(&c, &split.facts).await,
    };
    let mut results = probes::evaluate(expect, &ctx, &split.facts);

    let short = if needles.skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; not searched (shorter than {} bytes): {}",
            inputs.options.min_secret_len,
            needles.skipped.join(",")
        )
    };
    let content = match (secrets, &secrets_problem) {
        (_, Some(e)) => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Inconclusive,
            format!("the secrets file could not be read: {e}"),
        ),
        (None, None) => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Pass,
            "no secrets file declared; nothing to search for",
        ),
        (Some(_), None) if !findings.is_empty() => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Fail,
            format!("secret values found: {}", join_findings(&findings)),
        ),
        (Some(_), None) if !incomplete.is_empty() => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Inconclusive,
            format!("nothing found, but {}{short}", incomplete.join("; ")),
        ),
        (Some(_), None) if needles.is_empty() => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Inconclusive,
            format!("no secret long enough to search for{short}"),
        ),
        (Some(_), None) => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Pass,
            format!(
                "{} secret(s) not found in {} files / {} bytes (root fs with binds, tmpfs {}, \
                 {} deleted file(s) held open){short}",
                needles.keys().len(),
                stats.scanned_files,
                budget.used,
                input.tmpfs.join(","),
                split.deleted.len()
            ),
        ),
    };
    let env = env_clean(&c, &split, secrets, secrets_problem.as_deref(), &needles);
    results.insert(2, env);
    results.insert(3, content);
    results.extend(config);
    results
}

/// `secrets.env-clean`: the configured env and every process's environ and argv. No process
/// may hold a secret value there, whatever the name it goes by: `exec` injects `secretEnv`
/// into its own process only and ends everything it started before it returns, and verify's
/// own exec carries none.
fn env_clean(
    c: &Container,
    split: &probes::Output,
    secrets: Option<&SecretMap>,
    problem: Option<&str>,
    needles: &Needles,
) -> ProbeResult {
    if let Some(e) = problem {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Inconclusive,
            format!("the secrets file could not be read: {e}"),
        );
    }
    if secrets.is_none() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Pass,
            "no secrets file declared; nothing to search for",
        );
    }
    let mut findings = Vec::new();
    let env = c.env.0.join("\n");
    for key in needles.find_in(env.as_bytes()) {
        findings.push(Finding {
            key,
            place: "the container's configured env (Config.Env)".into(),
        });
    }
    for (what, sections) in [("environ", &split.environ), ("argv", &split.cmdline)] {
        for (pid, bytes) in sections {
            for key in needles.find_in(bytes) {
                findings.push(Finding {
                    key,
                    place: format!("the {what} of pid {pid}"),
                });
            }
        }
    }
    if !findings.is_empty() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Fail,
            format!(
                "secret values in the environment or arguments of processes: {}",
                join_findings(&findings)
            ),
        );
    }
    if split.environ.is_empty() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Inconclusive,
            "no /proc/*/environ could be read",
        );
    }
    if !split.unreadable.is_empty() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Inconclusive,
            format!(
                "Config.Env clean, but the environ of pid(s) {} is unreadable to the sandbox user",
                split.unreadable.join(",")
            ),
        );
    }
    ProbeResult::new(
        "secrets.env-clean",
        Outcome::Pass,
        format!(
            "no secret in Config.Env or the environ and argv of {} process(es)",
            split.environ.len()
        ),
    )
}

/// Pass, fail and inconclusive counts.
pub fn counts(results: &[ProbeResult]) -> (usize, usize, usize) {
    let n = |o| results.iter().filter(|r| r.outcome == o).count();
    (n(Outcome::Pass), n(Outcome::Fail), n(Outcome::Inconclusive))
}

/// True when the run passes: every probe passed (inconclusive ones too with `allow`).
pub fn passed(results: &[ProbeResult], allow_inconclusive: bool) -> bool {
    results.iter().all(|r| {
        r.outcome == Outcome::Pass || (allow_inconclusive && r.outcome == Outcome::Inconclusive)
    })
}

pub use crate::state::verify::VerifyRun;

/// Records one sandbox's run: counts, outcome and the ids of failed probes only.
pub fn record(
    state: &State,
    fortress: &str,
    sandbox: &str,
    results: &[ProbeResult],
    allow_inconclusive: bool,
) -> Result<(), StateError> {
    let (p, f, i) = counts(results);
    let outcome = if passed(results, allow_inconclusive) {
        "pass"
    } else {
        "fail"
    };
    let not_passed: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| r.probe.as_str())
        .collect();
    state.record_verify_run(&VerifyRun {
        ts_ms: crate::state::now_ms(),
        fortress: fortress.to_string(),
        sandbox: sandbox.to_string(),
        passed: p as i64,
        failed: f as i64,
        inconclusive: i as i64,
        outcome: outcome.to_string(),
        not_passed: not_passed.iter().map(|s| s.to_string()).collect(),
    })
}

/// The newest verify run of `sandbox`, for `status`.
pub fn last_verify(state: &State, sandbox: &str) -> Result<Option<VerifyRun>, StateError> {
    state.last_verify_run(sandbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_run_of_a_sandbox_comes_back_without_details() {
        let s = State::in_memory();
        assert_eq!(last_verify(&s, "a").unwrap(), None);
        let mut results = vec![
            ProbeResult::new("proc.non-root", Outcome::Pass, "uid 1000"),
            ProbeResult::new("limits.pids", Outcome::Fail, "pids.max = max"),
        ];
        record(&s, "f", "a", &results, false).unwrap();
        results[1].outcome = Outcome::Pass;
        record(&s, "f", "a", &results, false).unwrap();
        record(&s, "f", "b", &results[..1], false).unwrap();
        let last = last_verify(&s, "a").unwrap().unwrap();
        assert_eq!(
            (last.passed, last.failed, last.outcome.as_str()),
            (2, 0, "pass")
        );
        results[1].outcome = Outcome::Fail;
        record(&s, "f", "a", &results, false).unwrap();
        let last = last_verify(&s, "a").unwrap().unwrap();
        assert_eq!(last.not_passed, ["limits.pids"]);
        assert_eq!(last.outcome, "fail");
    }

    #[test]
    fn inconclusive_counts_as_failure_unless_allowed() {
        let r = vec![ProbeResult::new(
            "net.none",
            Outcome::Inconclusive,
            "nc missing",
        )];
        assert!(!passed(&r, false));
        assert!(passed(&r, true));
    }

    #[test]
    fn a_host_path_is_mapped_through_every_mount_that_contains_it() {
        let c = Container {
            mounts: vec![crate::engine::Mount {
                source: "/home/u/.config".into(),
                destination: "/cfg".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            inside_paths(Path::new("/home/u/.config/s/secrets.env"), &c),
            ["/cfg/s/secrets.env", "/home/u/.config/s/secrets.env"]
        );
    }
}
