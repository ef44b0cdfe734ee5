//! Limit diagnostics: what happened to a sandbox against its memory, pids and cpu limits
//! (`clw-sandbox-limit-exceeded`), for cgroup v1 and v2.
//!
//! The core is pure: [`CgroupFiles`] (the raw text of the cgroup files) -> [`CgroupUsage`]
//! (parsed counters) -> [`classify`] -> [`LimitEvent`]s. The readers around it are thin:
//!
//! - The host cgroup fs first ([`read_host_of`]), when the engine is local: the container's
//!   cgroup paths come from `/proc/<State.Pid>/cgroup`, which holds for both drivers (cgroupfs
//!   and systemd) and both engines. The read is only trusted when those paths name the
//!   container's full id (`docker/<id>`, `docker-<id>.scope`, `libpod-<id>`): with a remote
//!   engine, or an engine in another pid namespace, the same pid is some other process here.
//!   Reading from the host costs no exec and, above all, changes nothing: measured on Podman
//!   4.3 (conmon + runc), an exec into a sandbox whose pids are used up fails ("read init-p:
//!   connection reset by peer") and its refused forks raise `pids.events` themselves, so a
//!   status read from inside would keep recording fork refusals it caused.
//! - Inside the sandbox as fallback ([`read_inside`]): one exec of `grep -H '' <files>`
//!   reading the container's own cgroup at `/sys/fs/cgroup` (remote or rootless engines whose
//!   processes this host cannot see). Measured on Docker 20.10, cgroup v1,
//!   `CgroupnsMode=host`: runc bind-mounts the container's own cgroup directory there, so
//!   `/sys/fs/cgroup/pids/pids.max` shows the container's limit; on v2 the private cgroup
//!   namespace gives the same view; Podman 4.3 shows the same. `grep -H` rather than `cat`:
//!   `cat` concatenates without boundaries, so a file missing on one kernel (e.g.
//!   `pids.peak`) would shift every value after it; `grep -H` names each line's file.
//!
//! A stopped container has no cgroup any more: only the engine's `State.OOMKilled` remains.
//!
//! Measured signals (Docker 20.10, kernel 6.18, cgroup v1): an exec'd process killed by the
//! OOM killer leaves the container running with `OOMKilled=false` and no `oom` event; the only
//! trace is `memory.oom_control`'s `oom_kill 1` (and `max_usage_in_bytes` equal to the limit);
//! `memory.failcnt` stayed 0. A fork refused by the pids limit increments `pids.events`'s
//! `max` counter. So the cgroup counters, not the engine's flags, are the primary evidence.
//!
//! This module must not act on what it finds (restart, raise limits): it reports and records.

pub mod kernel;

use crate::manifest::units::format_size;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::cgroup;
use crate::engine::{Engine, ExecRequest};
use crate::error::ErrorCode;
use crate::host::HostPaths;
use crate::state::limits::NewLimitEvent;
use crate::state::{State, StateError};

/// A throttled share of CPU periods at or above this percentage is "sustained" throttling.
pub const CPU_THROTTLED_PERCENT: i64 = 20;
/// ... and only once at least this many periods were throttled (a short burst is not news).
pub const CPU_THROTTLED_MIN_PERIODS: i64 = 10;

/// The cgroup v1 files read, per controller directory.
const V1_FILES: [(&str, &[&str]); 3] = [
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.max_usage_in_bytes",
            "memory.failcnt",
            "memory.oom_control",
        ],
    ),
    (
        "pids",
        &["pids.max", "pids.current", "pids.peak", "pids.events"],
    ),
    (
        "cpu",
        &["cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
    ),
];

