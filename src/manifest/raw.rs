//! The manifest as written: serde structs that mirror manifest.md field for field.
//!
//! Nothing here is validated beyond its YAML shape; `validate` turns these into the typed
//! values of `types`. Unknown fields are errors so that a typo (`readOnlyRooot`) can never
//! silently drop a hardening setting. Sizes, durations and other scalars are kept as strings
//! (`Scalar`) so that a bad unit is reported by validation with its field path, together with
//! every other problem, instead of stopping the parse.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Any YAML scalar (string, number, bool), kept as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// `apiVersion` and `kind` only, read before the full parse so that a file of the wrong kind
/// is reported as such rather than as a list of unknown fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawHeader {
    /// `clw-fortress/v1`.
    pub api_version: Option<String>,
    /// `Fortress` or `BindSet`.
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetadata {
    /// `[a-z0-9-]{1,40}`; labels every object the fortress owns.
    pub name: String,
    /// The user whose home this fortress protects (a name or a numeric uid): `~` means their
    /// home, their secrets file is accepted, sandboxes run as their uid:gid by default. For a
    /// root agent (the system unit) protecting a user's OpenClaw.
    #[serde(default)]
    pub owner: Option<String>,
}

/// Kind `Fortress`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFortress {
    /// Must be `clw-fortress/v1` (checked through `RawHeader` before this parse).
    #[allow(dead_code)]
    pub api_version: String,
    /// Must be `Fortress` (checked through `RawHeader`).
    #[allow(dead_code)]
    pub kind: String,
    /// The fortress name.
    pub metadata: RawMetadata,
    /// Which engine to talk to.
    #[serde(default)]
    pub engine: Option<RawEngine>,
    /// Where the state database lives.
    #[serde(default)]
    pub state: Option<RawState>,
    /// The secrets file.
    #[serde(default)]
    pub secrets: Option<RawSecrets>,
    /// The OpenClaw home this fortress protects.
    #[serde(default)]
    pub openclaw: Option<RawOpenclaw>,
    /// Bind set files, relative to this manifest.
    #[serde(default)]
    pub bind_sets: Vec<String>,
    /// Settings every sandbox inherits.
    #[serde(default)]
    pub defaults: Option<RawSettings>,
    /// The sandbox containers this fortress creates.
    #[serde(default)]
    pub sandboxes: Vec<RawSandbox>,
    /// Containers created by others whose limits this fortress enforces.
    #[serde(default)]
    pub adopt: Vec<RawAdopt>,
    /// Self-healing probes.
    #[serde(default)]
    pub health: Vec<RawHealth>,
    /// Snapshot jobs.
    #[serde(default)]
    pub backups: Vec<RawBackup>,
    /// Timers of the periodic jobs.
    #[serde(default)]
    pub schedules: Option<RawSchedules>,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEngine {
    /// `unix:///path` or `tcp://host:port`; default: resolved (engine::socket).
    #[serde(default)]
    pub socket: Option<String>,
    /// `auto`, `docker` or `podman`.
    #[serde(default)]
    pub flavor: Option<RawFlavor>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawFlavor {
    Auto,
    Docker,
    Podman,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawState {
    /// The state database file.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOpenclaw {
    /// OpenClaw's state directory (`~/.openclaw`): its every secret is searched for by
    /// `verify` and none of its secret-bearing files may be mounted.
    pub state_dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSecrets {
    /// `KEY=VALUE` file, mode 0600, in a 0700 directory.
    pub file: String,
}

/// The container settings shared by `defaults` and each sandbox.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSettings {
    /// Image reference.
    #[serde(default)]
    pub image: Option<String>,
    /// `uid[:gid]` or a user name.
    #[serde(default)]
    pub user: Option<Scalar>,
    /// `none`, `bridge` or a named network.
    #[serde(default)]
    pub network: Option<String>,
    /// Mount the image's root filesystem read-only.
    #[serde(default)]
    pub read_only_root: Option<bool>,
    /// Mount point -> size.
    #[serde(default)]
    pub tmpfs: Option<BTreeMap<String, Scalar>>,
    /// Capabilities to drop.
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    /// Capabilities to add back.
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    /// Set `no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: Option<bool>,
    /// Run the engine's init (tini / catatonit) as PID 1.
    #[serde(default)]
    pub init: Option<bool>,
    /// Seccomp policy or profile.
    #[serde(default)]
    pub seccomp: Option<RawSeccompField>,
    /// Resource limits, merged per key.
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// The egress allow-list (replaces, not merges with, the one in `defaults`).
    #[serde(default)]
    pub egress: Option<RawEgress>,
}

/// One sandbox: the settings of `RawSettings` plus its own fields. (Written out rather than
/// `#[serde(flatten)]`ed: flatten does not work with `deny_unknown_fields`.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSandbox {
    /// Container name.
    pub name: String,
    /// Image reference.
    #[serde(default)]
    pub image: Option<String>,
    /// `uid[:gid]` or a user name.
    #[serde(default)]
    pub user: Option<Scalar>,
    /// Permit `user: 0` / `root`.
    #[serde(default)]
    pub allow_root: bool,
    /// `none`, `bridge` or a named network.
    #[serde(default)]
    pub network: Option<String>,
    /// Mount the image's root filesystem read-only.
    #[serde(default)]
    pub read_only_root: Option<bool>,
    /// Mount point -> size.
    #[serde(default)]
    pub tmpfs: Option<BTreeMap<String, Scalar>>,
    /// Capabilities to drop.
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    /// Capabilities to add back.
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    /// Set `no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: Option<bool>,
    /// Run the engine's init (tini / catatonit) as PID 1.
    #[serde(default)]
    pub init: Option<bool>,
    /// Seccomp policy or profile.
    #[serde(default)]
    pub seccomp: Option<RawSeccompField>,
    /// Resource limits, merged per key over `defaults.limits`.
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// The egress allow-list; replaces `defaults.egress` as a whole.
    #[serde(default)]
    pub egress: Option<RawEgress>,
    /// Bind sets by `metadata.name`.
    #[serde(default)]
    pub bind_sets: Vec<String>,
    /// Extra binds.
    #[serde(default)]
    pub binds: Vec<RawBind>,
    /// Plain, non-secret environment.
    #[serde(default)]
    pub env: BTreeMap<String, Scalar>,
    /// Secret names injected per exec: a plain name, or a brokered entry.
    #[serde(default)]
    pub secret_env: Vec<RawSecretEnv>,
    /// The container's command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Liveness probe.
    #[serde(default)]
    pub liveness: Option<RawLiveness>,
}

/// One `secretEnv` entry: a name (the value is injected per exec), or a brokered name (the
/// exec gets a sentinel; the egress proxy puts the value in on the way to `broker.hosts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSecretEnv {
    Name(String),
    Brokered(RawBrokered),
}

