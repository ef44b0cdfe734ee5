//! The validated fortress: typed values that cannot hold what manifest.md forbids.
//!
//! Everything downstream (spec, plan, apply, verify, enforce, ...) consumes only these types,
//! never the raw serde structs. Paths here are absolute, expanded and (for bind sources)
//! symlink-resolved; sizes are bytes; durations are [`Duration`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::egress::policy::EgressPolicy;

/// A validated `Fortress` manifest with its bind sets loaded and merged into each sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Fortress {
    /// The manifest file this was loaded from (absolute).
    pub file: PathBuf,
    /// `metadata.name`: `[a-z0-9-]{1,40}`.
    pub name: String,
    pub engine: EngineSettings,
    /// Where the state database lives (expanded).
    pub state_path: PathBuf,
    /// The secrets file, if declared (expanded; checked for ownership and modes).
    pub secrets_file: Option<PathBuf>,
    /// `openclaw.stateDir`: the OpenClaw home this fortress protects (expanded).
    pub openclaw_state_dir: Option<PathBuf>,
    /// What the bound trees hold that must not be mounted (hard links to the secrets file,
    /// unix sockets): refused by the commands that mount (`validate`, `plan`, `apply`), not by
    /// those that act on what runs (`verify`, the agent).
    pub tree_problems: Vec<super::Problem>,
    /// Every bind set the manifest loaded, by `metadata.name`.
    pub bind_sets: Vec<BindSet>,
    pub sandboxes: Vec<Sandbox>,
    pub adopt: Vec<Adopt>,
    pub health: Vec<HealthCheck>,
    pub backups: Vec<Backup>,
    pub schedules: Schedules,
    pub metrics: Option<Metrics>,
    /// Warnings found during validation (e.g. cpus above the host's count).
    pub warnings: Vec<String>,
    /// `metadata.owner`, resolved from the user database.
    pub owner: Option<Owner>,
}

/// The user a fortress protects (`metadata.owner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Fortress {
    /// The uid the secrets file must be owned by: the owner's when the file is theirs,
    /// else the running user's (`running`), so a root agent accepts its own or the owner's.
    pub fn secrets_uid(&self, running: u32) -> u32 {
        match &self.secrets_file {
            Some(f) => secrets_uid(f, self.owner.as_ref(), running),
            None => running,
        }
    }
}

/// The uid the secrets file at `path` must be owned by: the owner's when the file is theirs,
/// else `running`'s. One rule for validation and every later read.
pub fn secrets_uid(path: &Path, owner: Option<&Owner>, running: u32) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let file_uid = std::fs::metadata(path).ok().map(|m| m.uid());
    match owner {
        Some(o) if file_uid == Some(o.uid) => o.uid,
        _ => running,
    }
}