/// The cgroup v2 files read, all in the one unified directory.
const V2_FILES: [&str; 10] = [
    "memory.max",
    "memory.current",
    "memory.peak",
    "memory.events",
    "pids.max",
    "pids.current",
    "pids.peak",
    "pids.events",
    "cpu.stat",
    "cpu.max",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Memory,
    Pids,
    Cpu,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Pids => "pids",
            Resource::Cpu => "cpu",
        }
    }

    fn parse(s: &str) -> Option<Resource> {
        [Resource::Memory, Resource::Pids, Resource::Cpu]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One limit a sandbox ran into (`clw-sandbox-limit-exceeded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitEvent {
    pub code: ErrorCode,
    pub resource: Resource,
    /// Peak memory in bytes, peak (or current) pids, or throttled cpu periods.
    pub usage: Option<i64>,
    /// The memory limit in bytes, the pids limit, or the cpu periods counted.
    pub limit: Option<i64>,
    /// `bytes`, `pids` or `periods`.
    pub unit: &'static str,
    /// How many times: OOM kills, refused forks, throttled periods. Cumulative for the
    /// container's lifetime, so recording deduplicates on it.
    pub count: i64,
    pub message: String,
}

/// The text of the cgroup files read, keyed by their path below the cgroup root:
/// `memory/memory.oom_control` on v1, `memory.events` on v2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupFiles(pub BTreeMap<String, String>);

impl CgroupFiles {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the output of `grep -H '' <files>` run with absolute paths under `root`.
    pub fn from_grep(output: &str, root: &str) -> CgroupFiles {
        let prefix = format!("{}/", root.trim_end_matches('/'));
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        for line in output.lines() {
            let Some((path, content)) = line.split_once(':') else {
                continue;
            };
            let key = path.strip_prefix(&prefix).unwrap_or(path).to_string();
            let text = files.entry(key).or_default();
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(content);
        }
        CgroupFiles(files)
    }
}

/// The files a reader asks for, v1 and v2 together (the missing ones are simply absent).
pub fn wanted_files() -> Vec<String> {
    let mut v: Vec<String> = V1_FILES
        .iter()
        .flat_map(|(dir, files)| files.iter().map(move |f| format!("{dir}/{f}")))
        .collect();
    v.extend(V2_FILES.iter().map(|f| f.to_string()));
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CgroupVersion {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v2")]
    V2,
}

/// Parsed counters of one container's cgroup. `None`: the kernel does not offer the file.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CgroupUsage {
    pub version: Option<CgroupVersion>,
    pub memory_current: Option<i64>,
    pub memory_peak: Option<i64>,
    /// `None`: unlimited.
    pub memory_limit: Option<i64>,
    pub memory_oom_kills: Option<i64>,
    /// v1 `memory.failcnt`, v2 `memory.events` `max`: times usage hit the limit.
    pub memory_limit_hits: Option<i64>,
    pub pids_current: Option<i64>,
    pub pids_peak: Option<i64>,
    /// `None`: unlimited.
    pub pids_limit: Option<i64>,
    /// Forks refused because of the limit (`pids.events` `max`).
    pub pids_refused: Option<i64>,
    pub cpu_periods: Option<i64>,
    pub cpu_throttled_periods: Option<i64>,
    pub cpu_throttled_usec: Option<i64>,
    /// The cpu quota in CPUs, `None` when unlimited.
    pub cpu_limit: Option<f64>,
}

fn int(s: Option<&str>) -> Option<i64> {
    s?.trim().parse().ok()
}

/// A `key value` line of a flat-keyed file (`memory.events`, `cpu.stat`, `oom_control`).
fn keyed(s: Option<&str>, key: &str) -> Option<i64> {
    s?.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A limit file's value, `None` when unlimited (or unreadable).
fn limit(s: Option<&str>) -> Option<i64> {
    cgroup::limit(s?).flatten()
}

impl CgroupUsage {
    pub fn parse(files: &CgroupFiles) -> CgroupUsage {
        let v1 = files.0.keys().any(|k| k.contains('/'));
        let v2 = files.0.keys().any(|k| !k.contains('/'));
        if v1 {
            CgroupUsage::parse_v1(files)
        } else if v2 {
            CgroupUsage::parse_v2(files)
        } else {
            CgroupUsage::default()
        }
    }

    fn parse_v1(f: &CgroupFiles) -> CgroupUsage {
        let quota = f
            .get("cpu/cpu.cfs_quota_us")
            .zip(f.get("cpu/cpu.cfs_period_us"))
            .and_then(|(q, p)| cgroup::cfs_quota(q, p).flatten());
        let stat = f.get("cpu/cpu.stat");
        CgroupUsage {
            version: Some(CgroupVersion::V1),
            memory_current: int(f.get("memory/memory.usage_in_bytes")),
            memory_peak: int(f.get("memory/memory.max_usage_in_bytes")),
            memory_limit: limit(f.get("memory/memory.limit_in_bytes")),
            memory_oom_kills: keyed(f.get("memory/memory.oom_control"), "oom_kill"),
            memory_limit_hits: int(f.get("memory/memory.failcnt")),
            pids_current: int(f.get("pids/pids.current")),
            pids_peak: int(f.get("pids/pids.peak")),
            pids_limit: limit(f.get("pids/pids.max")),
            // Not every v1 kernel has pids.events; where it is absent the refusals are unknown.
            pids_refused: keyed(f.get("pids/pids.events"), "max"),
            cpu_periods: keyed(stat, "nr_periods"),
            cpu_throttled_periods: keyed(stat, "nr_throttled"),
            cpu_throttled_usec: keyed(stat, "throttled_time").map(|ns| ns / 1000),
            cpu_limit: quota.map(cgroup::CpuQuota::cpus),
        }
    }

    fn parse_v2(f: &CgroupFiles) -> CgroupUsage {
        let stat = f.get("cpu.stat");
        let cpu_limit = f
            .get("cpu.max")
            .and_then(|s| cgroup::cpu_max(s).flatten())
            .map(cgroup::CpuQuota::cpus);
        let events = f.get("memory.events");
        CgroupUsage {
            version: Some(CgroupVersion::V2),
            memory_current: int(f.get("memory.current")),
            memory_peak: int(f.get("memory.peak")),
            memory_limit: limit(f.get("memory.max")),
            memory_oom_kills: keyed(events, "oom_kill"),
            memory_limit_hits: keyed(events, "max"),
            pids_current: int(f.get("pids.current")),
            pids_peak: int(f.get("pids.peak")),
            pids_limit: limit(f.get("pids.max")),
            pids_refused: keyed(f.get("pids.events"), "max"),
            cpu_periods: keyed(stat, "nr_periods"),
            cpu_throttled_periods: keyed(stat, "nr_throttled"),
            cpu_throttled_usec: keyed(stat, "throttled_usec"),
            cpu_limit,
        }
    }
}

/// Where the counters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An exec inside the sandbox.
    Inside,
    /// The host cgroup fs.
    Host,
    /// No cgroup could be read (stopped container, remote engine and a failed exec).
    None,
}

/// What can be known about one container's limits right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub container_id: String,
    pub name: String,
    pub running: bool,
    /// The engine's `State.OOMKilled`.
    pub oom_killed: bool,
    /// A dead container's OOM kill as the kernel's log records it (`task (pid N)`), when the
    /// engine does not say so itself (Podman 4.3; see [`kernel`]).
    pub kernel_oom_kill: Option<String>,
    pub exit_code: Option<i64>,
    pub source: Source,
    pub usage: Option<CgroupUsage>,
    /// The memory limit the engine holds for the container: what a stopped container's
    /// event can still name once its cgroup (and its counters) are gone.
    pub configured_memory: Option<i64>,
    /// The pids limit the engine holds, likewise.
    pub configured_pids: Option<i64>,
}

fn opt(v: Option<i64>, f: impl Fn(i64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "unknown".into())
}

/// The limit events an observation shows. Pure.
pub fn classify(o: &Observation) -> Vec<LimitEvent> {
    let mut out = Vec::new();
    let u = o.usage.unwrap_or_default();

    let oom_kills = u.memory_oom_kills.unwrap_or(0);
    if oom_kills > 0 || o.oom_killed || o.kernel_oom_kill.is_some() {
        let limit = u.memory_limit.or(o.configured_memory);
        // An OOM kill means the cgroup reached its limit; without counters (a dead
        // container's cgroup is gone) the limit is the best statement of the usage.
        let usage = u.memory_peak.or(u.memory_current).or(limit);
        let count = oom_kills.max(1);
        let evidence = if oom_kills > 0 {
            format!("{oom_kills} OOM kill(s)")
        } else if let (false, Some(victim)) = (o.oom_killed, &o.kernel_oom_kill) {
            format!(
                "the kernel's log records the OOM kill of {victim} in its memory cgroup (exit {})",
                opt(o.exit_code, |c| c.to_string())
            )
        } else {
            format!(
                "the engine reports OOMKilled (exit {})",
                opt(o.exit_code, |c| c.to_string())
            )
        };
        out.push(LimitEvent {
            code: ErrorCode::SandboxLimitExceeded,
            resource: Resource::Memory,
            usage,
            limit,
            unit: "bytes",
            count,
            message: format!(
                "{}: memory limit {} reached (peak {}), {evidence}",
                o.name,
                opt(limit, format_size),
                opt(usage, format_size)
            ),
        });
    }

    let refused = u.pids_refused.unwrap_or(0);
    if refused > 0 {
        let usage = u.pids_peak.or(u.pids_current);
        out.push(LimitEvent {
            code: ErrorCode::SandboxLimitExceeded,
            resource: Resource::Pids,
            usage,
            limit: u.pids_limit,
            unit: "pids",
            count: refused,
            message: format!(
                "{}: pids {}/{}: fork refused {refused} time(s)",
                o.name,
                opt(usage, |v| v.to_string()),
                opt(u.pids_limit, |v| v.to_string())
            ),
        });
    }

    if let (Some(periods), Some(throttled)) = (u.cpu_periods, u.cpu_throttled_periods) {
        if periods > 0
            && throttled >= CPU_THROTTLED_MIN_PERIODS
            && throttled * 100 / periods >= CPU_THROTTLED_PERCENT
        {
            out.push(LimitEvent {
                code: ErrorCode::SandboxLimitExceeded,
                resource: Resource::Cpu,
                usage: Some(throttled),
                limit: Some(periods),
                unit: "periods",
                count: throttled,
                message: format!(
                    "{}: cpu limit {} throttled in {throttled} of {periods} periods ({}%, {:.1}s throttled)",
                    o.name,
                    u.cpu_limit
                        .map(|c| format!("{c} cpus"))
                        .unwrap_or_else(|| "unlimited".into()),
                    throttled * 100 / periods,
                    u.cpu_throttled_usec.unwrap_or(0) as f64 / 1e6
                ),
            });
        }
    }
    out
}

/// Reads the container's cgroup files from inside it: one exec of `grep -H '' <files>`.
/// `None` when the exec could not run or printed nothing.
pub async fn read_inside<E: Engine>(engine: &E, container: &str) -> Option<CgroupFiles> {
    const ROOT: &str = "/sys/fs/cgroup";
    let mut cmd = vec!["grep".to_string(), "-H".to_string(), String::new()];
    cmd.extend(wanted_files().into_iter().map(|f| format!("{ROOT}/{f}")));
    let req = ExecRequest {
        cmd,
        ..Default::default()
    };
    match engine.exec(container, &req).await {
        // grep exits 2 when some file is missing (one kernel lacks pids.peak, the other v1
        // files); what it printed is still good.
        Ok(out) => {
            let files = CgroupFiles::from_grep(&out.stdout_str(), ROOT);
            (!files.is_empty()).then_some(files)
        }
        Err(e) => {
            tracing::debug!(container, error = %crate::report::chain(&e), "cgroup read by exec failed");
            None
        }
    }
}

/// Whether a cgroup path (or several, one per line) names the container `id`. Both engines
/// and both cgroup drivers put the full id in it (`docker/<id>`, `docker-<id>.scope`,
/// `libpod-<id>`); a full id only, since a short prefix could match an unrelated path.
pub fn names_container(cgroup_path: &str, id: &str) -> bool {
    id.len() >= 64 && cgroup_path.contains(id)
}

fn proc_cgroup(host: &HostPaths, pid: i64) -> Option<String> {
    std::fs::read_to_string(host.proc.join(pid.to_string()).join("cgroup")).ok()
}

/// [`read_host`], trusted only when `pid`'s cgroups name `container_id` (see the module
/// comment: with a remote engine the pid is another process here).
pub fn read_host_of(host: &HostPaths, pid: i64, container_id: &str) -> Option<CgroupFiles> {
    let text = proc_cgroup(host, pid)?;
    names_container(&text, container_id).then(|| cgroup_files(host, &text))?
}

/// Reads the cgroup files of process `pid` from the host cgroup fs, locating its cgroups
/// through `<proc>/<pid>/cgroup`. `None` when nothing could be read.
pub fn read_host(host: &HostPaths, pid: i64) -> Option<CgroupFiles> {
    cgroup_files(host, &proc_cgroup(host, pid)?)
}

/// The cgroup files of the cgroups listed in a `/proc/<pid>/cgroup` text.
fn cgroup_files(host: &HostPaths, text: &str) -> Option<CgroupFiles> {
    let root = host.cgroup_root();
    let unified = root.join("cgroup.controllers").exists();
    let mut files = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            if !unified {
                // A hybrid host's `0::` line points into the v2 tree that holds no limits.
                continue;
            }
            for f in V2_FILES {
                if let Ok(t) = std::fs::read_to_string(root.join(rel).join(f)) {
                    files.insert(f.to_string(), t.trim_end().to_string());
                }
            }
            continue;
        }
        for (dir, names) in V1_FILES {
            if !controllers.split(',').any(|c| c == dir) {
                continue;
            }
            // `cpu` is often co-mounted as `cpu,cpuacct` with `cpu` as a symlink to it.
            let base = [root.join(dir), root.join(controllers)]
                .into_iter()
                .find(|b| b.join(rel).is_dir());
            let Some(base) = base else { continue };
            for f in names {
                if let Ok(t) = std::fs::read_to_string(base.join(rel).join(f)) {
                    files.insert(format!("{dir}/{f}"), t.trim_end().to_string());
                }
            }
        }
    }
    (!files.is_empty()).then_some(CgroupFiles(files))
}

/// Inspects `container` and reads its cgroup counters (inside first, then the host).
/// `Ok(None)` when no such container exists.
pub async fn observe<E: Engine>(
    engine: &E,
    container: &str,
    host: &HostPaths,
) -> Result<Option<Observation>, crate::engine::EngineError> {
    let Some(i) = engine.inspect(container).await? else {
        return Ok(None);
    };
    let state = &i.state;
    let running = state.running;
    let id = if i.id.is_empty() {
        container.to_string()
    } else {
        i.id.clone()
    };
    let mut source = Source::None;
    let mut files = None;
    if running {
        if let Some(f) = state.pid.and_then(|p| read_host_of(host, p, &id)) {
            files = Some(f);
            source = Source::Host;
        } else {
            files = read_inside(engine, &id).await;
            if files.is_some() {
                source = Source::Inside;
            }
        }
    }
    let oom_killed = state.oom_killed;
    // Exit 137 is SIGKILL; whether the memory limit sent it only the kernel's log can say when
    // the engine does not (see `kernel`).
    let kernel_oom_kill = (!running && !oom_killed && state.exit_code == Some(137))
        .then(|| {
            let died_ago = state
                .finished_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| {
                    (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                        .to_std()
                        .ok()
                })
                .unwrap_or_default();
            kernel::oom_kill_before_death(&host.kmsg(), &id, died_ago)
        })
        .flatten()
        .map(|k| format!("{} (pid {})", k.task, k.pid));
    Ok(Some(Observation {
        container_id: id,
        name: if i.name.is_empty() {
            container.to_string()
        } else {
            i.name.clone()
        },
        running,
        oom_killed,
        kernel_oom_kill,
        exit_code: state.exit_code,
        source,
        usage: files.as_ref().map(CgroupUsage::parse),
        configured_memory: i.resources.memory.filter(|m| *m > 0),
        configured_pids: i.resources.pids_limit.filter(|p| *p > 0),
    }))
}

/// The limit events of `container` now: what the daemon calls on `die` / `oom` events.
/// Engine errors are logged and yield no events (diagnosis must never stop the caller).
pub async fn diagnose<E: Engine>(engine: &E, container: &str) -> Vec<LimitEvent> {
    match observe(engine, container, &HostPaths::real()).await {
        Ok(Some(o)) => classify(&o),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(container, error = %crate::report::chain(&e), "limit diagnosis failed");
            Vec::new()
        }
    }
}

pub use crate::state::limits::StoredLimitEvent;

/// Records `events` of `container_id` (sandbox or adopted container `target`) in the state
/// database and returns how many rows were new. The counters are cumulative per container,
/// so an event whose count is not above the last recorded one for the same container and
/// resource is the same event seen again and is skipped.
pub fn record_limit_events(
    state: &State,
    container_id: &str,
    target: &str,
    events: &[LimitEvent],
) -> Result<usize, StateError> {
    let mut added = 0;
    for e in events {
        let new = state.record_limit_event(&NewLimitEvent {
            container_id,
            target,
            resource: e.resource.as_str(),
            usage: e.usage,
            limit: e.limit,
            unit: e.unit,
            count: e.count,
            message: &e.message,
        })?;
        added += usize::from(new);
    }
    Ok(added)
}

/// The newest `limit` recorded events, newest first; only those of `target` when given, and
/// only of resources this version knows.
pub fn recent_limit_events(
    state: &State,
    target: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredLimitEvent>, StateError> {
    Ok(state
        .recent_limit_events(target, limit)?
        .into_iter()
        .filter(|e| Resource::parse(&e.resource).is_some())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> CgroupFiles {
        CgroupFiles(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn obs(usage: CgroupUsage) -> Observation {
        Observation {
            container_id: "c1".into(),
            name: "sbx".into(),
            running: true,
            oom_killed: false,
            kernel_oom_kill: None,
            exit_code: Some(0),
            source: Source::Inside,
            usage: Some(usage),
            configured_memory: None,
            configured_pids: None,
        }
    }

    /// As measured inside a Docker 20.10 sandbox on cgroup v1 after an OOM kill and a
    /// refused fork.
    fn v1_after_oom_and_fork_bomb() -> CgroupFiles {
        files(&[
            ("memory/memory.limit_in_bytes", "67108864"),
            ("memory/memory.usage_in_bytes", "1404928"),
            ("memory/memory.max_usage_in_bytes", "67108864"),
            ("memory/memory.failcnt", "0"),
            (
                "memory/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 1",
            ),
            ("pids/pids.max", "64"),
            ("pids/pids.current", "1"),
            ("pids/pids.peak", "67"),
            ("pids/pids.events", "max 1"),
            (
                "cpu/cpu.stat",
                "nr_periods 3\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0",
            ),
            ("cpu/cpu.cfs_quota_us", "50000"),
            ("cpu/cpu.cfs_period_us", "100000"),
        ])
    }

    #[test]
    fn grep_output_is_split_per_file_relative_to_the_cgroup_root() {
        let out = "/sys/fs/cgroup/memory/memory.oom_control:oom_kill_disable 0\n\
                   /sys/fs/cgroup/memory/memory.oom_control:oom_kill 2\n\
                   /sys/fs/cgroup/pids/pids.max:64\n";
        let f = CgroupFiles::from_grep(out, "/sys/fs/cgroup");
        assert_eq!(
            f,
            files(&[
                (
                    "memory/memory.oom_control",
                    "oom_kill_disable 0\noom_kill 2"
                ),
                ("pids/pids.max", "64"),
            ])
        );
    }

    #[test]
    fn v1_counters_parse_with_unlimited_memory_as_none() {
        let u = CgroupUsage::parse(&v1_after_oom_and_fork_bomb());
        assert_eq!(u.version, Some(CgroupVersion::V1));
        assert_eq!(u.memory_limit, Some(64 << 20));
        assert_eq!(u.memory_peak, Some(64 << 20));
        assert_eq!(u.memory_oom_kills, Some(1));
        assert_eq!(u.pids_limit, Some(64));
        assert_eq!(u.pids_refused, Some(1));
        assert_eq!(u.cpu_limit, Some(0.5));
        let unlimited = CgroupUsage::parse(&files(&[
            ("memory/memory.limit_in_bytes", "9223372036854771712"),
            ("pids/pids.max", "max"),
            ("cpu/cpu.cfs_quota_us", "-1"),
            ("cpu/cpu.cfs_period_us", "100000"),
        ]));
        assert_eq!(unlimited.memory_limit, None);
        assert_eq!(unlimited.pids_limit, None);
        assert_eq!(unlimited.cpu_limit, None);
    }

    #[test]
    fn v2_counters_parse_from_the_unified_files() {
        let u = CgroupUsage::parse(&files(&[
            ("memory.max", "67108864"),
            ("memory.current", "2000000"),
            ("memory.peak", "67100000"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 310\noom 3\noom_kill 3\noom_group_kill 0",
            ),
            ("pids.max", "64"),
            ("pids.current", "5"),
            ("pids.events", "max 12"),
            (
                "cpu.stat",
                "usage_usec 9000000\nuser_usec 1\nsystem_usec 1\nnr_periods 200\nnr_throttled 150\nthrottled_usec 7000000",
            ),
            ("cpu.max", "50000 100000"),
        ]));
        assert_eq!(u.version, Some(CgroupVersion::V2));
        assert_eq!(u.memory_oom_kills, Some(3));
        assert_eq!(u.memory_limit_hits, Some(310));
        assert_eq!(u.pids_refused, Some(12));
        assert_eq!(u.pids_peak, None, "kernels before 6.1 have no pids.peak");
        assert_eq!(u.cpu_throttled_periods, Some(150));
        assert_eq!(u.cpu_throttled_usec, Some(7_000_000));
        assert_eq!(u.cpu_limit, Some(0.5));
        let max = CgroupUsage::parse(&files(&[("memory.max", "max"), ("cpu.max", "max 100000")]));
        assert_eq!((max.memory_limit, max.cpu_limit), (None, None));
    }

    #[test]
    fn classification_names_resource_usage_and_limit() {
        let events = classify(&obs(CgroupUsage::parse(&v1_after_oom_and_fork_bomb())));
        let kinds: Vec<_> = events.iter().map(|e| e.resource).collect();
        assert_eq!(kinds, [Resource::Memory, Resource::Pids]);
        let m = &events[0];
        assert_eq!(
            (m.usage, m.limit, m.count),
            (Some(64 << 20), Some(64 << 20), 1)
        );
        assert_eq!(
            m.message,
            "sbx: memory limit 64Mi reached (peak 64Mi), 1 OOM kill(s)"
        );
        let p = &events[1];
        assert_eq!((p.usage, p.limit, p.count), (Some(67), Some(64), 1));
        assert_eq!(p.message, "sbx: pids 67/64: fork refused 1 time(s)");
        assert!(events
            .iter()
            .all(|e| e.code == ErrorCode::SandboxLimitExceeded));
    }

    #[test]
    fn cpu_throttling_counts_only_when_sustained() {
        for (periods, throttled, expected) in [
            (200, 150, true),
            (200, 40, true),
            (200, 39, false),
            (20, 9, false),
            (0, 0, false),
        ] {
            let u = CgroupUsage {
                cpu_periods: Some(periods),
                cpu_throttled_periods: Some(throttled),
                ..Default::default()
            };
            let got = classify(&obs(u))
                .iter()
                .any(|e| e.resource == Resource::Cpu);
            assert_eq!(got, expected, "{throttled}/{periods}");
        }
    }

    #[test]
    fn engine_oom_flag_alone_is_a_memory_event_for_a_stopped_container() {
        let o = Observation {
            running: false,
            oom_killed: true,
            kernel_oom_kill: None,
            exit_code: Some(137),
            source: Source::None,
            usage: None,
            ..obs(CgroupUsage::default())
        };
        let e = classify(&o);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].resource, Resource::Memory);
        assert!(
            e[0].message.contains("OOMKilled (exit 137)"),
            "{}",
            e[0].message
        );
        // With the engine's configured limit, the event still names limit and usage.
        let o = Observation {
            configured_memory: Some(64 << 20),
            ..o
        };
        let e = classify(&o);
        assert_eq!(e[0].limit, Some(64 << 20));
        assert_eq!(e[0].usage, Some(64 << 20));
        assert!(
            e[0].message.contains("memory limit 64Mi reached"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn a_quiet_sandbox_has_no_events() {
        let u = CgroupUsage::parse(&files(&[
            (
                "memory/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
            ),
            ("pids/pids.events", "max 0"),
        ]));
        assert!(classify(&obs(u)).is_empty());
    }

    #[test]
    fn host_fallback_reads_v1_controllers_through_proc_pid_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostPaths::under(dir.path());
        let proc_pid = host.proc.join("4242");
        std::fs::create_dir_all(&proc_pid).unwrap();
        std::fs::write(
            proc_pid.join("cgroup"),
            "8:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/docker/abc\n",
        )
        .unwrap();
        let root = host.cgroup_root();
        for (d, f, v) in [
            ("pids", "pids.events", "max 5\n"),
            ("pids", "pids.max", "64\n"),
            ("memory", "memory.oom_control", "oom_kill 2\n"),
            ("cpu,cpuacct", "cpu.stat", "nr_periods 10\nnr_throttled 1\n"),
        ] {
            std::fs::create_dir_all(root.join(d).join("docker/abc")).unwrap();
            std::fs::write(root.join(d).join("docker/abc").join(f), v).unwrap();
        }
        let u = CgroupUsage::parse(&read_host(&host, 4242).unwrap());
        assert_eq!(u.pids_refused, Some(5));
        assert_eq!(u.memory_oom_kills, Some(2));
        assert_eq!(u.cpu_periods, Some(10));
        assert_eq!(read_host(&host, 1), None);
    }

    #[test]
    fn the_host_read_is_trusted_only_when_the_cgroup_names_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostPaths::under(dir.path());
        let id = "a".repeat(64);
        let other = "b".repeat(64);
        std::fs::create_dir_all(host.proc.join("42")).unwrap();
        std::fs::write(
            host.proc.join("42/cgroup"),
            format!("8:pids:/libpod_parent/libpod-{id}\n"),
        )
        .unwrap();
        let cg = host
            .cgroup_root()
            .join("pids/libpod_parent")
            .join(format!("libpod-{id}"));
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(cg.join("pids.max"), "64\n").unwrap();
        assert!(read_host_of(&host, 42, &id).is_some());
        // The same pid belongs to another container (or to a process of another host).
        assert_eq!(read_host_of(&host, 42, &other), None);
        // A short id is not enough to be sure.
        assert_eq!(read_host_of(&host, 42, &id[..12]), None);
    }

    #[test]
    fn host_fallback_reads_the_unified_v2_directory() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostPaths::under(dir.path());
        std::fs::create_dir_all(host.proc.join("7")).unwrap();
        std::fs::write(
            host.proc.join("7/cgroup"),
            "0::/system.slice/docker-abc.scope\n",
        )
        .unwrap();
        let root = host.cgroup_root();
        let cg = root.join("system.slice/docker-abc.scope");
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(cg.join("memory.events"), "oom_kill 4\n").unwrap();
        let u = CgroupUsage::parse(&read_host(&host, 7).unwrap());
        assert_eq!(u.version, Some(CgroupVersion::V2));
        assert_eq!(u.memory_oom_kills, Some(4));
    }

    #[test]
    fn recording_skips_counters_already_seen() {
        let s = State::in_memory();
        let events = classify(&obs(CgroupUsage::parse(&v1_after_oom_and_fork_bomb())));
        assert_eq!(record_limit_events(&s, "c1", "sbx", &events).unwrap(), 2);
        assert_eq!(record_limit_events(&s, "c1", "sbx", &events).unwrap(), 0);
        let mut more = events.clone();
        more[1].count = 3;
        assert_eq!(record_limit_events(&s, "c1", "sbx", &more).unwrap(), 1);
        // A new container of the same sandbox starts its counters again.
        assert_eq!(record_limit_events(&s, "c2", "sbx", &events).unwrap(), 2);
        let recent = recent_limit_events(&s, Some("sbx"), 10).unwrap();
        assert_eq!(recent.len(), 5);
        assert_eq!(recent[0].container_id, "c2");
        assert_eq!(recent_limit_events(&s, Some("other"), 10).unwrap().len(), 0);
    }
}