impl RawSecretEnv {
    /// The secret's name in the secrets file.
    pub fn name(&self) -> &str {
        match self {
            RawSecretEnv::Name(n) => n,
            RawSecretEnv::Brokered(b) => &b.name,
        }
    }
}

/// `{name, broker: {hosts, in}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrokered {
    /// The secret's name in the secrets file.
    pub name: String,
    /// Where the value may go.
    pub broker: RawBroker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    /// `host:port` destinations the value is added for; each on the sandbox's `egress.allow`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Where in a request the sentinel is replaced: `header`, `query`, `body`.
    #[serde(rename = "in", default)]
    pub places: Vec<String>,
}

impl RawSandbox {
    /// The names of `secretEnv`, in order.
    pub fn secret_names(&self) -> Vec<String> {
        self.secret_env
            .iter()
            .map(|e| e.name().to_string())
            .collect()
    }

    /// The shared settings part, for merging over `defaults`.
    pub fn settings(&self) -> RawSettings {
        RawSettings {
            image: self.image.clone(),
            user: self.user.clone(),
            network: self.network.clone(),
            read_only_root: self.read_only_root,
            tmpfs: self.tmpfs.clone(),
            cap_drop: self.cap_drop.clone(),
            cap_add: self.cap_add.clone(),
            no_new_privileges: self.no_new_privileges,
            init: self.init,
            seccomp: self.seccomp.clone(),
            limits: self.limits.clone(),
            egress: self.egress.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLimits {
    /// Size, or `unlimited`.
    #[serde(default)]
    pub memory: Option<Scalar>,
    /// Size of memory + swap, or `unlimited`; default: equal to `memory` (no swap).
    #[serde(default)]
    pub memory_swap: Option<Scalar>,
    /// Fractional CPUs, or `unlimited`.
    #[serde(default)]
    pub cpus: Option<Scalar>,
    /// Process count, or `unlimited`.
    #[serde(default)]
    pub pids: Option<Scalar>,
}

/// `seccomp:` as a map, or the shorthand `seccomp: <policy>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSeccomp {
    /// `strict`, `default` or `permissive`.
    #[serde(default)]
    pub policy: Option<String>,
    /// Syscalls added to the policy's allow list.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Syscalls removed from it.
    #[serde(default)]
    pub deny: Option<Vec<String>>,
    /// A profile file instead of a policy, relative to the manifest.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Wrapper accepting both `seccomp: default` and `seccomp: {policy: default}`.
#[derive(Debug, Clone, Default)]
pub struct RawSeccompField(pub RawSeccomp);

impl<'de> Deserialize<'de> for RawSeccompField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSeccompField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy name or a map with policy/allow/deny or profile")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSeccompField, E> {
                Ok(RawSeccompField(RawSeccomp {
                    policy: Some(v.to_string()),
                    ..RawSeccomp::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSeccompField, A::Error> {
                RawSeccomp::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSeccompField)
            }
        }
        d.deserialize_any(V)
    }
}

/// One bind, as in a BindSet or a sandbox's `binds`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBind {
    /// Host path: `~`, `${VAR}`, or relative to the bind set's `root`.
    pub source: String,
    /// Absolute path in the sandbox; default: the resolved source path.
    #[serde(default)]
    pub target: Option<String>,
    /// `ro` or `rw`; required.
    pub mode: RawMode,
    /// Create the host directory (0700) if missing.
    #[serde(default)]
    pub create: bool,
    /// Unix sockets in the bound tree are refused (one can forward to the engine whatever
    /// its name) unless this says the sandbox needs them.
    #[serde(default)]
    pub allow_sockets: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawMode {
    Ro,
    Rw,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLiveness {
    /// Probe interval.
    pub every: Scalar,
    /// Command run in the sandbox; exit 0 is alive.
    pub exec: Vec<String>,
    /// Per-probe timeout; default 10s.
    #[serde(default)]
    pub timeout: Option<Scalar>,
    /// Consecutive failures before the restart; default 3.
    #[serde(default)]
    pub failures: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAdopt {
    /// Which foreign containers to adopt.
    pub selector: RawSelector,
    /// The limits applied to them.
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// The egress allow-list of the adopted containers.
    #[serde(default)]
    pub egress: Option<RawEgress>,
}

/// `egress:`: what a sandbox may reach through the fortress's proxy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEgress {
    /// `host[:port]`, `*.domain[:port]`, `addr[:port]`, `net/len[:port]` (IPv6 in brackets
    /// when a port follows); without a port, 80 and 443. At least one entry.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Pinned resolution: host name -> address (split horizon, tests). A pinned name is never
    /// looked up and may point at a private address.
    #[serde(default)]
    pub hosts: BTreeMap<String, Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSelector {
    /// `key=value` or `key`.
    #[serde(default)]
    pub label: Option<String>,
    /// Container name prefix.
    #[serde(default)]
    pub name_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHealth {
    /// Check name.
    pub name: String,
    /// HTTP probe.
    #[serde(default)]
    pub http: Option<RawHttpProbe>,
    /// Exec probe.
    #[serde(default)]
    pub exec: Option<RawExecProbe>,
    /// Probe interval (or `cron`).
    #[serde(default)]
    pub every: Option<Scalar>,
    /// Probe cron expression (or `every`).
    #[serde(default)]
    pub cron: Option<String>,
    /// Consecutive failures before the restart; default 3.
    #[serde(default)]
    pub failures: Option<u32>,
    /// What to restart.
    #[serde(default)]
    pub restart: Option<RawRestart>,
    /// Delay between restarts of the same target.
    #[serde(default)]
    pub backoff: Option<RawBackoff>,
    /// When to stop restarting.
    #[serde(default)]
    pub quarantine: Option<RawQuarantine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpProbe {
    /// `http://` or `https://` URL; a status of 200-399 is healthy.
    pub url: String,
    /// Skip certificate verification (loopback hosts only).
    #[serde(default)]
    pub insecure_tls: bool,
    /// Request timeout; default 5s.
    #[serde(default)]
    pub timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExecProbe {
    /// Container to exec in.
    pub container: String,
    /// Command; exit 0 is healthy.
    pub command: Vec<String>,
    /// Timeout; default 10s.
    #[serde(default)]
    pub timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRestart {
    /// A systemd unit to restart.
    #[serde(default)]
    pub systemd_unit: Option<String>,
    /// The unit is a user unit (`systemctl --user`).
    #[serde(default)]
    pub user_unit: Option<bool>,
    /// A container to restart.
    #[serde(default)]
    pub container: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackoff {
    /// First delay; default 10s.
    #[serde(default)]
    pub initial: Option<Scalar>,
    /// Largest delay; default 5m.
    #[serde(default)]
    pub max: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawQuarantine {
    /// Restarts that trigger quarantine; default 5.
    #[serde(default)]
    pub restarts: Option<u32>,
    /// Within this window; default 30m.
    #[serde(default)]
    pub within: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackup {
    /// Job name.
    pub name: String,
    /// Glob patterns of files to snapshot.
    pub sources: Vec<String>,
    /// Destination directory.
    pub dest: String,
    /// Cron expression.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Retention.
    #[serde(default)]
    pub keep: Option<RawKeep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKeep {
    /// Most recent snapshots kept; default 7.
    #[serde(default)]
    pub last: Option<u32>,
    /// Daily snapshots kept; default 7.
    #[serde(default)]
    pub daily: Option<u32>,
    /// Weekly snapshots kept; default 4.
    #[serde(default)]
    pub weekly: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSchedules {
    /// Cron of the limits sweep.
    #[serde(default)]
    pub limits: Option<String>,
    /// Cron of the verify run.
    #[serde(default)]
    pub verify: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetrics {
    /// `host:port` to listen on.
    pub listen: String,
}

/// Kind `BindSet`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBindSet {
    /// Must be `clw-fortress/v1` (checked through `RawHeader` before this parse).
    #[allow(dead_code)]
    pub api_version: String,
    /// Must be `BindSet` (checked through `RawHeader`).
    #[allow(dead_code)]
    pub kind: String,
    /// The name sandboxes refer to.
    pub metadata: RawMetadata,
    /// Relative sources and deny entries resolve against it; default: this file's directory.
    #[serde(default)]
    pub root: Option<String>,
    /// The binds.
    #[serde(default)]
    pub binds: Vec<RawBind>,
    /// Paths never mounted, not even through a parent.
    #[serde(default)]
    pub deny: Vec<String>,
}