#[cfg(test)]
impl Fortress {
    /// An empty fortress `f` (`/f.yaml`, state `/s.db`) for unit tests to fill with `..`, so a
    /// new field does not have to be added to every test's literal.
    pub(crate) fn for_tests() -> Fortress {
        Fortress {
            file: "/f.yaml".into(),
            name: "f".into(),
            engine: EngineSettings::default(),
            state_path: "/s.db".into(),
            secrets_file: None,
            openclaw_state_dir: None,
            tree_problems: vec![],
            bind_sets: vec![],
            sandboxes: vec![],
            adopt: vec![],
            health: vec![],
            backups: vec![],
            schedules: Schedules::default(),
            metrics: None,
            warnings: vec![],
            owner: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineSettings {
    /// `engine.socket`, expanded; `None` means "resolve" (engine::socket).
    pub socket: Option<String>,
    pub flavor: FlavorSetting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlavorSetting {
    #[default]
    Auto,
    Docker,
    Podman,
}

/// A loaded `BindSet` file.
#[derive(Debug, Clone, PartialEq)]
pub struct BindSet {
    pub file: PathBuf,
    pub name: String,
    /// `root`, expanded (and symlink-resolved when it exists).
    pub root: PathBuf,
    pub binds: Vec<Bind>,
    /// `deny` entries resolved against `root` (real paths where they exist).
    pub deny: Vec<PathBuf>,
}

/// One bind mount, resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bind {
    /// The real (symlink-resolved, normalised, absolute) host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    pub mode: Mode,
    /// Create the host directory (0700) at apply time if it is missing.
    pub create: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Ro,
    Rw,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ro => "ro",
            Mode::Rw => "rw",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    None,
    Bridge,
    /// A user-defined named network (never `host`, never `container:*`).
    Named(String),
}

impl Network {
    /// The engine's `NetworkMode` string.
    pub fn mode(&self) -> &str {
        match self {
            Network::None => "none",
            Network::Bridge => "bridge",
            Network::Named(n) => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompPolicy {
    Strict,
    Default,
    Permissive,
}

impl SeccompPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SeccompPolicy::Strict => "strict",
            SeccompPolicy::Default => "default",
            SeccompPolicy::Permissive => "permissive",
        }
    }
}

/// Where a sandbox's seccomp profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompSource {
    /// Generated by `clw-fortress` from a policy plus overrides.
    Policy {
        policy: SeccompPolicy,
        allow: Vec<String>,
        deny: Vec<String>,
    },
    /// A profile file (absolute path), validated, not generated.
    Profile(PathBuf),
}

/// Resource limits. `None` leaves the engine default (unlimited); the built-in defaults
/// (manifest module) make every field `Some` unless a manifest clears it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<i64>,
    /// Bytes of memory + swap; equal to `memory` means no swap.
    pub memory_swap: Option<i64>,
    /// CPUs, fractional.
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

/// The built-in default limits (manifest.md): 8 GiB, 4 CPUs but never more than the host has
/// (a default should not itself trigger the "cpus above the host's count" warning on a small
/// machine), 512 pids. One place: the loader's defaults and `openclaw harden` use it.
pub fn builtin_limits(host_cpus: usize) -> Limits {
    Limits {
        memory: Some(8 << 30),
        memory_swap: None,
        cpus: Some(host_cpus.clamp(1, 4) as f64),
        pids: Some(512),
    }
}

impl Limits {
    /// CPUs as the engine's `NanoCpus`.
    pub fn nano_cpus(&self) -> Option<i64> {
        self.cpus.map(|c| (c * 1e9).round() as i64)
    }
}

/// A sandbox container, with its defaults merged in and its binds resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    /// Container name, unique per engine.
    pub name: String,
    pub image: String,
    /// `uid[:gid]` or a user name; never 0/root unless `allow_root`.
    pub user: String,
    pub allow_root: bool,
    pub network: Network,
    pub read_only_root: bool,
    /// Mount point -> size in bytes.
    pub tmpfs: BTreeMap<String, i64>,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub no_new_privileges: bool,
    /// The engine's init as PID 1: it reaps orphaned processes (which would otherwise stay
    /// zombies and hold pids until a restart) and passes SIGTERM on (a bare `sleep` as PID 1
    /// ignores it, so every stop waited for the kill timeout).
    pub init: bool,
    pub seccomp: SeccompSource,
    pub limits: Limits,
    /// The binds of every named bind set, then the sandbox's own, in declaration order.
    pub binds: Vec<Bind>,
    /// The names of the bind sets this sandbox uses.
    pub bind_sets: Vec<String>,
    /// Plain, non-secret environment.
    pub env: BTreeMap<String, String>,
    /// Names of secrets (from the secrets file) injected per exec only.
    pub secret_env: Vec<String>,
    /// The brokered ones among them, by name: the exec gets a sentinel, the egress proxy adds
    /// the value for the bound hosts.
    pub broker: BTreeMap<String, crate::broker::Broker>,
    pub command: Vec<String>,
    pub liveness: Option<Liveness>,
    /// The egress allow-list, when the sandbox reaches the network through the fortress's
    /// proxy; `None`: no egress policy (the `network` setting alone applies).
    pub egress: Option<EgressPolicy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Liveness {
    pub every: Duration,
    pub exec: Vec<String>,
    pub timeout: Duration,
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `key=value` label (or just `key`, meaning present).
    Label {
        key: String,
        value: Option<String>,
    },
    NamePrefix(String),
}

impl Selector {
    /// Whether this selector matches a container named `name` carrying `labels`: the one rule for
    /// `enforce`, `status`, `verify` and the agent. A label selector without a value matches
    /// any value; a name prefix is compared with the name without Docker's leading `/`.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Label {
                key,
                value: Some(v),
            } => labels.get(key) == Some(v),
            Selector::Label { key, value: None } => labels.contains_key(key),
            Selector::NamePrefix(p) => name.trim_start_matches('/').starts_with(p.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adopt {
    pub selector: Selector,
    pub limits: Limits,
    /// The egress allow-list for the adopted containers (not enforced yet: see the README).
    pub egress: Option<EgressPolicy>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    /// A validated cron expression (6 or 7 fields, or `@daily`-style).
    Cron(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http {
        url: String,
        insecure_tls: bool,
        timeout: Duration,
    },
    Exec {
        container: String,
        command: Vec<String>,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartTarget {
    SystemdUnit { unit: String, user: bool },
    Container(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub name: String,
    pub probe: Probe,
    pub schedule: Schedule,
    pub failures: u32,
    pub restart: Option<RestartTarget>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub quarantine_restarts: u32,
    pub quarantine_within: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Keep {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    pub name: String,
    /// Glob patterns, expanded (`~`, `${VAR}`) but not yet matched.
    pub sources: Vec<String>,
    pub dest: PathBuf,
    pub schedule: Option<String>,
    pub keep: Keep,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedules {
    /// Cron for the limits sweep.
    pub limits: Option<String>,
    /// Cron for the verify run.
    pub verify: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub listen: std::net::SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spec::tests::labels;

    #[test]
    fn a_selector_matches_by_label_or_by_name_prefix_without_dockers_leading_slash() {
        let l = labels(&[("com.openclaw.sandbox", "1"), ("agent", "")]);
        let label = |key: &str, value: Option<&str>| Selector::Label {
            key: key.into(),
            value: value.map(str::to_string),
        };
        let prefix = |p: &str| Selector::NamePrefix(p.into());
        for (sel, name, expected) in [
            (label("com.openclaw.sandbox", Some("1")), "x", true),
            (label("com.openclaw.sandbox", Some("0")), "x", false),
            // Without a value: present with any value, the empty one included.
            (label("com.openclaw.sandbox", None), "x", true),
            (label("agent", None), "x", true),
            (label("agent", Some("")), "x", true),
            (label("com.openclaw", None), "x", false),
            (label("com.openclaw.sandbox.x", Some("1")), "x", false),
            // A label selector never looks at the name.
            (label("openclaw-sbx-a", None), "openclaw-sbx-a", false),
            (prefix("openclaw-sbx-"), "openclaw-sbx-agent-1", true),
            (prefix("openclaw-sbx-"), "/openclaw-sbx-agent-1", true),
            (prefix("openclaw-sbx-"), "openclaw-sbx", false),
            (prefix("openclaw-sbx-"), "my-openclaw-sbx-a", false),
            (prefix("other-"), "openclaw-sbx-agent-1", false),
            // A name prefix never looks at the labels.
            (prefix("com.openclaw"), "x", false),
        ] {
            assert_eq!(sel.matches(name, &l), expected, "{sel:?} {name}");
        }
    }
}
